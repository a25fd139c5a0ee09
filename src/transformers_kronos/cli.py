# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""`kronos-forecast`: forecast the candles that follow a K-line CSV, write the forecast as CSV and as a chart.

    kronos-forecast --csv FILE [--model ID_OR_PATH --tokenizer ID_OR_PATH] [--lookback N] [--pred-len N]
                    [--samples K] [--quantiles 0.1,0.5,0.9] [--output out.csv] [--plot out.png]
                    [--device auto|cpu|cuda] [--dtype float32|bfloat16] [--seed S]

The CSV has upstream Kronos' layout: `timestamps, open, high, low, close[, volume, amount]`. The future timestamps
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

PRICE_COLUMNS = ("open", "high", "low", "close")
OPTIONAL_COLUMNS = ("volume", "amount")
TIMESTAMP_ALIASES = ("timestamps", "timestamp", "datetime", "date", "time")
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


def build_parser():
    parser = _ArgumentParser(
        prog="kronos-forecast",
        description="Forecast the next candles of a K-line CSV with Kronos; write the forecast as CSV and PNG.",
    )
    parser.add_argument("--csv", required=True, metavar="FILE",
                        help="history: columns timestamps, open, high, low, close[, volume, amount]")
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


def read_kline_csv(path):
    """
    Read and check a K-line CSV.

    Column names are matched case-insensitively; the time column may be called `timestamps` (upstream's name) or
    `timestamp`, `datetime`, `date`, `time`.

    Returns:
        `(frame, timestamps)`: the numeric columns (`open, high, low, close` and whichever of `volume, amount` the
        file has) as float64 with a `RangeIndex`, and the timestamps as a `pd.Series` of datetimes.

    Raises:
        `CliError` naming the file and the problem (missing file, no rows, missing columns, unparsable timestamps,
        non-numeric, missing or non-finite values with their row numbers, timestamps out of order, bad candles).
    """
    path = Path(path)
    if not path.exists():
        raise CliError(f"{path}: no such file")
    if path.is_dir():
        raise CliError(f"{path}: is a directory, not a CSV file")
    try:
        raw = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise CliError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise CliError(f"{path}: not a readable CSV file ({one_line(err)})") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    repeated = sorted({c for c in raw.columns if list(raw.columns).count(c) > 1})
    if repeated:
        raise CliError(f"{path}: column(s) {', '.join(repeated)} appear more than once (names are matched "
                       "case-insensitively)")
    if len(raw) == 0:
        raise CliError(f"{path}: the file has a header but no rows")

    time_column = next((c for c in TIMESTAMP_ALIASES if c in raw.columns), None)
    missing = ([] if time_column else ["timestamps"]) + [c for c in PRICE_COLUMNS if c not in raw.columns]
    if missing:
        raise CliError(
            f"{path}: missing column(s) {', '.join(missing)}; expected timestamps, open, high, low, close"
            f"[, volume, amount], found {', '.join(raw.columns)}"
        )

    try:
        stamps = _parse_timestamps(raw[time_column])
    except CliError as err:
        raise CliError(f"{path}: {err}") from None
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        raise CliError(
            f"{path}: unparsable timestamp {raw[time_column].iloc[row]!r} in data row {row + 1}"
            + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
        )
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_localize(None)
    order = stamps.diff().iloc[1:]
    if (order <= pd.Timedelta(0)).any():
        row = int(np.flatnonzero((order <= pd.Timedelta(0)).to_numpy())[0]) + 2
        raise CliError(
            f"{path}: timestamps must be strictly increasing; data row {row} ({stamps.iloc[row - 1]}) does not come "
            f"after the row before it ({stamps.iloc[row - 2]})"
        )

    columns = list(PRICE_COLUMNS) + [c for c in OPTIONAL_COLUMNS if c in raw.columns]
    frame = pd.DataFrame(index=pd.RangeIndex(len(raw)))
    for name in columns:
        values = pd.to_numeric(raw[name], errors="coerce")
        bad = np.flatnonzero(~np.isfinite(values.to_numpy(dtype=float)))
        if len(bad):
            row = int(bad[0])
            cell = raw[name].iloc[row]
            # the cell as the file has it: numbers pandas already parsed (e.g. 1e400 as inf) are shown as numbers
            shown = repr(cell) if isinstance(cell, str) else str(cell)
            what = "missing" if pd.isna(cell) else f"not a finite number ({shown})"
            raise CliError(
                f"{path}: column {name!r} is {what} in data row {row + 1}"
                + (f" (and {len(bad) - 1} more row{'s' if len(bad) > 2 else ''})" if len(bad) > 1 else "")
            )
        frame[name] = values.astype(float)
    inconsistent = (frame["high"] < frame[["open", "close"]].max(axis=1)) | (
        frame["low"] > frame[["open", "close"]].min(axis=1)
    )
    if inconsistent.any():
        rows = np.flatnonzero(inconsistent.to_numpy())
        raise CliError(
            f"{path}: data row {rows[0] + 1} has a high below its open or close, or a low above them"
            + (f" (and {len(rows) - 1} more)" if len(rows) > 1 else "") + "; are the columns in the right order?"
        )
    return frame, pd.Series(stamps.to_numpy(), name="timestamps")


