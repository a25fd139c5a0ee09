# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""The torch-free half of forecasting: K-line columns, calendar features, future timestamps, upstream's normalisation,
and the pandas API (`predict`, `predict_batch`, `predict_quantiles`, `predict_quantiles_batch`) that
[`KronosForecaster`] (PyTorch) and `transformers_kronos.onnx.OnnxForecaster` (ONNX Runtime) share.

A forecaster subclasses [`KlineForecaster`] and supplies one pass of decoding, `_generate_pass`: normalised contexts
in, normalised decoded paths out. This file imports only numpy, pandas and tqdm, so that the ONNX Runtime forecaster
runs where torch is not installed.
"""

import numbers
import warnings

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .checks import check_count, check_sampling

PRICE_COLUMNS = ("open", "high", "low", "close")
VOLUME_COLUMN = "volume"
AMOUNT_COLUMN = "amount"
FEATURE_COLUMNS = PRICE_COLUMNS + (VOLUME_COLUMN, AMOUNT_COLUMN)
TIME_FEATURES = ("minute", "hour", "weekday", "day", "month")
# upstream adds this to the standard deviation before dividing (and multiplies it back), so constant columns work
NORM_EPS = 1e-5
# a column whose standard deviation is this small a multiple of NORM_EPS is flattened (by 10% or more): warn
_EPS_SHARE_WARNED = 0.1


def quantile_column(column: str, level: float) -> str:
    """
    Name of the column that holds quantile `level` of `column` in a forecast frame, e.g. `close_q0.1`: the shortest
    decimal that reads back as the level, so that distinct levels never share a name.
    """
    return f"{column}_q{float(level)!r}"


def calendar_features(timestamps: object) -> np.ndarray:
    """
    Calendar features of timestamps, as the predictor's temporal embedding expects them.

    Args:
        timestamps: anything [`pandas.to_datetime`] turns into a `DatetimeIndex` (a datetime `Series`, a
            `DatetimeIndex`, a list of strings, ...).

    Returns:
        `np.ndarray` of shape `(len(timestamps), 5)` and dtype float32: minute, hour, weekday (Monday = 0), day of
        month, month.
    """
    index = _as_datetime_index(timestamps, "timestamps")
    return np.stack([index.minute, index.hour, index.day_of_week, index.day, index.month], axis=-1).astype(np.float32)


def infer_future_timestamps(x_timestamp: object, pred_len: int) -> pd.DatetimeIndex:
    """
    The `pred_len` timestamps that follow `x_timestamp`, on the same bar length and trading calendar.

    1. Every step equal (a market that never closes): the same regular grid continues.
    2. A frequency pandas recognises over the whole history (`pd.infer_freq`: business days, month ends, ...):
       continued with that frequency.
    3. Otherwise the history follows an exchange calendar, if one bar length (the most common step) accounts for at
       least half of the steps: future bars are kept on the times of day (for intraday bars) and the weekdays that
       occur in the history, which reproduces sessions, lunch breaks, nights and weekends. Holidays cannot be known
       from the history: pass `y_timestamp` where they matter.

    Raises:
        `ValueError` when no bar length accounts for half of the steps, or the history's calendar leaves no bar within
        two weeks.
    """
    index = _as_datetime_index(x_timestamp, "x_timestamp")
    _check_increasing(index, "x_timestamp")
    pred_len = _check_pred_len(pred_len)
    if len(index) < 2:
        raise ValueError("cannot infer future timestamps from fewer than 2 timestamps: pass `y_timestamp`")
    steps = np.diff(index.values)  # timedelta64 in the index's own unit (pandas 3 may not use nanoseconds)
    if (steps == steps[0]).all():
        step = pd.Timedelta(steps[0])
        return pd.DatetimeIndex([index[-1] + step * (i + 1) for i in range(pred_len)], name=index.name)
    with warnings.catch_warnings():  # pandas 3 announces that infer_freq will return an offset; both work below
        warnings.simplefilter("ignore")
        try:
            freq = pd.infer_freq(index) if len(index) >= 3 else None
        except (TypeError, ValueError):
            freq = None
    if freq is not None:
        return pd.date_range(start=index[-1], periods=pred_len + 1, freq=freq, name=index.name)[1:]
    return _continue_calendar(index, pd.Series(index[1:] - index[:-1]), pred_len)


def _continue_calendar(index, gaps, pred_len):
    """Step 3 of [`infer_future_timestamps`]: the bars of the history's sessions and weekdays that follow it."""
    step = gaps.mode().iloc[0]
    share = float((gaps == step).mean())
    if share < 0.5:
        raise ValueError(
            "cannot infer future timestamps: the steps between timestamps are irregular (the most common one, "
            f"{step}, covers only {100 * share:.0f}% of them); pass `y_timestamp`"
        )
    weekdays = set(index.day_of_week)
    if index[-1] - index[0] < pd.Timedelta(days=7):
        # too short to have seen every trading day: keep to working days if that is all it shows
        weekdays = set(range(5)) if weekdays <= set(range(5)) else set(range(7))
    times = (index - index.normalize()).unique() if step < pd.Timedelta(days=1) else None
    # no market pauses for two weeks: a calendar that finds no bar within them cannot be continued
    tries = max(1, int(pd.Timedelta(days=14) / step))
    # the candidates are every step after the last bar, judged a block at a time (a loop over single timestamps
    # costs ~10 ms a series, which a universe of thousands of series feels)
    future, examined = index[:0], 0  # the bars found; the candidates judged, in steps after the last bar
    while len(future) < pred_len:
        # doubling over long pauses: seconds bars cross a night in a few blocks
        size = max(8 * (pred_len - len(future)) + 64, examined)
        candidates = index[-1] + pd.timedelta_range(start=step * (examined + 1), periods=size, freq=step)
        keep = candidates.day_of_week.isin(list(weekdays))
        if times is not None:
            keep &= (candidates - candidates.normalize()).isin(times)
        future, examined = future.append(candidates[keep]), examined + size
        # steps from each bar to the next, and from the last one found to the last candidate while more are needed
        bars = index[-1:].append(future[:pred_len])
        waits = (bars[1:] - bars[:-1]) / step
        if (waits > tries).any() or (len(future) < pred_len and (candidates[-1] - bars[-1]) / step > tries):
            raise ValueError(
                "cannot infer future timestamps: the history's calendar leaves no bar within two weeks; pass "
                "`y_timestamp`"
            )
    return pd.DatetimeIndex(future[:pred_len], name=index.name).as_unit((index[-1] + step).unit)


