# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Rolling-origin backtests: Kronos forecasts scored against naive baselines, with no look-ahead.

[`backtest`] cuts the last `windows` origins out of every series, `stride` candles apart and counted back from the
series' end, forecasts the `pred_len` candles after each origin from the `lookback` candles up to it, and scores the
forecasts against what happened, next to three baselines computed from the same lookback:

- `naive`: a random walk, the last value, with a normal spread `sigma * sqrt(h)` at step `h`, `sigma` the root mean
  square of the lookback's one-step changes;
- `drift`: the last value plus `h` times the lookback's mean one-step change, spread `s * sqrt(h * (1 + h / m))`
  with `s` the (sample) standard deviation of the `m = lookback - 1` changes;
- `mean`: the lookback's mean, spread `s * sqrt(1 + 1 / lookback)` with `s` the lookback's (sample) standard
  deviation.

The definitions of the metrics are in docs/evaluation.md and in [`compute_metrics`]. Every number is computed in
float64 from the values of the forecasts table (which `BacktestResult.save` writes as `forecasts.csv`, digit for
digit) and, for the Kronos CRPS, the sample paths (`paths.npz`).

No window reads anything after its origin: the forecaster sees the `lookback` candles up to the origin (so its
normalisation statistics and calendar are theirs), the future timestamps it is given are inferred from them as
`kronos-forecast` infers them, and each window's paths are drawn from a random generator seeded from `seed`, the
series id and the origin ([`window_seed`]), so they depend neither on batching, order or the other series.
"""

import hashlib
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .forecasting import (
    FEATURE_COLUMNS,
    PRICE_COLUMNS,
    infer_future_timestamps,
    quantile_column,
    reject_numeric_timestamps,
)
from .io_utils import make_folders, remove_folders, temporary_sibling

METRICS = ("mae", "rmse", "mase", "crps", "coverage_80", "direction_accuracy", "ic", "rank_ic", "n")
MODEL = "kronos"
BASELINES = ("naive", "drift", "mean")
# an (origin, step) group enters IC / RankIC when at least this many series forecast it
MIN_IC_SERIES = 3
COVERAGE_LEVELS = (0.1, 0.9)
# with `batch_size=None`, windows handed to the forecaster per call (the progress bar moves once per call)
WINDOWS_PER_CALL = 64
DEFAULT_ID_COLUMN = "series_id"
# the id of a single series given without an id column
DEFAULT_SERIES_NAME = "series"
TIMESTAMP_COLUMN = "timestamps"


# --------------------------------------------------------------------------------------------------------------------
# Windows and seeds
# --------------------------------------------------------------------------------------------------------------------


def window_seed(seed: int, series_id, origin) -> int:
    """
    The seed of one (series, origin) forecast: a stable 63-bit hash (BLAKE2b) of `seed`, `str(series_id)` and the
    origin's ISO timestamp, the same in every process and Python version (unlike `hash()`).
    """
    text = f"{int(seed)}\x1f{series_id}\x1f{pd.Timestamp(origin).isoformat()}"
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def origin_positions(length: int, lookback: int, pred_len: int, windows: int, stride: int) -> list[int]:
    """
    Row positions of a series' last `windows` origins, oldest first: the last one leaves exactly `pred_len` candles
    after it, the others lie `stride` candles apart before it, and each has `lookback` candles up to it.

    Raises:
        `ValueError` when the series is too short for `windows` such origins.
    """
    last = length - 1 - pred_len
    positions = [last - k * stride for k in range(windows)][::-1]
    if positions[0] < lookback - 1:
        fit = 0 if last < lookback - 1 else (last - (lookback - 1)) // stride + 1
        raise ValueError(
            f"{length} candles hold {fit} window(s) of lookback {lookback} + pred_len {pred_len} with stride "
            f"{stride}, fewer than the {windows} asked for"
        )
    return positions


@dataclass
class _Window:
    """One forecast: a series, the position of its origin, its context and what followed."""

    series_id: object
    position: int
    context: pd.DataFrame  # the lookback candles, `timestamps` and the numeric columns
    future: pd.DataFrame  # the `pred_len` candles after the origin

    @property
    def origin(self) -> pd.Timestamp:
        return self.context[TIMESTAMP_COLUMN].iloc[-1]


# --------------------------------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------------------------------


def split_series(data, id_column=None, timestamp_column=TIMESTAMP_COLUMN, series_name=DEFAULT_SERIES_NAME) -> dict:
    """
    The series of `data`, each a frame with a `timestamps` column and the numeric K-line columns it has.

    Args:
        data: a `pandas.DataFrame` holding one series, or many in long format with `id_column` naming the series of
            each row; or a mapping from series id to frame (`id_column` then only names the forecasts' id column).
            Timestamps come from `timestamp_column` or a `DatetimeIndex`.
        series_name: The id of a frame that holds one series (no `id_column`).

    Raises:
        `ValueError` naming the series and the problem (missing columns or timestamps, unordered timestamps).
    """
    if isinstance(data, Mapping):
        items = list(data.items())
    elif isinstance(data, pd.DataFrame):
        if id_column is None:
            items = [(series_name, data)]
        elif id_column not in data.columns:
            raise ValueError(f"the data has no id column {id_column!r} (columns: {', '.join(map(str, data.columns))})")
        else:
            items = [(key, group.drop(columns=id_column)) for key, group in data.groupby(id_column, sort=True)]
    else:
        raise TypeError(f"`data` must be a pandas DataFrame or a mapping of them, got {type(data).__name__}")
    if not items:
        raise ValueError("the data holds no series")
    single = isinstance(data, pd.DataFrame) and id_column is None
    return {key: _series_frame(frame, timestamp_column, "" if single else f"series {key!r}: ") for key, frame in items}


def _series_frame(frame, timestamp_column, where):
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{where}expected a pandas DataFrame, got {type(frame).__name__}")
    if timestamp_column in frame.columns:
        reject_numeric_timestamps(frame[timestamp_column], f"{where}column {timestamp_column!r}")
        try:
            stamps = pd.to_datetime(frame[timestamp_column])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}column {timestamp_column!r} does not hold timestamps: {err}") from None
    elif isinstance(frame.index, pd.DatetimeIndex):
        stamps = frame.index.to_series()
    else:
        raise ValueError(f"{where}no {timestamp_column!r} column and no DatetimeIndex")
    missing = [c for c in PRICE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}missing column(s) {', '.join(missing)}")
    columns = [c for c in FEATURE_COLUMNS if c in frame.columns]
    out = frame[columns].astype(np.float64).reset_index(drop=True)
    out.insert(0, TIMESTAMP_COLUMN, pd.DatetimeIndex(stamps).to_numpy())
    steps = out[TIMESTAMP_COLUMN].diff().iloc[1:]
    if (steps <= pd.Timedelta(0)).any():
        first = int(np.flatnonzero((steps <= pd.Timedelta(0)).to_numpy())[0]) + 1
        repeated = steps.iloc[first - 1] == pd.Timedelta(0)
        raise ValueError(
            f"{where}timestamps are not strictly increasing: {out[TIMESTAMP_COLUMN].iloc[first]} (row {first + 1}) "
            + ("is repeated" if repeated else "comes before the row before it")
            # one frame with repeated timestamps is most often a long table of several series
            + ("; a long table of several series needs `id_column`" if repeated and not where else "")
        )
    return out


def _check_count(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"`{name}` must be at least {minimum}, got {value}")
    return int(value)


def _check_options(series, targets, quantiles, metrics):
    """Validate the targets, quantile levels and metrics against the data; returns them normalised."""
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    if not targets:
        raise ValueError("`targets` is empty")
    for target in targets:
        if target not in FEATURE_COLUMNS:
            raise ValueError(f"unknown target {target!r}; choose from {', '.join(FEATURE_COLUMNS)}")
        lacking = [key for key, frame in series.items() if target not in frame.columns]
        if lacking:
            raise ValueError(f"target {target!r} is not in the data (series {lacking[0]!r} has no such column)")
    quantiles = tuple(sorted(float(q) for q in quantiles))
    if any(not 0 < q < 1 for q in quantiles) or len(set(quantiles)) != len(quantiles):
        raise ValueError(f"quantile levels must be distinct and strictly between 0 and 1, got {quantiles}")
    metrics = METRICS if metrics is None else tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    if "coverage_80" in metrics and not set(COVERAGE_LEVELS) <= set(quantiles):
        raise ValueError(f"coverage_80 needs the quantile levels 0.1 and 0.9, got {', '.join(map(str, quantiles))}; "
                         "add them, or leave coverage_80 out of the metrics")
    return targets, quantiles, metrics


def _plan_windows(series, lookback, pred_len, windows, stride):
    planned = []
    for key, frame in series.items():
        try:
            positions = origin_positions(len(frame), lookback, pred_len, windows, stride)
        except ValueError as err:
            where = "the series" if len(series) == 1 else f"series {key!r}"
            raise ValueError(f"{where} is too short: {err}") from None
        for p in positions:
            context = frame.iloc[p - lookback + 1 : p + 1].reset_index(drop=True)
            future = frame.iloc[p + 1 : p + 1 + pred_len].reset_index(drop=True)
            planned.append(_Window(key, p, context, future))
    return planned


# --------------------------------------------------------------------------------------------------------------------
# Forecasting
# --------------------------------------------------------------------------------------------------------------------


def sampling_device(forecaster) -> torch.device:
    """
    Where `forecaster` samples tokens, so where its generators must live: its device, or for a model dispatched
    over devices that of its last parameters (the output heads).
    """
    if getattr(forecaster.model, "hf_device_map", None):
        device = list(forecaster.model.parameters())[-1].device
        return torch.device("cpu") if device.type == "meta" else device
    return torch.device(forecaster.device)


def _forecast_paths(forecaster, windows, pred_len, samples, seed, batch_size, sampling, verbose):
    """
    Sample paths of every window, `(len(windows), samples, pred_len, 6)` float32 in the data's units. Windows go
    to [`KronosForecaster.predict_batch`] in groups, each window with its own seeded generator.
    """
    per_call = max(1, batch_size // samples) if batch_size is not None else WINDOWS_PER_CALL
    futures = []
    for w in windows:
        try:
            futures.append(infer_future_timestamps(w.context[TIMESTAMP_COLUMN], pred_len))
        except ValueError as err:
            raise ValueError(f"series {w.series_id!r}, origin {w.origin}: {err}") from None
    device = sampling_device(forecaster)
    out = np.empty((len(windows), samples, pred_len, len(FEATURE_COLUMNS)), dtype=np.float32)
    with tqdm(total=len(windows), desc="Backtest", unit="window", disable=not verbose) as bar:
        for start in range(0, len(windows), per_call):
            chunk = windows[start : start + per_call]
            generators = [
                torch.Generator(device).manual_seed(window_seed(seed, w.series_id, w.origin)) for w in chunk
            ]
            _, paths = forecaster.predict_batch(
                [w.context.drop(columns=TIMESTAMP_COLUMN) for w in chunk],
                [w.context[TIMESTAMP_COLUMN] for w in chunk],
                futures[start : start + per_call],
                pred_len=pred_len,
                sample_count=samples,
                return_samples=True,
                verbose=False,
                batch_size=batch_size,
                generator=generators,
                **sampling,
            )
            out[start : start + len(chunk)] = np.stack(paths)
            bar.update(len(chunk))
    return out


# --------------------------------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------------------------------


def baseline_forecasts(history: np.ndarray, pred_len: int) -> dict:
    """
    The baselines' normal forecasts from one window's lookback values.

    Args:
        history (`np.ndarray` of shape `(lookback,)`): The target over the lookback, oldest first (at least 2).
        pred_len (`int`): Steps to forecast.

    Returns:
        `dict` from baseline name to `(mean, std)`, two float64 arrays of shape `(pred_len,)`.
    """
    x = np.asarray(history, dtype=np.float64)
    d = np.diff(x)
    h = np.arange(1, pred_len + 1, dtype=np.float64)
    last = x[-1]
    s_diff = d.std(ddof=1) if len(d) > 1 else 0.0
    return {
        "naive": (np.full(pred_len, last), np.sqrt(np.mean(d**2)) * np.sqrt(h)),
        "drift": (last + h * d.mean(), s_diff * np.sqrt(h * (1 + h / len(d)))),
        "mean": (np.full(pred_len, x.mean()), np.full(pred_len, x.std(ddof=1) * np.sqrt(1 + 1 / len(x)))),
    }


def mase_scale(history: np.ndarray) -> float:
    """MASE's scale of one window: the mean absolute one-step change over its lookback (`lookback - 1` changes)."""
    return float(np.mean(np.abs(np.diff(np.asarray(history, dtype=np.float64)))))


# --------------------------------------------------------------------------------------------------------------------
# The forecasts table
# --------------------------------------------------------------------------------------------------------------------


def baseline_column(target: str, baseline: str, std: bool = False) -> str:
    """Column of a baseline's mean (or, with `std=True`, its standard deviation) in the forecasts table."""
    return f"{target}_{baseline}" + ("_std" if std else "")


def _forecasts_table(windows, paths, targets, quantiles, id_column):
    """One row per (window, step): ids, origin, timestamps, step, then per target the forecast columns."""
    pred_len = paths.shape[2]
    blocks = []
    for w, window_paths in zip(windows, paths):
        block = {
            id_column: [w.series_id] * pred_len,
            "origin": [w.origin] * pred_len,
            TIMESTAMP_COLUMN: w.future[TIMESTAMP_COLUMN].to_numpy(),
            "step": np.arange(1, pred_len + 1),
        }
        for target in targets:
            values = window_paths[..., FEATURE_COLUMNS.index(target)].astype(np.float64)  # (samples, pred_len)
            block[target] = values.mean(axis=0)
            block[f"{target}_actual"] = w.future[target].to_numpy(dtype=np.float64)
            for level, q in zip(quantiles, np.quantile(values, quantiles, axis=0)):
                block[quantile_column(target, level)] = q
            for name, (mean, std) in baseline_forecasts(w.context[target].to_numpy(), pred_len).items():
                block[baseline_column(target, name)] = mean
                block[baseline_column(target, name, std=True)] = std
        blocks.append(pd.DataFrame(block))
    return pd.concat(blocks, ignore_index=True)


# --------------------------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------------------------


def ensemble_crps(actual: np.ndarray, paths: np.ndarray) -> np.ndarray:
    """
    CRPS of an ensemble, `E|X - y| - E|X - X'| / 2` over its members (scoringrules' `nrg` estimator, the same as
    properscoring's). `actual` `(n,)`, `paths` `(n, members)`; returns `(n,)` float64.
    """
    import scoringrules

    return np.asarray(scoringrules.crps_ensemble(np.asarray(actual, np.float64), np.asarray(paths, np.float64),
                                                 m_axis=-1, estimator="nrg"), dtype=np.float64)


def normal_crps(actual: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Closed-form CRPS of normal forecasts (scoringrules); a zero `std` is a point forecast, scored `|y - mean|`."""
    import scoringrules

    actual, mean, std = (np.asarray(a, dtype=np.float64) for a in (actual, mean, std))
    point = std <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        crps = np.asarray(scoringrules.crps_normal(actual, mean, np.where(point, 1.0, std)), dtype=np.float64)
    return np.where(point, np.abs(actual - mean), crps)


def information_coefficients(frame: pd.DataFrame, forecast: str, actual: str, last: str, id_column: str):
    """
    Cross-sectional correlations of predicted and realised returns, one per (origin, step) group that at least
    [`MIN_IC_SERIES`] series share: Pearson (IC) and Spearman (RankIC) of `forecast / last - 1` against
    `actual / last - 1` across the series. Groups where either side is constant (no correlation) are left out.

    Returns:
        `pd.DataFrame` with columns `origin, step, ic, rank_ic`, one row per group.
    """
    from scipy import stats

    rows = []
    for (origin, step), group in frame.groupby(["origin", "step"], sort=True):
        if group[id_column].nunique() < MIN_IC_SERIES:
            continue
        base = group[last].to_numpy(np.float64)
        predicted = group[forecast].to_numpy(np.float64) / base - 1
        realised = group[actual].to_numpy(np.float64) / base - 1
        if np.ptp(predicted) == 0 or np.ptp(realised) == 0:
            continue
        rows.append((origin, step, stats.pearsonr(predicted, realised)[0], stats.spearmanr(predicted, realised)[0]))
    return pd.DataFrame(rows, columns=["origin", "step", "ic", "rank_ic"])


def t_statistic(values) -> float:
    """`mean / (std / sqrt(n))` of `values` (sample std); NaN for fewer than 2 values. Ignores overlap."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2 or values.std(ddof=1) == 0:
        return float("nan")
    return float(values.mean() / (values.std(ddof=1) / np.sqrt(len(values))))


def newey_west_t(values, lags: int) -> float:
    """
    The t-statistic of the mean of `values` (a time series) with a Newey-West standard error: autocovariances up
    to `lags` weighted by the Bartlett kernel `1 - k / (lags + 1)`. NaN for fewer than 2 values.
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < 2:
        return float("nan")
    e = x - x.mean()
    variance = e @ e / n
    for k in range(1, min(int(lags), n - 1) + 1):
        variance += 2 * (1 - k / (lags + 1)) * (e[k:] @ e[:-k]) / n
    if not variance > 0:
        return float("nan")
    return float(x.mean() / np.sqrt(variance / n))


def _model_columns(target, model):
    """(forecast column, quantile-or-std source) of a model in the forecasts table."""
    if model == MODEL:
        return target, None
    return baseline_column(target, model), baseline_column(target, model, std=True)


def _interval(frame, target, model):
    """The 80% interval `[q0.1, q0.9]` of each row: the written quantiles (Kronos) or the normal's (baselines)."""
    from scipy import stats

    if model == MODEL:
        return (frame[quantile_column(target, COVERAGE_LEVELS[0])].to_numpy(np.float64),
                frame[quantile_column(target, COVERAGE_LEVELS[1])].to_numpy(np.float64))
    mean, std = (frame[c].to_numpy(np.float64) for c in _model_columns(target, model))
    z = stats.norm.ppf(COVERAGE_LEVELS[1])
    return mean - z * std, mean + z * std


def _crps(frame, target, model, paths):
    actual = frame[f"{target}_actual"].to_numpy(np.float64)
    if model == MODEL:
        return ensemble_crps(actual, paths)
    mean, std = (frame[c].to_numpy(np.float64) for c in _model_columns(target, model))
    return normal_crps(actual, mean, std)


def _direction_accuracy(forecast, actual, last, model):
    if model == "naive":
        return float("nan")
    moved = actual != last
    if not moved.any():
        return float("nan")
    return float(np.mean(np.sign(forecast[moved] - last[moved]) == np.sign(actual[moved] - last[moved])))


def compute_metrics(
    forecasts: pd.DataFrame,
    paths: dict,
    scales: dict,
    targets,
    id_column: str,
    models=(MODEL, *BASELINES),
    hac_lags: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """
    The metrics table, one row per (model, target), from the forecasts table.

    Args:
        forecasts (`pd.DataFrame`): The forecasts table (one row per (series, origin, step)).
        paths (`dict`): Target → Kronos sample paths `(len(forecasts), samples)`, row for row.
        scales (`dict`): Target → MASE scale of each row's window, `(len(forecasts),)` (see [`mase_scale`]).
        targets, id_column: As in [`backtest`].
        hac_lags (`int`, *optional*): Lags of the Newey-West t-statistics of IC and RankIC, over the groups in
            (origin, step) order (default `pred_len - 1`, the steps of one origin; [`backtest`] passes
            `pred_len * ceil(pred_len / stride) - 1`, which also spans the origins whose windows overlap).

    Returns:
        `(metrics, ic)`: the metrics (columns `model, target` and [`METRICS`]; `coverage_80` is NaN without the
        0.1 and 0.9 quantiles) and, per (model, target), the number of IC groups and the t-statistics of IC and
        RankIC, plain and Newey-West (columns `model, target, groups, ic, ic_t, ic_t_nw, rank_ic, rank_ic_t,
        rank_ic_t_nw`).
    """
    lags = int(forecasts["step"].max()) - 1 if hac_lags is None else int(hac_lags)
    rows, ic_rows = [], []
    for target in targets:
        for model in models:
            row, ic = _metrics_row(forecasts, paths.get(target), scales[target], target, model, id_column)
            rows.append(row)
            ic_rows.append({"model": model, "target": target, "groups": len(ic),
                            "ic": row["ic"], "ic_t": t_statistic(ic["ic"]), "ic_t_nw": newey_west_t(ic["ic"], lags),
                            "rank_ic": row["rank_ic"], "rank_ic_t": t_statistic(ic["rank_ic"]),
                            "rank_ic_t_nw": newey_west_t(ic["rank_ic"], lags)})
    return pd.DataFrame(rows), pd.DataFrame(ic_rows)


def _metrics_row(forecasts, paths, scale, target, model, id_column):
    """One model's metrics on one target, and its per-group ICs."""
    actual = forecasts[f"{target}_actual"].to_numpy(np.float64)
    last = forecasts[baseline_column(target, "naive")].to_numpy(np.float64)
    forecast_column = _model_columns(target, model)[0]
    forecast = forecasts[forecast_column].to_numpy(np.float64)
    error = forecast - actual
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.where(scale > 0, np.abs(error) / scale, np.nan)  # a flat lookback has no scale: left out
    has_interval = model != MODEL or all(quantile_column(target, q) in forecasts for q in COVERAGE_LEVELS)
    if has_interval:
        low, high = _interval(forecasts, target, model)
        coverage = float(np.mean((actual >= low) & (actual <= high)))
    else:
        coverage = float("nan")
    ic = information_coefficients(forecasts.assign(_last=last), forecast_column, f"{target}_actual", "_last",
                                  id_column)
    row = {
        "model": model,
        "target": target,
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mase": float(np.nanmean(scaled)) if np.isfinite(scaled).any() else float("nan"),
        "crps": float(np.mean(_crps(forecasts, target, model, paths))),
        "coverage_80": coverage,
        "direction_accuracy": _direction_accuracy(forecast, actual, last, model),
        "ic": float(ic["ic"].mean()) if len(ic) else float("nan"),
        "rank_ic": float(ic["rank_ic"].mean()) if len(ic) else float("nan"),
        "n": len(forecasts),
    }
    return row, ic


# --------------------------------------------------------------------------------------------------------------------
# The backtest
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class BacktestResult:
    """
    What [`backtest`] returns.

    Attributes:
        forecasts (`pd.DataFrame`): One row per (series, origin, step): the id column, `origin`, `timestamps` (the
            forecast candle's own), `step` (1..pred_len) and, per target `F`: `F` (the mean of the paths),
            `F_actual`, `F_q{level}` per quantile level, and per baseline `b` its mean `F_b` and standard deviation
            `F_b_std`. `F_naive` is the last value at the origin.
        metrics (`pd.DataFrame`): One row per (model, target): `model, target` and the metrics asked for.
        paths (`dict`): Target → Kronos sample paths, `(len(forecasts), samples)` float32, row for row.
        scales (`dict`): Target → MASE scale of each row's window, `(len(forecasts),)`.
        ic (`pd.DataFrame`): Per (model, target): IC groups, IC and RankIC with their t-statistics.
        histories (`dict`): Series id → the lookback of its last window (for the example panels).
        id_column (`str`): The id column's name in `forecasts`.
        figure (`matplotlib.figure.Figure` or `None`): The report (see [`plot_backtest`]).
    """

    forecasts: pd.DataFrame
    metrics: pd.DataFrame
    paths: dict
    scales: dict
    ic: pd.DataFrame
    histories: dict
    id_column: str
    targets: tuple
    quantiles: tuple
    figure: object = field(default=None, repr=False)

    def save(self, output_dir) -> list[Path]:
        """
        Write `forecasts.csv`, `metrics.csv`, `paths.npz`, `ic.csv` and, with a figure, `report.png` and
        `report.html` into `output_dir` (made if missing), replacing an earlier report there. Every file is written
        to a temporary name first and renamed only when all are written: a failure leaves no file, and no folder it
        made. Without a figure, an earlier report's `report.png` and `report.html` are removed, since they would show
        other numbers. Floats are written with every digit, so the metrics can be recomputed from the files exactly.
        """
        output_dir = Path(output_dir)
        writers = {
            "forecasts.csv": lambda p: self.forecasts.to_csv(p, index=False),
            "metrics.csv": lambda p: self.metrics.to_csv(p, index=False),
            "ic.csv": lambda p: self.ic.to_csv(p, index=False),
            "paths.npz": lambda p: _save_paths(p, self.paths),
        }
        if self.figure is not None:
            writers["report.png"] = lambda p: self.figure.savefig(p, dpi=110, format="png")
            writers["report.html"] = lambda p: p.write_text(self.html(), encoding="utf-8")
        written = write_atomically(output_dir, writers)
        for stale in ("report.png", "report.html"):
            if stale not in writers:
                (output_dir / stale).unlink(missing_ok=True)
        return written

    def html(self) -> str:
        """A small HTML page: the metrics and IC tables, and `report.png` beside it."""
        metrics = self.metrics.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="NaN")
        ic = self.ic.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="NaN")
        return (
            "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Kronos backtest</title></head><body>\n"
            "<h1>Kronos backtest</h1>\n<p>Definitions: docs/evaluation.md. Skill = 1 - model / naive.</p>\n"
            f"<h2>Metrics</h2>\n{metrics}\n<h2>IC and RankIC: groups and t-statistics</h2>\n{ic}\n"
            "<h2>Report</h2>\n<img src='report.png' alt='backtest report' style='max-width:100%'>\n</body></html>\n"
        )


def _save_paths(path, paths):
    with open(path, "wb") as f:
        np.savez(f, **paths)


def write_atomically(folder: Path, writers: dict) -> list[Path]:
    """
    Write files into `folder` all or nothing: `writers` maps each file name to a function writing it to a given
    path. Each writes a temporary file in `folder`, and they are renamed into place only when all succeeded; other
    files in `folder` are left alone. On failure, the temporary files and the folders made for them are removed.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a directory")
    created = make_folders(folder)
    temporary, done = [], False
    try:
        for name, write in writers.items():
            temporary.append((temporary_sibling(folder / name), folder / name))
            write(temporary[-1][0])
        for tmp, final in temporary:
            os.replace(tmp, final)
        done = True
        return [final for _, final in temporary]
    finally:
        if not done:
            for tmp, _ in temporary:
                tmp.unlink(missing_ok=True)
            remove_folders(created)


def backtest(
    forecaster,
    data,
    *,
    lookback: int,
    pred_len: int,
    windows: int,
    stride: int | None = None,
    samples: int = 20,
    quantiles=(0.1, 0.5, 0.9),
    targets=("close",),
    id_column: str | None = None,
    timestamp_column: str = TIMESTAMP_COLUMN,
    series_name: str = DEFAULT_SERIES_NAME,
    seed: int = 0,
    batch_size: int | None = None,
    metrics=None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 0.9,
    sliding: str = "exact",
    plot: bool = True,
    title: str | None = None,
    verbose: bool = True,
) -> BacktestResult:
    """
    Rolling-origin backtest of a [`KronosForecaster`] against the naive, drift and mean baselines.

    Args:
        forecaster ([`KronosForecaster`]): The model to score.
        data: One series, or many (long format with `id_column`, or a mapping id → frame); see [`split_series`].
        series_name (`str`): The id of a single series (the value of the `series_id` column).
        lookback (`int`): Candles of history per window, up to and including its origin.
        pred_len (`int`): Candles forecast per window.
        windows (`int`): Origins per series, the last ones, counted back from its end.
        stride (`int`, *optional*): Candles between origins (default `pred_len`: windows that do not overlap).
        samples (`int`): Sample paths per window; the forecast is their mean.
        quantiles: Levels written per target (`coverage_80` needs 0.1 and 0.9).
        targets: Columns scored (`close`, and any of the others the data has).
        seed (`int`): Each window's paths come from a generator seeded with [`window_seed`]`(seed, id, origin)`.
        batch_size (`int`, *optional*): Decode at most this many sample paths together (bounds memory); windows of
            every series are batched together, `batch_size // samples` per forecaster call. The paths do not depend
            on it while it is at least `samples`; below, a window's paths are spread over passes, each drawn from a
            generator of its own: other paths (still reproducible), the same for every `batch_size` below `samples`.
        metrics: The metrics to report (default: all of [`METRICS`]).
        temperature, top_k, top_p, sliding: Sampling, as in [`KronosForecaster.predict`].
        plot (`bool`): Draw the report figure (needs matplotlib).

    Returns:
        [`BacktestResult`].

    Raises:
        `ValueError` / `TypeError` on bad input, before any forecast: no window fits a series, an unknown target
        or metric, quantile levels without 0.1 and 0.9 when `coverage_80` is asked for, ...
    """
    lookback = _check_count("lookback", lookback, minimum=3)
    pred_len = _check_count("pred_len", pred_len)
    windows = _check_count("windows", windows)
    stride = pred_len if stride is None else _check_count("stride", stride)
    samples = _check_count("samples", samples)
    series = split_series(data, id_column, timestamp_column, series_name)
    targets, quantiles, metrics = _check_options(series, targets, quantiles, metrics)
    planned = _plan_windows(series, lookback, pred_len, windows, stride)
    id_name = id_column or DEFAULT_ID_COLUMN

    sampling = {"T": temperature, "top_k": top_k, "top_p": top_p, "sliding": sliding}
    paths = _forecast_paths(forecaster, planned, pred_len, samples, seed, batch_size, sampling, verbose)
    forecasts = _forecasts_table(planned, paths, targets, quantiles, id_name)
    row_paths = {t: _rows(paths[..., FEATURE_COLUMNS.index(t)]) for t in targets}
    scales = {t: np.repeat([mase_scale(w.context[t].to_numpy()) for w in planned], pred_len) for t in targets}
    hac_lags = pred_len * -(-pred_len // stride) - 1
    table, ic = compute_metrics(forecasts, row_paths, scales, targets, id_name, hac_lags=hac_lags)
    table = table[["model", "target", *metrics]]
    histories = {}
    for w in planned:
        histories[w.series_id] = w.context  # the last window of each series, planned oldest first
    result = BacktestResult(forecasts, table, row_paths, scales, ic, histories, id_name, targets, quantiles)
    if plot:
        from .evaluation_plots import plot_backtest

        result.figure = plot_backtest(result, title=title)
    return result


def _rows(values):
    """`(windows, samples, pred_len)` → `(windows * pred_len, samples)`: one row per forecast row."""
    return np.ascontiguousarray(values.transpose(0, 2, 1).reshape(-1, values.shape[1]))


__all__ = [
    "BASELINES",
    "METRICS",
    "BacktestResult",
    "backtest",
    "baseline_forecasts",
    "compute_metrics",
    "ensemble_crps",
    "information_coefficients",
    "mase_scale",
    "newey_west_t",
    "normal_crps",
    "origin_positions",
    "split_series",
    "t_statistic",
    "window_seed",
]
