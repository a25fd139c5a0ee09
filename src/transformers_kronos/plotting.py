# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Charts of a K-line forecast: recent history as candlesticks, the forecast, its quantile band and volume.

matplotlib is an optional dependency (`pip install transformers-kronos[plot]`); it is imported when a chart is
drawn, not when this module is imported. Figures are built on matplotlib's object API with the Agg canvas, so
drawing touches no global pyplot state and works on machines without a display.

Candles are drawn at consecutive integer positions rather than at their timestamps, so the nights, weekends and
lunch breaks of an exchange calendar leave no empty stretches; tick labels show the real timestamps.
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

import numpy as np
import pandas as pd

from .forecasting import quantile_column

if TYPE_CHECKING:
    import matplotlib.figure

UP_COLOR = "#26a69a"
DOWN_COLOR = "#ef5350"
FORECAST_COLOR = "#1f5fbf"
SAMPLE_COLOR = "#7f8ea3"


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "drawing forecasts needs matplotlib: pip install 'transformers-kronos[plot]' (or pip install matplotlib)"
        ) from err
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return Figure, FigureCanvasAgg


def quantile_levels_in(frame: pd.DataFrame, column: str = "close") -> list[float]:
    """The quantile levels present for `column` in a forecast frame, sorted."""
    prefix = f"{column}_q"
    levels = []
    for name in frame.columns:
        if isinstance(name, str) and name.startswith(prefix):
            try:
                levels.append(float(name[len(prefix) :]))
            except ValueError:
                continue
    return sorted(levels)


def _draw_candles(ax, x, open_, high, low, close, width=0.6, alpha=1.0):
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.patches import Rectangle

    up = close >= open_
    colors = np.where(up, UP_COLOR, DOWN_COLOR)
    wicks = LineCollection(
        [((xi, lo), (xi, hi)) for xi, lo, hi in zip(x, low, high)], colors=colors, linewidths=0.8, alpha=alpha
    )
    ax.add_collection(wicks)
    # a flat candle still gets a visible body of a sliver of the price range
    min_height = 0.002 * (np.nanmax(high) - np.nanmin(low) or 1.0)
    bodies = [
        Rectangle((xi - width / 2, min(o, c)), width, max(abs(c - o), min_height))
        for xi, o, c in zip(x, open_, close)
    ]
    ax.add_collection(PatchCollection(bodies, facecolors=colors, edgecolors=colors, linewidths=0.5, alpha=alpha))


def _tick_labels(timestamps):
    stamps = pd.DatetimeIndex(timestamps)
    if len(stamps) < 2:
        return [str(t) for t in stamps]
    intraday = (stamps.normalize() != stamps).any()
    span = stamps[-1] - stamps[0]
    if not intraday:
        fmt = "%Y-%m-%d"
    elif span <= pd.Timedelta(days=1):
        fmt = "%H:%M"
    else:
        fmt = "%m-%d %H:%M"
    return [t.strftime(fmt) for t in stamps]


def plot_forecast(
    history: pd.DataFrame,
    forecast: pd.DataFrame,
    samples: Optional[np.ndarray] = None,
    history_candles: int = 120,
    title: Optional[str] = None,
    path: Optional[Union[str, os.PathLike]] = None,
    figsize: tuple[float, float] = (13, 7.5),
    dpi: int = 110,
) -> "matplotlib.figure.Figure":
    """
    Draw a forecast after the end of its history.

    The top panel shows the last `history_candles` candles, the mean forecast of the close (solid), the median
    if present (dashed), a shaded band between the lowest and highest quantile of the close (and a darker inner
    band when there are more than two levels), the individual sample paths when given, and faint candles of the
    mean forecast. The lower panel shows volume, with the forecast's mean volume and its band, when the frames
    have a `volume` column.

    Args:
        history (`pd.DataFrame`): Past candles with `open, high, low, close` (and optionally `volume`), and the
            timestamps either in a `timestamps` column or as a `DatetimeIndex`.
        forecast (`pd.DataFrame`): Forecast candles in the same layout (means), optionally with quantile columns
            named by [`quantile_column`] (`close_q0.1`, `close_q0.9`, `volume_q0.1`, ...).
        samples (`np.ndarray` of shape `(num_samples, pred_len)`, *optional*): Sampled close paths.
        history_candles (`int`, defaults to 120): How much history to show.
        title (`str`, *optional*): Figure title.
        path (`str` or `os.PathLike`, *optional*): Where to write the image (format from the suffix, e.g. `.png`);
            missing folders are made.
        figsize, dpi: Size of the figure.

    Returns:
        `matplotlib.figure.Figure`.
    """
    Figure, FigureCanvasAgg = require_matplotlib()
    _check_frames(history, forecast, history_candles)
    chart = _Chart(history.iloc[-history_candles:], forecast, _check_samples(samples, len(forecast)))
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    ax, ax_vol = _axes(fig, chart.has_volume)
    _draw_price_panel(ax, chart)
    if title:
        fig.suptitle(title, fontsize=12)
    if ax_vol is not None:
        _draw_volume_panel(ax_vol, chart)
        ax.tick_params(labelbottom=False)
    _draw_time_axis(ax, ax_vol, chart)
    fig.subplots_adjust(left=0.07, right=0.96, top=0.92 if title else 0.95, bottom=0.07)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    return fig