# numeric time columns: (smallest, largest) value of the whole column → how to read it. The ranges do not overlap:
# 8-digit dates (1900-2199) and epoch counts from 1973 to 2286 in seconds, milliseconds, microseconds or nanoseconds
NUMERIC_TIMESTAMPS = (
    ((19_000_101, 21_991_231), {"format": "%Y%m%d"}, "YYYYMMDD dates"),
    ((1e8, 1e10), {"unit": "s"}, "seconds since 1970"),
    ((1e11, 1e13), {"unit": "ms"}, "milliseconds since 1970"),
    ((1e14, 1e16), {"unit": "us"}, "microseconds since 1970"),
    ((1e17, 1e19), {"unit": "ns"}, "nanoseconds since 1970"),
)


def _parse_numeric_timestamps(values):
    """A numeric time column read as YYYYMMDD dates or epoch counts (chosen from its range), or `CliError`."""
    numbers = values.to_numpy(dtype=float)
    finite = numbers[np.isfinite(numbers)]
    if len(finite) and (finite == np.round(finite)).all():
        low, high = finite.min(), finite.max()
        for (first, last), kwargs, _ in NUMERIC_TIMESTAMPS:
            if first <= low and high < last:
                if "format" in kwargs:
                    text = values.map(lambda v: f"{v:.0f}" if np.isfinite(v) else None)
                    return pd.to_datetime(text, errors="coerce", **kwargs)
                return pd.to_datetime(values, errors="coerce", **kwargs)
    described = ", ".join(what for _, _, what in NUMERIC_TIMESTAMPS)
    raise CliError(
        f"the time column holds numbers that are none of {described}; write the timestamps as dates "
        "(e.g. 2024-01-02 09:30)"
    )


