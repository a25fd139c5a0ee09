# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""`kronos-forecast`: forecast the candles that follow a K-line file, write the forecast as CSV and as a chart.

    kronos-forecast --csv FILE | --data FILE [--timestamp-column NAME] [--columns close=Last,...]
                    [--model ID_OR_PATH --tokenizer ID_OR_PATH] [--lookback N] [--pred-len N]
                    [--samples K] [--quantiles 0.1,0.5,0.9] [--output out.csv] [--plot out.png]
                    [--device auto|cpu|cuda] [--dtype float32|bfloat16] [--seed S]

The file is read by `transformers_kronos.reading.read_klines`: upstream Kronos' layout (`timestamps, open, high,
low, close[, volume, amount]`) and those that pandas, yfinance, tushare, akshare and ccxt users have. The future timestamps
are inferred from the history (its bar length, and the trading calendar it follows: sessions, lunch breaks,
weekends). Without `--model` the command uses the small demo model bundled with the package, which was trained
on synthetic data and says so; it is not a pretrained Kronos.

Any problem with the input ends the command with one line on stderr and exit status 2 (1 for unexpected
failures), and nothing is written: outputs go to temporary files that are moved into place only at the end.
"""

import argparse
import contextlib
import math
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .io_utils import make_folders, one_line, remove_folders, temporary_sibling

# Fewer candles than this leave too little to normalise on or to infer a bar length from.
MIN_HISTORY = 16
# Upstream's README forecasts from 400 candles; the window is clipped to the model's `max_context` anyway.
DEFAULT_LOOKBACK = 400
# what a Hub repository id looks like: `name` or `owner/name`
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
DEMO_NOTICE = (
    "NOTE: no --model given, so this uses the bundled DEMO model: a tiny model trained on synthetic K-lines by "
    "examples/build_demo_model.py. It is NOT a pretrained Kronos and its forecasts say nothing about real markets; "
    "pass --model/--tokenizer (e.g. NeoQuasar/Kronos-small and NeoQuasar/Kronos-Tokenizer-base) for real use."
)


class CliError(Exception):
    """A problem with the command's input, reported as one line without a traceback."""


class _ArgumentParser(argparse.ArgumentParser):
    """argparse prints the usage and exits on bad arguments; report them like every other input problem instead."""

    def error(self, message):
        raise CliError(message)


# ----------------------------------------------------------------------------------------------------------------
# arguments
# ----------------------------------------------------------------------------------------------------------------


def _int_at_least(minimum, name, maximum=None):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value

    return parse


def _positive_float(name, upper=None, upper_inclusive=True):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
        if upper is not None and (value > upper or (value == upper and not upper_inclusive)):
            bound = "at most" if upper_inclusive else "below"
            raise argparse.ArgumentTypeError(f"must be {bound} {upper}, got {text!r}")
        return value

    return parse


def _quantile_list(text):
    levels = []
    for part in text.split(","):
        part = part.strip()
        try:
            level = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be numbers separated by commas, got {part!r}") from None
        if not 0.0 < level < 1.0:
            raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {part}")
        levels.append(level)
    if len(set(levels)) != len(levels):
        raise argparse.ArgumentTypeError(f"has repeated levels: {text}")
    return tuple(sorted(levels))


def _column_map(text):
    mapping = {}
    for part in text.split(","):
        field, sep, column = part.partition("=")
        field, column = field.strip().lower(), column.strip()
        if not sep or not field or not column:
            raise argparse.ArgumentTypeError(f"must be FIELD=NAME pairs separated by commas, got {part.strip()!r}")
        if field in mapping:
            raise argparse.ArgumentTypeError(f"names {field} twice")
        mapping[field] = column
    return mapping


def build_parser():
    parser = _ArgumentParser(
        prog="kronos-forecast",
        description="Forecast the next candles of a K-line CSV with Kronos; write the forecast as CSV and PNG.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", metavar="FILE",
                        help="history: a CSV with a time column and open, high, low, close[, volume, amount] (read as "
                             "--data does)")
    source.add_argument("--data", metavar="FILE_OR_DIR",
                        help="history: a CSV or Parquet file, or a folder of them (one series per file); pandas, "
                             "yfinance, tushare, akshare and ccxt layouts are recognised (see docs/universe.md)")
    parser.add_argument("--timestamp-column", metavar="NAME", default=None,
                        help="the time column, when the guess is wrong or ambiguous")
    parser.add_argument("--columns", type=_column_map, default=None, metavar="FIELD=NAME,...",
                        help="take fields from given columns, e.g. close=Last,volume=Qty (open, high, low, close, "
                             "volume, amount)")
    parser.add_argument("--model", metavar="ID_OR_PATH",
                        help="predictor checkpoint (converted or upstream format, local or Hub); default: the demo")
    parser.add_argument("--tokenizer", metavar="ID_OR_PATH", help="tokenizer checkpoint matching --model")
    parser.add_argument("--lookback", type=_int_at_least(MIN_HISTORY, "--lookback"), default=None, metavar="N",
                        help=f"candles of history to condition on (default: {DEFAULT_LOOKBACK}, or all when fewer; "
                             "at most the model's max_context are used)")
    parser.add_argument("--pred-len", type=_int_at_least(1, "--pred-len"), default=48, metavar="N",
                        help="candles to forecast (default: 48)")
    parser.add_argument("--samples", type=_int_at_least(1, "--samples"), default=20, metavar="K",
                        help="sample paths drawn; the forecast is their mean (default: 20)")
    parser.add_argument("--batch-size", type=_int_at_least(1, "--batch-size"), default=None, metavar="N",
                        help="decode at most N sample paths together, to bound memory (default: all of them)")
    parser.add_argument("--quantiles", type=_quantile_list, default=(0.1, 0.5, 0.9), metavar="Q1,Q2,...",
                        help="quantile levels written next to the mean (default: 0.1,0.5,0.9)")
    parser.add_argument("--temperature", type=_positive_float("--temperature"), default=1.0, metavar="T",
                        help="sampling temperature (default: 1.0)")
    parser.add_argument("--top-p", type=_positive_float("--top-p", upper=1.0), default=0.9, metavar="P",
                        help="nucleus sampling threshold in (0, 1] (default: 0.9, as upstream)")
    parser.add_argument("--top-k", type=_int_at_least(0, "--top-k"), default=0, metavar="K",
                        help="keep the k most likely tokens, 0 = off (default: 0)")
    parser.add_argument("--output", default="forecast.csv", metavar="FILE",
                        help="forecast CSV to write (default: forecast.csv)")
    parser.add_argument("--plot", default=None, metavar="FILE", help="chart to write (e.g. forecast.png)")
    parser.add_argument("--sliding", choices=("exact", "rolling"), default="exact",
                        help="once history + forecast exceed the model's context: re-encode the window every step, "
                             "as upstream (exact), or keep the cache and drop its oldest candle (rolling: much faster, "
                             "approximate; see docs/forecasting.md) (default: exact)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto", help="default: auto")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="default: float32")
    parser.add_argument("--seed", type=_int_at_least(0, "--seed", maximum=2**64 - 1), default=0, metavar="S",
                        help="random seed (default: 0)")
    return parser


# ----------------------------------------------------------------------------------------------------------------
# input
# ----------------------------------------------------------------------------------------------------------------


def _source(args):
    return args.csv if args.csv is not None else args.data


def _read_source(args, stderr):
    """The K-lines of `--csv`/`--data` through [`read_klines`]; its notes go to `stderr`, one line each."""
    from .reading import KlineReadError, KlineReadWarning, read_klines

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", KlineReadWarning)
        try:
            klines = read_klines(_source(args), id_column=getattr(args, "id_column", None),
                                 timestamp_column=args.timestamp_column, columns=args.columns)
        except KlineReadError as err:
            raise CliError(str(err)) from None
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, KlineReadWarning)):
        print(f"kronos-forecast: note: {one_line(message)}", file=stderr)
    return klines


def _single_series(klines, source):
    """`(values, timestamps)` of a one-series table, checked; `CliError` naming `source` otherwise."""
    from .reading import KlineReadError, check_series

    try:
        return check_series(klines, min_length=MIN_HISTORY)
    except KlineReadError as err:
        raise CliError(f"{source}: {err}") from None


def _future_timestamps(stamps, pred_len, source):
    """The forecast's timestamps, continuing the history's calendar; `CliError` when they cannot be inferred."""
    from .forecasting import infer_future_timestamps

    try:
        return infer_future_timestamps(pd.DatetimeIndex(stamps), pred_len)
    except ValueError as err:
        raise CliError(f"{source}: " + one_line(err).replace("; pass `y_timestamp`", "")) from None


# ----------------------------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------------------------


def _resolve_device(name):
    """The device for `--device`: `auto` picks as the forecaster does (cuda, then mps, then cpu)."""
    from .utils import check_device, default_device

    if name == "auto":
        return str(default_device())
    try:
        check_device(name, "--device")
    except ValueError as err:
        raise CliError(one_line(err)) from None
    return name


@contextlib.contextmanager
def _quiet_transformers():
    """
    Silence transformers' loading bars and weight-mismatch tables, and huggingface_hub's retry warnings (all
    multi-line): the command reports problems itself, in one line.
    """
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    verbosity, hub_verbosity = hf_logging.get_verbosity(), hub_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hub_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        hub_logging.set_verbosity(hub_verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_forecaster(model, tokenizer, device, dtype):
    """`(forecaster, is_demo)` for the given checkpoints, or for the bundled demo when both are `None`."""
    import torch

    from .forecasting import KronosForecaster

    if (model is None) != (tokenizer is None):
        given, other = ("--model", "--tokenizer") if model is not None else ("--tokenizer", "--model")
        raise CliError(
            f"{given} needs {other} as well: a Kronos predictor and its tokenizer are separate checkpoints "
            "(e.g. NeoQuasar/Kronos-small with NeoQuasar/Kronos-Tokenizer-base)"
        )
    torch_dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    if model is None:
        from .demo import load_demo

        with _quiet_transformers():
            predictor, kline_tokenizer = load_demo(dtype=torch_dtype)
        return KronosForecaster(predictor, kline_tokenizer, device=device), True
    sources = []
    for name, value in (("--model", model), ("--tokenizer", tokenizer)):
        local = Path(value).expanduser()
        if local.exists():
            sources.append(str(local))
        elif _HUB_ID.fullmatch(value) and not value.startswith("."):
            sources.append(value)
        else:  # a path-looking argument that does not exist is a typo, not a Hub id
            raise CliError(f"{name} {value}: no such directory (and not a Hub repository id)")
    from .modeling_kronos import KronosForTokenPrediction, KronosTokenizerModel

    with _quiet_transformers():
        loaded = []
        for flag, source, cls in (("--model", sources[0], KronosForTokenPrediction),
                                  ("--tokenizer", sources[1], KronosTokenizerModel)):
            try:
                network, info = cls.from_pretrained(source, dtype=torch_dtype, output_loading_info=True)
            except (OSError, ValueError, TypeError, KeyError) as err:
                raise CliError(f"could not load {flag} {source}: {one_line(err)}") from None
            missing = info.get("missing_keys") or []
            if missing:
                kind = "predictor" if cls is KronosForTokenPrediction else "tokenizer"
                raise CliError(
                    f"{flag} {source} is not a Kronos {kind} checkpoint: {len(missing)} of its weights are missing "
                    f"(e.g. {sorted(missing)[0]})"
                )
            loaded.append(network)
    try:
        forecaster = KronosForecaster(loaded[0], loaded[1], device=device)
    except (ValueError, TypeError) as err:
        raise CliError(f"--model {model} and --tokenizer {tokenizer} do not work together: {one_line(err)}") from None
    return forecaster, False


# ----------------------------------------------------------------------------------------------------------------
# forecasting and output
# ----------------------------------------------------------------------------------------------------------------


def forecast_frame(samples, columns, future, quantile_levels):
    """
    Summarise sample paths into the CSV layout: `timestamps`, the mean of each column, then each quantile.

    Args:
        samples (`np.ndarray` of shape `(num_samples, pred_len, len(columns))`): Sampled candles.
        columns (sequence of `str`): Their column names.
        future (`pd.DatetimeIndex` of length `pred_len`): Their timestamps.
        quantile_levels (sequence of `float`): Levels to add, as columns `{column}_q{level}`.
    """
    from .forecasting import quantile_column

    out = pd.DataFrame({"timestamps": future})
    mean = samples.mean(axis=0)
    for j, name in enumerate(columns):
        out[name] = mean[:, j]
    if quantile_levels:
        q = np.quantile(samples, quantile_levels, axis=0)  # (levels, pred_len, columns)
        for j, name in enumerate(columns):
            for i, level in enumerate(quantile_levels):
                out[quantile_column(name, level)] = q[i, :, j]
    return out




def _check_target(name, target):
    """
    The file that `--output`/`--plot` `target` names (symbolic links followed), checked before the forecast runs: it
    must be a regular file or not exist yet, in a folder that exists or can be made.
    """
    real = Path(os.path.realpath(target))
    if real.is_dir():
        raise CliError(f"{name} {target}: is a directory")
    if real.exists() and not real.is_file():
        raise CliError(f"{name} {target}: exists and is not a regular file")
    folder = real.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise CliError(f"{name} {target}: {folder} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f"{name} {target}: {folder} is not writable")
    return real






def _check_outputs(args):
    """`(output, plot)`: the files to write, checked now rather than after minutes of forecasting."""
    output = Path(args.output).expanduser()
    plot = Path(args.plot).expanduser() if args.plot else None
    if plot is not None and plot.suffix.lower() not in (".png", ".jpg", ".jpeg", ".pdf", ".svg"):
        raise CliError(f"--plot {args.plot}: use a .png, .jpg, .pdf or .svg file name")
    # the files written are the links' targets
    output = _check_target("--output", output)
    plot = _check_target("--plot", plot) if plot is not None else None
    if plot is not None and plot == output:
        raise CliError("--output and --plot name the same file")
    for name, target in (("--output", output), ("--plot", plot)):
        if target is not None and target.resolve() == Path(_source(args)).expanduser().resolve():
            raise CliError(f"{name} would overwrite the input {_source(args)}")
    return output, plot


def _lookback(args, history_length, max_context, stderr):
    """The candles of history to condition on: `--lookback`, or the default clipped to the history and context."""
    if args.lookback is None:
        return min(history_length, DEFAULT_LOOKBACK, max_context)
    if args.lookback > max_context:
        print(f"note: --lookback {args.lookback} is longer than the model's context; the last {max_context} candles "
              "are used", file=stderr)
    return args.lookback


def _forecast_one(forecaster, context, context_stamps, future, args, stderr):
    """Sample paths of one series under `--seed` (torch's global generator), the forecaster's warnings as lines."""
    import torch

    torch.manual_seed(args.seed)
    source = _source(args)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            samples = _sample_paths(forecaster, context, context_stamps, future, args)
    except (ValueError, TypeError) as err:  # the forecaster's own input checks
        raise CliError(f"{source}: {one_line(err)}") from None
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)):
        print(f"kronos-forecast: warning: {source}: {one_line(message)}", file=stderr)
    return samples


def _write_outputs(result, samples, history, output, plot, title):
    """
    Write the forecast CSV (and chart) to temporary files first and move them into place only when all of it
    worked; a failure leaves neither them nor the folders made for them.
    """
    written, created, done = [], [], False
    try:
        for final in (output, plot):
            if final is not None:
                created += make_folders(final.parent)
        tmp_csv = temporary_sibling(output)
        written.append(tmp_csv)
        result.to_csv(tmp_csv, index=False, float_format="%.8g")
        tmp_plot = None
        if plot is not None:
            from .plotting import plot_forecast

            tmp_plot = temporary_sibling(plot)
            written.append(tmp_plot)
            plot_forecast(history, result, samples=samples, title=title, path=tmp_plot)
        os.replace(tmp_csv, output)
        if tmp_plot is not None:
            os.replace(tmp_plot, plot)
        written.clear()
        done = True
    except OSError as err:  # the temporary names mean nothing to the user
        raise CliError(f"could not write {output if plot is None else f'{output} and {plot}'}: "
                       f"{err.strerror or one_line(err)}") from None
    finally:
        for leftover in written:
            leftover.unlink(missing_ok=True)
        if not done:
            remove_folders(created)


def run(args, stdout=None, stderr=None):
    """Execute a parsed command line; returns the forecast frame. Raises `CliError` on bad input."""
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    source = _source(args)
    output, plot = _check_outputs(args)
    if Path(source).expanduser().is_dir():
        raise CliError(f"{source}: is a folder; a folder holds one series per file, and forecasting many series "
                       "is not supported by this command yet")
    klines = _read_source(args, stderr)
    frame, stamps = _single_series(klines, source)
    if args.lookback is not None and len(frame) < args.lookback:
        raise CliError(f"{source}: the history has {len(frame)} candles, fewer than --lookback {args.lookback}")
    future = _future_timestamps(stamps, args.pred_len, source)

    forecaster, is_demo = load_forecaster(args.model, args.tokenizer, _resolve_device(args.device), args.dtype)
    if is_demo:
        print(DEMO_NOTICE, file=stderr)
    lookback = _lookback(args, len(frame), forecaster.max_context, stderr)
    context = frame.iloc[-lookback:].reset_index(drop=True)
    context_stamps = stamps.iloc[-lookback:].reset_index(drop=True)
    samples = _forecast_one(forecaster, context, context_stamps, future, args, stderr)
    columns = list(context.columns)
    result = forecast_frame(samples, columns, future, args.quantiles)

    title = (f"{Path(source).name}: {args.pred_len}-candle forecast, {args.samples} sample paths"
             + (" (DEMO model trained on synthetic data, not a pretrained Kronos)" if is_demo else ""))
    _write_outputs(result, samples[:, :, columns.index("close")], context.assign(timestamps=context_stamps.to_numpy()),
                   output, plot, title)
    print(f"wrote {output} ({len(result)} candles: mean" + (
        f" and quantiles {', '.join(repr(q) for q in args.quantiles)})" if args.quantiles else ")"), file=stdout)
    if plot is not None:
        print(f"wrote {plot}", file=stdout)
    return result


def _sample_paths(forecaster, context, context_stamps, future, args):
    """Draw `args.samples` forecast paths: `(samples, pred_len, len(context.columns))` in the units of the input."""
    from .forecasting import FEATURE_COLUMNS

    _, samples = forecaster.predict(
        context,
        x_timestamp=context_stamps,
        y_timestamp=pd.DatetimeIndex(future),
        pred_len=args.pred_len,
        T=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        sample_count=args.samples,
        verbose=True,
        return_samples=True,
        batch_size=args.batch_size,
        sliding=args.sliding,
    )
    # the forecaster always returns all six features; keep those the input has
    keep = [FEATURE_COLUMNS.index(c) for c in context.columns]
    return np.asarray(samples, dtype=float)[..., keep]


def main(argv=None):
    """Console entry point; returns the exit status (0 success, 2 bad input, 1 unexpected failure, 130 interrupt)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        run(args)
    except CliError as err:
        print(f"kronos-forecast: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kronos-forecast: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - a command line tool reports, it does not dump tracebacks
        if os.environ.get("KRONOS_DEBUG"):
            raise
        print(f"kronos-forecast: error: {type(err).__name__}: {one_line(err)} (set KRONOS_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
