# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""`kronos-evaluate`: a rolling-origin backtest of Kronos against naive baselines, from the command line.

    kronos-evaluate --data FILE [--id-column C] [--model M --tokenizer T] --lookback N --pred-len H
                    --windows W [--stride S] [--samples K] [--quantiles 0.1,0.5,0.9] [--target close[,volume]]
                    [--seed 0] [--batch-size B] --output-dir DIR

It reads what `kronos-forecast` reads, through the same reader (one series, a long-format CSV/Parquet file with
`--id-column`, or a folder of files, one series each), runs
[`transformers_kronos.evaluation.backtest`] and writes `DIR/forecasts.csv`, `DIR/metrics.csv`, `DIR/report.png`,
and beside them `DIR/report.html`, `DIR/ic.csv` (IC groups and t-statistics) and `DIR/paths.npz` (the sample
paths, for the CRPS).
docs/evaluation.md defines every number.

Any problem with the input ends the command with one line on stderr and exit status 2 (1 for unexpected failures),
and nothing is written.
"""

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import TextIO

import pandas as pd

from .cli import (
    DEMO_NOTICE,
    CliArgumentParser,
    CliError,
    column_map,
    int_at_least,
    load_forecaster,
    positive_float,
    quantile_list,
    read_source,
    run_command,
    temperature_flag,
)
from .evaluation import METRICS, TIMESTAMP_COLUMN, BacktestResult, backtest
from .io_utils import one_line

PROG = "kronos-evaluate"
OUTPUT_FILES = ("forecasts.csv", "metrics.csv", "ic.csv", "paths.npz", "report.png", "report.html")


def _name_list(text):
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise ValueError(f"expected names separated by commas, got {text!r}")
    return tuple(names)


def build_parser() -> argparse.ArgumentParser:
    parser = CliArgumentParser(prog=PROG, description="Backtest Kronos forecasts against naive baselines.")
    parser.add_argument("--data", required=True, metavar="FILE_OR_DIR",
                        help="K-lines as kronos-forecast reads them: a CSV or Parquet file (one series, or many with "
                             "--id-column), or a folder of them (one series per file)")
    parser.add_argument("--id-column", metavar="C", help="column naming each row's series (long format)")
    parser.add_argument("--timestamp-column", metavar="NAME", default=None,
                        help="the time column, when the guess is wrong or ambiguous")
    parser.add_argument("--columns", type=column_map, default=None, metavar="FIELD=NAME,...",
                        help="take fields from given columns, e.g. close=Last,volume=Qty")
    parser.add_argument("--model", metavar="ID_OR_PATH", help="predictor checkpoint; default: the bundled demo")
    parser.add_argument("--tokenizer", metavar="ID_OR_PATH", help="tokenizer checkpoint matching --model")
    parser.add_argument("--lookback", type=int_at_least(3, "--lookback"), required=True, metavar="N",
                        help="candles of history per window, up to and including its origin")
    parser.add_argument("--pred-len", type=int_at_least(1, "--pred-len"), required=True, metavar="H",
                        help="candles forecast per window")
    parser.add_argument("--windows", type=int_at_least(1, "--windows"), required=True, metavar="W",
                        help="origins per series, the last ones, counted back from its end")
    parser.add_argument("--stride", type=int_at_least(1, "--stride"), default=None, metavar="S",
                        help="candles between origins (default: --pred-len)")
    parser.add_argument("--samples", type=int_at_least(1, "--samples"), default=20, metavar="K",
                        help="sample paths per window; the forecast is their mean (default: 20)")
    parser.add_argument("--quantiles", type=quantile_list, default=(0.1, 0.5, 0.9), metavar="Q1,Q2,...",
                        help="quantile levels written per target; coverage_80 needs 0.1 and 0.9 (default: 0.1,0.5,0.9)")
    parser.add_argument("--target", type=_name_list, default=("close",), metavar="F[,F...]",
                        help="columns scored (default: close)")
    parser.add_argument("--metrics", type=_name_list, default=METRICS, metavar="M[,M...]",
                        help=f"metrics reported (default: all: {','.join(METRICS)})")
    parser.add_argument("--seed", type=int_at_least(0, "--seed", maximum=2**64 - 1), default=0, metavar="S",
                        help="each window's seed is derived from it, the series id and the origin (default: 0)")
    parser.add_argument("--batch-size", type=int_at_least(1, "--batch-size"), default=None, metavar="B",
                        help="decode at most B sample paths together, over all windows, to bound memory")
    parser.add_argument("--temperature", type=temperature_flag, default=1.0, metavar="T")
    parser.add_argument("--top-p", type=positive_float("--top-p", upper=1.0), default=0.9, metavar="P")
    parser.add_argument("--top-k", type=int_at_least(0, "--top-k"), default=0, metavar="K")
    parser.add_argument("--sliding", choices=("exact", "rolling"), default="exact")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto", help="default: auto")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="default: float32")
    parser.add_argument("--output-dir", required=True, metavar="DIR", help="folder for the outputs (made if missing)")
    return parser


def read_data(args: argparse.Namespace, stderr: TextIO) -> tuple[dict[str, pd.DataFrame], str]:
    """
    The series of `--data`, read exactly as `kronos-forecast` reads its input ([`read_klines`], then
    [`check_series`] for every series): `(mapping id → frame with a timestamps column, id column name)`.
    `CliError` naming the source (and the series) on any problem.
    """
    from .reading import DEFAULT_ID_COLUMN, KlineReadError, check_series

    klines = read_source(args, stderr, prog=PROG)
    folder = Path(args.data).expanduser().is_dir()
    id_column = args.id_column or (DEFAULT_ID_COLUMN if folder else None)
    if id_column is None:
        groups = [(Path(args.data).stem, klines)]
    else:
        groups = list(klines.groupby(id_column, sort=True))
    series = {}
    for key, frame in groups:
        try:
            values, stamps = check_series(frame)
        except KlineReadError as err:
            where = "" if id_column is None else f"series {key!r}: "
            raise CliError(f"{args.data}: {where}{one_line(err)}") from None
        series[key] = values.assign(**{TIMESTAMP_COLUMN: stamps.to_numpy()})
    return series, id_column or DEFAULT_ID_COLUMN


def check_output_dir(output_dir: str, data_path: str) -> Path:
    """The output folder, resolved, checked before any forecast: a folder (or nothing yet), writable, not the input's."""
    folder = Path(os.path.realpath(Path(output_dir).expanduser()))
    if folder.exists() and not folder.is_dir():
        raise CliError(f"--output-dir {output_dir}: exists and is not a directory")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"--output-dir {output_dir}: {existing} is not a writable directory")
    data = Path(os.path.realpath(Path(data_path).expanduser()))
    if data.parent == folder and data.name in OUTPUT_FILES:
        raise CliError(f"--output-dir {output_dir} would overwrite the input {data_path}")
    if data.is_dir() and (folder == data or data in folder.parents):
        raise CliError(f"--output-dir {output_dir} is inside the input folder {data_path}: its CSV files would be read "
                       "as series next time")
    return folder


