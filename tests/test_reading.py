"""`read_klines`: the file shapes users have (built from real candles that registry packages ship), ambiguity as a
one-line error, and a fuzz test that every failure is that error."""

import gzip
import io
import string
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transformers_kronos.reading import KlineReadError, KlineReadWarning, check_series, read_klines

FIELDS = ["open", "high", "low", "close", "volume"]


# --------------------------------------------------------------------------------------------------------------------
# real candles: arch's S&P 500 and NASDAQ (daily), backtesting's GOOG (daily) and EURUSD (hourly)
# --------------------------------------------------------------------------------------------------------------------


def arch_csv_text(name):
    """The CSV that `arch` ships, as it ships it: `Date` as m/d/Y, capitalised columns, `Adj Close`."""
    import importlib

    module = importlib.import_module(f"arch.data.{name}")
    return gzip.open(Path(module.__file__).parent / f"{name}.csv.gz", "rt").read()


def goog():
    from backtesting.test import GOOG

    return GOOG.copy()


def eurusd():
    from backtesting.test import EURUSD

    return EURUSD.copy()


def expected(frame):
    """The standard layout of a frame indexed by time with capitalised OHLCV columns."""
    return pd.DataFrame({
        "timestamps": pd.DatetimeIndex(frame.index).tz_localize(None).astype("datetime64[ns]"),
        **{f: frame[f.capitalize()].to_numpy(dtype=float) for f in FIELDS},
    })


