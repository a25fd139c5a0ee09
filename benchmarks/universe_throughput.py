# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Universe throughput: useful predictor work per second of `KronosForecaster.predict_batch`, against this machine's
fp32 matrix-multiply rate measured in the same run.

    python benchmarks/universe_throughput.py                   # 64 windows x 10 paths, lookback 400, 20 ahead
    python benchmarks/universe_throughput.py --windows 8       # a smaller smoke run
    python benchmarks/universe_throughput.py --repeats 5       # five timed forecasts: the median ratio

The case: a Kronos-small-sized predictor and a Kronos-Tokenizer-base-sized tokenizer with random weights (the
published configs, /work/shared/kronos_reference_configs.json; speed does not depend on the values), `--windows`
series of `--lookback` candles, `--paths` sample paths each, `--pred-len` candles ahead, on `--threads` threads.

Useful work is 2 x the multiply-adds of the predictor's linear layers that a forecast needs:
- the backbone (the embedding's fusion projection and the transformer blocks) over every prompt candle;
- per generated candle and path: the backbone, the dependency layer and both heads.
Attention's score products, the tokenizer and everything else are overhead by this definition. The tokenizer's
work is printed beside it, because it is not small: upstream decodes the whole last window of tokens for every path,
where the forecaster decodes the window's context once per series (`transformers_kronos.tokenizer_decoding`).

The bar (issue 19) is useful work / wall time >= 50% of the GEMM rate, which is the best of several 2048 x 2048 fp32
products on the same threads, measured before and after each timed forecast (their mean is that forecast's
reference). Timings on a shared machine are noisy: the same forecast takes 21-27 s from one minute to the next here,
so `--repeats N` times N forecasts after a warm-up and reports every run's ratio and their median. The script also
prints where the time goes (the tokenizer's encode and decode, the predictor's decoding loop, and inside the loop the
prompts' pass through the backbone, the paths' attention over their shared prompt and the sampling), per run.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from transformers_kronos import KronosConfig, KronosForecaster, KronosForTokenPrediction, KronosTokenizerConfig
from transformers_kronos import KronosTokenizerModel, fast_decoding, generation_kronos
from transformers_kronos.synthetic import generate_klines

REFERENCE_CONFIGS = Path("/work/shared/kronos_reference_configs.json")
# the published values, for machines without the shared file
KRONOS_SMALL = {"s1_bits": 10, "s2_bits": 10, "n_layers": 8, "d_model": 512, "n_heads": 8, "ff_dim": 1024,
                "ffn_dropout_p": 0.25, "attn_dropout_p": 0.1, "resid_dropout_p": 0.25, "token_dropout_p": 0.1,
                "learn_te": True}
TOKENIZER_BASE = {"d_in": 6, "d_model": 256, "n_heads": 4, "ff_dim": 512, "n_enc_layers": 4, "n_dec_layers": 4,
                  "ffn_dropout_p": 0.0, "attn_dropout_p": 0.0, "resid_dropout_p": 0.0, "s1_bits": 10, "s2_bits": 10,
                  "beta": 0.05, "gamma0": 1.0, "gamma": 1.1, "zeta": 0.05, "group_size": 4}


def published_configs():
    if REFERENCE_CONFIGS.is_file():
        configs = json.loads(REFERENCE_CONFIGS.read_text())
        strip = lambda c: {k: v for k, v in c.items() if not k.startswith("_")}  # noqa: E731
        return strip(configs["Kronos-small"]), strip(configs["Kronos-Tokenizer-base"])
    return KRONOS_SMALL, TOKENIZER_BASE


def linear_macs(module, prefixes):
    """Multiply-adds per position of the `nn.Linear`s of `module` whose names start with one of `prefixes`."""
    return sum(m.in_features * m.out_features for name, m in module.named_modules()
               if isinstance(m, torch.nn.Linear) and name.startswith(prefixes))


def synchronize(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def gemm_rate(threads: int | None = None, size: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """The best fp32 GFLOP/s of `size` x `size` products on `device` (on CPU, on `threads` threads)."""
    if threads is not None:
        torch.set_num_threads(threads)
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def useful_flops(model, windows: int, paths: int, lookback: int, pred_len: int) -> tuple[float, float]:
    """
    The useful predictor work of a forecast (see the module doc), as `(prompts, generation)` FLOPs: the backbone over
    `windows` prompts of `lookback` candles, and per generated candle of each of `paths` paths the backbone, the
    dependency layer and both heads.
    """
    backbone = linear_macs(model, ("embedding.fusion_proj", "transformer."))
    per_candle = backbone + linear_macs(model, ("dep_layer.",)) + linear_macs(model, ("head.",))
    return 2.0 * backbone * windows * lookback, 2.0 * per_candle * windows * paths * pred_len


class Timer:
    """Wall time spent inside a bound method, added up over calls."""

    def __init__(self, owner, name):
        self.total, self.calls = 0.0, 0
        self.inner = getattr(owner, name)
        setattr(owner, name, self)

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.total += time.perf_counter() - start
            self.calls += 1


def build(max_context):
    model_config, tokenizer_config = published_configs()
    torch.manual_seed(0)
    model = KronosForTokenPrediction(KronosConfig(**model_config, max_context=max_context))
    tokenizer = KronosTokenizerModel(KronosTokenizerConfig(**tokenizer_config))
    return KronosForecaster(model, tokenizer, device="cpu")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--paths", type=int, default=10)
    parser.add_argument("--lookback", type=int, default=400)
    parser.add_argument("--pred-len", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed forecasts, each between two GEMM measurements; the median ratio is the result")
    args = parser.parse_args()
    if min(args.windows, args.paths, args.lookback, args.pred_len, args.threads, args.repeats) < 1:
        parser.error("--windows, --paths, --lookback, --pred-len, --threads and --repeats must be positive")
    return args


def install_timers(forecaster):
    """Timers on the forecast's parts: `(outer, inner)`, each `{name: Timer}` (inner = inside the decoding loop)."""
    outer = {name: Timer(owner, method) for name, owner, method in (
        ("tokenizer encode", forecaster.tokenizer, "encode"),
        ("predictor decoding loop", forecaster.model, "generate_tokens"),
        ("tokenizer decode", forecaster, "_decode_window"))}
    # module functions, looked up at call time by their callers
    inner = {name: Timer(owner, method) for name, owner, method in (
        ("the prompts through the backbone", generation_kronos, "_encode_prompt"),
        ("attention over shared prompts", fast_decoding, "shared_prompt_attention"),
        ("sampling", generation_kronos, "sample_tokens"))}
    return outer, inner


def timed_runs(forecast, args) -> list[dict]:
    """
    `args.repeats` timed forecasts of every window, with the GEMM rate measured before the first and after each: a
    run's reference is the mean of the rates on either side of it, since the machine's speed drifts with other
    processes.
    """
    rates, runs = [gemm_rate(args.threads)], []
    for _ in range(args.repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        forecast(args.windows)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_start  # all threads; time given to other processes is not counted
        rates.append(gemm_rate(args.threads))
        runs.append({"wall": wall, "cpu": cpu, "before": rates[-2], "after": rates[-1],
                     "rate": (rates[-2] + rates[-1]) / 2})
    return runs


def tokenizer_flops(tokenizer, args, window: int) -> tuple[float, float]:
    """The tokenizer's linear work `(encode, decode)` in FLOPs, as the forecaster runs it (not counted as useful)."""
    encode = 2 * linear_macs(tokenizer, ("embed", "encoder.", "quant")) * args.windows * args.lookback
    decoder = 2 * linear_macs(tokenizer, ("decoder.", "head", "post_quant"))
    # the window's context part once per series, the generated candles once per path (tokenizer_decoding); of the
    # context's pass through the last decoder block only the keys and values are computed, and no head
    last = f"decoder.{len(tokenizer.decoder) - 1}."
    context_decoder = decoder - 2 * linear_macs(
        tokenizer, ("head", last + "self_attn.q_proj", last + "self_attn.out_proj", last + "ffn.")
    )
    if args.paths > 1 and window > args.pred_len:
        return encode, args.windows * ((window - args.pred_len) * context_decoder + args.paths * args.pred_len * decoder)
    return encode, decoder * args.windows * args.paths * window


def report_runs(args, runs: list[dict], prompts: float, generation: float) -> None:
    """Print the case, the work, every run's rate and the median share of the GEMM rate."""
    useful = prompts + generation
    print(f"case: {args.windows} windows x {args.paths} paths, lookback {args.lookback}, {args.pred_len} ahead, "
          f"Kronos-small + Tokenizer-base sizes, {args.threads} threads")
    print(f"useful predictor work:                    {useful / 1e9:8.1f} GFLOP "
          f"(prompts {prompts / 1e9:.1f}, generation {generation / 1e9:.1f})")
    shares = [100 * useful / run["wall"] / 1e9 / run["rate"] for run in runs]
    for index, (run, share) in enumerate(zip(runs, shares), 1):
        print(f"run {index}: fp32 GEMM rate (2048^3, best of 5) {run['rate']:6.1f} GFLOP/s (before {run['before']:.1f}, "
              f"after {run['after']:.1f}); wall {run['wall']:6.2f} s (CPU time {run['cpu']:.2f} s); useful rate "
              f"{useful / run['wall'] / 1e9:5.1f} GFLOP/s = {share:.1f}% of GEMM")
    print(f"useful rate, median of {len(runs)} run(s):     {float(np.median(shares)):8.1f}% of GEMM (bar: 50%)")


def report_parts(outer: dict, inner: dict, runs: list[dict], useful: float, decode: float) -> None:
    """Where a run's time goes (the timers' totals over the runs, per run), and the loop's and the decode's rates."""
    count = len(runs)
    wall = sum(run["wall"] for run in runs) / count
    rate = sum(run["rate"] for run in runs) / count
    print(f"where the time goes (per run, mean of {count}):")
    accounted = 0.0
    for name, timer in outer.items():
        spent = timer.total / count
        accounted += spent
        print(f"  {name:28s} {spent:8.2f} s  {100 * spent / wall:5.1f}%  ({timer.calls // count} calls)")
    print(f"  {'the rest (pandas, numpy)':28s} {wall - accounted:8.2f} s  {100 * (wall - accounted) / wall:5.1f}%")
    for name, timer in inner.items():
        spent = timer.total / count
        print(f"    {name:34s} {spent:6.2f} s  {100 * spent / wall:5.1f}%  ({timer.calls // count} calls)")
    loop = outer["predictor decoding loop"].total / count
    print(f"predictor decoding loop alone: {useful / loop / 1e9:.1f} GFLOP/s = {100 * useful / loop / 1e9 / rate:.1f}% "
          "of GEMM")
    print(f"tokenizer decode rate: {decode / max(outer['tokenizer decode'].total / count, 1e-9) / 1e9:.1f} GFLOP/s")


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    forecaster = build(max_context=512)
    frames = [generate_klines(args.lookback, seed=i) for i in range(args.windows)]
    contexts = [f.drop(columns="timestamps") for f in frames]
    stamps = [f["timestamps"] for f in frames]

    def forecast(count):
        generators = [torch.Generator().manual_seed(i) for i in range(count)]
        return forecaster.predict_batch(contexts[:count], stamps[:count], pred_len=args.pred_len,
                                        sample_count=args.paths, verbose=False, generator=generators)

    forecast(min(2, args.windows))  # warm-up: allocator, thread pool
    outer, inner = install_timers(forecaster)
    runs = timed_runs(forecast, args)

    prompts, generation = useful_flops(forecaster.model, args.windows, args.paths, args.lookback, args.pred_len)
    window = min(args.lookback + args.pred_len, max(forecaster.max_context, args.pred_len))
    encode, decode = tokenizer_flops(forecaster.tokenizer, args, window)
    report_runs(args, runs, prompts, generation)
    print(f"tokenizer linear work (not counted):      encode {encode / 1e9:.1f} GFLOP, decode {decode / 1e9:.1f} GFLOP "
          f"(the last {window}-token window: its context once per series, the rest per path)")
    report_parts(outer, inner, runs, prompts + generation, decode)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
