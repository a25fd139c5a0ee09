# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Forecast speed and memory: upstream's `KronosPredictor` against `KronosForecaster` on the same weights.

Both run on a Kronos-small-sized predictor and a Kronos-Tokenizer-base-sized tokenizer with random weights (the
published configs; the speed does not depend on the values), written by upstream's own `save_pretrained` and loaded
by both sides, and timed in one process. Forecasts are greedy (`top_k=1`) so the two outputs can be compared;
sampling costs the same.

    python benchmarks/forecast_speed.py            # the three cases with bars (about 7 minutes on 2 cores)
    python benchmarks/forecast_speed.py --quick    # a smaller smoke run
    python benchmarks/forecast_speed.py --cases 1 --rounds 5   # case 1, five interleaved rounds, median speed-up
    python benchmarks/forecast_speed.py --cases 3 --batch-size 4   # the batch decoded four series at a time
    python benchmarks/forecast_speed.py --cases 4 --batch-size 8   # 32 sample paths of one series, 8 per pass
    python benchmarks/forecast_speed.py --no-onnx  # without the ONNX Runtime column

With onnxruntime, onnx and onnxscript installed (`pip install -e ".[onnx-export]"`), the same weights are also
exported to ONNX (conversion_scripts/export_onnx.py's graphs, about two minutes) and forecast by
`transformers_kronos.onnx.OnnxForecaster` on ONNX Runtime's CPU provider with as many threads: the "onnxrt" line of
each case and the table's ONNX Runtime column. Its memory is not measured.

Needs the upstream reference (`pip install --no-deps kronos-model-arch einops`, imported as `model`).

A virtual machine's speed drifts from minute to minute, and the two sides do not drift together (upstream's large
matrix products are compute-bound, our decoding steps bandwidth-bound). `--rounds N` times the two sides
alternately N times per case and reports the median speed-up and its range, which one round cannot show.

