# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Sliding-window K-line datasets for fine-tuning Kronos with the transformers `Trainer`.

A K-line table has one row per candle: a timestamp column, `open, high, low, close` and optionally `volume` and
`amount`, plus an optional series-id column when it holds many instruments. [`KronosWindowDataset`] cuts every
series into windows of `lookback + pred_window + 1` consecutive candles (the extra candle is the target of the last
input position once the predictor's tokens are shifted). Each window is normalised with the mean and standard
deviation of its lookback part only, so no statistic of the candles to be predicted leaks into the inputs, and it is
clipped exactly as [`KronosForecaster`] preprocesses a context at inference time.

Which windows a training epoch visits, and in which order, is left to the sampler: the `Trainer` shuffles the
window indices with its seed, so epochs draw windows at random and a run is reproducible from `--seed`.

`datasets` is imported only when a `datasets.Dataset` is actually passed in.
"""

import logging
import numbers
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .forecasting import (
    FEATURE_COLUMNS,
    NORM_EPS,
    PRICE_COLUMNS,
    TIME_FEATURES,
    calendar_features,
    check_float32_range,
    reject_numeric_timestamps,
)

logger = logging.getLogger(__name__)

# training must see the inputs the forecaster gives the model: the same columns, calendar and normalisation
STAMP_COLUMNS = TIME_FEATURES

_MAX_ROWS_IN_MESSAGE = 10


def _rows_message(rows):
    rows = [int(r) for r in rows]
    shown = ", ".join(str(r) for r in rows[:_MAX_ROWS_IN_MESSAGE])
    more = f" and {len(rows) - _MAX_ROWS_IN_MESSAGE} more" if len(rows) > _MAX_ROWS_IN_MESSAGE else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def load_kline_table(source: object) -> pd.DataFrame:
    """
    Read a K-line table into a `pandas.DataFrame`.

    Args:
        source: a `pandas.DataFrame` (copied), a path to a `.csv`, `.parquet` or `.pq` file, or a Hugging Face
            `datasets.Dataset`.

    Returns:
        `pandas.DataFrame` with a fresh `RangeIndex`, so that row numbers in error messages are 0-based positions of
        the data rows (the CSV header is not counted).
    """
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no such data file: {str(path)!r}")
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet", ".pq"):
            raise ValueError(f"cannot read {str(path)!r}: expected a .csv, .parquet or .pq file")
        try:
            frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        except pd.errors.EmptyDataError:
            raise ValueError(f"{str(path)!r} is empty") from None
        except (ValueError, OSError, UnicodeDecodeError) as err:  # parser errors, corrupt Parquet (ArrowInvalid)
            kind = "CSV" if suffix == ".csv" else "Parquet"
            raise ValueError(f"cannot read {str(path)!r} as {kind}: {' '.join(str(err).split())}") from None
    elif type(source).__module__.split(".")[0] == "datasets":
        import datasets  # only now: it is an optional dependency

        if isinstance(source, datasets.DatasetDict):
            raise TypeError(f"pass one split of the DatasetDict (one of {list(source)}), not the whole dict")
        if not isinstance(source, datasets.Dataset):
            raise TypeError(f"only a map-style `datasets.Dataset` is supported, got {type(source).__name__}")
        frame = source.to_pandas()
    else:
        raise TypeError(
            "K-line data must be a pandas DataFrame, a .csv/.parquet path or a datasets.Dataset, "
            f"got {type(source).__name__}"
        )
    return frame.reset_index(drop=True)


def prepare_kline_frame(
    frame: pd.DataFrame, timestamp_column: str = "timestamps", series_column: str | None = None
) -> dict:
    """
    Validate a K-line table and turn it into per-series arrays.

    Missing `volume` and `amount` are filled as upstream's predictor does (`volume = amount = 0` without volume,
    `amount = volume * mean(open, high, low, close)` without amount).

    Args:
        frame (`pandas.DataFrame`): The table (see [`load_kline_table`]).
        timestamp_column (`str`): Column of timestamps (anything `pandas.to_datetime` parses).
        series_column (`str`, *optional*): Column naming the series each row belongs to. Rows of one series must be
            in chronological order; series may be interleaved.

    Returns:
        `dict` mapping each series id (`None` for a single series) to a pair `(values, stamps)`: `values` of shape
        `(n, 6)` float32 (open, high, low, close, volume, amount) and `stamps` of shape `(n, 5)` int64.

    Raises:
        `ValueError` naming the columns, or the 0-based data rows, that are missing, non-numeric, NaN/inf,
        unparsable as timestamps, or out of chronological order.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"`frame` must be a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise ValueError("the K-line table is empty")
    required = [timestamp_column, *PRICE_COLUMNS] + ([series_column] if series_column is not None else [])
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the K-line table lacks the column(s) {missing}; it has {list(frame.columns)} "
            f"(required: {required}, optional: ['volume', 'amount'])"
        )
    frame = frame.reset_index(drop=True)
    repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if repeated:
        raise ValueError(f"the K-line table has the column(s) {repeated} more than once")

    values = _feature_values(frame)

    timestamps = _timestamps(frame, timestamp_column)
    stamps = calendar_features(timestamps).astype(np.int64)

    groups = _series_rows(frame, series_column)
    time_ns = timestamps.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    series = {}
    for key, rows in groups.items():
        rows = np.sort(rows)
        bad = rows[1:][np.diff(time_ns[rows]) <= 0]
        if len(bad):
            where = f" of series {key!r}" if key is not None else ""
            raise ValueError(
                f"timestamps{where} must be strictly increasing; they are not at {_rows_message(bad)} "
                "(sort the table by time and drop duplicate candles)"
            )
        where = f"series {key!r}: " if key is not None else ""
        check_float32_range(values[rows], where)  # the windows' float32 statistics would overflow
        series[key] = (values[rows], stamps[rows])
    return series


