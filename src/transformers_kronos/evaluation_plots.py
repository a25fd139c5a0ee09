# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""The report figure of a backtest: metrics and skill scores, error by horizon, calibration, example windows.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display needed), like
[`transformers_kronos.plotting`].
"""

import math

import numpy as np
import pandas as pd

from .evaluation import BASELINES, MODEL, baseline_column
from .forecasting import quantile_column
from .plotting import FORECAST_COLOR, SAMPLE_COLOR, require_matplotlib

MODEL_COLORS = {MODEL: FORECAST_COLOR, "naive": "#555555", "drift": "#d98c1f", "mean": "#8c5fbf"}
SKILL_METRICS = ("mae", "rmse", "mase", "crps")
# example panels drawn at most (one per series, the first ones in id order): a universe would make a poster
MAX_EXAMPLES = 24
# candles of history drawn before an example window's forecast, as a multiple of the forecast's length
HISTORY_SHOWN = 3


def plot_backtest(result, title: str | None = None):
    """
    The report of a [`BacktestResult`] (its first target): the metrics table; skill scores `1 - model / naive`;
    mean absolute error by horizon step; calibration (share of actuals below each quantile, against its level) and
    the PIT histogram; then one example window per series (its last; the first [`MAX_EXAMPLES`] series), with
    history, sample paths, the 80% band and what happened.

    Returns:
        `matplotlib.figure.Figure`.
    """
    Figure, FigureCanvasAgg = require_matplotlib()
    target = result.targets[0]
    examples = list(result.histories)[:MAX_EXAMPLES]
    example_rows = math.ceil(len(examples) / 2)
    fig = Figure(figsize=(14, 2.4 + 4.2 * (2 + example_rows)), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(3 + example_rows, 2, height_ratios=[0.55] + [1] * (2 + example_rows))
    _metrics_table(fig.add_subplot(grid[0, :]), result)
    _skill_scores(fig.add_subplot(grid[1, 0]), result, target)
    _error_by_step(fig.add_subplot(grid[1, 1]), result, target)
    _calibration(fig.add_subplot(grid[2, 0]), result, target)
    _pit_histogram(fig.add_subplot(grid[2, 1]), result, target)
    for i, series_id in enumerate(examples):
        _example_window(fig.add_subplot(grid[3 + i // 2, i % 2]), result, target, series_id)
    fig.suptitle(title or f"Backtest of {target}: {len(result.forecasts)} forecast rows", fontsize=13)
    return fig


def _metrics_table(ax, result):
    ax.axis("off")
    table = result.metrics.copy()
    cells = [[_cell(v) for v in row] for row in table.itertuples(index=False)]
    drawn = ax.table(cellText=cells, colLabels=list(table.columns), loc="center", cellLoc="right")
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(9)
    drawn.scale(1, 1.3)
    ax.set_title("Metrics (docs/evaluation.md defines them)")


def _cell(value):
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _skill_scores(ax, result, target):
    metrics = result.metrics[result.metrics["target"] == target].set_index("model")
    shown = [m for m in SKILL_METRICS if m in metrics.columns]
    models = [m for m in metrics.index if m != "naive"]
    width = 0.8 / max(1, len(models))
    for i, model in enumerate(models):
        # no skill against a naive error of 0 (a constant series): no bar, rather than an infinite one
        skill = [1 - metrics.loc[model, m] / metrics.loc["naive", m] if metrics.loc["naive", m] > 0 else np.nan
                 for m in shown]
        ax.bar(np.arange(len(shown)) + i * width, skill, width, label=model, color=MODEL_COLORS.get(model))
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(shown)) + width * (len(models) - 1) / 2, shown)
    ax.set_ylabel("skill = 1 - model / naive")
    ax.set_title("Skill against the naive random walk (above 0: better)")
    ax.legend()


def _error_by_step(ax, result, target):
    frame = result.forecasts
    actual = frame[f"{target}_actual"]
    for model in (MODEL, *BASELINES):
        column = target if model == MODEL else baseline_column(target, model)
        by_step = (frame[column] - actual).abs().groupby(frame["step"]).mean()
        ax.plot(by_step.index, by_step.to_numpy(), marker="o", markersize=3, label=model, color=MODEL_COLORS[model])
    ax.set_xlabel("horizon step")
    ax.set_ylabel(f"mean absolute error of {target}")
    ax.set_title("Error by horizon")
    ax.legend()


def _calibration(ax, result, target):
    from scipy import stats

    frame = result.forecasts
    actual = frame[f"{target}_actual"].to_numpy(np.float64)
    levels = np.asarray(result.quantiles)
    below = [np.mean(actual <= frame[quantile_column(target, q)].to_numpy(np.float64)) for q in levels]
    ax.plot(levels, below, marker="o", label=MODEL, color=MODEL_COLORS[MODEL])
    for model in BASELINES:
        mean = frame[baseline_column(target, model)].to_numpy(np.float64)
        std = frame[baseline_column(target, model, std=True)].to_numpy(np.float64)
        share = [np.mean(actual <= mean + stats.norm.ppf(q) * std) for q in levels]
        ax.plot(levels, share, marker=".", linestyle="--", label=model, color=MODEL_COLORS[model])
    ax.plot([0, 1], [0, 1], color="black", linewidth=0.8)
    ax.set_xlabel("quantile level")
    ax.set_ylabel("share of actuals below the quantile")
    ax.set_title("Calibration (on the diagonal: calibrated)")
    ax.legend()


def _pit_histogram(ax, result, target):
    from scipy import stats

    frame = result.forecasts
    actual = frame[f"{target}_actual"].to_numpy(np.float64)
    paths = result.paths[target].astype(np.float64)
    # ties (a path equal to the actual) count half, so a point mass does not pile up in one bin
    pit = np.mean(paths < actual[:, None], axis=1) + 0.5 * np.mean(paths == actual[:, None], axis=1)
    naive = stats.norm.cdf(actual, frame[baseline_column(target, "naive")],
                           np.maximum(frame[baseline_column(target, "naive", std=True)], 1e-300))
    bins = np.linspace(0, 1, 11)
    ax.hist([pit, naive], bins=bins, density=True, label=[MODEL, "naive"],
            color=[MODEL_COLORS[MODEL], MODEL_COLORS["naive"]])
    ax.axhline(1, color="black", linewidth=0.8)
    ax.set_xlabel("PIT (share of the forecast below the actual)")
    ax.set_title("PIT histogram (flat: calibrated)")
    ax.legend()


def _example_window(ax, result, target, series_id):
    frame = result.forecasts
    rows = frame[frame[result.id_column] == series_id]
    last_origin = rows["origin"].max()
    window = rows[rows["origin"] == last_origin]
    history = result.histories[series_id].iloc[-HISTORY_SHOWN * len(window):]
    x_hist = np.arange(len(history))
    x_future = len(history) + np.arange(len(window))
    ax.plot(x_hist, history[target].to_numpy(), color="black", linewidth=1, label="history")
    paths = result.paths[target][window.index.to_numpy()]
    ax.plot(x_future, paths, color=SAMPLE_COLOR, linewidth=0.5, alpha=0.5)
    if quantile_column(target, 0.1) in window and quantile_column(target, 0.9) in window:
        ax.fill_between(x_future, window[quantile_column(target, 0.1)], window[quantile_column(target, 0.9)],
                        color=FORECAST_COLOR, alpha=0.2, label="80% band")
    ax.plot(x_future, window[target], color=FORECAST_COLOR, linewidth=1.5, label="forecast (mean)")
    ax.plot(x_future, window[f"{target}_actual"], color="#c0392b", linewidth=1.2, label="actual")
    ax.axvline(len(history) - 0.5, color="black", linewidth=0.6, linestyle=":")
    ax.set_title(f"{series_id}: the last window (origin {pd.Timestamp(last_origin)})")
    ax.set_ylabel(target)
    ax.legend(fontsize=8)