Peak memory is the largest resident-set growth during one call, sampled every millisecond from /proc. Each side and
case is measured in a fresh process of its own (after a short warm-up forecast of the same shape), because a
process's history decides how much of a call's memory the allocator can serve from pages it already holds: in one
process the same forecast measured anywhere from 7 to 56 MiB depending on what ran before it. Two numbers per side:
- "process": glibc as it comes, i.e. what a forecasting process actually adds. glibc raises its mmap threshold after
  large frees and then keeps freed tensors' pages in its heap, so a loop that allocates and frees large activations
  every step (upstream's) holds more than it uses at any one time; this number varies by 10% from run to run.
- "tensors": glibc's mmap threshold fixed at 128 KiB, so that every tensor of that size or more is mapped when
  allocated and unmapped when freed: close to the most memory the live tensors ever take.
Memory is not measured in the timed runs: the sampling thread competes for the interpreter lock and slowed the timed
call by 15-30%.
"""

import argparse
import ctypes
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import torch

from transformers_kronos.synthetic import generate_klines

# (name, lookback, pred_len, series, sample paths per series, bar): the bars are the ones the forecaster promises on
# 2 CPU threads. Case 4 has no bar and runs only when asked for (`--cases 4`): upstream takes minutes there.
CASES = [
    ("lookback 256, pred 120, 1 series", 256, 120, 1, 1, 20.0),
    ("lookback 400, pred 120, 1 series (window slides)", 400, 120, 1, 1, 5.0),
    ("8 series x lookback 256, pred 60", 256, 60, 8, 1, 15.0),
    ("lookback 256, pred 30, 1 series x 32 sample paths", 256, 30, 1, 32, None),
]
DEFAULT_CASES = 3
QUICK_CASES = [
    ("quick: lookback 64, pred 16, 1 series", 64, 16, 1, 1, None),
    ("quick: lookback 500, pred 20, 1 series (window slides)", 500, 20, 1, 1, None),
    ("quick: 4 series x lookback 64, pred 8", 64, 8, 4, 1, None),
    ("quick: lookback 64, pred 8, 1 series x 8 sample paths", 64, 8, 1, 8, None),
]

MODEL_CONFIG = dict(s1_bits=10, s2_bits=10, n_layers=8, d_model=512, n_heads=8, ff_dim=1024, ffn_dropout_p=0.25,
                    attn_dropout_p=0.1, resid_dropout_p=0.25, token_dropout_p=0.1, learn_te=True)
TOKENIZER_CONFIG = dict(d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4, n_dec_layers=4, ffn_dropout_p=0.0,
                        attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=10, s2_bits=10, beta=0.05, gamma0=1.0,
                        gamma=1.1, zeta=0.05, group_size=4)


def series_inputs(lookback, pred_len, count):
    out = []
    for i in range(count):
        frame = generate_klines(lookback + pred_len, seed=i)
        df, ts = frame.drop(columns=["timestamps", "amount"]), frame["timestamps"]
        out.append((df.iloc[:lookback], ts.iloc[:lookback].reset_index(drop=True), ts.iloc[lookback:].reset_index(drop=True)))
    return out


class PeakRSS:
    """Largest growth of the resident set size while the block runs (sampled every millisecond)."""

    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE")
        try:
            self.libc = ctypes.CDLL("libc.so.6")
        except OSError:
            self.libc = None

    def rss(self):
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def fix_mmap_threshold(self, size=128 * 1024):
        """Stop glibc from adapting its mmap threshold (M_MMAP_THRESHOLD is -3 in malloc.h): large tensors then
        leave and enter the resident set exactly when they are freed and allocated."""
        if self.libc is None or not self.libc.mallopt(-3, size):
            print("warning: could not fix glibc's mmap threshold; peak memory is approximate", file=sys.stderr)

    def __enter__(self):
        gc.collect()
        if self.libc is not None:
            self.libc.malloc_trim(0)
        self.base = self.peak = self.rss()
        self.running = True
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self):
        while self.running:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.rss())
        self.growth = self.peak - self.base


def timed(fn, repeats):
    """Best time over `repeats` runs, and the result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def load_sides(checkpoints, device):
    """Our forecaster and upstream's predictor on the upstream-format checkpoints in `checkpoints`."""
    import model as upstream

    from transformers_kronos import KronosForecaster

    model_dir, tokenizer_dir = os.path.join(checkpoints, "model"), os.path.join(checkpoints, "tokenizer")
    ours = KronosForecaster.from_pretrained(model_dir, tokenizer_dir, device=device)
    up_model = upstream.Kronos.from_pretrained(model_dir).eval()
    up_tok = upstream.KronosTokenizer.from_pretrained(tokenizer_dir).eval()
    return ours, upstream.KronosPredictor(up_model, up_tok, device=device, max_context=512)


def case_functions(ours, predictor, lookback, pred_len, count, paths=1, batch_size=None):
    """
    `(context frames, ours_fn(sliding="exact"), upstream_fn)`: one forecast of the case by each side, `paths` sample
    paths per series (greedy, so every path is the same and the two sides can be compared; each still costs a
    path's work); ours decodes at most `batch_size` paths per pass (`None`: all).
    """
    xs, x_tss, y_tss = (list(t) for t in zip(*series_inputs(lookback, pred_len, count)))
    options = dict(top_k=1, sample_count=paths, verbose=False)
    if count == 1:
        def ours_fn(sliding="exact"):
            return [ours.predict(xs[0], x_tss[0], y_tss[0], pred_len, sliding=sliding, batch_size=batch_size,
                                 **options)]

        def upstream_fn():
            return [predictor.predict(xs[0], x_tss[0], y_tss[0], pred_len, **options)]
    else:
        def ours_fn(sliding="exact"):
            return ours.predict_batch(xs, x_tss, y_tss, pred_len, sliding=sliding, batch_size=batch_size, **options)

        def upstream_fn():
            return predictor.predict_batch(xs, x_tss, y_tss, pred_len, **options)
    return xs, ours_fn, upstream_fn


def load_onnx_side(checkpoints, threads):
    """OnnxForecaster on the checkpoints exported to ONNX (under `checkpoints`), or None when ONNX is not installed."""
    try:
        from transformers_kronos.onnx import OnnxForecaster, quiet_session_options
        from transformers_kronos.onnx_export import export_checkpoint
    except ImportError as err:
        print(f"note: no ONNX Runtime column ({err}); pip install -e '.[onnx-export]'", file=sys.stderr)
        return None
    start = time.perf_counter()
    for name in ("model", "tokenizer"):
        export_checkpoint(os.path.join(checkpoints, name), os.path.join(checkpoints, f"onnx-{name}"))
    print(f"exported both networks to ONNX in {time.perf_counter() - start:.0f} s")
    options = quiet_session_options(threads)
    return OnnxForecaster(os.path.join(checkpoints, "onnx-model"), os.path.join(checkpoints, "onnx-tokenizer"),
                          max_context=512, session_options=options)


def memory_child(checkpoints, device, threads, side, allocator, lookback, pred_len, count, paths, batch_size):
    """The peak-memory measurement of one side and case (in a fresh process); prints the bytes as JSON."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_num_threads(threads)
    mem = PeakRSS()
    if allocator == "tensors":
        mem.fix_mmap_threshold()
    ours, predictor = load_sides(checkpoints, device)
    pick = 1 if side == "ours" else 2
    batch_size = batch_size or None  # 0 on the command line
    case_functions(ours, predictor, lookback, 2, count, paths, batch_size)[pick]()  # warm-up: same shapes, two steps
    fn = case_functions(ours, predictor, lookback, pred_len, count, paths, batch_size)[pick]
    with mem:
        fn()
    print(json.dumps({"peak": mem.growth}))


def measure_memory(checkpoints, args, side, allocator, lookback, pred_len, count, paths):
    """Run [`memory_child`] in a fresh interpreter and return its peak (bytes)."""
    command = [sys.executable, os.path.abspath(__file__), "--memory-child", checkpoints, side, allocator,
               str(lookback), str(pred_len), str(count), str(paths), str(args.batch_size or 0),
               "--threads", str(args.threads), "--device", args.device]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the memory measurement of {side} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])["peak"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller cases for a smoke run")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", default="cpu", help="device for both sides (default cpu)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of our forecaster per case (best is kept)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="interleaved upstream/ours rounds per case (the median is reported)")
    parser.add_argument("--cases", default=None,
                        help=f"comma-separated case numbers to run (1-{len(CASES)}; default 1-{DEFAULT_CASES})")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="our forecaster decodes at most N sample paths (series, for one path each) together "
                             "(default: all, as upstream)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime column (and its export)")
    parser.add_argument("--memory-child", nargs=8,
                        metavar=("CHECKPOINTS", "SIDE", "ALLOCATOR", "LOOKBACK", "PRED_LEN", "SERIES", "PATHS",
                                 "BATCH_SIZE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        checkpoints, side, allocator, *sizes = args.memory_child
        memory_child(checkpoints, args.device, args.threads, side, allocator, *map(int, sizes))
        return
    cases = QUICK_CASES if args.quick else CASES
    if min(args.rounds, args.repeats, args.batch_size or 1) < 1:
        print("error: --rounds, --repeats and --batch-size take a number of at least 1", file=sys.stderr)
        sys.exit(2)
    if args.cases:
        try:
            picked = [int(c) for c in args.cases.split(",")]
            if not all(1 <= c <= len(cases) for c in picked):
                raise ValueError
        except ValueError:
            print(f"error: --cases takes numbers between 1 and {len(cases)}, got {args.cases!r}", file=sys.stderr)
            sys.exit(2)
        cases = [cases[c - 1] for c in picked]
    elif not args.quick:
        cases = cases[:DEFAULT_CASES]

    try:
        import model as upstream
    except ImportError:
        print("error: the upstream reference is needed: pip install --no-deps kronos-model-arch einops", file=sys.stderr)
        sys.exit(2)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as checkpoints:
        upstream.Kronos(**MODEL_CONFIG).save_pretrained(os.path.join(checkpoints, "model"))
        upstream.KronosTokenizer(**TOKENIZER_CONFIG).save_pretrained(os.path.join(checkpoints, "tokenizer"))
        ours, predictor = load_sides(checkpoints, args.device)
        onnx_side = None if args.no_onnx else load_onnx_side(checkpoints, args.threads)
        run_cases(args, cases, ours, predictor, checkpoints, onnx_side)


def time_onnx(onnx_side, predictor, case, batch_size, repeats, t_up, got):
    """The ONNX Runtime line of a case; returns its time."""
    name, lookback, pred_len, count, paths, _ = case
    onnx_fn = case_functions(onnx_side, predictor, lookback, pred_len, count, paths, batch_size)[1]
    t_onnx, forecasts = timed(onnx_fn, repeats)
    diff = max(float(np.max(np.abs(a.to_numpy() - b.to_numpy()) / np.abs(b.to_numpy()).clip(1e-6)))
               for a, b in zip(forecasts, got))
    print(f"  onnxrt   {t_onnx:8.2f} s   speed-up {t_up / t_onnx:6.1f}x; max relative difference to ours {diff:.2e}")
    return t_onnx


def weight_stream_floor(model, steps):
    """
    `(seconds, bytes per step)`: every linear layer of the predictor applied to one row `steps` times, each through
    the fast path's split product (`few_row_linear`). One series' decoding step reads all of these weights once, so
    on CPU this bounds how fast its steps can be: the rest of the forecast (prompt, attention over the cache,
    sampling, tokenizer) comes on top.
    """
    from transformers_kronos.fast_decoding import few_row_linear, few_row_views

    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    views = [few_row_views(m.weight.detach(), None if m.bias is None else m.bias.detach()) for m in layers]
    rows = [torch.zeros(1, 1, m.in_features) for m in layers]
    step_bytes = sum(m.weight.numel() * m.weight.element_size() for m in layers)
    with torch.inference_mode():
        for x, v in zip(rows, views):
            few_row_linear(x, *v)
        start = time.perf_counter()
        for _ in range(steps):
            for x, v in zip(rows, views):
                few_row_linear(x, *v)
    return time.perf_counter() - start, step_bytes


def print_floor(ours, pred_len, bar, t_up):
    """For one series: what the weights alone take, against the time the bar allows."""
    seconds, step_bytes = weight_stream_floor(ours.model, pred_len - 1)
    allowed = "" if bar is None else f"; the bar allows ours {t_up / bar:.2f} s in all"
    print(f"  weights alone: {seconds:.2f} s for {pred_len - 1} steps ({step_bytes / 1e6:.0f} MB a step at "
          f"{step_bytes * (pred_len - 1) / seconds / 1e9:.1f} GB/s){allowed}")


def print_rounds(name, bar, rounds):
    """Print a case's timing rounds `[(upstream s, ours s), ...]`; returns their median times and speed-up."""
    ratios = sorted(up / ours for up, ours in rounds)
    t_up, t_ours = (float(np.median(side)) for side in zip(*rounds))
    ratio = float(np.median(ratios))
    verdict = "" if bar is None else (" (bar %.0fx: %s)" % (bar, "met" if ratio >= bar else "NOT met"))
    print(f"\n{name}")
    print(f"  upstream {t_up:8.2f} s")
    print(f"  ours     {t_ours:8.2f} s   speed-up {ratio:6.1f}x{verdict}")
    if len(rounds) > 1:
        met = "" if bar is None else f"; {sum(r >= bar for r in ratios)} of {len(ratios)} at or above the bar"
        print(f"  {len(rounds)} rounds: speed-up {ratios[0]:.1f}x to {ratios[-1]:.1f}x (median {ratio:.1f}x{met}); "
              f"upstream {min(r[0] for r in rounds):.2f}-{max(r[0] for r in rounds):.2f} s, "
              f"ours {min(r[1] for r in rounds):.2f}-{max(r[1] for r in rounds):.2f} s")
    return t_up, t_ours, ratio


def run_cases(args, cases, ours, predictor, checkpoints, onnx_side=None):
    """Time every case (printing as it goes), then measure its memory, then print the summary table."""
    params = sum(p.numel() for p in ours.model.parameters()) / 1e6
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{args.threads} threads, device {args.device}; predictor {params:.1f}M parameters, max_context 512"
          + (f"; ours decodes at most {args.batch_size} paths per pass" if args.batch_size else ""))
    # warm-up: first calls pay for allocator growth and kernel selection
    _, ours_fn, upstream_fn = case_functions(ours, predictor, 32, 4, 1)
    ours_fn()
    upstream_fn()

    rows = []
    for name, lookback, pred_len, count, paths, bar in cases:
        xs, ours_fn, upstream_fn = case_functions(ours, predictor, lookback, pred_len, count, paths, args.batch_size)
        rounds = []  # (upstream s, ours s), one pair per round, the two sides timed back to back
        for _ in range(args.rounds):
            t_ours, got = timed(ours_fn, args.repeats)
            t_up, expected = timed(upstream_fn, 1)
            rounds.append((t_up, t_ours))
        diff = max(float(np.max(np.abs(a.to_numpy() - b.to_numpy()) / np.abs(b.to_numpy()).clip(1e-6))) for a, b in zip(got, expected))
        t_up, t_ours, ratio = print_rounds(name, bar, rounds)
        print(f"  max relative difference of the forecasts: {diff:.2e}")
        if count * paths == 1 and args.device == "cpu":
            print_floor(ours, pred_len, bar, t_up)
        row = dict(case=name, upstream=t_up, ours=t_ours, ratio=ratio, diff=diff,
                   shape=(lookback, pred_len, count, paths))
        if onnx_side is not None:
            row["onnx"] = time_onnx(onnx_side, predictor, (name, lookback, pred_len, count, paths, bar),
                                    args.batch_size, args.repeats, t_up, got)
        if lookback + pred_len > 512:
            t_roll, rolled = timed(lambda: ours_fn("rolling"), args.repeats)
            scale = [float(x["close"].std()) for x in xs]
            dev = max(float(np.mean(np.abs(r["close"].to_numpy() - e["close"].to_numpy()))) / s for r, e, s in zip(rolled, got, scale))
            print(f"  rolling  {t_roll:8.2f} s  speed-up {t_up / t_roll:6.1f}x; mean |close - exact close| = {dev:.3f} "
                  "std of the context close")
            row.update(rolling=t_roll, rolling_dev=dev)
        rows.append(row)

    print("\npeak memory (resident-set growth during one call, each side in a fresh process; see the module doc)")
    for row in rows:
        shape = row.pop("shape")
        for allocator in ("process", "tensors"):
            mem = {side: measure_memory(checkpoints, args, side, allocator, *shape) / 2**20
                   for side in ("upstream", "ours")}
            row[allocator] = mem
            print(f"  {row['case']}, {allocator}: upstream +{mem['upstream']:.1f} MiB, ours +{mem['ours']:.1f} MiB")

    onnx_head, onnx_rule = (" ONNX Runtime (s) | speed-up |", "---:|---:|") if onnx_side is not None else ("", "")
    print(f"\n| case | upstream (s) | ours (s) | speed-up |{onnx_head} peak MiB, process: upstream / ours "
          "| peak MiB, tensors: upstream / ours |")
    print(f"|---|---:|---:|---:|{onnx_rule}---:|---:|")
    for r in rows:
        process, tensors = r["process"], r["tensors"]
        onnx_cells = f" {r['onnx']:.2f} | {r['upstream'] / r['onnx']:.1f}x |" if "onnx" in r else ""
        print(f"| {r['case']} | {r['upstream']:.2f} | {r['ours']:.2f} | {r['ratio']:.1f}x |{onnx_cells} "
              f"{process['upstream']:.0f} / {process['ours']:.0f} | "
              f"{tensors['upstream']:.0f} / {tensors['ours']:.0f} |")


if __name__ == "__main__":
    main()