def read_quietly(source, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = read_klines(source, **kwargs)
    return frame, [str(w.message) for w in caught if issubclass(w.category, KlineReadWarning)]


# Each shape: a function writing the file under `folder` and returning `(path, expected frame, notes expected)`.


def pandas_index_shape(folder):
    """backtesting's own GOOG.csv: pandas' `to_csv` of a frame indexed by date (an unnamed first column)."""
    from backtesting import test

    return Path(test.__file__).parent / "GOOG.csv", expected(goog()), []


def pandas_range_index_shape(folder):
    """`df.to_csv(path)` of a frame with a RangeIndex: an unnamed first column of row numbers."""
    data = eurusd()
    path = folder / "range_index.csv"
    data.rename_axis("timestamps").reset_index().to_csv(path)
    return path, expected(data), []


def arch_shape(folder):
    path = folder / "sp500.csv"
    path.write_text(arch_csv_text("sp500"))
    from arch.data import sp500

    return path, expected(sp500.load()), ["'Adj Close' is ignored"]


def yfinance_shape(folder):
    """yfinance >= 0.2.51 `download(...).to_csv()`: a (Price, Ticker) column MultiIndex gives three header rows."""
    data = goog()[["Close", "High", "Low", "Open", "Volume"]]
    data.columns = pd.MultiIndex.from_product([data.columns, ["GOOG"]], names=["Price", "Ticker"])
    data.index.name = "Date"
    path = folder / "GOOG_yfinance.csv"
    data.to_csv(path)
    assert path.read_text().splitlines()[:3] == ["Price,Close,High,Low,Open,Volume", "Ticker,GOOG,GOOG,GOOG,GOOG,GOOG",
                                                 "Date,,,,,"]
    return path, expected(goog()), []


def tushare_shape(folder):
    """tushare `pro.daily()`: ts_code, trade_date as YYYYMMDD numbers, `vol` and `amount`, newest first."""
    data = goog()
    table = pd.DataFrame({
        "ts_code": "000001.SZ",
        "trade_date": data.index.strftime("%Y%m%d").astype(int),
        "open": data["Open"], "high": data["High"], "low": data["Low"], "close": data["Close"],
        "pre_close": data["Close"].shift(1), "change": data["Close"].diff(), "pct_chg": data["Close"].pct_change() * 100,
        "vol": data["Volume"] / 100, "amount": data["Volume"] * data["Close"] / 1000,
    }).iloc[::-1]
    path = folder / "000001.SZ.csv"
    table.to_csv(path, index=False)
    want = expected(data).assign(volume=(data["Volume"] / 100).to_numpy(),
                                 amount=(data["Volume"] * data["Close"] / 1000).to_numpy())
    return path, want, ["newest first"]


def akshare_shape(folder):
    """akshare `stock_zh_a_hist()`: Chinese headers, dates as text, code and ratio columns besides, UTF-8 with BOM."""
    from arch.data import nasdaq

    data = nasdaq.load()
    table = pd.DataFrame({
        "日期": data.index.strftime("%Y-%m-%d"), "股票代码": "000001",
        "开盘": data["Open"], "收盘": data["Close"], "最高": data["High"], "最低": data["Low"],
        "成交量": data["Volume"], "成交额": data["Volume"] * data["Close"],
        "振幅": (data["High"] - data["Low"]) / data["Close"] * 100, "涨跌幅": data["Close"].pct_change() * 100,
        "涨跌额": data["Close"].diff(), "换手率": 1.0,
    })
    path = folder / "000001.csv"
    table.to_csv(path, index=False, encoding="utf-8-sig")
    want = expected(data).assign(amount=(data["Volume"] * data["Close"]).to_numpy())
    return path, want, []


def ccxt_shape(folder):
    """ccxt's `fetch_ohlcv` as users save it: a UTC-aware `Timestamp` column, capitalised columns."""
    data = eurusd()
    millis = (data.index - pd.Timestamp("1970-01-01")) // pd.Timedelta("1ms")
    table = pd.DataFrame({"Timestamp": pd.to_datetime(millis, unit="ms", utc=True), "Open": data["Open"].to_numpy(),
                          "High": data["High"].to_numpy(), "Low": data["Low"].to_numpy(),
                          "Close": data["Close"].to_numpy(), "Volume": data["Volume"].to_numpy()})
    path = folder / "EURUSD_ccxt.csv"
    table.to_csv(path, index=False)
    assert "+00:00" in path.read_text().splitlines()[1]
    return path, expected(data), []


def epoch_shape(folder):
    """ccxt's raw `fetch_ohlcv` rows: epoch milliseconds."""
    data = eurusd()
    millis = (data.index - pd.Timestamp("1970-01-01")) // pd.Timedelta("1ms")
    table = pd.DataFrame([[m, *row] for m, row in zip(millis, data[["Open", "High", "Low", "Close", "Volume"]].to_numpy())],
                         columns=["timestamp", "open", "high", "low", "close", "volume"]).astype({"timestamp": "int64"})
    path = folder / "EURUSD_epoch.csv"
    table.to_csv(path, index=False)
    return path, expected(data), []


def parquet_shape(folder):
    """A Parquet written from a frame indexed by date (arch's `load()`)."""
    from arch.data import sp500

    data = sp500.load()
    path = folder / "sp500.parquet"
    data.to_parquet(path)
    return path, expected(data), ["'Adj Close' is ignored"]


SHAPES = {f.__name__.removesuffix("_shape"): f for f in (
    pandas_index_shape, pandas_range_index_shape, arch_shape, yfinance_shape, tushare_shape, akshare_shape, ccxt_shape,
    epoch_shape, parquet_shape)}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_real_file_shapes(shape, tmp_path):
    path, want, notes = SHAPES[shape](tmp_path)
    frame, said = read_quietly(path)
    pd.testing.assert_frame_equal(frame, want, check_exact=False, rtol=1e-12)
    assert frame["timestamps"].is_monotonic_increasing
    for note in notes:
        assert any(note in message for message in said), (note, said)
    assert len(said) == len(notes), said
    assert all("\n" not in message for message in said)
    values, stamps = check_series(frame, min_length=16)  # every one is a clean series
    assert len(values) == len(frame)


def test_dataframe_with_datetime_index_and_overrides():
    data = goog()
    frame = read_klines(data)
    pd.testing.assert_frame_equal(frame, expected(data))
    renamed = data.rename(columns={"Close": "Last", "Volume": "Qty"})
    frame = read_klines(renamed, columns={"close": "Last", "volume": "Qty"})
    pd.testing.assert_frame_equal(frame, expected(data))
    # without the override, `Last` is not a close
    with pytest.raises(KlineReadError, match="missing column.s. close"):
        read_klines(renamed)


def test_long_table_and_folder(tmp_path):
    a, b = goog().iloc[:50], eurusd().iloc[:30]
    long = pd.concat([expected(a).assign(ticker="GOOG"), expected(b).assign(ticker="EURUSD")]).iloc[::-1]
    frame, said = read_quietly(long, id_column="ticker")
    assert list(frame.columns) == ["ticker", "timestamps", *FIELDS]
    assert list(frame["ticker"].unique()) == ["EURUSD", "GOOG"]  # order of first appearance
    pd.testing.assert_frame_equal(frame[frame.ticker == "GOOG"].drop(columns="ticker").reset_index(drop=True),
                                  expected(a))
    assert any("not oldest first" in m for m in said)

    folder = tmp_path / "universe"
    folder.mkdir()
    a.to_csv(folder / "GOOG.csv")
    b.to_parquet(folder / "EURUSD.parquet")
    (folder / "notes.txt").write_text("not data")
    frame = read_klines(folder)
    assert list(frame.columns) == ["series_id", "timestamps", *FIELDS]
    assert frame.groupby("series_id").size().to_dict() == {"EURUSD": 30, "GOOG": 50}
    assert list(read_klines(folder, id_column="symbol").columns)[0] == "symbol"



def test_a_list_of_files_names_each_series_once(tmp_path):
    """A list of files is read as a folder holding only them: two files of one name would be one series, their
    candles interleaved, so they are refused as in a folder; a folder or nothing in the list is named as such."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    goog().iloc[:40].to_csv(tmp_path / "a" / "GOOG.csv")
    goog().iloc[40:80].to_csv(tmp_path / "b" / "GOOG.csv")
    eurusd().iloc[:30].to_parquet(tmp_path / "b" / "EURUSD.parquet")
    frame = read_klines([tmp_path / "a" / "GOOG.csv", tmp_path / "b" / "EURUSD.parquet"])
    assert frame.groupby("series_id").size().to_dict() == {"EURUSD": 30, "GOOG": 40}
    with pytest.raises(KlineReadError, match="two files are named 'GOOG'"):
        read_klines([tmp_path / "a" / "GOOG.csv", tmp_path / "b" / "GOOG.csv"])
    with pytest.raises(KlineReadError, match="is a folder, not a file"):
        read_klines([tmp_path / "a"])
    with pytest.raises(KlineReadError, match="empty list of files"):
        read_klines([])

AMBIGUOUS = {
    "two time columns": ("date,time,open,high,low,close\n2024-01-02,09:30,1,2,0.5,1\n",
                         "several columns could be the timestamps ('date', 'time'); pass --timestamp-column"),
    "unnamed dates and a date column": (",date,open,high,low,close\n2024-01-02,2024-01-02,1,2,0.5,1\n",
                                        "several columns could be the timestamps"),
    "two closes": ("date,open,high,low,close,收盘\n2024-01-02,1,2,0.5,1,1\n",
                   "several columns could be 'close' ('close', '收盘'); pass --columns close=NAME"),
    "two volumes": ("date,open,high,low,close,vol,Volume\n2024-01-02,1,2,0.5,1,3,3\n", "several columns could be 'volume'"),
    "no time": ("when,open,high,low,close\n2024-01-02,1,2,0.5,1\n", "no timestamp column"),
    "no close": ("date,open,high,low,Adj Close\n2024-01-02,1,2,0.5,1\n", "missing column(s) close"),
    "yfinance several tickers": ("Price,Close,Close\nTicker,AAPL,MSFT\nDate,,\n2024-01-02,1,2\n", "several tickers"),
    # pandas reads a repeated name as `close, close.1`; the second would have been ignored without a word
    "repeated name": ("date,open,high,low,close,close\n2024-01-02,1,2,0.5,1,9\n", "column(s) close appear more than once"),
    "repeated name, other separator": ("date;close;open;high;low;close\n2024-01-02;1;1;2;0.5;9\n",
                                       "column(s) close appear more than once"),
    "text price": ("date,open,high,low,close\n2024-01-02,1,2,0.5,1\n2024-01-03,1,2,zero,1\n",
                   "column 'low' is not a number ('zero') in data row 2"),
    "decimal comma": ("date;open;high;low;close\n2024-01-02;1,5;2;0,5;1\n", "column 'open' is not a number ('1,5')"),
    "empty": ("", "the file is empty"),
    "header only": ("date,open,high,low,close\n", "no rows"),
    "bad date": ("date,open,high,low,close\n2024-01-02,1,2,0.5,1\nlater,1,2,0.5,1\n",
                 "unparsable timestamp 'later' in data row 2"),
}


@pytest.mark.parametrize("case", sorted(AMBIGUOUS))
def test_ambiguity_and_bad_files_are_one_line(case, tmp_path):
    text, message = AMBIGUOUS[case]
    path = tmp_path / "in.csv"
    path.write_text(text)
    with pytest.raises(KlineReadError) as info:
        read_klines(path)
    assert isinstance(info.value, ValueError)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(str(path)) and str(info.value).count(str(path)) == 1, str(info.value)


def test_overrides_resolve_ambiguity(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("date,time,open,high,low,close,收盘\n2024-01-02,09:30,1,2,0.5,1,9\n")
    frame = read_klines(path, timestamp_column="DATE", columns={"close": "收盘"})
    assert frame["close"].tolist() == [9.0] and frame["timestamps"].tolist() == [pd.Timestamp("2024-01-02")]
    with pytest.raises(KlineReadError, match="unknown field.s. price"):
        read_klines(path, columns={"price": "close"})
    with pytest.raises(KlineReadError, match="--timestamp-column 'stamp' is not a column"):
        read_klines(path, timestamp_column="stamp")
    with pytest.raises(KlineReadError, match="--columns close='Last' is not a column"):
        read_klines(path, timestamp_column="date", columns={"close": "Last"})
    with pytest.raises(KlineReadError, match="no such file"):
        read_klines(tmp_path / "missing.csv")
    with pytest.raises(TypeError):
        read_klines(42)


def test_separators_and_tz_offsets(tmp_path):
    data = expected(eurusd().iloc[:20])
    for sep in (",", ";", "\t", "|"):
        path = tmp_path / "in.csv"
        data.to_csv(path, sep=sep, index=False)
        pd.testing.assert_frame_equal(read_klines(path), data)
    # a zone other than UTC: the wall-clock time written in the file is kept
    shifted = data.assign(timestamps=data["timestamps"].dt.tz_localize("Asia/Shanghai").astype(str))
    shifted.to_csv(tmp_path / "cn.csv", index=False)
    pd.testing.assert_frame_equal(read_klines(tmp_path / "cn.csv"), data)



def test_mixed_utc_offsets_in_an_unnamed_index_are_named_as_such(tmp_path):
    """pandas' `to_csv` of a frame indexed in New York time writes -05:00 and -04:00 across a daylight-saving change;
    the unnamed first column is still the time column, refused for its offsets rather than reported missing."""
    frame = goog().loc["2012-10-01":"2012-11-30"]
    frame.index = frame.index.tz_localize("America/New_York")
    frame.to_csv(tmp_path / "ny.csv")
    with pytest.raises(KlineReadError, match="the timestamps mix UTC offsets"):
        read_klines(tmp_path / "ny.csv")
    # one offset throughout (October only): read as the wall-clock time written
    frame.loc[:"2012-10-31"].to_csv(tmp_path / "october.csv")
    pd.testing.assert_frame_equal(read_klines(tmp_path / "october.csv"), expected(frame.loc[:"2012-10-31"]))

def test_check_series_reasons():
    data = expected(goog().iloc[:40])
    assert check_series(data, 16)[0].shape == (40, 5)
    cases = {
        "the history has 40 candles; at least 50 are needed": (data, 50),
        "is repeated": (pd.concat([data.iloc[:10], data.iloc[9:]]).reset_index(drop=True), 1),
        "column 'close' is missing at": (data.assign(close=data["close"].where(data.index != 7)), 1),
        "has a high below its open or close": (data.assign(high=data["low"]), 1),
    }
    for message, (frame, minimum) in cases.items():
        with pytest.raises(KlineReadError, match=message.replace("(", r"\(")):
            check_series(frame, minimum)
    # an optional column that is empty throughout (a folder where only some files have it) is dropped
    values, _ = check_series(data.assign(amount=np.nan), 1)
    assert "amount" not in values.columns
    # a frame in another layout is named as such (it was a KeyError)
    with pytest.raises(KlineReadError, match="lacks the column\\(s\\) timestamps, close of read_klines' layout"):
        check_series(data.rename(columns={"timestamps": "date", "close": "Close"}))
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        check_series(data.to_numpy())


# --------------------------------------------------------------------------------------------------------------------
# fuzz: random headers, separators, cell types and orders; a failure is always the one-line error
# --------------------------------------------------------------------------------------------------------------------

HEADER_WORDS = ["timestamps", "Date", "time", "trade_date", "日期", "", "Unnamed: 0", "open", "Open", "开盘", "high",
                "最高", "low", "LOW", "close", "Close", "收盘", "Adj Close", "vol", "Volume", "amount", "成交额", "x",
                "ts_code", "Price", "Ticker"]
CELLS = st.one_of(
    st.integers(-10**12, 10**19).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "NaN", "2024-01-02", "2024-01-02 09:30:00+08:00", "1/4/1999", "20240102", "1704153600000",
                     "abc", "13/09/2024", "2024-13-45", "True", "-", "1,5", '"quoted, cell"']),
    st.text(string.printable, max_size=6),
)


@st.composite
def csv_texts(draw):
    columns = draw(st.lists(st.one_of(st.sampled_from(HEADER_WORDS), st.text(max_size=5)), min_size=1, max_size=8))
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    rows = draw(st.lists(st.lists(CELLS, min_size=len(columns), max_size=len(columns)), max_size=6))
    lines = [sep.join(columns)] + [sep.join(row) for row in rows]
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


def _assert_layout_or_one_line_error(call):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", KlineReadWarning)
            frame = call()
    except KlineReadError as err:
        assert "\n" not in str(err) and str(err).strip()
        return
    columns = list(frame.columns)
    assert columns[:5] == ["timestamps", "open", "high", "low", "close"]
    assert set(columns[5:]) <= {"volume", "amount"}
    assert pd.api.types.is_datetime64_dtype(frame["timestamps"]) and frame["timestamps"].is_monotonic_increasing
    assert all(frame[c].dtype == np.float64 for c in columns[1:])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=csv_texts(), encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]))
def test_fuzz_csv_files(text, encoding, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "in.csv"
    try:
        path.write_bytes(text.encode(encoding))
    except UnicodeEncodeError:
        path.write_bytes(text.encode("utf-8"))
    _assert_layout_or_one_line_error(lambda: read_klines(path))


@settings(max_examples=150, deadline=None)
@given(
    columns=st.lists(st.sampled_from(HEADER_WORDS), min_size=1, max_size=7, unique=True),
    kind=st.sampled_from(["float", "int", "text", "datetime", "tzdatetime", "bool", "object"]),
    rows=st.integers(0, 5),
    shuffle=st.randoms(use_true_random=False),
)
def test_fuzz_frames(columns, kind, rows, shuffle):
    start = pd.Timestamp("2024-01-02", tz="UTC" if kind == "tzdatetime" else None)
    makers = {
        "float": lambda: np.linspace(1.0, 2.0, rows), "int": lambda: np.arange(rows) + 20240102,
        "text": lambda: [f"v{i}" for i in range(rows)], "bool": lambda: [True] * rows,
        "datetime": lambda: pd.date_range(start, periods=rows, freq="D"),
        "tzdatetime": lambda: pd.date_range(start, periods=rows, freq="D"),
        "object": lambda: [None, 1, "a", 2.5, pd.Timestamp("2024-01-01")][:rows] + [None] * max(0, rows - 5),
    }
    frame = pd.DataFrame({c: (makers[kind]() if shuffle.random() < 0.5 else np.linspace(1.0, 2.0, rows))
                          for c in columns})
    frame = frame[shuffle.sample(list(frame.columns), len(frame.columns))]
    _assert_layout_or_one_line_error(lambda: read_klines(frame))