def _feature_values(frame):
    """The six features of a K-line table as float32 `(n, 6)`, volume and amount filled as upstream fills them."""
    columns = {}
    for name in (c for c in FEATURE_COLUMNS if c in frame.columns):
        raw = frame[name]
        if pd.api.types.is_bool_dtype(raw):
            raise ValueError(f"column {name!r} holds booleans, not numbers")
        if pd.api.types.is_complex_dtype(raw):
            raise ValueError(f"column {name!r} holds complex numbers, not real ones")
        values = pd.to_numeric(raw, errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy() & raw.notna().to_numpy())
        if len(bad):
            raise ValueError(f"column {name!r} has non-numeric values at {_rows_message(bad)}")
        values = values.to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise ValueError(f"column {name!r} has NaN or infinite values at {_rows_message(bad)}")
        columns[name] = values
    if "volume" not in columns:
        columns["volume"] = np.zeros(len(frame))
        columns["amount"] = np.zeros(len(frame))
    elif "amount" not in columns:
        columns["amount"] = columns["volume"] * np.mean([columns[c] for c in PRICE_COLUMNS], axis=0)
    with np.errstate(over="ignore"):  # values beyond float32 become inf, which the check below reports
        values = np.stack([columns[c] for c in FEATURE_COLUMNS], axis=-1).astype(np.float32)
    return values


def _timestamps(frame, timestamp_column):
    """The table's timestamps, parsed; every one present and valid."""
    raw_time = frame[timestamp_column]
    reject_numeric_timestamps(raw_time, f"column {timestamp_column!r}")
    try:
        timestamps = pd.to_datetime(raw_time, errors="coerce")
    except (TypeError, ValueError) as err:  # e.g. mixed time zones
        raise ValueError(f"column {timestamp_column!r} cannot be read as timestamps: {err}") from None
    bad = np.flatnonzero(timestamps.isna().to_numpy())
    if len(bad):
        raise ValueError(f"column {timestamp_column!r} has missing or unparsable timestamps at {_rows_message(bad)}")
    return timestamps


def _series_rows(frame, series_column):
    """Row indices of each series (one series, `None`, without `series_column`)."""
    if series_column is None:
        return {None: np.arange(len(frame))}
    ids = frame[series_column]
    bad = np.flatnonzero(ids.isna().to_numpy())
    if len(bad):
        raise ValueError(f"column {series_column!r} has missing series ids at {_rows_message(bad)}")
    try:
        return {key: np.asarray(rows) for key, rows in ids.groupby(ids, sort=False).indices.items()}
    except TypeError as err:  # e.g. lists as ids
        raise TypeError(f"column {series_column!r} must hold hashable series ids (names or numbers): {err}") from None