# --------------------------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------------------------


def reject_numeric_timestamps(values: object, name: str) -> None:
    """
    Raise `TypeError` when `values` holds numbers: pandas would read them as nanoseconds since 1970 and give every
    candle the same calendar features. Epoch counts and YYYYMMDD integers need an explicit conversion.
    """
    if len(values) and np.asarray(values).dtype.kind in "biuf":
        raise TypeError(
            f"{name} holds numbers, not timestamps; convert them first, e.g. pd.to_datetime(values, unit='s') for "
            "epoch seconds or pd.to_datetime(values.astype(str), format='%Y%m%d') for YYYYMMDD dates"
        )


def _as_datetime_index(values, name):
    if isinstance(values, pd.DataFrame):
        raise TypeError(f"`{name}` must be a sequence of timestamps (Series, DatetimeIndex, list), got a DataFrame")
    if values is None or isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"`{name}` must be a sequence of timestamps (Series, DatetimeIndex, list), got {type(values).__name__}")
    reject_numeric_timestamps(values, f"`{name}`")
    try:
        index = pd.DatetimeIndex(pd.to_datetime(values))
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must hold timestamps: {err}") from None
    if index.hasnans:
        raise ValueError(f"`{name}` contains missing timestamps (NaT)")
    if isinstance(values, pd.Series) and index.name is None:
        index.name = values.name
    return index


def _check_increasing(index, name):
    if len(index) > 1:
        steps = np.diff(index.asi8)
        if (steps == 0).any():
            where = int(np.argmax(steps == 0)) + 1
            raise ValueError(f"`{name}` has duplicate timestamps (first at position {where}: {index[where]})")
        if (steps < 0).any():
            where = int(np.argmax(steps < 0)) + 1
            raise ValueError(f"`{name}` is not increasing (position {where}: {index[where]} after {index[where - 1]})")


