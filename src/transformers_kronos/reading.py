# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Reading K-line files as users have them: CSV or Parquet, one series or many, from pandas, yfinance, tushare,
akshare, ccxt or arch, into one layout.

[`read_klines`] returns a frame with columns `timestamps` (naive datetime64), `open, high, low, close` (float64),
`volume` and `amount` when the source has them, and the series id column when there is one, sorted oldest first
within each series. It recognises, with no option:

- the timestamp column by its name (`timestamps`, `timestamp`, `date`, `datetime`, `time`, `trade_date`, `日期`,
  `时间`, in any case), an unnamed first column that holds dates (pandas' `to_csv` of a frame indexed by date), a
  `DatetimeIndex` (Parquet, DataFrames), or the only datetime-typed column;
- timestamps written as text (any format pandas reads, day first when month first fails, with UTC offsets), as
  YYYYMMDD numbers or as epoch counts (seconds to nanoseconds, told apart by their size);
- price columns in any case and under common aliases (`vol`; akshare's `开盘, 收盘, 最高, 最低, 成交量, 成交额`);
  `Adj Close` is never used as the close (a [`KlineReadWarning`] says so);
- yfinance's three-row header (`Price`, `Ticker`, `Date` rows);
- files sorted newest first (tushare), which are reordered with a warning;
- a folder of such files, one series per file, the file name without its extension being the series id.

Anything it would have to guess between (two timestamp columns, two columns that could be the close) raises a
[`KlineReadError`] with one line saying what to pass. The reader checks structure, not values: NaN prices, repeated
timestamps or short histories are reported per series by [`check_series`], so that one broken series in a universe
does not stop the others.
"""

import csv
import io
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .io_utils import one_line

PRICE_FIELDS = ("open", "high", "low", "close")
OPTIONAL_FIELDS = ("volume", "amount")
FIELDS = PRICE_FIELDS + OPTIONAL_FIELDS
TIMESTAMP_COLUMN = "timestamps"
# the id column of a folder of per-series files when the caller names none
DEFAULT_ID_COLUMN = "series_id"
FILE_SUFFIXES = (".csv", ".parquet", ".pq")

# names are compared after `_normalise`: lower case, runs of spaces, dashes and dots as one underscore
TIMESTAMP_ALIASES = ("timestamps", "timestamp", "date", "datetime", "time", "trade_date", "trade_time", "日期", "时间")
FIELD_ALIASES = {
    "open": ("open", "开盘", "开盘价"),
    "high": ("high", "最高", "最高价"),
    "low": ("low", "最低", "最低价"),
    "close": ("close", "收盘", "收盘价"),
    "volume": ("volume", "vol", "成交量"),
    "amount": ("amount", "成交额"),
}
# adjusted closes are a different series from the traded one: never taken for the close
ADJUSTED_CLOSE = ("adj_close", "adjclose", "adjusted_close")
_UNNAMED = re.compile(r"(unnamed:_?\d+(_level_\d+)?|index|)")
CSV_SEPARATORS = (",", ";", "\t", "|")

# numeric time columns: (smallest, largest) value of the whole column → how to read it. The ranges do not overlap:
# 8-digit dates (1900-2199) and epoch counts from 1973 to 2286 in seconds, milliseconds, microseconds or nanoseconds
NUMERIC_TIMESTAMPS = (
    ((19_000_101, 21_991_231), {"format": "%Y%m%d"}, "YYYYMMDD dates"),
    ((1e8, 1e10), {"unit": "s"}, "seconds since 1970"),
    ((1e11, 1e13), {"unit": "ms"}, "milliseconds since 1970"),
    ((1e14, 1e16), {"unit": "us"}, "microseconds since 1970"),
    ((1e17, 1e19), {"unit": "ns"}, "nanoseconds since 1970"),
)


class KlineReadError(ValueError):
    """A K-line source that cannot be read unambiguously; the message is one line naming the source and the fix."""


class KlineReadWarning(UserWarning):
    """Something the reader did that the user should know about (rows reordered, a column ignored)."""


def _fail(where, message):
    raise KlineReadError(one_line(f"{where}: {message}" if where else message))


def _note(where, message):
    warnings.warn(one_line(f"{where}: {message}" if where else message), KlineReadWarning, stacklevel=3)


def _normalise(name):
    return re.sub(r"[\s\-.]+", "_", str(name).strip().lower())


# --------------------------------------------------------------------------------------------------------------------
# timestamps
# --------------------------------------------------------------------------------------------------------------------


def _parse_numeric_timestamps(values):
    """A numeric column read as YYYYMMDD dates or epoch counts (chosen from its range), or `None`."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    finite = numbers[np.isfinite(numbers)]
    if not len(finite) or not (finite == np.round(finite)).all():
        return None
    low, high = finite.min(), finite.max()
    for (first, last), kwargs, _ in NUMERIC_TIMESTAMPS:
        if first <= low and high < last:
            if "format" in kwargs:
                text = pd.Series([f"{v:.0f}" if np.isfinite(v) else None for v in numbers], index=values.index)
                return pd.to_datetime(text, errors="coerce", **kwargs)
            return pd.to_datetime(pd.Series(numbers, index=values.index), errors="coerce", **kwargs)
    return None


def _parse_text_timestamps(values):
    """
    Datetimes of a text column, `NaT` where unparsable, or `None` when the column mixes UTC offsets. pandas guesses
    one format from the first value and reads `02/09/2024` month first; when that leaves values unparsed, day-first
    and per-value parsing are tried too and the reading that parses the most values wins.
    """
    best, mixed = None, False
    for kwargs in ({}, {"dayfirst": True}, {"format": "mixed"}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "could not infer format" and friends: the result is checked below
            try:
                stamps = pd.to_datetime(values, errors="coerce", **kwargs)
            except (TypeError, ValueError, OverflowError):
                mixed = True  # pandas refuses a column that mixes UTC offsets
                continue
        if not pd.api.types.is_datetime64_any_dtype(stamps):
            mixed = True
            continue
        if best is None or stamps.isna().sum() < best.isna().sum():
            best = stamps
        if not best.isna().any():
            break
    if best is None and mixed:
        return None
    return best


def parse_timestamps(values: pd.Series, where: str = "") -> pd.Series:
    """
    Naive datetimes of a column of timestamps, in the wall-clock time they are written in (a UTC offset or zone is
    dropped after parsing, not converted away).

    Args:
        values (`pd.Series`): datetimes, text in any format pandas reads, YYYYMMDD numbers or epoch counts.
        where (`str`): What to name in error messages (the file).

    Returns:
        `pd.Series` of dtype datetime64, same index as `values`.

    Raises:
        [`KlineReadError`] naming the first unparsable value and its data row (1-based).
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values
    elif pd.api.types.is_bool_dtype(values):
        _fail(where, f"the time column {values.name!r} holds booleans, not timestamps")
    elif pd.api.types.is_numeric_dtype(values):
        stamps = _parse_numeric_timestamps(values)
        if stamps is None:
            described = ", ".join(what for _, _, what in NUMERIC_TIMESTAMPS)
            _fail(where, f"the time column {values.name!r} holds numbers that are none of {described}; write the "
                         "timestamps as dates (e.g. 2024-01-02 09:30)")
    else:
        stamps = _parse_text_timestamps(values.astype("string") if values.dtype == object else values)
        if stamps is None:
            _fail(where, "the timestamps mix UTC offsets (e.g. across a daylight-saving change); write them all in one "
                         "zone, or as local times without an offset")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        _fail(where, f"unparsable timestamp {values.iloc[row]!r} in data row {row + 1}"
                     + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_localize(None)
    return stamps.astype("datetime64[ns]")


def _parses_as_dates(values):
    """Whether every value of a column reads as a timestamp (an unnamed first column is then the time column)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return True
    if len(values) == 0 or values.isna().any() or pd.api.types.is_bool_dtype(values):
        return False
    if pd.api.types.is_numeric_dtype(values):
        return False  # an unnamed column of numbers is a row number, never taken for dates without being named
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = values.astype("string")
            stamps = _parse_text_timestamps(text)
            if stamps is None:  # dates with mixed UTC offsets: still the time column, which parse_timestamps refuses
                stamps = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    except Exception:  # noqa: BLE001 - any failure means "not dates"
        return False
    return not stamps.isna().any()


# --------------------------------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------------------------------


def _decode(raw, where):
    for encoding in ("utf-8-sig", "gb18030"):  # Excel's BOM, and the Chinese code page akshare users meet
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    _fail(where, "is neither UTF-8 nor GB18030 text; save it as UTF-8 CSV")


def _separator(header_line):
    """The separator of a CSV: the candidate that splits its header line most often (a comma on a tie)."""
    counts = {sep: header_line.count(sep) for sep in CSV_SEPARATORS}
    best = max(CSV_SEPARATORS, key=lambda sep: counts[sep])
    return best if counts[best] > counts[","] else ","


def _yfinance_header(lines, sep):
    """
    `(skip, time_name)` for yfinance's three-row header (`Price,Close,...` / `Ticker,AAPL,...` / `Date,,,...`), or
    `None`. Its first column has no name in the first row; the third row names it.
    """
    if len(lines) < 3:
        return None
    rows = list(csv.reader(lines[:3], delimiter=sep))
    if len(rows) < 3 or not rows[1] or not rows[2]:
        return None
    if _normalise(rows[1][0]) != "ticker" or any(cell.strip() for cell in rows[2][1:]):
        return None
    tickers = {cell.strip() for cell in rows[1][1:] if cell.strip()}
    if len(tickers) > 1:
        return "several", sorted(tickers)
    return rows[2][0].strip() or TIMESTAMP_COLUMN, tickers


def _check_unique(names, where):
    """Fail when a column name appears more than once."""
    names = pd.Index(names)
    if names.duplicated().any():
        repeated = sorted({str(c) for c in names[names.duplicated()]})
        _fail(where, f"column(s) {', '.join(repeated)} appear more than once")


def _read_csv(path, where):
    raw = Path(path).read_bytes()
    text = _decode(raw, where)
    if not text.strip():
        _fail(where, "the file is empty")
    lines = text.splitlines()
    sep = _separator(lines[0])
    yfinance = _yfinance_header(lines, sep)
    if yfinance is not None and yfinance[0] == "several":
        _fail(where, f"yfinance file with several tickers ({', '.join(yfinance[1])}); download one ticker per file, "
                     "or stack them into a long table with an id column")
    # pandas renames a repeated name (`close, close` → `close, close.1`), which would hide it
    _check_unique([name for name in next(csv.reader(lines[:1], delimiter=sep), []) if name.strip()], where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas' DtypeWarning on mixed columns: the values are checked later
            if yfinance is not None:
                frame = pd.read_csv(io.StringIO(text), sep=sep, header=0, skiprows=[1, 2])
                frame = frame.rename(columns={frame.columns[0]: yfinance[0]})
            else:
                frame = pd.read_csv(io.StringIO(text), sep=sep)
    except pd.errors.EmptyDataError:
        _fail(where, "the file is empty")
    except (pd.errors.ParserError, ValueError, csv.Error) as err:
        _fail(where, f"not a readable CSV file ({one_line(err)})")
    return frame


def _read_file(path, where):
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, where)
    if suffix in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds (ArrowInvalid, OSError, ...)
            _fail(where, f"not a readable Parquet file ({one_line(err)})")
    _fail(where, f"cannot read {suffix or 'files without an extension'}: expected .csv, .parquet or .pq")


# --------------------------------------------------------------------------------------------------------------------
# columns
# --------------------------------------------------------------------------------------------------------------------


def _find_column(frame, name, what, where):
    """The column of `frame` called `name`: exactly, else the only one equal to it once normalised."""
    if name in frame.columns:
        return name
    matches = [c for c in frame.columns if _normalise(c) == _normalise(name)]
    if len(matches) == 1:
        return matches[0]
    named = f"{what}{name!r}" if what.endswith("=") else f"{what} {name!r}"
    if matches:
        _fail(where, f"{named} matches several columns ({', '.join(map(str, matches))})")
    _fail(where, f"{named} is not a column; the columns are {', '.join(map(str, frame.columns))}")


def _with_index_as_column(frame):
    """A frame whose index holds data (a DatetimeIndex, a named index) with it as its first column."""
    index = frame.index
    if isinstance(index, pd.MultiIndex) or isinstance(index, pd.DatetimeIndex) or index.name is not None:
        frame = frame.reset_index()
    return frame


def _timestamp_column(frame, requested, where):
    if requested is not None:
        return _find_column(frame, requested, "--timestamp-column", where)
    named = [c for c in frame.columns if _normalise(c) in TIMESTAMP_ALIASES]
    unnamed = []
    if len(frame.columns) and _UNNAMED.fullmatch(_normalise(frame.columns[0])) and _parses_as_dates(frame.iloc[:, 0]):
        unnamed = [frame.columns[0]]
    candidates = named + [c for c in unnamed if c not in named]
    if not candidates:
        typed = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
        if len(typed) == 1:
            return typed[0]
        candidates = typed
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        _fail(where, "no timestamp column (looked for timestamps, timestamp, date, datetime, time, trade_date, 日期, an "
                     f"unnamed first column of dates, a DatetimeIndex); the columns are "
                     f"{', '.join(map(str, frame.columns))}; pass --timestamp-column NAME")
    _fail(where, f"several columns could be the timestamps ({', '.join(map(repr, candidates))}); pass "
                 "--timestamp-column NAME")


def _field_columns(frame, overrides, taken, where):
    """`{field: column}` for the OHLCV fields: the overrides, then one alias each; ambiguity raises."""
    mapping = {}
    for field, column in overrides.items():
        mapping[field] = _find_column(frame, column, f"--columns {field}=", where)
    used = set(mapping.values()) | set(taken)
    for field in FIELDS:
        if field in mapping:
            continue
        matches = [c for c in frame.columns if c not in used and _normalise(c) in FIELD_ALIASES[field]]
        if len(matches) > 1:
            _fail(where, f"several columns could be {field!r} ({', '.join(map(repr, matches))}); pass --columns "
                         f"{field}=NAME")
        if matches:
            mapping[field] = matches[0]
    missing = [f for f in PRICE_FIELDS if f not in mapping]
    if missing:
        _fail(where, f"missing column(s) {', '.join(missing)}; expected open, high, low, close[, volume, amount] (any "
                     f"case, or vol, 开盘, 收盘, 最高, 最低, 成交量, 成交额); the columns are "
                     f"{', '.join(map(str, frame.columns))}; pass --columns field=NAME")
    adjusted = [c for c in frame.columns if _normalise(c) in ADJUSTED_CLOSE and c not in mapping.values()]
    if adjusted:
        _note(where, f"column {adjusted[0]!r} is ignored; the close is {mapping['close']!r} (the traded price; pass "
                     f"--columns close={adjusted[0]!r} to forecast the adjusted one)")
    return mapping


def _numbers(values, field, where):
    """A column as float64: numbers stay, empty cells become NaN (a broken series), text raises."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_complex_dtype(values):
        _fail(where, f"column {values.name!r} ({field}) holds {values.dtype} values, not prices")
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(np.float64)
    text = values.astype("string").str.strip()
    # no thousands separators or decimal commas are guessed at: "1,5" is refused, not read as 15 or 1.5
    numbers = pd.to_numeric(text.where(text != "", None), errors="coerce")
    bad = np.flatnonzero(numbers.isna().to_numpy() & text.notna().to_numpy() & (text != "").fillna(False).to_numpy())
    bad = [i for i in bad if _normalise(text.iloc[i]) not in ("nan", "null", "none", "na", "n/a", "-")]
    if bad:
        row = int(bad[0])
        named = repr(values.name) + ("" if _normalise(values.name) == field else f" ({field})")
        _fail(where, f"column {named} is not a number ({text.iloc[row]!r}) in data row {row + 1}"
                     + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
    return numbers.astype(np.float64)


def _order(frame, id_column, where):
    """Sorted oldest first within each series (stable, series in order of first appearance), with a note if moved."""
    stamps = frame[TIMESTAMP_COLUMN]
    if id_column is None:
        ordered = stamps.is_monotonic_increasing
        newest_first = not ordered and stamps.is_monotonic_decreasing
        codes = np.zeros(len(frame), dtype=np.int64)
    else:
        codes = pd.factorize(frame[id_column])[0]
        keys = pd.DataFrame({"c": codes, "t": stamps})
        step_back = (keys["c"].diff().fillna(0) == 0) & (keys["t"].diff() < pd.Timedelta(0))
        ordered = not step_back.any() and pd.Series(codes).is_monotonic_increasing
        newest_first = False
        if step_back.any():
            _note(where, "the rows of some series are not oldest first; each series is sorted by time")
    if ordered:
        return frame.reset_index(drop=True)
    if newest_first:
        _note(where, "the rows are newest first; they are read oldest first")
    elif id_column is None:
        _note(where, "the rows are not in time order; they are sorted by time")
    order = np.lexsort((stamps.to_numpy(), codes))
    return frame.iloc[order].reset_index(drop=True)


def _klines_of(frame, id_column, timestamp_column, overrides, where):
    """The standard layout of one table (see [`read_klines`])."""
    frame = _with_index_as_column(frame)
    frame.columns = [str(c) for c in frame.columns]
    _check_unique(frame.columns, where)
    id_name = None
    if id_column is not None:
        id_name = _find_column(frame, id_column, "--id-column", where)
    time_name = _timestamp_column(frame, timestamp_column, where)
    taken = [time_name] + ([id_name] if id_name else [])
    if any(c in taken for c in overrides.values()):
        _fail(where, "--columns names the timestamp or id column as a price")
    mapping = _field_columns(frame, overrides, taken, where)
    if len(frame) == 0:
        _fail(where, "the file has a header but no rows")
    out = {}
    if id_name is not None:
        ids = frame[id_name]
        if ids.isna().any():
            _fail(where, f"the id column {id_name!r} is empty in data row {int(np.flatnonzero(ids.isna())[0]) + 1}")
        out[id_column] = ids.to_numpy()
    out[TIMESTAMP_COLUMN] = parse_timestamps(frame[time_name], where).to_numpy()
    for field in FIELDS:
        if field in mapping:
            out[field] = _numbers(frame[mapping[field]], field, where).to_numpy()
    return _order(pd.DataFrame(out), id_column, where)


def _overrides(columns):
    if columns is None:
        return {}
    if not isinstance(columns, Mapping):
        raise TypeError(f"`columns` must map fields to column names, e.g. {{'close': 'Last'}}, got "
                        f"{type(columns).__name__}")
    unknown = [f for f in columns if f not in FIELDS]
    if unknown:
        _fail("", f"--columns: unknown field(s) {', '.join(map(str, unknown))}; the fields are {', '.join(FIELDS)}")
    if len(set(columns.values())) != len(columns):
        _fail("", "--columns maps two fields to the same column")
    return dict(columns)


def kline_files(folder) -> list:
    """The `.csv`, `.parquet` and `.pq` files of a folder of per-series files, sorted; their stems are the ids."""
    files = sorted(p for p in Path(folder).iterdir()
                   if p.is_file() and p.suffix.lower() in FILE_SUFFIXES and not p.name.startswith("."))
    if not files:
        _fail(str(folder), "the folder holds no .csv, .parquet or .pq file")
    _check_stems(files, str(folder))
    return files


def _check_stems(files, where):
    """Fail when two files share a name without its extension: their series would have one id."""
    stems = pd.Series([p.stem for p in files])
    if stems.duplicated().any():
        stem = stems[stems.duplicated()].iloc[0]
        named = [str(files[i]) for i in np.flatnonzero((stems == stem).to_numpy())[:2]]
        _fail(where, f"two files are named {stem!r} ({', '.join(named)}; one id per file name)")


def read_klines(
    source: "str | os.PathLike | list | tuple | pd.DataFrame",
    *,
    id_column: str | None = None,
    timestamp_column: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """
    Read K-lines from a file, a folder of files or a DataFrame into the standard layout.

    Args:
        source (`str`, `os.PathLike`, `list` of them, or `pd.DataFrame`): A `.csv`, `.parquet` or `.pq` file, a
            folder of them (one series per file, its id the file name without the extension), a list of such files
            (read as a folder holding only them), or a frame (its DatetimeIndex, if any, counts as a column).
        id_column (`str`, *optional*): The column naming each row's series, for long tables of many series. Kept under
            this name. For a folder, the column to hold the file names (default `series_id`); a file that has the
            column keeps its own values.
        timestamp_column (`str`, *optional*): The time column, instead of guessing it.
        columns (`Mapping[str, str]`, *optional*): Fields to take from given columns, e.g. `{"close": "Last"}`; the
            other fields are still recognised by name.

    Returns:
        `pd.DataFrame` with a `RangeIndex` and columns `[id_column,] timestamps, open, high, low, close[, volume]
        [, amount]`: naive datetime64 timestamps in the file's own wall-clock time, float64 prices (NaN where a cell
        is empty), sorted oldest first within each series.

    Raises:
        [`KlineReadError`] (a `ValueError`) with one line: missing or unreadable source, no or several candidate
        columns, unparsable timestamps, text in a price column. [`KlineReadWarning`]s say what was reordered or
        ignored.
    """
    overrides = _overrides(columns)
    if isinstance(source, pd.DataFrame):
        return _klines_of(source.copy(), id_column, timestamp_column, overrides, "")
    if isinstance(source, (list, tuple)) and all(isinstance(s, (str, os.PathLike)) for s in source):
        if not source:
            _fail("", "`source` is an empty list of files")
        files = [Path(s).expanduser() for s in source]
        _check_stems(files, "")
        return _read_files(files, id_column, timestamp_column, overrides)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"`source` must be a path, a list of paths or a pandas DataFrame, got {type(source).__name__}")
    path = Path(source).expanduser()
    if not path.exists():
        _fail(str(source), "no such file or directory")
    if not path.is_dir():
        return _klines_of(_read_file(path, str(source)), id_column, timestamp_column, overrides, str(source))
    return _read_files(kline_files(path), id_column, timestamp_column, overrides)


def _read_files(files, id_column, timestamp_column, overrides):
    """Per-series files, each one series named by its file's stem (or by its own id column)."""
    name = id_column or DEFAULT_ID_COLUMN
    parts = []
    for file in files:
        if not file.is_file():
            _fail(str(file), "is a folder, not a file" if file.is_dir() else "no such file")
        frame = _read_file(file, str(file))
        has_ids = any(_normalise(c) == _normalise(name) for c in map(str, frame.columns))
        klines = _klines_of(frame, name if has_ids else None, timestamp_column, overrides, str(file))
        if not has_ids:
            klines.insert(0, name, file.stem)
        parts.append(klines)
    return pd.concat(parts, ignore_index=True, sort=False)[_layout(parts, name)]


def _layout(parts, id_name):
    present = set().union(*(p.columns for p in parts))
    return [id_name, TIMESTAMP_COLUMN, *(f for f in FIELDS if f in present)]


# --------------------------------------------------------------------------------------------------------------------
# one series
# --------------------------------------------------------------------------------------------------------------------


def check_series(frame: pd.DataFrame, min_length: int = 1) -> tuple[pd.DataFrame, pd.Series]:
    """
    Check one series of the standard layout before it is forecast.

    Args:
        frame (`pd.DataFrame`): One series as [`read_klines`] returns it (oldest first).
        min_length (`int`): The fewest candles accepted.

    Returns:
        `(values, timestamps)`: the fields the series has (a `volume` or `amount` column that is empty throughout
        is dropped) as a float64 frame with a `RangeIndex`, and its timestamps as a `pd.Series`.

    Raises:
        [`KlineReadError`] with a one-line reason: too short, repeated or decreasing timestamps, a missing or non-finite
        value (with its candle's timestamp), a high below the open or close or a low above them.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"`frame` must be a pandas DataFrame as read_klines returns it, got {type(frame).__name__}")
    missing = [c for c in (TIMESTAMP_COLUMN, *PRICE_FIELDS) if c not in frame.columns]
    if missing:
        _fail("", f"the frame lacks the column(s) {', '.join(missing)} of read_klines' layout; read it with read_klines")
    stamps = frame[TIMESTAMP_COLUMN].reset_index(drop=True)
    values = frame[[f for f in FIELDS if f in frame.columns]].reset_index(drop=True).astype(np.float64)
    for field in OPTIONAL_FIELDS:
        if field in values.columns and values[field].isna().all():
            values = values.drop(columns=field)
    steps = stamps.diff().iloc[1:]
    if (steps <= pd.Timedelta(0)).any():
        row = int(np.flatnonzero((steps <= pd.Timedelta(0)).to_numpy())[0]) + 1
        _fail("", f"timestamps must be strictly increasing; {stamps.iloc[row]} (candle {row + 1}) is repeated"
                  if stamps.iloc[row] == stamps.iloc[row - 1] else
                  f"timestamps must be strictly increasing; candle {row + 1} ({stamps.iloc[row]}) comes before the one "
                  "before it")
    finite = np.isfinite(values.to_numpy())
    if not finite.all():
        rows, cols = np.nonzero(~finite)
        cell = values.iat[rows[0], cols[0]]
        what = "missing" if np.isnan(cell) else f"not finite ({cell})"
        _fail("", f"column {values.columns[cols[0]]!r} is {what} at {stamps.iloc[rows[0]]} (candle {rows[0] + 1})"
                  + (f" (and {len(rows) - 1} more)" if len(rows) > 1 else ""))
    inconsistent = ((values["high"] < values[["open", "close"]].max(axis=1))
                    | (values["low"] > values[["open", "close"]].min(axis=1)))
    if inconsistent.any():
        rows = np.flatnonzero(inconsistent.to_numpy())
        _fail("", f"the candle at {stamps.iloc[rows[0]]} (candle {rows[0] + 1}) has a high below its open or close, or "
                  "a low above them" + (f" (and {len(rows) - 1} more)" if len(rows) > 1 else "")
                  + "; are the columns in the right order?")
    if len(values) < min_length:
        _fail("", f"the history has {len(values)} candles; at least {min_length} are needed")
    return values, stamps


__all__ = ["KlineReadError", "KlineReadWarning", "check_series", "kline_files", "parse_timestamps", "read_klines"]
