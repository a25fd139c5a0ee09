# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Forecasting a universe: many series, in chunks, written as Parquet parts that a crashed run can resume.

The layout of an output folder `DIR`:

- `DIR/forecasts/part-00000.parquet, ...`: one row per (series, forecast candle), with the id column, `timestamps`,
  `step` (1 = the first forecast candle), the mean of the six fields and their quantiles `{field}_q{level}`. A field
  the series does not have (volume, amount) is NaN. `pd.read_parquet(DIR / "forecasts")` reads every part. Each
  part is written under a temporary name and renamed into place, so a part that exists is complete.
- `DIR/errors.csv`: the id and a one-line reason of every series that could not be forecast (too short, repeated
  timestamps, NaN prices, ...), gathered at the end of the run from the per-chunk files under `DIR/errors/`
  (kept for `resume`).
- `DIR/run.json`: the settings of the run, which `resume` checks before skipping the parts already written.

Determinism: each series draws its paths from its own `torch.Generator`, seeded from the run's seed and the series
id ([`series_seed`]), and only series with contexts of the same length are decoded together. Left padding would change
the float rounding of attention (measured: logits differ by ~1e-6, which flips near-tied tokens), while a batch of
equal-length rows gives each row the bits it gets alone (measured on CPU; see docs/universe.md). So a series'
forecast does not depend on the chunk size, the order of the series, the other series in the file or the number of
processes.
"""

import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch

from .forecasting import FEATURE_COLUMNS, infer_future_timestamps, quantile_column
from .io_utils import one_line, temporary_sibling
from .reading import DEFAULT_ID_COLUMN, KlineReadError, check_series, kline_files, read_klines
from .utils import series_generator, series_seed  # noqa: F401 (series_seed is part of this module's API)

# Fewer candles than this leave too little to normalise on or to infer a bar length from.
MIN_HISTORY = 16
# Upstream's README forecasts from 400 candles; the window is clipped to the model's `max_context` anyway.
DEFAULT_LOOKBACK = 400
ERROR_COLUMN = "reason"


@dataclass(frozen=True)
class ForecastSettings:
    """What a universe run forecasts; saved in `run.json` so that a resumed run continues the same one."""

    pred_len: int = 48
    samples: int = 20
    quantiles: tuple = (0.1, 0.5, 0.9)
    lookback: Optional[int] = None
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.9
    sliding: str = "exact"
    batch_size: Optional[int] = None
    seed: int = 0

    @classmethod
    def from_args(cls, args) -> "ForecastSettings":
        """The settings of a parsed `kronos-forecast` command line."""
        return cls(pred_len=args.pred_len, samples=args.samples, quantiles=tuple(args.quantiles),
                   lookback=args.lookback, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                   sliding=args.sliding, batch_size=args.batch_size, seed=args.seed)

    def to_json(self) -> dict:
        settings = asdict(self)
        settings["quantiles"] = list(self.quantiles)
        return settings


def chunk_ids(ids, series_per_chunk: int) -> list:
    """The ids cut into chunks of `series_per_chunk`, in order."""
    ids = list(ids)
    return [ids[i : i + series_per_chunk] for i in range(0, len(ids), series_per_chunk)]


# --------------------------------------------------------------------------------------------------------------------
# reading a chunk at a time
# --------------------------------------------------------------------------------------------------------------------


class UniverseSource:
    """
    The series of a universe, read a chunk at a time so that memory follows the chunk, not the universe:

    - a folder: file by file (a file that cannot be read is one series that cannot be forecast);
    - a long Parquet table: its id column first, then each chunk's rows (a filtered read);
    - anything else (CSV, a DataFrame): read once, whole.

    Args:
        source: What [`read_klines`] reads.
        id_column (`str`, *optional*): The id column (a folder's default: `series_id`).
        timestamp_column, columns: As in [`read_klines`].
    """

    def __init__(self, source, id_column=None, timestamp_column=None, columns=None):
        self._kwargs = {"timestamp_column": timestamp_column, "columns": columns}
        path = Path(source).expanduser() if isinstance(source, (str, os.PathLike)) else None
        self._files = self._parquet = self._groups = None
        if path is not None and path.is_dir():
            self.id_column = id_column or DEFAULT_ID_COLUMN
            self._files = {file.stem: file for file in kline_files(path)}
            self.ids = list(self._files)
        elif (path is not None and path.is_file() and path.suffix.lower() in (".parquet", ".pq")
              and id_column is not None):
            self.id_column = id_column
            self._parquet, self._stored_id = path, self._parquet_id_column(path, id_column)
            ids = pd.read_parquet(path, columns=[self._stored_id])[self._stored_id]
            if ids.isna().any():
                raise KlineReadError(f"{source}: the id column {id_column!r} has empty cells")
            self.ids = list(pd.unique(ids))
        else:
            self.id_column = id_column
            klines = read_klines(source, id_column=id_column, **self._kwargs)
            self._groups = dict(tuple(klines.groupby(id_column, sort=False)))
            self.ids = list(self._groups)

    @staticmethod
    def _parquet_id_column(path, id_column):
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds for a file that is not Parquet
            raise KlineReadError(f"{path}: not a readable Parquet file ({one_line(err)})") from None
        matches = [n for n in names if n == id_column] or [n for n in names if n.strip().lower() == id_column.lower()]
        if len(matches) != 1:
            raise KlineReadError(f"{path}: --id-column {id_column!r} is not a column; the columns are "
                                 f"{', '.join(n for n in names if not n.startswith('__'))}")
        return matches[0]

    def read(self, ids: list) -> tuple[dict, dict]:
        """`(series, errors)`: id → frame in [`read_klines`]' layout, and id → reason for series that cannot be read."""
        if self._groups is not None:
            return {i: self._groups[i] for i in ids}, {}
        if self._parquet is not None:
            frame = pd.read_parquet(self._parquet, filters=[(self._stored_id, "in", list(ids))])
            klines = read_klines(frame, id_column=self._stored_id, **self._kwargs)
            klines = klines.rename(columns={self._stored_id: self.id_column})
            return dict(tuple(klines.groupby(self.id_column, sort=False))), {}
        series, errors = {}, {}
        for series_id in ids:
            try:
                series[series_id] = read_klines([self._files[series_id]], id_column=self.id_column, **self._kwargs)
            except KlineReadError as err:
                errors[series_id] = one_line(err)
        return series, errors


# --------------------------------------------------------------------------------------------------------------------
# one chunk
# --------------------------------------------------------------------------------------------------------------------


def _prepare(frame, settings, max_context):
    """`(context, stamps, future, fields)` of one series, or `KlineReadError`/`ValueError` with the reason."""
    values, stamps = check_series(frame, min_length=MIN_HISTORY)
    if settings.lookback is not None and len(values) < settings.lookback:
        raise KlineReadError(f"the history has {len(values)} candles, fewer than the lookback {settings.lookback}")
    lookback = settings.lookback or min(len(values), DEFAULT_LOOKBACK, max_context)
    future = infer_future_timestamps(pd.DatetimeIndex(stamps), settings.pred_len)
    context = values.iloc[-lookback:].reset_index(drop=True)
    return context, stamps.iloc[-lookback:].reset_index(drop=True), future, list(values.columns)


def forecast_rows(id_column, series_id, samples, future, fields, quantiles) -> pd.DataFrame:
    """
    The rows of one series' forecast.

    Args:
        samples (`np.ndarray` of shape `(paths, pred_len, 6)`): De-normalised paths, in `FEATURE_COLUMNS` order.
        future (`pd.DatetimeIndex`): The forecast's timestamps.
        fields (`list[str]`): The fields the series has; the others are NaN.
    """
    samples = np.asarray(samples, dtype=np.float64)
    rows = {id_column: [series_id] * len(future), "timestamps": pd.DatetimeIndex(future).astype("datetime64[ns]"),
            "step": np.arange(1, len(future) + 1, dtype=np.int64)}
    mean = samples.mean(axis=0)
    levels = np.quantile(samples, quantiles, axis=0) if quantiles else None
    for j, field in enumerate(FEATURE_COLUMNS):
        rows[field] = mean[:, j] if field in fields else np.full(len(future), np.nan)
    for j, field in enumerate(FEATURE_COLUMNS):
        for k, level in enumerate(quantiles):
            rows[quantile_column(field, level)] = levels[k, :, j] if field in fields else np.full(len(future), np.nan)
    return pd.DataFrame(rows)


def _sample(forecaster, prepared, settings):
    """Paths of series with equal-length contexts, decoded together, each from its own generator."""
    ids = list(prepared)
    generators = [series_generator(settings.seed, i, device=forecaster.device) for i in ids]
    _, samples = forecaster.predict_batch(
        [prepared[i][0] for i in ids], [prepared[i][1] for i in ids], [prepared[i][2] for i in ids],
        pred_len=settings.pred_len, T=settings.temperature, top_k=settings.top_k, top_p=settings.top_p,
        sample_count=settings.samples, verbose=False, return_samples=True, sliding=settings.sliding,
        generator=generators, batch_size=settings.batch_size,
    )
    return dict(zip(ids, samples))


def forecast_chunk(forecaster, series, settings: ForecastSettings, id_column: str):
    """
    Forecast a chunk of series.

    Args:
        series (`dict`): id → the series' frame in [`read_klines`]' layout.

    Returns:
        `(rows, errors)`: the forecast rows of every series that could be forecast (see [`forecast_rows`]), and a
        frame `[id_column, reason]` of the others.
    """
    prepared, errors = {}, {}
    for series_id, frame in series.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prepared[series_id] = _prepare(frame, settings, forecaster.max_context)
        except (KlineReadError, ValueError, TypeError) as err:
            errors[series_id] = one_line(err)
    by_length = {}
    for series_id, item in prepared.items():
        by_length.setdefault(len(item[0]), {})[series_id] = item
    paths = {}
    for group in by_length.values():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                paths.update(_sample(forecaster, group, settings))
        except (ValueError, TypeError):  # one series the forecaster refuses: find it, keep the others
            for series_id, item in group.items():
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        paths.update(_sample(forecaster, {series_id: item}, settings))
                except (ValueError, TypeError) as err:
                    errors[series_id] = one_line(err)
    frames = [forecast_rows(id_column, i, paths[i], prepared[i][2], prepared[i][3], settings.quantiles)
              for i in series if i in paths]
    rows = pd.concat(frames, ignore_index=True) if frames else empty_rows(id_column, settings.quantiles)
    errors = pd.DataFrame({id_column: list(errors), ERROR_COLUMN: list(errors.values())})
    return rows, errors


def empty_rows(id_column, quantiles) -> pd.DataFrame:
    columns = [id_column, "timestamps", "step", *FEATURE_COLUMNS,
               *(quantile_column(f, q) for f in FEATURE_COLUMNS for q in quantiles)]
    frame = pd.DataFrame({c: pd.Series(dtype=np.float64) for c in columns})
    return frame.astype({id_column: object, "timestamps": "datetime64[ns]", "step": np.int64})


# --------------------------------------------------------------------------------------------------------------------
# the output folder
# --------------------------------------------------------------------------------------------------------------------


def part_name(index: int) -> str:
    return f"part-{index:05d}"


def write_part(output_dir, index: int, rows: pd.DataFrame, errors: pd.DataFrame) -> None:
    """
    Write one chunk's errors, then its forecasts, each atomically; the forecast part is the chunk's "done" marker.
    """
    output_dir = Path(output_dir)
    for folder in ("forecasts", "errors"):
        (output_dir / folder).mkdir(parents=True, exist_ok=True)
    for frame, target, write in (
        (errors, output_dir / "errors" / f"{part_name(index)}.csv", lambda f, p: f.to_csv(p, index=False)),
        (rows, output_dir / "forecasts" / f"{part_name(index)}.parquet", lambda f, p: f.to_parquet(p, index=False)),
    ):
        tmp = temporary_sibling(target)
        try:
            write(frame, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)


def done_parts(output_dir) -> set:
    """The chunk indices whose forecast part exists (complete, since parts are renamed into place)."""
    folder = Path(output_dir) / "forecasts"
    if not folder.is_dir():
        return set()
    return {int(p.stem.split("-")[1]) for p in folder.glob("part-*.parquet")}


def merge_errors(output_dir, id_column: str) -> pd.DataFrame:
    """Gather the per-chunk error files into `DIR/errors.csv` (atomically); returns its rows."""
    output_dir = Path(output_dir)
    parts = sorted((output_dir / "errors").glob("part-*.csv"))
    frames = [pd.read_csv(p, dtype={id_column: str}, keep_default_na=False) for p in parts]
    frames = [f for f in frames if len(f)]
    errors = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({id_column: [], ERROR_COLUMN: []})
    target = output_dir / "errors.csv"
    tmp = temporary_sibling(target)
    try:
        errors.to_csv(tmp, index=False)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return errors


def run_manifest(source, id_column, settings: ForecastSettings, series_per_chunk, model, tokenizer, dtype) -> dict:
    """What `run.json` records: a resumed run must match it."""
    return {"source": str(Path(source).expanduser().resolve()), "id_column": id_column,
            "series_per_chunk": series_per_chunk, "model": model, "tokenizer": tokenizer, "dtype": dtype,
            "settings": settings.to_json()}


def check_resume(output_dir, manifest: dict) -> Optional[str]:
    """`None` when `output_dir` holds a run with `manifest`'s settings, else what differs (one line)."""
    path = Path(output_dir) / "run.json"
    if not path.is_file():
        return f"{output_dir} has no run.json: it is not the output of an interrupted run"
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return f"{path} is unreadable ({one_line(err)})"
    differ = sorted(k for k in set(saved) | set(manifest) if saved.get(k) != manifest.get(k))
    if differ:
        return f"{output_dir} was written with other settings ({', '.join(differ)} differ); rerun without --resume " \
               "into a new folder"
    return None


def write_manifest(output_dir, manifest: dict) -> None:
    target = Path(output_dir) / "run.json"
    tmp = temporary_sibling(target)
    try:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = [
    "ForecastSettings",
    "UniverseSource",
    "chunk_ids",
    "done_parts",
    "forecast_chunk",
    "forecast_rows",
    "merge_errors",
    "series_generator",
    "series_seed",
    "write_part",
]