def _check_pred_len(pred_len):
    return check_count("pred_len", pred_len)


def _check_sampling(T, top_k, top_p, sample_count):
    """Validate the sampling controls and return them normalised (`top_k=None` → 0, `top_p=None` → 1.0)."""
    T, top_k, top_p = check_sampling(T, top_k, top_p, temperature_name="T")
    return T, top_k, top_p, check_count("sample_count", sample_count)


def check_batch_size(batch_size: int | None) -> int | None:
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"`batch_size` must be an integer or None, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be at least 1 (or None: every path in one pass), got {batch_size}")
    return int(batch_size)


def _plan_passes(count, sample_count, batch_size):
    """
    How [`KlineForecaster._generate`] splits `count` series of `sample_count` paths each into passes of at most
    `batch_size` paths: a list of `(first, stop, done, paths)`, one per pass, decoding paths `done : done + paths` of
    each of the series `first:stop`. Series stay whole while their paths fit in a pass; a series with more paths
    than that is decoded alone, its paths spread over several passes.
    """
    if batch_size is None:
        return [(0, count, 0, sample_count)]
    if sample_count <= batch_size:
        per_pass = batch_size // sample_count
        return [(first, min(first + per_pass, count), 0, sample_count) for first in range(0, count, per_pass)]
    return [
        (index, index + 1, done, min(batch_size, sample_count - done))
        for index in range(count)
        for done in range(0, sample_count, batch_size)
    ]


def _check_quantile_levels(levels):
    if isinstance(levels, numbers.Real):
        levels = (levels,)
    try:
        levels = [float(q) for q in levels]
    except (TypeError, ValueError):
        raise TypeError(f"`quantile_levels` must be a sequence of numbers, got {levels!r}") from None
    if not levels:
        raise ValueError("`quantile_levels` is empty")
    bad = [q for q in levels if not 0 < q < 1]
    if bad:
        raise ValueError(f"`quantile_levels` must lie strictly between 0 and 1, got {bad}")
    if len(set(levels)) != len(levels):
        raise ValueError(f"`quantile_levels` has duplicates: {levels}")
    return levels


def _features(df, where=""):
    """The six feature columns of `df` as float32 `(len, 6)`, with volume/amount filled as upstream does."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{where}`df` must be a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise ValueError(f"{where}`df` is empty")
    missing = [c for c in PRICE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{where}`df` lacks the price column(s) {missing} (needs {list(PRICE_COLUMNS)})")
    present = [c for c in FEATURE_COLUMNS if c in df.columns]
    repeated = [c for c in present if int((df.columns == c).sum()) > 1]
    if repeated:
        raise ValueError(f"{where}`df` has the column(s) {repeated} more than once")
    for column in present:
        dtype = df[column].dtype
        if (not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)
                or pd.api.types.is_complex_dtype(dtype)):
            raise TypeError(f"{where}column {column!r} must be numeric (real), got dtype {dtype}")
    frame = df[present].astype(np.float64)
    # upstream: no volume → volume and amount are zero; volume but no amount → amount = volume * mean price
    if VOLUME_COLUMN not in frame.columns and AMOUNT_COLUMN in frame.columns:
        warnings.warn(
            f"{where}`df` has an {AMOUNT_COLUMN!r} column but no {VOLUME_COLUMN!r}: as upstream, both are set to zero "
            f"and {AMOUNT_COLUMN!r} is ignored (its forecast means nothing); add the volume to use it",
            UserWarning,
            stacklevel=4,
        )
    if VOLUME_COLUMN not in frame.columns:
        frame[VOLUME_COLUMN] = 0.0
        frame[AMOUNT_COLUMN] = 0.0
    if AMOUNT_COLUMN not in frame.columns:
        frame[AMOUNT_COLUMN] = frame[VOLUME_COLUMN] * frame[list(PRICE_COLUMNS)].mean(axis=1)
    values = frame[list(FEATURE_COLUMNS)].to_numpy()
    bad = ~np.isfinite(values)
    if bad.any():
        columns = [FEATURE_COLUMNS[j] for j in np.unique(np.nonzero(bad)[1])]
        raise ValueError(f"{where}`df` contains NaN or inf in column(s) {columns}")
    with np.errstate(over="ignore"):
        values = values.astype(np.float32)
    check_float32_range(values, where)
    return values


def check_float32_range(values: np.ndarray, where: str = "") -> None:
    """
    Raise when a column is too large for upstream's float32 arithmetic: beyond float32's range, or so large that
    its variance overflows (|x - mean| above ~1.8e19), which would turn the forecast into inf and NaN.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        std = np.std(values, axis=0)
        bad = ~np.isfinite(values).all(axis=0) | ~np.isfinite(std)
    if bad.any():
        columns = [FEATURE_COLUMNS[j] for j in np.flatnonzero(bad)]
        raise ValueError(
            f"{where}column(s) {columns} are too large for float32 statistics (values up to "
            f"{np.abs(values[:, bad].astype(np.float64)).max():.3g}); rescale them, e.g. divide by 1e6, and scale the "
            "forecast back"
        )


