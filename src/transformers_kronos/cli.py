# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""`kronos-forecast`: forecast the candles that follow a K-line file, write the forecast as CSV and as a chart.

    kronos-forecast --csv FILE | --data FILE [--timestamp-column NAME] [--columns close=Last,...]
                    [--model ID_OR_PATH --tokenizer ID_OR_PATH] [--lookback N] [--pred-len N]
                    [--samples K] [--quantiles 0.1,0.5,0.9] [--output out.csv] [--plot out.png]
                    [--device auto|cpu|cuda] [--dtype float32|bfloat16] [--seed S]
    kronos-forecast --data FILE_OR_DIR [--id-column NAME] --output-dir DIR [--series-per-chunk N] [--resume] [...]

The second form forecasts every series of a long table or a folder of per-series files, in chunks, into
`DIR/forecasts/*.parquet` and `DIR/errors.csv` (see `transformers_kronos.universe` and docs/universe.md); it exits
3 when some series could not be forecast, and runs under `accelerate launch` or torchrun as it does alone.

The file is read by `transformers_kronos.reading.read_klines`: upstream Kronos' layout (`timestamps, open, high,
low, close[, volume, amount]`) and those that pandas, yfinance, tushare, akshare and ccxt users have. The future
timestamps are inferred from the history (its bar length, and the trading calendar it follows: sessions, lunch breaks,
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
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn, TextIO

import numpy as np
import pandas as pd

from .checks import MIN_TEMPERATURE
from .io_utils import make_folders, one_line, remove_folders, temporary_sibling

from .universe import DEFAULT_LOOKBACK, MIN_HISTORY

# series per chunk of a universe run: one Parquet part each, and the unit that --resume skips
DEFAULT_SERIES_PER_CHUNK = 64
# what a Hub repository id looks like: `name` or `owner/name`
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
DEMO_NOTICE = (
    "NOTE: no --model given, so this uses the bundled DEMO model: a tiny model trained on synthetic K-lines by "
    "examples/build_demo_model.py. It is NOT a pretrained Kronos and its forecasts say nothing about real markets; "
    "pass --model/--tokenizer (e.g. NeoQuasar/Kronos-small and NeoQuasar/Kronos-Tokenizer-base) for real use."
)


class CliError(Exception):
    """A problem with the command's input, reported as one line without a traceback."""


class CliArgumentParser(argparse.ArgumentParser):
    """argparse prints the usage and exits on bad arguments; report them like every other input problem instead."""

    def error(self, message: str) -> NoReturn:
        raise CliError(message)


# ----------------------------------------------------------------------------------------------------------------
# arguments
# ----------------------------------------------------------------------------------------------------------------


def int_at_least(minimum: int, name: str, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
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


def positive_float(
    name: str, upper: float | None = None, upper_inclusive: bool = True, lower: float | None = None, hint: str = ""
) -> Callable[[str], float]:
    """A flag's number: finite, positive, at least `lower` and at most `upper` when given (`hint` follows a
    too-small value's message)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
        if lower is not None and value < lower:
            raise argparse.ArgumentTypeError(f"must be at least {lower:g}{hint}, got {text!r}")
        if upper is not None and (value > upper or (value == upper and not upper_inclusive)):
            bound = "at most" if upper_inclusive else "below"
            raise argparse.ArgumentTypeError(f"must be {bound} {upper}, got {text!r}")
        return value

    return parse


# smaller temperatures overflow the float32 logits; greedy decoding is --top-k 1
temperature_flag = positive_float("--temperature", lower=MIN_TEMPERATURE, hint=" (for greedy decoding, use --top-k 1)")


def quantile_list(text: str) -> tuple[float, ...]:
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


def column_map(text: str) -> dict[str, str]:
    """`FIELD=NAME,...` → `{field: column name}` (the `--columns` argument)."""
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


def build_parser() -> argparse.ArgumentParser:
    parser = CliArgumentParser(
        prog="kronos-forecast",
        description="Forecast the next candles of K-line files with Kronos: one series to CSV and PNG, or a whole "
                    "universe to Parquet parts (--output-dir).",
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
    parser.add_argument("--columns", type=column_map, default=None, metavar="FIELD=NAME,...",
                        help="take fields from given columns, e.g. close=Last,volume=Qty (open, high, low, close, "
                             "volume, amount)")
    parser.add_argument("--id-column", metavar="NAME", default=None,
                        help="the column naming each row's series, for a long table of many series "
                             "(needs --output-dir)")
    parser.add_argument("--output-dir", metavar="DIR", default=None,
                        help="many series (--id-column, or a folder): write DIR/forecasts/*.parquet and DIR/errors.csv")
    parser.add_argument("--series-per-chunk", type=int_at_least(1, "--series-per-chunk"),
                        default=None, metavar="N",
                        help=f"series read, forecast and written together (default: {DEFAULT_SERIES_PER_CHUNK})")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted --output-dir run: skip the parts already written")
    parser.add_argument("--model", metavar="ID_OR_PATH",
                        help="predictor checkpoint (converted or upstream format, local or Hub); default: the demo")
    parser.add_argument("--tokenizer", metavar="ID_OR_PATH", help="tokenizer checkpoint matching --model")
    parser.add_argument("--lookback", type=int_at_least(MIN_HISTORY, "--lookback"), default=None, metavar="N",
                        help=f"candles of history to condition on (default: {DEFAULT_LOOKBACK}, or all when fewer; "
                             "at most the model's max_context are used)")
    parser.add_argument("--pred-len", type=int_at_least(1, "--pred-len"), default=48, metavar="N",
                        help="candles to forecast (default: 48)")
    parser.add_argument("--samples", type=int_at_least(1, "--samples"), default=20, metavar="K",
                        help="sample paths drawn; the forecast is their mean (default: 20)")
    parser.add_argument("--batch-size", type=int_at_least(1, "--batch-size"), default=None, metavar="N",
                        help="decode at most N sample paths together, to bound memory (default: all of them)")
    parser.add_argument("--quantiles", type=quantile_list, default=(0.1, 0.5, 0.9), metavar="Q1,Q2,...",
                        help="quantile levels written next to the mean (default: 0.1,0.5,0.9)")
    parser.add_argument("--temperature", type=temperature_flag, default=1.0, metavar="T",
                        help="sampling temperature (default: 1.0)")
    parser.add_argument("--top-p", type=positive_float("--top-p", upper=1.0), default=0.9, metavar="P",
                        help="nucleus sampling threshold in (0, 1] (default: 0.9, as upstream)")
    parser.add_argument("--top-k", type=int_at_least(0, "--top-k"), default=0, metavar="K",
                        help="keep the k most likely tokens, 0 = off (default: 0)")
    parser.add_argument("--output", default=None, metavar="FILE",
                        help="forecast CSV to write (default: forecast.csv)")
    parser.add_argument("--plot", default=None, metavar="FILE", help="chart to write (e.g. forecast.png)")
    parser.add_argument("--sliding", choices=("exact", "rolling"), default="exact",
                        help="once history + forecast exceed the model's context: re-encode the window every step, "
                             "as upstream (exact), or keep the cache and drop its oldest candle (rolling: much faster, "
                             "approximate; see docs/forecasting.md) (default: exact)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto", help="default: auto")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="default: float32")
    parser.add_argument("--seed", type=int_at_least(0, "--seed", maximum=2**64 - 1), default=0, metavar="S",
                        help="random seed (default: 0)")
    return parser


# ----------------------------------------------------------------------------------------------------------------
# input
# ----------------------------------------------------------------------------------------------------------------


def _source(args):
    return args.csv if getattr(args, "csv", None) is not None else args.data


@contextlib.contextmanager
def reader_notes(stderr: TextIO, seen: set | None = None, prog: str = "kronos-forecast") -> Iterator[None]:
    """
    Print the reader's notes ([`KlineReadWarning`]) to `stderr` after `prog`, one line each and each once (`seen`:
    those printed already); turn its errors into `CliError`.
    """
    from .reading import KlineReadError, KlineReadWarning

    seen = set() if seen is None else seen
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", KlineReadWarning)
        try:
            yield
        except KlineReadError as err:
            raise CliError(str(err)) from None
        finally:
            for warning in caught:
                message = one_line(warning.message)
                if issubclass(warning.category, KlineReadWarning) and message not in seen:
                    seen.add(message)
                    print(f"{prog}: note: {message}", file=stderr)


def read_source(args: argparse.Namespace, stderr: TextIO, prog: str = "kronos-forecast") -> pd.DataFrame:
    """
    The K-lines of `--csv`/`--data` (with `--id-column`, `--timestamp-column`, `--columns` where the command has
    them) through [`read_klines`]; its notes go to `stderr`, one line each, after `prog`.
    """
    from .reading import read_klines

    with reader_notes(stderr, prog=prog):
        return read_klines(_source(args), id_column=getattr(args, "id_column", None),
                           timestamp_column=args.timestamp_column, columns=args.columns)


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


def load_forecaster(model: str | None, tokenizer: str | None, device: str | None, dtype: str) -> tuple:
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


def forecast_frame(
    samples: np.ndarray, columns: Sequence[str], future: pd.DatetimeIndex, quantile_levels: Sequence[float]
) -> pd.DataFrame:
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
    output = Path(args.output or "forecast.csv").expanduser()
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


def run(args: argparse.Namespace, stdout: TextIO | None = None, stderr: TextIO | None = None) -> pd.DataFrame:
    """Execute a parsed command line; returns the forecast frame. Raises `CliError` on bad input."""
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    source = _source(args)
    if _is_universe(args):
        return run_universe(args, stdout, stderr)
    for flag in ("series_per_chunk", "resume"):
        if getattr(args, flag) not in (None, False):
            raise CliError(f"--{flag.replace('_', '-')} needs --output-dir (a run over many series)")
    output, plot = _check_outputs(args)
    klines = read_source(args, stderr)
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


# ----------------------------------------------------------------------------------------------------------------
# many series
# ----------------------------------------------------------------------------------------------------------------


def _is_universe(args):
    """Many series: a long table (`--id-column`), a folder of files, or an explicit `--output-dir`."""
    return args.id_column is not None or args.output_dir is not None or Path(_source(args)).expanduser().is_dir()


def _check_universe_args(args):
    """The output folder of a many-series run, checked before anything is read or written."""
    source = _source(args)
    if args.output_dir is None:
        what = "a folder of series" if Path(source).expanduser().is_dir() else "--id-column"
        raise CliError(f"{what} needs --output-dir DIR (forecasts of many series go to DIR/forecasts/*.parquet)")
    if args.id_column is None and not Path(source).expanduser().is_dir():
        raise CliError("--output-dir needs --id-column NAME (the column naming each row's series) or a folder of "
                       "per-series files")
    for flag in ("output", "plot"):
        if getattr(args, flag) is not None:
            raise CliError(f"--{flag} writes one series; with --output-dir the forecasts go to DIR/forecasts/")
    output_dir = Path(args.output_dir).expanduser()
    if output_dir.exists() and not output_dir.is_dir():
        raise CliError(f"--output-dir {args.output_dir}: exists and is not a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not args.resume:
        raise CliError(f"--output-dir {args.output_dir}: is not empty; pass --resume to continue the run it holds, "
                       "or choose a new folder")
    _check_target("--output-dir", output_dir / "run.json")
    return output_dir


def _prepare_output_dir(args, output_dir, id_column, state):
    """Check a resumed run's settings, or start a new one: the folder and its `run.json` (main process only)."""
    from .universe import ForecastSettings, check_resume, run_manifest, write_manifest

    manifest = run_manifest(_source(args), id_column, ForecastSettings.from_args(args),
                            args.series_per_chunk or DEFAULT_SERIES_PER_CHUNK, args.model, args.tokenizer, args.dtype)
    if args.resume and output_dir.is_dir() and any(output_dir.iterdir()):
        problem = check_resume(output_dir, manifest)
        if problem is not None:
            raise CliError(f"--resume: {problem}")
        return
    if state.is_main_process:
        make_folders(output_dir)
        write_manifest(output_dir, manifest)


def _forecast_universe(forecaster, universe, output_dir, args, state, stderr):
    """Forecast this process' share of the chunks not written yet."""
    from tqdm.auto import tqdm

    from .universe import ERROR_COLUMN, ForecastSettings, chunk_ids, done_parts, forecast_chunk, write_part

    chunks = chunk_ids(universe.ids, args.series_per_chunk or DEFAULT_SERIES_PER_CHUNK)
    done = done_parts(output_dir) if args.resume else set()
    settings, seen = ForecastSettings.from_args(args), set()
    with state.split_between_processes(list(range(len(chunks)))) as mine:
        todo = [k for k in mine if k not in done]
        if state.num_processes > 1:
            print(f"kronos-forecast: process {state.process_index + 1} of {state.num_processes}: chunks "
                  f"{', '.join(map(str, mine)) or 'none'} ({len(todo)} to do)", file=stderr)
        total = sum(len(chunks[k]) for k in mine)
        with tqdm(total=total, initial=total - sum(len(chunks[k]) for k in todo), unit="series",
                  desc="Kronos universe", disable=not state.is_main_process, file=stderr) as bar:
            for k in todo:
                with reader_notes(stderr, seen):
                    series, unreadable = universe.read(chunks[k])
                rows, errors = forecast_chunk(forecaster, series, settings, universe.id_column)
                if unreadable:
                    errors = pd.concat([errors, pd.DataFrame({universe.id_column: list(unreadable),
                                                              ERROR_COLUMN: list(unreadable.values())})])
                write_part(output_dir, k, rows, errors)
                bar.update(len(chunks[k]))


def _open_universe(args, stderr):
    """The universe's ids, with a long Parquet table's structure checked on its first chunk (before any output)."""
    from .universe import UniverseSource

    with reader_notes(stderr):
        universe = UniverseSource(_source(args), args.id_column, args.timestamp_column, args.columns)
        universe.read(universe.ids[: args.series_per_chunk or DEFAULT_SERIES_PER_CHUNK])
    return universe


def run_universe(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """`kronos-forecast --data ... --output-dir DIR`: every series, in chunks; returns the exit status (0 or 3)."""
    from accelerate import PartialState

    from .universe import merge_errors

    output_dir = _check_universe_args(args)
    universe = _open_universe(args, stderr)
    device = _resolve_device(args.device)
    # several CPU processes (launched by accelerate or torchrun) talk over gloo only when accelerate is told "cpu"
    state = PartialState(cpu=device == "cpu")
    if args.device == "auto" and state.num_processes > 1:
        device = str(state.device)  # each process on its own accelerator
    forecaster, is_demo = load_forecaster(args.model, args.tokenizer, device, args.dtype)
    if is_demo and state.is_main_process:
        print(DEMO_NOTICE, file=stderr)
    _prepare_output_dir(args, output_dir, universe.id_column, state)
    state.wait_for_everyone()
    _forecast_universe(forecaster, universe, output_dir, args, state, stderr)
    state.wait_for_everyone()
    count = len(universe.ids)
    if state.is_main_process:
        errors = merge_errors(output_dir, universe.id_column)
        print(f"wrote {output_dir / 'forecasts'} ({count - len(errors)} of {count} series)" + (
            f"; {len(errors)} could not be forecast, see {output_dir / 'errors.csv'}" if len(errors) else ""),
            file=stdout)
        return 3 if len(errors) else 0
    # the main process reports for all: a launcher (torchrun) stops the others once one exits with a non-zero status
    return 0


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


def run_command(prog: str, command: Callable[[], object]) -> int:
    """
    Run a command line tool's `command` and turn its outcome into an exit status: its own `int` result or 0,
    2 for bad input (`CliError`, one line), 130 for an interrupt, 1 for anything unexpected (one line; the
    traceback with KRONOS_DEBUG=1).
    """
    try:
        result = command()
    except CliError as err:
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - a command line tool reports, it does not dump tracebacks
        if os.environ.get("KRONOS_DEBUG"):
            raise
        print(f"{prog}: error: {type(err).__name__}: {one_line(err)} (set KRONOS_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit status (0 success, 3 some series skipped, 2 bad input, 1 unexpected
    failure, 130 interrupt)."""
    parser = build_parser()
    return run_command("kronos-forecast", lambda: run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