def _check_frames(history, forecast, history_candles):
    for name, frame in (("history", history), ("forecast", forecast)):
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"`{name}` must be a pandas DataFrame, got {type(frame).__name__}")
        missing = [c for c in ("open", "high", "low", "close") if c not in frame.columns]
        if missing:
            raise ValueError(f"`{name}` lacks the columns {missing}")
        if len(frame) == 0:
            raise ValueError(f"`{name}` is empty")
    if isinstance(history_candles, bool) or not isinstance(history_candles, int) or history_candles < 1:
        raise ValueError(f"`history_candles` must be a positive integer, got {history_candles!r}")


def _check_samples(samples, pred_len):
    if samples is None:
        return None
    samples = np.asarray(samples, dtype=float)
    if samples.ndim != 2 or samples.shape[1] != pred_len:
        raise ValueError(f"`samples` must have shape (num_samples, {pred_len}), got {samples.shape}")
    return samples


def _stamps_of(frame):
    if "timestamps" in frame.columns:
        return pd.DatetimeIndex(pd.to_datetime(frame["timestamps"]))
    return pd.DatetimeIndex(frame.index)


class _Chart:
    """What one chart shows, at candle positions: history at `0..n_hist-1`, the forecast right after it."""

    def __init__(self, hist, forecast, samples):
        self.hist, self.forecast, self.samples = hist, forecast, samples
        self.n_hist, self.n_pred = len(hist), len(forecast)
        self.x_hist = np.arange(self.n_hist)
        self.x_pred = np.arange(self.n_hist, self.n_hist + self.n_pred)
        # the forecast lines start from the last observed close so that they visibly continue the history
        self.x_line = np.concatenate([[self.n_hist - 1], self.x_pred])
        self.last_close = float(hist["close"].iloc[-1])
        self.has_volume = "volume" in hist.columns and "volume" in forecast.columns
        self.levels = quantile_levels_in(forecast, "close")

    @staticmethod
    def column(frame: pd.DataFrame, name: str) -> np.ndarray:
        return frame[name].to_numpy(dtype=float)

    def joined(self, values: np.ndarray) -> np.ndarray:
        return np.concatenate([[self.last_close], values])

    def close_line(self, name: str) -> np.ndarray:
        return self.joined(self.column(self.forecast, name))

    def candles(self, frame: pd.DataFrame) -> tuple[np.ndarray, ...]:
        return tuple(self.column(frame, name) for name in ("open", "high", "low", "close"))


def _axes(fig, has_volume):
    if not has_volume:
        return fig.add_subplot(1, 1, 1), None
    grid = fig.add_gridspec(2, 1, height_ratios=(3.2, 1), hspace=0.06)
    ax = fig.add_subplot(grid[0])
    return ax, fig.add_subplot(grid[1], sharex=ax)


def _draw_price_panel(ax, chart):
    _draw_candles(ax, chart.x_hist, *chart.candles(chart.hist))
    _draw_candles(ax, chart.x_pred, *chart.candles(chart.forecast), alpha=0.25)
    if chart.samples is not None:
        for k, path_values in enumerate(chart.samples):
            ax.plot(chart.x_line, chart.joined(path_values), color=SAMPLE_COLOR, linewidth=0.7, alpha=0.45,
                    label="sample paths" if k == 0 else None)
    _draw_close_bands(ax, chart)
    if 0.5 in chart.levels:
        ax.plot(chart.x_line, chart.close_line(quantile_column("close", 0.5)), color=FORECAST_COLOR,
                linestyle="--", linewidth=1.2, label="close median")
    ax.plot(chart.x_line, chart.close_line("close"), color=FORECAST_COLOR, linewidth=1.8, label="close mean forecast")
    ax.axvline(chart.n_hist - 0.5, color="#555555", linestyle=":", linewidth=1.0)
    ax.axvspan(chart.n_hist - 0.5, chart.n_hist + chart.n_pred - 0.5, color="#1f5fbf", alpha=0.04, linewidth=0)
    ax.set_ylim(*_price_range(chart))
    ax.set_xlim(-1, chart.n_hist + chart.n_pred)
    ax.set_ylabel("price")
    ax.grid(True, color="#e6e6e6", linewidth=0.6)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.85)
    for text, align in ((" forecast →", "left"), ("history ", "right")):
        ax.text(chart.n_hist - 0.5, 1.01, text, transform=ax.get_xaxis_transform(), fontsize=9, color="#333333",
                va="bottom", ha=align)