def _parse_timestamps(values):
    """
    Datetimes of a CSV column, `NaT` where unparsable. pandas guesses one format from the first value, and reads
    `02/09/2024` month first; when that leaves values unparsed, day-first and per-value parsing are tried too and
    the reading that parses the most values wins. A numeric column holds YYYYMMDD dates or epoch counts (see
    `NUMERIC_TIMESTAMPS`).
    """
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return _parse_numeric_timestamps(values)
    best = None
    for kwargs in ({}, {"dayfirst": True}, {"format": "mixed"}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "could not infer format" and friends: the result is checked below
            try:
                stamps = pd.to_datetime(values, errors="coerce", **kwargs)
            except (TypeError, ValueError):
                continue
        if best is None or stamps.isna().sum() < best.isna().sum():
            best = stamps
        if not best.isna().any():
            break
    if best is None:  # every reading raised: pandas refuses a column that mixes UTC offsets
        raise CliError(
            "the timestamps mix UTC offsets (e.g. across a daylight-saving change); write them all in one zone, or "
            "as local times without an offset"
        )
    return best


def infer_future_timestamps(timestamps, pred_len):
    """
    The `pred_len` timestamps that follow `timestamps`, on the same bar length and trading calendar (see
    [`transformers_kronos.infer_future_timestamps`]); `CliError` when they cannot be inferred.
    """
    from .forecasting import infer_future_timestamps as infer

    if len(timestamps) < 3:
        raise CliError(f"need at least 3 timestamps to infer the future ones, got {len(timestamps)}")
    try:
        return infer(pd.DatetimeIndex(timestamps), pred_len)
    except ValueError as err:
        raise CliError(one_line(err).replace("; pass `y_timestamp`", "")) from None


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


def run(args, stdout=None, stderr=None):
    """Execute a parsed command line; returns the forecast frame. Raises `CliError` on bad input."""
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    output = Path(args.output).expanduser()
    plot = Path(args.plot).expanduser() if args.plot else None
    if plot is not None and plot.suffix.lower() not in (".png", ".jpg", ".jpeg", ".pdf", ".svg"):
        raise CliError(f"--plot {args.plot}: use a .png, .jpg, .pdf or .svg file name")
    # checked now, not after minutes of forecasting; the files written are the links' targets
    output = _check_target("--output", output)
    plot = _check_target("--plot", plot) if plot is not None else None
    if plot is not None and plot == output:
        raise CliError("--output and --plot name the same file")
    for name, target in (("--output", output), ("--plot", plot)):
        if target is not None and target.resolve() == Path(args.csv).expanduser().resolve():
            raise CliError(f"{name} would overwrite the input {args.csv}")

    frame, stamps = read_kline_csv(args.csv)
    if len(frame) < MIN_HISTORY:
        raise CliError(f"{args.csv}: the history has {len(frame)} candles; at least {MIN_HISTORY} are needed")
    if args.lookback is not None and len(frame) < args.lookback:
        raise CliError(f"{args.csv}: the history has {len(frame)} candles, fewer than --lookback {args.lookback}")
    future = infer_future_timestamps(stamps, args.pred_len)

    device = _resolve_device(args.device)
    forecaster, is_demo = load_forecaster(args.model, args.tokenizer, device, args.dtype)
    if is_demo:
        print(DEMO_NOTICE, file=stderr)
    max_context = forecaster.max_context
    if args.lookback is None:
        lookback = min(len(frame), DEFAULT_LOOKBACK, max_context)
    else:
        lookback = args.lookback
        if lookback > max_context:
            print(f"note: --lookback {lookback} is longer than the model's context; the last {max_context} candles "
                  "are used", file=stderr)

    context = frame.iloc[-lookback:].reset_index(drop=True)
    context_stamps = stamps.iloc[-lookback:].reset_index(drop=True)
    import torch

    torch.manual_seed(args.seed)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            samples = _sample_paths(forecaster, context, context_stamps, future, args)
    except (ValueError, TypeError) as err:  # the forecaster's own input checks
        raise CliError(f"{args.csv}: {one_line(err)}") from None
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)):
        print(f"kronos-forecast: warning: {args.csv}: {one_line(message)}", file=stderr)
    columns = list(context.columns)
    result = forecast_frame(samples, columns, future, args.quantiles)

    # write everything to temporary files first, move into place only when all of it worked; a failure leaves
    # neither them nor the folders made for them
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

            history = context.assign(timestamps=context_stamps.to_numpy())
            title = (
                f"{Path(args.csv).name}: {args.pred_len}-candle forecast, {args.samples} sample paths"
                + (" (DEMO model trained on synthetic data, not a pretrained Kronos)" if is_demo else "")
            )
            tmp_plot = temporary_sibling(plot)
            written.append(tmp_plot)
            plot_forecast(history, result, samples=samples[:, :, columns.index("close")], title=title, path=tmp_plot)
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