def _check_series(series):
    """Raise unless `series` has the form [`prepare_kline_frame`] returns: id → `(values (n, 6), stamps (n, 5))`."""
    if not isinstance(series, dict):
        raise TypeError(f"`series` must be the dict that prepare_kline_frame returns, got {type(series).__name__}")
    for key, pair in series.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"series {key!r} must be a pair (values, stamps), got {type(pair).__name__}")
        values, stamps = (np.asarray(part) for part in pair)
        if values.ndim != 2 or values.shape[1] != len(FEATURE_COLUMNS) or values.dtype.kind != "f":
            raise ValueError(
                f"series {key!r}: values must be floats of shape (n, {len(FEATURE_COLUMNS)}) ({', '.join(FEATURE_COLUMNS)}), "
                f"got {values.dtype} {values.shape}"
            )
        if stamps.ndim != 2 or stamps.shape[1] != len(TIME_FEATURES) or stamps.dtype.kind not in "iuf":
            raise ValueError(
                f"series {key!r}: stamps must be numbers of shape (n, {len(TIME_FEATURES)}) ({', '.join(TIME_FEATURES)}), "
                f"got {stamps.dtype} {stamps.shape}"
            )
        if len(stamps) != len(values):
            raise ValueError(f"series {key!r} has {len(values)} candles but {len(stamps)} stamps")
        if not np.isfinite(values).all():
            raise ValueError(f"series {key!r} has NaN or infinite values")


def chronological_split(series: dict, validation_fraction: float) -> tuple[dict, dict]:
    """
    Split every series in time: its first candles for training, its last `validation_fraction` for validation.

    The two parts do not overlap, so no validation candle is ever a training target.

    Args:
        series (`dict`): As returned by [`prepare_kline_frame`].
        validation_fraction (`float`): In `[0, 1)`.

    Returns:
        `(train_series, validation_series)`, two dicts of the same form.
    """
    _check_series(series)
    if isinstance(validation_fraction, bool) or not isinstance(validation_fraction, numbers.Real):
        raise TypeError(f"`validation_fraction` must be a number in [0, 1), got {type(validation_fraction).__name__}")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"`validation_fraction` must lie in [0, 1), got {validation_fraction}")
    train, validation = {}, {}
    for key, (values, stamps) in series.items():
        cut = len(values) - int(round(len(values) * validation_fraction))
        train[key] = (values[:cut], stamps[:cut])
        if cut < len(values):
            validation[key] = (values[cut:], stamps[cut:])
    return train, validation


