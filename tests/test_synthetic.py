"""The synthetic K-line generator: reproducible, well-formed candles on a trading calendar, with the stylised facts
(volatility clustering, fat tails, intraday U shape, regimes) that the docstring promises."""

import numpy as np
import pandas as pd
import pytest

from transformers_kronos.synthetic import KLINE_COLUMNS, generate_collection, generate_klines, trading_calendar


@pytest.fixture(scope="module")
def long_series():
    return generate_klines(20000, seed=3)


def test_layout_and_reproducibility():
    a = generate_klines(500, seed=7)
    b = generate_klines(500, seed=7)
    c = generate_klines(500, seed=8)
    assert list(a.columns) == list(KLINE_COLUMNS)
    assert len(a) == 500
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["close"].to_numpy(), c["close"].to_numpy())
    assert np.isfinite(a[list(KLINE_COLUMNS[1:])].to_numpy()).all()
    assert a["open"].iloc[0] == 20.0


def test_candles_are_consistent(long_series):
    df = long_series
    body_high = df[["open", "close"]].max(axis=1)
    body_low = df[["open", "close"]].min(axis=1)
    assert (df["high"] >= body_high).all()
    assert (df["low"] <= body_low).all()
    assert (df["low"] > 0).all()
    assert (df["volume"] > 0).all()
    assert (df["volume"] % 100 == 0).all()
    # amount is volume times a price inside the bar's range (up to rounding of the amount to cents)
    assert (df["amount"] >= df["volume"] * df["low"] - 0.01).all()
    assert (df["amount"] <= df["volume"] * df["high"] + 0.01).all()
    # consecutive bars inside a day continue from the previous close
    same_day = df["timestamps"].dt.normalize().diff() == pd.Timedelta(0)
    np.testing.assert_allclose(df["open"][same_day], df["close"].shift(1)[same_day])


def test_calendar_sessions_and_weekdays(long_series):
    ts = long_series["timestamps"]
    assert ts.is_monotonic_increasing and ts.is_unique
    assert set(ts.dt.day_of_week) == {0, 1, 2, 3, 4}
    minutes = ts.dt.hour * 60 + ts.dt.minute
    in_morning = (minutes > 9 * 60 + 30) & (minutes <= 11 * 60 + 30)
    in_afternoon = (minutes > 13 * 60) & (minutes <= 15 * 60)
    assert (in_morning | in_afternoon).all()
    per_day = ts.dt.normalize().value_counts(sort=False).sort_index()
    assert (per_day.iloc[:-1] == 48).all()  # 24 + 24 five-minute bars every full day; the last one may be cut short
    assert 1 <= per_day.iloc[-1] <= 48


def test_trading_calendar_variants():
    cal = trading_calendar("2024-01-05 11:20", 4)  # a Friday: 11:25, 11:30, then 13:05, 13:10
    assert [str(t) for t in cal] == [
        "2024-01-05 11:25:00",
        "2024-01-05 11:30:00",
        "2024-01-05 13:05:00",
        "2024-01-05 13:10:00",
    ]
    monday = trading_calendar("2024-01-05 14:58", 2)
    assert [str(t) for t in monday] == ["2024-01-05 15:00:00", "2024-01-08 09:35:00"]
    crypto = trading_calendar("2024-01-06 23:00", 3, freq="1h", sessions=None)  # a Saturday, never closes
    assert [str(t) for t in crypto] == ["2024-01-07 00:00:00", "2024-01-07 01:00:00", "2024-01-07 02:00:00"]
    daily = trading_calendar("2024-01-05", 3, freq="1D", sessions=None)
    assert daily.freq == pd.Timedelta("1D")


def test_volatility_clustering_and_fat_tails(long_series):
    r = np.diff(np.log(long_series["close"].to_numpy()))
    a = np.abs(r)
    # returns are nearly uncorrelated while their sizes are clearly correlated (GARCH clustering)
    assert abs(np.corrcoef(r[:-1], r[1:])[0, 1]) < 0.05
    assert np.corrcoef(a[:-1], a[1:])[0, 1] > 0.1
    z = (r - r.mean()) / r.std()
    assert np.mean(z**4) - 3.0 > 1.0  # excess kurtosis: fatter tails than a normal distribution


def test_intraday_u_shape(long_series):
    df = long_series
    t = df["timestamps"]
    volume_by_time = df.groupby(t.dt.strftime("%H:%M"))["volume"].median()
    assert volume_by_time["09:35"] > 1.5 * volume_by_time["11:00"]
    assert volume_by_time["15:00"] > 1.15 * volume_by_time["11:00"]
    r = np.log(df["close"] / df["open"])
    spread_by_time = r.groupby(t.dt.strftime("%H:%M")).std()
    assert spread_by_time["09:35"] > spread_by_time["11:00"]


def test_regimes_give_trends():
    # over many independent series, 2000-bar log returns spread far more than a driftless walk would allow
    finals = []
    for seed in range(12):
        df = generate_klines(2000, seed=seed, volatility=0.002)
        finals.append(np.log(df["close"].iloc[-1] / df["open"].iloc[0]))
    assert np.std(finals) > 0.002 * np.sqrt(2000)


def test_24_7_market_has_no_gaps():
    df = generate_klines(300, start="2024-03-01", freq="15min", sessions=None, seed=1)
    assert (df["timestamps"].diff().iloc[1:] == pd.Timedelta("15min")).all()
    np.testing.assert_allclose(df["open"].iloc[1:].to_numpy(), df["close"].iloc[:-1].to_numpy())


def test_collection():
    df = generate_collection(3, periods=200, seed=5)
    assert list(df.columns) == ["series_id", *KLINE_COLUMNS]
    assert df["series_id"].value_counts().to_dict() == {"SYN000": 200, "SYN001": 200, "SYN002": 200}
    levels = df.groupby("series_id")["close"].mean()
    assert levels.nunique() == 3
    pd.testing.assert_frame_equal(df, generate_collection(3, periods=200, seed=5))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(periods=0), "periods"),
        (dict(periods=2.5), "periods"),
        (dict(volatility=-0.1), "volatility"),
        (dict(volatility=0.5), "volatility"),
        (dict(initial_price=float("nan")), "initial_price"),
        (dict(base_volume=0), "base_volume"),
        (dict(freq="0min"), "freq"),
        (dict(sessions=(("11:00", "10:00"),)), "session"),
        (dict(sessions=(("10:00", "10:02"),)), "no bar"),
        (dict(weekdays=(7,)), "weekdays"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_klines(**kwargs)


def test_bad_collection_arguments():
    with pytest.raises(ValueError, match="num_series"):
        generate_collection(0)
    with pytest.raises(ValueError, match="draws"):
        generate_collection(2, volatility=0.01)
