# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Forecast speed and memory: upstream's `KronosPredictor` against `KronosForecaster`, same weights, same process.

Both run on a Kronos-small-sized predictor and a Kronos-Tokenizer-base-sized tokenizer with random weights (the
published configs; the speed does not depend on the values), written by upstream's own `save_pretrained` and loaded
by both sides. Forecasts are greedy (`top_k=1`) so the two outputs can be compared; sampling costs the same.

    python benchmarks/forecast_speed.py            # the three cases of docs/forecasting.md (a few minutes on 2 cores)
    python benchmarks/forecast_speed.py --quick    # a smaller smoke run

Needs the upstream reference (`pip install --no-deps kronos-model-arch einops`, imported as `model`).
Peak memory is the largest resident-set growth during the call, sampled every millisecond from /proc (after
returning freed heap to the system first, so that neither side profits from the other's freed memory). It is taken
in a separate run: the sampling thread competes for the interpreter lock and slowed the timed call by 15-30%.
"""

import argparse
import ctypes
import gc
import os
import platform
import sys
import tempfile
import threading
import time

import numpy as np
import torch

from transformers_kronos.synthetic import generate_klines

# (name, lookback, pred_len, series, bar): the bars are the ones the forecaster promises on 2 CPU threads
CASES = [
    ("lookback 256, pred 120, 1 series", 256, 120, 1, 20.0),
    ("lookback 400, pred 120, 1 series (window slides)", 400, 120, 1, 5.0),
    ("8 series x lookback 256, pred 60", 256, 60, 8, 15.0),
]
QUICK_CASES = [
    ("quick: lookback 64, pred 16, 1 series", 64, 16, 1, None),
    ("quick: lookback 500, pred 20, 1 series (window slides)", 500, 20, 1, None),
    ("quick: 4 series x lookback 64, pred 8", 64, 8, 4, None),
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


def run(fn, repeats, memory=True):
    """Best time over `repeats` runs, the result, and (one more run) the peak memory growth, or `None`."""
    best, result = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    if not memory:
        return best, result, None
    with PeakRSS() as mem:
        fn()
    return best, result, mem.growth


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller cases for a smoke run")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", default="cpu", help="device for both sides (default cpu)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of our forecaster per case (best is kept)")
    parser.add_argument("--cases", default=None, help="comma-separated case numbers to run (1-based; default all)")
    args = parser.parse_args()
    cases = QUICK_CASES if args.quick else CASES
    if args.cases:
        try:
            picked = [int(c) for c in args.cases.split(",")]
            if not all(1 <= c <= len(cases) for c in picked):
                raise ValueError
        except ValueError:
            print(f"error: --cases takes numbers between 1 and {len(cases)}, got {args.cases!r}", file=sys.stderr)
            sys.exit(2)
        cases = [cases[c - 1] for c in picked]

    try:
        import model as upstream
    except ImportError:
        print("error: the upstream reference is needed: pip install --no-deps kronos-model-arch einops", file=sys.stderr)
        sys.exit(2)
    from transformers.utils import logging as hf_logging

    from transformers_kronos import KronosForecaster

    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    up_model = upstream.Kronos(**MODEL_CONFIG).eval()
    up_tok = upstream.KronosTokenizer(**TOKENIZER_CONFIG).eval()
    with tempfile.TemporaryDirectory() as tmp:
        up_model.save_pretrained(os.path.join(tmp, "model"))
        up_tok.save_pretrained(os.path.join(tmp, "tokenizer"))
        ours = KronosForecaster.from_pretrained(os.path.join(tmp, "model"), os.path.join(tmp, "tokenizer"), device=args.device)
    predictor = upstream.KronosPredictor(up_model, up_tok, device=args.device, max_context=512)
    params = sum(p.numel() for p in ours.model.parameters()) / 1e6

    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{args.threads} threads, device {args.device}; predictor {params:.1f}M parameters, max_context 512")
    # warm-up: first calls pay for allocator growth and kernel selection
    (x, x_ts, y_ts), = series_inputs(32, 4, 1)
    ours.predict(x, x_ts, y_ts, 4, top_k=1, verbose=False)
    predictor.predict(x, x_ts, y_ts, 4, top_k=1, verbose=False)

    rows = []
    for name, lookback, pred_len, count, bar in cases:
        inputs = series_inputs(lookback, pred_len, count)
        xs, x_tss, y_tss = (list(t) for t in zip(*inputs))
        if count == 1:
            def ours_fn(sliding="exact"):
                return [ours.predict(xs[0], x_tss[0], y_tss[0], pred_len, top_k=1, verbose=False, sliding=sliding)]

            def upstream_fn():
                return [predictor.predict(xs[0], x_tss[0], y_tss[0], pred_len, top_k=1, verbose=False)]
        else:
            def ours_fn(sliding="exact"):
                return ours.predict_batch(xs, x_tss, y_tss, pred_len, top_k=1, verbose=False, sliding=sliding)

            def upstream_fn():
                return predictor.predict_batch(xs, x_tss, y_tss, pred_len, top_k=1, verbose=False)

        t_ours, got, m_ours = run(ours_fn, args.repeats)
        t_up, expected, m_up = run(upstream_fn, 1)
        diff = max(float(np.max(np.abs(a.to_numpy() - b.to_numpy()) / np.abs(b.to_numpy()).clip(1e-6))) for a, b in zip(got, expected))
        ratio = t_up / t_ours
        verdict = "" if bar is None else (" (bar %.0fx: %s)" % (bar, "met" if ratio >= bar else "NOT met"))
        print(f"\n{name}")
        print(f"  upstream {t_up:8.2f} s  peak +{m_up / 2**20:7.1f} MiB")
        print(f"  ours     {t_ours:8.2f} s  peak +{m_ours / 2**20:7.1f} MiB   speed-up {ratio:6.1f}x{verdict}")
        print(f"  max relative difference of the forecasts: {diff:.2e}")
        row = dict(case=name, upstream=t_up, ours=t_ours, ratio=ratio, mem_up=m_up, mem_ours=m_ours, diff=diff)
        if lookback + pred_len > 512:
            t_roll, rolled, _ = run(lambda: ours_fn("rolling"), args.repeats, memory=False)
            scale = [float(x["close"].std()) for x in xs]
            dev = max(float(np.mean(np.abs(r["close"].to_numpy() - e["close"].to_numpy()))) / s for r, e, s in zip(rolled, got, scale))
            print(f"  rolling  {t_roll:8.2f} s  speed-up {t_up / t_roll:6.1f}x; mean |close - exact close| = {dev:.3f} "
                  "std of the context close")
            row.update(rolling=t_roll, rolling_dev=dev)
        rows.append(row)

    print("\n| case | upstream (s) | ours (s) | speed-up | peak memory upstream / ours (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['upstream']:.2f} | {r['ours']:.2f} | {r['ratio']:.1f}x | "
              f"{r['mem_up'] / 2**20:.0f} / {r['mem_ours'] / 2**20:.0f} |")


if __name__ == "__main__":
    main()
