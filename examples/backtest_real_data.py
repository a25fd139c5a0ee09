#!/usr/bin/env python
# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""
Backtest a Kronos model on the real candles that `arch` and `backtesting` ship (no download), as docs/evaluation.md
reports it:

    pip install arch backtesting scoringrules scipy matplotlib
    python examples/backtest_real_data.py --output-dir out/backtest [--model M --tokenizer T] [any kronos-evaluate flag]

Two runs: the daily S&P 500 and NASDAQ indices (arch) with GOOG (backtesting), all cut at GOOG's last day
(2013-03-01) so that they share trading days and IC/RankIC have cross-sections; and hourly EURUSD (backtesting).
Each writes its CSV and the `kronos-evaluate` outputs under `--output-dir` (`daily/`, `eurusd/`).
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

from transformers_kronos.evaluation_cli import main as evaluate

DAILY_END = "2013-03-01"
RUNS = {
    # name: (lookback, pred_len, windows)
    "daily": (256, 5, 100),
    "eurusd": (256, 12, 100),
}


def ohlcv(frame, symbol=None, end=None):
    """`timestamps, open, high, low, close, volume` (and `symbol`) of a frame that arch or backtesting ships."""
    frame = frame.rename(columns=str.lower)[["open", "high", "low", "close", "volume"]].astype(float)
    if end is not None:
        frame = frame.loc[:end]
    frame = frame.rename_axis("timestamps").reset_index()
    return frame if symbol is None else frame.assign(symbol=symbol)


def daily_frame():
    import arch.data.nasdaq
    import arch.data.sp500
    from backtesting.test import GOOG

    return pd.concat([ohlcv(arch.data.sp500.load(), "SPX", DAILY_END), ohlcv(arch.data.nasdaq.load(), "NDX", DAILY_END),
                      ohlcv(GOOG, "GOOG", DAILY_END)], ignore_index=True)


def eurusd_frame():
    from backtesting.test import EURUSD

    return ohlcv(EURUSD)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--output-dir", required=True)
    args, rest = parser.parse_known_args(argv)
    root = Path(args.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    for name, frame, id_flags in (("daily", daily_frame(), ["--id-column", "symbol"]), ("eurusd", eurusd_frame(), [])):
        lookback, pred_len, windows = RUNS[name]
        data = root / f"{name}.csv"
        frame.to_csv(data, index=False)
        status = evaluate(["--data", str(data), *id_flags, "--lookback", str(lookback), "--pred-len", str(pred_len),
                           "--windows", str(windows), "--output-dir", str(root / name), *rest])
        if status:
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
