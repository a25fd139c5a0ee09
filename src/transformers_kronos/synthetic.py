# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""A seeded generator of synthetic K-lines (candlesticks), for demos, tests and the bundled demo model.

The series are not market data, but they carry the stylised facts that a K-line model has to cope with:

- **regimes**: a hidden Markov chain switches between a rising, a falling and a ranging market, each with its own
  drift (the ranging one mean-reverts to the level where it started);
- **volatility clustering**: the per-bar variance follows a GARCH(1, 1) recursion driven by Student-t shocks, so
  calm and turbulent stretches alternate and returns are fat-tailed;
- **an intraday calendar**: bars exist only inside trading sessions (by default two sessions a weekday, 09:30-11:30
  and 13:00-15:00, bars labelled by their closing time as exchanges publish them); volatility and volume follow the
  usual U shape over the day, and the first bar of a day opens with an overnight gap;
- **consistent candles**: open, high, low and close come from a simulated path inside each bar, so
  `low <= min(open, close) <= max(open, close) <= high` always holds; volume reacts to the size of the move and to
  volatility; amount (turnover) is volume times a price inside the bar's range.

Everything is drawn from one `numpy.random.Generator` seeded by `seed`, so a call is reproducible bit for bit.

Example:

```python
>>> from transformers_kronos.synthetic import generate_klines
>>> df = generate_klines(480, seed=0)
>>> list(df.columns)
['timestamps', 'open', 'high', 'low', 'close', 'volume', 'amount']
>>> str(df["timestamps"].iloc[0])
'2024-01-02 09:35:00'
```
"""

from collections.abc import Sequence
from typing import Optional, Union

import numpy as np
import pandas as pd

KLINE_COLUMNS = ("timestamps", "open", "high", "low", "close", "volume", "amount")

# Two sessions a day, as on the Shanghai and Shenzhen exchanges (the markets of upstream's examples).
DEFAULT_SESSIONS = (("09:30", "11:30"), ("13:00", "15:00"))
WEEKDAYS = (0, 1, 2, 3, 4)

# Drift per bar, in units of the bar's volatility, of the three regimes: rising, falling, ranging.
_REGIME_DRIFT = (0.06, -0.06, 0.0)
# Probability of leaving the current regime at each bar.
_REGIME_SWITCH = 1.0 / 400.0
# Mean-reversion strength of the ranging regime towards its starting level (fraction of the log gap per bar).
_RANGE_PULL = 0.01
# GARCH(1, 1) coefficients (alpha: reaction to the last shock, beta: persistence).
_GARCH_ALPHA = 0.08
_GARCH_BETA = 0.90
# Student-t degrees of freedom of the shocks (fat tails; > 2 so that the variance exists).
_SHOCK_DOF = 4.0
# Points of the simulated path inside one bar, from which high and low are read.
_SUBSTEPS = 8


def trading_calendar(
    start: Union[str, pd.Timestamp],
    periods: int,
    freq: str = "5min",
    sessions: Optional[Sequence[tuple[str, str]]] = DEFAULT_SESSIONS,
    weekdays: Sequence[int] = WEEKDAYS,
) -> pd.DatetimeIndex:
    """
    The first `periods` bar timestamps at or after `start` on a trading calendar.

    Args:
        start (`str` or `pd.Timestamp`): Where the calendar starts (the first bar is the first one closing after it).
        periods (`int`): Number of bars.
        freq (`str` or `pd.Timedelta`, defaults to `"5min"`): Bar length.
        sessions (sequence of `("HH:MM", "HH:MM")`, *optional*): Trading sessions of a day; bars are labelled by their
            closing time, so a 09:30-11:30 session of 5-minute bars gives 09:35, 09:40, ..., 11:30. `None` means a
            market that never closes (bars at every multiple of `freq`, every day, like crypto exchanges).
        weekdays (sequence of `int`, defaults to Monday-Friday): Trading days (0 = Monday). Ignored when `sessions`
            is `None`.

    Returns:
        `pd.DatetimeIndex` of length `periods`, strictly increasing.
    """
    step = pd.Timedelta(freq)
    if step <= pd.Timedelta(0):
        raise ValueError(f"`freq` must be a positive duration, got {freq!r}")
    if isinstance(periods, bool) or not isinstance(periods, (int, np.integer)) or periods < 1:
        raise ValueError(f"`periods` must be a positive integer, got {periods!r}")
    start = pd.Timestamp(start)
    if sessions is None:
        first = start.ceil(step) if start != start.ceil(step) else start + step
        return pd.date_range(first, periods=periods, freq=step)

    day_bars = []
    for open_str, close_str in sessions:
        open_t, close_t = pd.Timedelta(open_str + ":00"), pd.Timedelta(close_str + ":00")
        if close_t <= open_t:
            raise ValueError(f"a session must close after it opens, got {open_str}-{close_str}")
        offset = open_t + step
        while offset <= close_t:
            day_bars.append(offset)
            offset += step
    if not day_bars:
        raise ValueError(f"no bar of length {freq} fits in the sessions {sessions}")
    weekdays = set(int(d) for d in weekdays)
    if not weekdays or not weekdays <= set(range(7)):
        raise ValueError(f"`weekdays` must be a non-empty subset of 0..6, got {sorted(weekdays)}")

    stamps = []
    day = start.normalize()
    while len(stamps) < periods:
        if day.weekday() in weekdays:
            stamps.extend(t for t in (day + offset for offset in day_bars) if t > start)
        day += pd.Timedelta(days=1)
    return pd.DatetimeIndex(stamps[:periods])


def _intraday_shape(timestamps):
    """U-shaped activity profile over each trading day: about 2x at the open and 1.5x at the close, 1x at midday."""
    day = timestamps.normalize()
    frame = pd.DataFrame({"day": day, "t": timestamps})
    rank = frame.groupby("day").cumcount().to_numpy()
    size = frame.groupby("day")["t"].transform("size").to_numpy()
    x = (rank + 0.5) / size  # position in the trading day, in (0, 1)
    shape = 1.0 + 1.0 * np.exp(-x / 0.08) + 0.5 * np.exp(-(1.0 - x) / 0.08)
    first_of_day = rank == 0
    return shape / shape.mean(), first_of_day


def generate_klines(
    periods: int = 2000,
    start: Union[str, pd.Timestamp] = "2024-01-02",
    freq: str = "5min",
    sessions: Optional[Sequence[tuple[str, str]]] = DEFAULT_SESSIONS,
    weekdays: Sequence[int] = WEEKDAYS,
    initial_price: float = 20.0,
    volatility: float = 0.002,
    base_volume: float = 20000.0,
    seed: Union[int, Sequence[int]] = 0,
) -> pd.DataFrame:
    """
    Generate one synthetic OHLCV + amount series in the Kronos CSV layout.

    Args:
        periods (`int`, defaults to 2000): Number of candles.
        start, freq, sessions, weekdays: The trading calendar, see [`trading_calendar`]. `sessions=None` gives a
            24/7 market (no intraday shape, no overnight gaps).
        initial_price (`float`, defaults to 20.0): Open of the first candle.
        volatility (`float`, defaults to 0.002): Long-run standard deviation of one bar's log return (0.2% per
            5-minute bar is a typical liquid stock).
        base_volume (`float`, defaults to 20000.0): Median volume of a bar at midday in calm markets.
        seed (`int`, defaults to 0): Seed of the random generator; the same arguments give the same frame.

    Returns:
        `pd.DataFrame` with columns `timestamps, open, high, low, close, volume, amount` and a `RangeIndex`.
        Volumes are whole lots of 100 shares, prices are rounded to 0.01 (a tick) once they are above 1.
    """
    for name, value in (("initial_price", initial_price), ("volatility", volatility), ("base_volume", base_volume)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
            raise ValueError(f"`{name}` must be a positive finite number, got {value!r}")
    if volatility >= 0.1:
        raise ValueError(f"`volatility` is the per-bar standard deviation of log returns; {volatility} is implausible")
    timestamps = trading_calendar(start, periods, freq=freq, sessions=sessions, weekdays=weekdays)
    rng = np.random.default_rng(seed)
    n = len(timestamps)
    if sessions is None:
        shape, first_of_day = np.ones(n), np.zeros(n, dtype=bool)
    else:
        shape, first_of_day = _intraday_shape(timestamps)

    # the order of the random draws below is part of the output (the demo model is rebuilt bit for bit from it)
    regime = _regimes(rng, n)
    log_open, log_close, sigma = _log_prices(rng, regime, shape, first_of_day, volatility, initial_price)
    open_, high, low, close = _candles(rng, log_open, log_close, sigma, tick=initial_price >= 1.0)
    volume, amount = _volume_and_amount(rng, log_open, log_close, sigma, shape, volatility, base_volume, high, low)
    return pd.DataFrame(
        {
            "timestamps": timestamps,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "amount": amount,
        }
    )


def _regimes(rng, n):
    """A Markov chain over (rising, falling, ranging), one state per bar."""
    regime = np.empty(n, dtype=np.int64)
    regime[0] = rng.integers(3)
    switches = rng.random(n) < _REGIME_SWITCH
    targets = rng.integers(1, 3, size=n)  # a switch moves to one of the two other regimes
    for t in range(1, n):
        regime[t] = (regime[t - 1] + targets[t]) % 3 if switches[t] else regime[t - 1]
    return regime


def _log_prices(rng, regime, shape, first_of_day, volatility, initial_price):
    """
    Log open and close of each bar from GARCH(1, 1) Student-t shocks, regime drifts and overnight gaps, and each
    bar's conditional volatility (intraday shape included).
    """
    n = len(regime)
    shocks = rng.standard_t(_SHOCK_DOF, size=n) * np.sqrt((_SHOCK_DOF - 2.0) / _SHOCK_DOF)  # unit variance
    gap_shocks = rng.standard_normal(n)
    omega = volatility**2 * (1.0 - _GARCH_ALPHA - _GARCH_BETA)
    log_close, log_open, sigma = np.empty(n), np.empty(n), np.empty(n)
    variance = volatility**2
    level = anchor = np.log(initial_price)
    last_shock = 0.0
    for t in range(n):
        variance = omega + _GARCH_ALPHA * last_shock**2 + _GARCH_BETA * variance
        sigma[t] = np.sqrt(variance) * np.sqrt(shape[t])
        if t > 0 and regime[t] != regime[t - 1]:
            anchor = level
        opening = level
        if first_of_day[t] and t > 0:
            opening += 3.0 * sigma[t] * gap_shocks[t]  # overnight news
        drift = _REGIME_DRIFT[regime[t]] * sigma[t]
        if regime[t] == 2:
            drift += _RANGE_PULL * (anchor - opening)
        ret = drift + sigma[t] * shocks[t]
        log_open[t] = opening
        log_close[t] = opening + ret
        last_shock = ret - drift
        level = log_close[t]
    return log_open, log_close, sigma


def _candles(rng, log_open, log_close, sigma, tick):
    """Open, high, low and close; high and low from a Brownian bridge inside the bar plus a little extra wick."""
    n = len(log_open)
    steps = rng.standard_normal((n, _SUBSTEPS)) * (sigma[:, None] / np.sqrt(_SUBSTEPS))
    walk = np.cumsum(steps, axis=1)
    frac = np.arange(1, _SUBSTEPS + 1) / _SUBSTEPS
    bridge = walk - frac[None, :] * walk[:, -1:]
    path = log_open[:, None] + frac[None, :] * (log_close - log_open)[:, None] + bridge
    wick = np.abs(rng.standard_normal((n, 2))) * 0.15 * sigma[:, None]
    log_high = np.maximum(path.max(axis=1), np.maximum(log_open, log_close)) + wick[:, 0]
    log_low = np.minimum(path.min(axis=1), np.minimum(log_open, log_close)) - wick[:, 1]
    open_, high, low, close = (np.exp(a) for a in (log_open, log_high, log_low, log_close))
    if tick:
        # round to the tick without breaking the candle's ordering
        open_, close = np.round(open_, 2), np.round(close, 2)
        high = np.maximum(np.ceil(high * 100.0) / 100.0, np.maximum(open_, close))
        low = np.maximum(np.minimum(np.floor(low * 100.0) / 100.0, np.minimum(open_, close)), 0.01)
    return open_, high, low, close


def _volume_and_amount(rng, log_open, log_close, sigma, shape, volatility, base_volume, high, low):
    """
    Volume: intraday shape x reaction to the move and to the volatility level x log-normal noise, in lots of 100.
    Amount: volume times an average traded price inside the bar's range.
    """
    move = np.abs(log_close - log_open) / sigma
    vol_level = sigma / (volatility * np.sqrt(shape))
    volume = base_volume * shape * np.exp(0.35 * move) * vol_level**1.5 * rng.lognormal(0.0, 0.35, size=len(sigma))
    volume = np.maximum(np.round(volume / 100.0), 1.0) * 100.0
    weight = rng.beta(4.0, 4.0, size=len(sigma))
    amount = np.round(volume * (low + weight * (high - low)), 2)
    return volume, amount


def generate_collection(num_series: int, periods: int = 2000, seed: int = 0, **kwargs) -> pd.DataFrame:
    """
    Several independent series with varied price levels and volatilities, stacked with a `series_id` column.

    Args:
        num_series (`int`): Number of series.
        periods (`int`, defaults to 2000): Candles per series.
        seed (`int`, defaults to 0): Seeds every series (series `i` uses a generator derived from `(seed, i)`).
        kwargs: Passed to [`generate_klines`] (calendar and volume scale; price level and volatility are drawn).

    Returns:
        `pd.DataFrame` with `series_id` followed by the columns of [`generate_klines`].
    """
    if isinstance(num_series, bool) or not isinstance(num_series, (int, np.integer)) or num_series < 1:
        raise ValueError(f"`num_series` must be a positive integer, got {num_series!r}")
    if "initial_price" in kwargs or "volatility" in kwargs:
        raise ValueError("`generate_collection` draws `initial_price` and `volatility` itself; use `generate_klines`")
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(num_series):
        price = float(np.exp(rng.uniform(np.log(3.0), np.log(200.0))))
        vol = float(rng.uniform(0.001, 0.004))
        frame = generate_klines(periods, initial_price=price, volatility=vol, seed=[seed, i], **kwargs)
        frame.insert(0, "series_id", f"SYN{i:03d}")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


__all__ = ["DEFAULT_SESSIONS", "KLINE_COLUMNS", "generate_collection", "generate_klines", "trading_calendar"]