class PreparedSeries:
    """One prepared series: normalised context, calendar features, statistics and the forecast index."""

    def __init__(self, x, x_stamp, y_stamp, mean, std, y_index):
        self.x = x
        self.x_stamp = x_stamp
        self.y_stamp = y_stamp
        self.mean = mean
        self.std = std
        self.y_index = y_index

    def denormalize(self, values: np.ndarray) -> np.ndarray:
        return values * (self.std + NORM_EPS) + self.mean


def check_network_pair(model_sizes: dict, tokenizer_sizes: dict) -> None:
    """
    Raise `ValueError` unless a predictor and a tokenizer (their sizes, as configs hold them: `s1_bits`, `s2_bits`,
    and the tokenizer's `d_in`) can forecast together.
    """
    for bits in ("s1_bits", "s2_bits"):
        if model_sizes[bits] != tokenizer_sizes[bits]:
            raise ValueError(
                f"the tokenizer does not match the model: tokenizer {bits}={tokenizer_sizes[bits]}, "
                f"model {bits}={model_sizes[bits]}"
            )
    if tokenizer_sizes["d_in"] != len(FEATURE_COLUMNS):
        raise ValueError(
            f"the tokenizer reads {tokenizer_sizes['d_in']} features per candle; forecasting needs "
            f"{len(FEATURE_COLUMNS)} ({', '.join(FEATURE_COLUMNS)})"
        )


def check_forecaster_options(max_context: object, clip: object) -> tuple[int, float]:
    """A forecaster's `max_context` (a positive integer) and `clip` (a positive number), or `ValueError`."""
    if isinstance(max_context, bool) or not isinstance(max_context, numbers.Integral) or max_context < 1:
        raise ValueError(f"`max_context` must be a positive integer, got {max_context!r}")
    if isinstance(clip, bool) or not isinstance(clip, numbers.Real) or not clip > 0:
        raise ValueError(f"`clip` must be a positive number, got {clip!r}")
    return int(max_context), clip


# --------------------------------------------------------------------------------------------------------------------
# The pandas API
# --------------------------------------------------------------------------------------------------------------------