def run(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> BacktestResult:
    """Execute a parsed command line; returns the [`BacktestResult`]. Raises `CliError` on bad input."""
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    folder = check_output_dir(args.output_dir, args.data)
    data, id_column = read_data(args, stderr)
    forecaster, is_demo = _load(args)
    result = _backtest(forecaster, data, id_column, args, is_demo, stderr)
    if is_demo:  # after the input checks, so that bad input gets one line
        print(DEMO_NOTICE, file=stderr)
    try:
        written = result.save(folder)
    except OSError as err:
        raise CliError(f"could not write to {args.output_dir}: {err.strerror or one_line(err)}") from None
    print(result.metrics.to_string(index=False, float_format=lambda v: f"{v:.4g}"), file=stdout)
    print(f"wrote {', '.join(str(p) for p in written)}", file=stdout)
    return result


def _load(args):
    device = None if args.device == "auto" else args.device
    try:
        return load_forecaster(args.model, args.tokenizer, device, args.dtype)
    except (ValueError, TypeError) as err:
        raise CliError(one_line(err)) from None


def _backtest(forecaster, data, id_column, args, is_demo, stderr):
    title = f"{Path(args.data).name}: {args.windows} windows of {args.pred_len} candles per series" + (
        " (DEMO model trained on synthetic data, not a pretrained Kronos)" if is_demo else "")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            result = backtest(
                forecaster, data, lookback=args.lookback, pred_len=args.pred_len, windows=args.windows,
                stride=args.stride, samples=args.samples, quantiles=args.quantiles, targets=args.target,
                id_column=id_column, seed=args.seed,
                batch_size=args.batch_size, metrics=args.metrics,
                temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, sliding=args.sliding,
                title=title, verbose=True,
            )
    except (ValueError, TypeError) as err:  # the backtest's and the forecaster's input checks
        raise CliError(f"{args.data}: {one_line(err)}") from None
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)):
        print(f"{PROG}: warning: {args.data}: {one_line(message)}", file=stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (0 success, 2 bad input, 1 unexpected failure, 130 interrupt)."""
    return run_command(PROG, lambda: run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
