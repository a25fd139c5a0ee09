# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""
Forecast a K-line CSV with exported Kronos graphs on ONNX Runtime, without torch (the entry point of
examples/onnx/Dockerfile).

    python examples/onnx/forecast_onnx.py --model onnx/Kronos-small --tokenizer onnx/Kronos-Tokenizer-base \\
        examples/data/sample_kline.csv 24

The file is read as `kronos-forecast` reads it (`transformers_kronos.read_klines`: pandas, yfinance, tushare,
akshare and ccxt layouts, CSV or Parquet) and checked the same way. Bad input ends the command with one line on
stderr and exit status 2.
"""

import argparse
import sys

from transformers_kronos.onnx import OnnxForecaster
from transformers_kronos.reading import KlineReadError, check_series, read_klines

PROG = "forecast_onnx.py"


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # one line, like every other input problem, rather than the usage and a line
        raise ValueError(message)


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser():
    parser = ArgumentParser(prog=PROG, description=__doc__.strip().splitlines()[0])
    parser.add_argument("csv", help="candles: a CSV or Parquet file with a time column and open, high, low, close "
                                    "(volume, amount optional), oldest or newest first")
    parser.add_argument("pred_len", type=positive_int, help="candles to forecast")
    parser.add_argument("--model", required=True, help="the exported predictor folder")
    parser.add_argument("--tokenizer", required=True, help="the exported tokenizer folder")
    parser.add_argument("--samples", type=positive_int, default=1, help="sample paths (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the sample paths (default 0)")
    return parser


def forecast(argv=None):
    args = build_parser().parse_args(argv)
    try:
        values, stamps = check_series(read_klines(args.csv))
    except KlineReadError as err:
        raise KlineReadError(err if str(err).startswith(args.csv) else f"{args.csv}: {err}") from None
    forecaster = OnnxForecaster(args.model, args.tokenizer)
    return forecaster.predict(values, x_timestamp=stamps, pred_len=args.pred_len, sample_count=args.samples,
                              generator=args.seed, verbose=False)


def main(argv=None) -> int:
    try:
        result = forecast(argv)
    except (ValueError, TypeError, OSError) as err:
        print(f"{PROG}: error: {' '.join(str(err).split()) or type(err).__name__}", file=sys.stderr)
        return 2
    result.to_csv(sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
