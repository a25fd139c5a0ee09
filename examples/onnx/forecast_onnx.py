# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""
Forecast a K-line CSV with exported Kronos graphs on ONNX Runtime, without torch (the entry point of
examples/onnx/Dockerfile).

    python examples/onnx/forecast_onnx.py --model onnx/Kronos-small --tokenizer onnx/Kronos-Tokenizer-base \\
        examples/data/sample_kline.csv 24
"""

import argparse
import sys

import pandas as pd

from transformers_kronos.onnx import OnnxForecaster


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("csv", help="candles: a timestamps column, open, high, low, close (volume, amount optional)")
    parser.add_argument("pred_len", type=int, help="candles to forecast")
    parser.add_argument("--model", required=True, help="the exported predictor folder")
    parser.add_argument("--tokenizer", required=True, help="the exported tokenizer folder")
    parser.add_argument("--samples", type=int, default=1, help="sample paths (default 1)")
    args = parser.parse_args(argv)
    frame = pd.read_csv(args.csv, parse_dates=["timestamps"])
    forecaster = OnnxForecaster(args.model, args.tokenizer)
    forecast = forecaster.predict(frame, pred_len=args.pred_len, sample_count=args.samples, verbose=False)
    forecast.to_csv(sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