class KlineForecaster:
    """
    The pandas side of a Kronos forecaster: input checks, upstream's normalisation, calendar features, sample paths
    in passes, quantiles and the output frames.

    Subclasses set `max_context` and `clip` and implement `_check_generator(generator, count)` (returns the checked
    source of randomness, a tuple when it holds one per series) and `_generate_pass(series, pred_len, T, top_k,
    top_p, sample_count, sliding, generator, bar)`, which decodes `sample_count` paths of each prepared series (see
    [`PreparedSeries`]) and returns them normalised, `np.ndarray` `(len(series), sample_count, pred_len, 6)`,
    calling `bar.update(1)` after every step.
    """

    price_cols = list(PRICE_COLUMNS)
    vol_col = VOLUME_COLUMN
    amt_vol = AMOUNT_COLUMN
    time_cols = list(TIME_FEATURES)
    max_context: int
    clip: float

    def _check_generator(self, generator, count: int):
        raise NotImplementedError

    def _generate_pass(self, series, pred_len, T, top_k, top_p, sample_count, sliding, generator, bar) -> np.ndarray:
        raise NotImplementedError

    def _path_generators(self, generator, count: int, sample_count: int):
        """
        For paths split over passes (`batch_size < sample_count`): `count` lists of `sample_count` sources of
        randomness, one per path, so that a path does not depend on its pass; `None` (this default) draws each pass
        from the series' source in turn.
        """
        return None

    # ------------------------------------------------------------------ preprocessing

    def _prepare(self, df, x_timestamp, y_timestamp, pred_len, where=""):
        """Validate one series and normalise it as upstream does; returns `(PreparedSeries, pred_len)`."""
        x = _features(df, where)
        if x_timestamp is None:
            if isinstance(df.index, pd.DatetimeIndex):
                x_timestamp = df.index
            elif "timestamps" in df.columns:
                x_timestamp = df["timestamps"]
            else:
                raise ValueError(f"{where}`x_timestamp` is missing (and `df` has neither a DatetimeIndex nor a 'timestamps' column)")
        x_index = _as_datetime_index(x_timestamp, "x_timestamp")
        if len(x_index) != len(x):
            raise ValueError(f"{where}`x_timestamp` has {len(x_index)} timestamps but `df` has {len(x)} rows")
        _check_increasing(x_index, "x_timestamp")
        if y_timestamp is None:
            if pred_len is None:
                raise ValueError(f"{where}pass `pred_len` or `y_timestamp`")
            y_index = infer_future_timestamps(x_index, pred_len)
        else:
            y_index = _as_datetime_index(y_timestamp, "y_timestamp")
            if len(y_index) == 0:
                raise ValueError(f"{where}`y_timestamp` is empty: it needs one timestamp per forecast candle")
            if pred_len is None:
                pred_len = len(y_index)
            pred_len = _check_pred_len(pred_len)
            if len(y_index) != pred_len:
                raise ValueError(f"{where}`y_timestamp` has {len(y_index)} timestamps but `pred_len` is {pred_len}")
            _check_increasing(y_index, "y_timestamp")
            if str(x_index.tz) != str(y_index.tz):
                # the calendar features are read in each index's own zone: mixing zones shifts hours between them
                raise ValueError(
                    f"{where}`x_timestamp` and `y_timestamp` must be in the same time zone, got {x_index.tz} and "
                    f"{y_index.tz}; convert one, e.g. y_timestamp.tz_convert({str(x_index.tz)!r})"
                    if x_index.tz is not None and y_index.tz is not None
                    else f"{where}`x_timestamp` and `y_timestamp` must both have a time zone or both have none, got "
                    f"{x_index.tz} and {y_index.tz}"
                )
            if y_index[0] <= x_index[-1]:
                raise ValueError(
                    f"{where}`y_timestamp` must start after the last context timestamp ({y_index[0]} <= {x_index[-1]})"
                )
        pred_len = _check_pred_len(pred_len)

        # upstream's normalisation, in float32 as upstream computes it (parity depends on the exact rounding)
        mean, std = np.mean(x, axis=0), np.std(x, axis=0)
        flat = [c for c, sd in zip(FEATURE_COLUMNS, std) if 0 < sd < NORM_EPS / _EPS_SHARE_WARNED]
        if flat:
            warnings.warn(
                f"{where}column(s) {flat} vary by less than {NORM_EPS / _EPS_SHARE_WARNED:g} (standard deviation "
                f"{min(std[FEATURE_COLUMNS.index(c)] for c in flat):.3g}): the {NORM_EPS:g} that upstream's "
                "normalisation adds to it flattens the series the model sees, and the forecast is unreliable; "
                "multiply them by a power of ten first (e.g. 1e4) and divide the forecast by it",
                UserWarning,
                stacklevel=3,
            )
        normalized = np.clip((x - mean) / (std + NORM_EPS), -self.clip, self.clip)
        series = PreparedSeries(normalized, calendar_features(x_index), calendar_features(y_index), mean, std, y_index)
        return series, pred_len

    # ------------------------------------------------------------------ the core

    def _generate(self, series, pred_len, T, top_k, top_p, sample_count, verbose, sliding, generator, batch_size=None):
        """
        Forecast prepared series (any lengths), at most `batch_size` paths per pass (`None`: all in one, see
        [`_plan_passes`]).

        Returns:
            `np.ndarray` of shape `(len(series), sample_count, pred_len, 6)`: normalised decoded paths, float32.
        """
        if sliding not in ("exact", "rolling"):
            raise ValueError(f"`sliding` must be 'exact' or 'rolling', got {sliding!r}")
        generator = self._check_generator(generator, len(series))
        passes = _plan_passes(len(series), sample_count, batch_size)
        per_path = None
        if batch_size is not None and sample_count > batch_size:  # a series' paths over several passes
            per_path = self._path_generators(generator, len(series), sample_count)
        paths = np.empty((len(series), sample_count, pred_len, len(FEATURE_COLUMNS)), dtype=np.float32)
        with tqdm(total=pred_len * len(passes), disable=not verbose, desc="Kronos forecast", unit="step") as bar:
            for first, stop, done, count in passes:
                # a list holds one generator per series: each pass draws from its own series' generators only
                pass_generator = generator[first:stop] if isinstance(generator, tuple) else generator
                if per_path is not None:
                    pass_generator = per_path[first][done : done + count]
                paths[first:stop, done : done + count] = self._generate_pass(
                    series[first:stop], pred_len, T, top_k, top_p, count, sliding, pass_generator, bar
                )
        return paths

    def _frame(self, values, index):
        return pd.DataFrame(values, columns=list(FEATURE_COLUMNS), index=index)

    # ------------------------------------------------------------------ public API

    def predict(
        self,
        df,
        x_timestamp=None,
        y_timestamp=None,
        pred_len=None,
        T=1.0,
        top_k=0,
        top_p=0.9,
        sample_count=1,
        verbose=True,
        return_samples=False,
        sliding="exact",
        generator=None,
        batch_size=None,
    ) -> pd.DataFrame | tuple[pd.DataFrame, np.ndarray]:
        """
        Forecast one series.

        Args:
            df (`pd.DataFrame`): The context: columns `open`, `high`, `low`, `close` and optionally `volume` and
                `amount` (missing volume and amount are zero; a missing amount is `volume * mean(open, high, low,
                close)`), one row per candle, oldest first.
            x_timestamp (`pd.Series` or `pd.DatetimeIndex`, *optional*): Timestamps of the rows; defaults to the
                frame's `DatetimeIndex` or its `timestamps` column.
            y_timestamp (`pd.Series` or `pd.DatetimeIndex`, *optional*): Timestamps to forecast; inferred from
                `x_timestamp` when it has a regular frequency.
            pred_len (`int`, *optional*): Candles to forecast; defaults to `len(y_timestamp)`.
            T (`float`): Sampling temperature.
            top_k (`int` or `None`): Keep the `top_k` most likely tokens (0 or `None`: no limit; 1: greedy).
            top_p (`float`): Nucleus sampling threshold in (0, 1]. Unlike upstream, it also applies when `top_k > 0`.
            sample_count (`int`): Sample paths; the forecast is their mean, as upstream.
            verbose (`bool`): Show a progress bar.
            return_samples (`bool`): Also return every path.
            sliding (`str`): `"exact"` (upstream's numbers) or `"rolling"` (faster once the context window is full,
                approximate; see docs/forecasting.md).
            generator (*optional*): Source of randomness: a `torch.Generator` for [`KronosForecaster`] (else torch's
                global RNG), a `numpy.random.Generator` or an integer seed for `OnnxForecaster` (else a fresh one).
            batch_size (`int`, *optional*): Decode at most this many sample paths together (`None`: all of them, as
                upstream). Memory grows with the paths decoded together: their key/value cache takes about
                `2 * (n_layers + 1) * d_model * 4` bytes in float32 (37 KB for Kronos-small) per context candle and
                series (the paths of a series share it) and per forecast candle and path. Smaller passes bound it at
                some cost in speed: every pass encodes the context again and streams the weights once per step.
                Greedy forecasts do not depend on it beyond float rounding. Sampled paths: with `batch_size` at least
                `sample_count`, they are drawn in upstream's order; below it, `KronosForecaster` draws each path from
                a generator of its own, seeded from `generator` (see `forecasting.path_generators`), so the paths are
                the same for every such `batch_size` (but not the ones of a single pass).

        Returns:
            `pd.DataFrame` with columns open, high, low, close, volume, amount indexed by the forecast timestamps;
            with `return_samples=True`, a pair `(forecast, samples)` where `samples` is an `np.ndarray` of shape
            `(sample_count, pred_len, 6)` in the columns' order.
        """
        T, top_k, top_p, sample_count = _check_sampling(T, top_k, top_p, sample_count)
        batch_size = check_batch_size(batch_size)
        series, pred_len = self._prepare(df, x_timestamp, y_timestamp, pred_len)
        paths = self._generate(
            [series], pred_len, T, top_k, top_p, sample_count, verbose, sliding, generator, batch_size
        )[0]
        forecast = self._frame(series.denormalize(paths.mean(axis=0)), series.y_index)
        if return_samples:
            return forecast, series.denormalize(paths)
        return forecast

    def predict_batch(
        self,
        df_list,
        x_timestamp_list=None,
        y_timestamp_list=None,
        pred_len=None,
        T=1.0,
        top_k=0,
        top_p=0.9,
        sample_count=1,
        verbose=True,
        return_samples=False,
        sliding="exact",
        generator=None,
        batch_size=None,
    ) -> list:
        """
        Forecast several series in one batch. They may have different context lengths (they are left-padded and
        masked, and each forecast equals the series' own); all forecast `pred_len` candles.

        Args:
            df_list (`list[pd.DataFrame]`): One context per series, as in [`predict`].
            x_timestamp_list (`list`, *optional*): Their timestamps (`None` entries fall back as in [`predict`]).
            y_timestamp_list (`list`, *optional*): Their forecast timestamps (`None` entries are inferred).
            generator (*optional*): Source of randomness, as in [`predict`], or a list of them. A list holds one
                generator per series: each series' paths are then drawn from
                its own generator alone, so a sampled forecast does not depend on which other series share its batch
                (seed each series' generator from its identity, e.g. `seed` and a series id, for forecasts that are
                reproducible series by series).
            batch_size (`int`, *optional*): Decode at most this many sample paths together, counted over all
                series (`None`: everything in one pass, as upstream); with `sample_count=1`, this many series.
                Series stay whole while their paths fit in a pass; a series with more paths is decoded alone, its
                paths spread over several passes. Memory and randomness as in [`predict`].
            Other arguments: as in [`predict`].

        Returns:
            `list[pd.DataFrame]`, one forecast per series; with `return_samples=True`, a pair `(forecasts, samples)`
            with `samples` a list of arrays `(sample_count, pred_len, 6)`.
        """
        if not isinstance(df_list, (list, tuple)):
            raise TypeError(f"`df_list` must be a list of DataFrames, got {type(df_list).__name__}")
        if not df_list:
            raise ValueError("`df_list` is empty")
        count = len(df_list)
        lists = {}
        for name, value in (("x_timestamp_list", x_timestamp_list), ("y_timestamp_list", y_timestamp_list)):
            if value is None:
                value = [None] * count
            if not isinstance(value, (list, tuple)):
                raise TypeError(f"`{name}` must be a list, got {type(value).__name__}")
            if len(value) != count:
                raise ValueError(f"`{name}` has {len(value)} entries but `df_list` has {count}")
            lists[name] = value
        T, top_k, top_p, sample_count = _check_sampling(T, top_k, top_p, sample_count)
        batch_size = check_batch_size(batch_size)
        series = []
        lengths = set()
        for i, (df, x_ts, y_ts) in enumerate(zip(df_list, lists["x_timestamp_list"], lists["y_timestamp_list"])):
            prepared, length = self._prepare(df, x_ts, y_ts, pred_len, where=f"series {i}: ")
            series.append(prepared)
            lengths.add(length)
        if len(lengths) > 1:
            raise ValueError(f"all series must forecast the same number of candles, got {sorted(lengths)}")
        pred_len = lengths.pop()
        paths = self._generate(series, pred_len, T, top_k, top_p, sample_count, verbose, sliding, generator, batch_size)
        forecasts = [self._frame(s.denormalize(p.mean(axis=0)), s.y_index) for s, p in zip(series, paths)]
        if return_samples:
            return forecasts, [s.denormalize(p) for s, p in zip(series, paths)]
        return forecasts

    def predict_quantiles(
        self,
        df,
        x_timestamp=None,
        y_timestamp=None,
        pred_len=None,
        quantile_levels=(0.1, 0.5, 0.9),
        sample_count=20,
        T=1.0,
        top_k=0,
        top_p=0.9,
        verbose=True,
        sliding="exact",
        generator=None,
        batch_size=None,
    ) -> pd.DataFrame:
        """
        Forecast one series as a distribution: the mean and quantiles over `sample_count` sample paths.

        Args:
            quantile_levels (`tuple[float]`): Levels strictly between 0 and 1.
            sample_count (`int`, defaults to 20): Paths the quantiles are estimated from. The paths share the
                context's key/value cache, but each holds its forecast's: for thousands of paths (tail quantiles),
                `batch_size` bounds how many are decoded together.
            Other arguments: as in [`predict`].

        Returns:
            `pd.DataFrame` indexed by the forecast timestamps with the mean of each feature (columns open, high, low,
            close, volume, amount, as [`predict`]) followed by its quantiles, named `{column}_q{level}`
            (`close_q0.1`, `close_q0.5`, ...; see [`quantile_column`]).
        """
        levels = _check_quantile_levels(quantile_levels)
        forecast, samples = self.predict(
            df, x_timestamp, y_timestamp, pred_len, T=T, top_k=top_k, top_p=top_p, sample_count=sample_count,
            verbose=verbose, return_samples=True, sliding=sliding, generator=generator, batch_size=batch_size,
        )
        return with_quantiles(forecast, samples, levels)

    def predict_quantiles_batch(
        self,
        df_list,
        x_timestamp_list=None,
        y_timestamp_list=None,
        pred_len=None,
        quantile_levels=(0.1, 0.5, 0.9),
        sample_count=20,
        T=1.0,
        top_k=0,
        top_p=0.9,
        verbose=True,
        sliding="exact",
        generator=None,
        batch_size=None,
    ) -> list:
        """
        [`predict_quantiles`] for several series in one batch; returns one frame per series. `batch_size` as in
        [`predict_batch`] (it counts paths over all series).
        """
        levels = _check_quantile_levels(quantile_levels)
        forecasts, samples = self.predict_batch(
            df_list, x_timestamp_list, y_timestamp_list, pred_len, T=T, top_k=top_k, top_p=top_p,
            sample_count=sample_count, verbose=verbose, return_samples=True, sliding=sliding, generator=generator,
            batch_size=batch_size,
        )
        return [with_quantiles(f, s, levels) for f, s in zip(forecasts, samples)]


def with_quantiles(forecast: pd.DataFrame, samples: np.ndarray, levels: list[float]) -> pd.DataFrame:
    """`forecast` (the mean) with quantile columns computed over the paths `samples` `(paths, pred_len, 6)`."""
    quantiles = np.quantile(samples, levels, axis=0)  # (levels, pred_len, 6)
    columns = {}
    for j, column in enumerate(FEATURE_COLUMNS):
        for k, level in enumerate(levels):
            columns[quantile_column(column, level)] = quantiles[k, :, j]
    return pd.concat([forecast, pd.DataFrame(columns, index=forecast.index)], axis=1)


__all__ = [
    "AMOUNT_COLUMN",
    "FEATURE_COLUMNS",
    "KlineForecaster",
    "NORM_EPS",
    "PRICE_COLUMNS",
    "PreparedSeries",
    "TIME_FEATURES",
    "VOLUME_COLUMN",
    "calendar_features",
    "check_batch_size",
    "check_float32_range",
    "check_forecaster_options",
    "check_network_pair",
    "infer_future_timestamps",
    "quantile_column",
    "reject_numeric_timestamps",
    "with_quantiles",
]