class KronosWindowDataset(torch.utils.data.Dataset):
    """
    Sliding windows of `lookback + pred_window + 1` candles over one or many K-line series.

    Item `i` is a dict with
    - `"x"`: `torch.FloatTensor` of shape `(lookback + pred_window + 1, 6)`, the window's open, high, low, close,
      volume and amount, z-scored with the mean and (population) standard deviation of its first `lookback`
      candles, `(v - mean) / (std + 1e-5)`, then clipped to `[-clip, clip]`;
    - `"stamp"`: `torch.FloatTensor` of shape `(lookback + pred_window + 1, 5)`, the calendar features minute,
      hour, weekday, day of month and month.

    Windows never cross from one series into another. Every start position (every `stride`-th) is one item; the
    `Trainer`'s sampler draws them in a seeded random order.

    Args:
        data: a `pandas.DataFrame`, a `.csv`/`.parquet` path, a `datasets.Dataset`, or the dict returned by
            [`prepare_kline_frame`] / [`chronological_split`].
        lookback (`int`): Context candles, whose statistics normalise the window.
        pred_window (`int`): Candles after the lookback that the model learns to predict.
        timestamp_column (`str`, defaults to `"timestamps"`): Column of timestamps.
        series_column (`str`, *optional*): Column of series ids, for a table holding many instruments.
        clip (`float`, defaults to 5.0): Normalised values are clipped to `[-clip, clip]`.
        stride (`int`, defaults to 1): Distance between the starts of consecutive windows of a series.

    Raises:
        `ValueError` for bad data (see [`prepare_kline_frame`]), `lookback`/`pred_window`/`stride` below 1, or when
        no series holds a full window (series shorter than a window are skipped with a warning).
    """

    def __init__(self, data, lookback, pred_window, timestamp_column="timestamps", series_column=None, clip=5.0, stride=1):
        for name, value in (("lookback", lookback), ("pred_window", pred_window), ("stride", stride)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` must be an integer of at least 1, got {value!r}")
        if not isinstance(clip, numbers.Real) or isinstance(clip, bool) or not clip > 0:
            raise ValueError(f"`clip` must be a positive number, got {clip!r}")
        self.lookback = int(lookback)
        self.pred_window = int(pred_window)
        self.window = self.lookback + self.pred_window + 1
        self.clip = float(clip)
        self.stride = int(stride)

        if isinstance(data, dict):
            _check_series(data)
            series = data
        else:
            series = prepare_kline_frame(load_kline_table(data), timestamp_column, series_column)

        values, stamps, starts, self.series_ids, too_short = [], [], [], [], []
        offset = 0
        for key, (vals, stps) in series.items():
            if len(vals) < self.window:
                too_short.append((key, len(vals)))
                continue
            values.append(vals)
            stamps.append(stps)
            starts.append(offset + np.arange(0, len(vals) - self.window + 1, self.stride))
            self.series_ids.append(key)
            offset += len(vals)
        if not starts:
            lengths = ", ".join(f"{len(v)}" if k is None else f"{k!r}: {len(v)}" for k, (v, _) in series.items())
            raise ValueError(
                f"no series has enough candles for one window of lookback + pred_window + 1 = {self.window} "
                f"(candles per series: {lengths or 'none'})"
            )
        if too_short:
            logger.warning(
                "skipping %d series shorter than one window of %d candles: %s",
                len(too_short),
                self.window,
                ", ".join(f"{k!r} ({n})" for k, n in too_short[:_MAX_ROWS_IN_MESSAGE]),
            )
        self.values = np.concatenate(values).astype(np.float32, copy=False)
        self.stamps = np.concatenate(stamps)
        self.starts = np.concatenate(starts)

    @classmethod
    def from_splits(
        cls,
        data: object,
        lookback: int,
        pred_window: int,
        validation_fraction: float,
        timestamp_column: str = "timestamps",
        series_column: str | None = None,
        **kwargs,
    ) -> tuple["KronosWindowDataset", "KronosWindowDataset | None"]:
        """
        A training and a validation dataset from one table, split in time per series (see [`chronological_split`]).

        Returns:
            `(train_dataset, validation_dataset)`; `validation_dataset` is `None` when `validation_fraction` is 0.
        """
        series = prepare_kline_frame(load_kline_table(data), timestamp_column, series_column)
        train, validation = chronological_split(series, validation_fraction)
        train_dataset = cls(train, lookback, pred_window, **kwargs)
        if validation_fraction == 0:
            return train_dataset, None
        try:
            validation_dataset = cls(validation, lookback, pred_window, **kwargs)
        except ValueError as err:
            raise ValueError(f"the validation part ({validation_fraction:.0%} of each series) is too short: {err}") from None
        return train_dataset, validation_dataset

    @property
    def num_features(self) -> int:
        return self.values.shape[-1]

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, index):
        start = int(self.starts[index])
        # statistics in float64: float32 sums of prices far from zero lose digits (and depend on memory layout)
        window = self.values[start : start + self.window].astype(np.float64)
        past = window[: self.lookback]
        mean, std = past.mean(axis=0), past.std(axis=0)
        x = np.clip((window - mean) / (std + NORM_EPS), -self.clip, self.clip)
        stamp = self.stamps[start : start + self.window]
        return {"x": torch.from_numpy(x.astype(np.float32)), "stamp": torch.from_numpy(stamp.astype(np.float32))}


__all__ = [
    "FEATURE_COLUMNS",
    "KronosWindowDataset",
    "chronological_split",
    "load_kline_table",
    "prepare_kline_frame",
]