def _draw_close_bands(ax, chart):
    """The band between the outermost quantiles of the close, and a darker inner one with four levels or more."""
    levels = chart.levels
    bands = [(levels[0], levels[-1], 0.15)] if len(levels) >= 2 else []
    if len(levels) >= 4:
        bands.append((levels[1], levels[-2], 0.2))
    for lo, hi, alpha in bands:
        ax.fill_between(chart.x_line, chart.close_line(quantile_column("close", lo)),
                        chart.close_line(quantile_column("close", hi)), color=FORECAST_COLOR, alpha=alpha,
                        linewidth=0, label=f"close q{lo:g}-q{hi:g}")


def _price_range(chart):
    """Everything the price panel draws, with a margin."""
    drawn = [chart.column(chart.hist, "low"), chart.column(chart.forecast, "low"),
             chart.column(chart.hist, "high"), chart.column(chart.forecast, "high")]
    drawn += [chart.column(chart.forecast, quantile_column("close", level)) for level in chart.levels]
    if chart.samples is not None:
        drawn.append(chart.samples.ravel())
    values = np.concatenate(drawn)
    y_lo, y_hi = float(np.nanmin(values)), float(np.nanmax(values))
    pad = 0.05 * (y_hi - y_lo or abs(y_hi) or 1.0)
    return y_lo - pad, y_hi + pad


def _draw_volume_panel(ax_vol, chart):
    hist, forecast = chart.hist, chart.forecast
    up = chart.column(hist, "close") >= chart.column(hist, "open")
    ax_vol.bar(chart.x_hist, chart.column(hist, "volume"), width=0.6, color=np.where(up, UP_COLOR, DOWN_COLOR),
               alpha=0.8)
    ax_vol.bar(chart.x_pred, chart.column(forecast, "volume"), width=0.6, color=FORECAST_COLOR, alpha=0.45,
               label="mean volume forecast")
    vol_levels = quantile_levels_in(forecast, "volume")
    if len(vol_levels) >= 2:
        ax_vol.fill_between(chart.x_pred, chart.column(forecast, quantile_column("volume", vol_levels[0])),
                            chart.column(forecast, quantile_column("volume", vol_levels[-1])), color=FORECAST_COLOR,
                            alpha=0.12, linewidth=0, step="mid",
                            label=f"volume q{vol_levels[0]:g}-q{vol_levels[-1]:g}")
    ax_vol.axvline(chart.n_hist - 0.5, color="#555555", linestyle=":", linewidth=1.0)
    ax_vol.set_ylabel("volume")
    ax_vol.set_ylim(bottom=0)
    ax_vol.grid(True, color="#e6e6e6", linewidth=0.6)
    ax_vol.legend(loc="upper left", fontsize=8, framealpha=0.85)


def _draw_time_axis(ax, ax_vol, chart):
    """Tick labels with the real timestamps, and, for intraday bars, a faint line where a new trading day starts."""
    panels = (ax, ax_vol) if ax_vol is not None else (ax,)
    all_stamps = pd.DatetimeIndex(list(_stamps_of(chart.hist)) + list(_stamps_of(chart.forecast)))
    days = all_stamps.normalize()
    if (days != all_stamps).any():
        new_day = np.flatnonzero(days[1:] != days[:-1]) + 1
        for axis in panels:
            for i in new_day:
                axis.axvline(i - 0.5, color="#c8c8c8", linewidth=0.6, zorder=0)
    labels = _tick_labels(all_stamps)
    total = chart.n_hist + chart.n_pred
    positions = np.unique(np.linspace(0, total - 1, num=min(9, total)).round().astype(int))
    panels[-1].set_xticks(positions)
    panels[-1].set_xticklabels([labels[i] for i in positions], rotation=0, fontsize=8)


__all__ = ["plot_forecast", "quantile_column", "quantile_levels_in"]
