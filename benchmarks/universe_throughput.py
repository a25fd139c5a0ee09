# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Universe throughput: useful predictor work per second of `KronosForecaster.predict_batch`, against this machine's
fp32 matrix-multiply rate measured in the same run.

    python benchmarks/universe_throughput.py                   # 64 windows x 10 paths, lookback 400, 20 ahead
    python benchmarks/universe_throughput.py --windows 8       # a smaller smoke run

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
products on the same threads, measured before and after the forecast (their mean is the reference). Timings on a
shared machine are noisy; the script prints where the time goes (the tokenizer's encode and decode, the predictor's
decoding loop, and inside the loop the prompts' pass through the backbone, the paths' attention over their shared
prompt and the sampling) from one timed forecast after a warm-up.
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--paths", type=int, default=10)
    parser.add_argument("--lookback", type=int, default=400)
    parser.add_argument("--pred-len", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    rate_before = gemm_rate(args.threads)
    forecaster = build(max_context=512)
    frames = [generate_klines(args.lookback, seed=i) for i in range(args.windows)]
    contexts = [f.drop(columns="timestamps") for f in frames]
    stamps = [f["timestamps"] for f in frames]

    def forecast(count):
        generators = [torch.Generator().manual_seed(i) for i in range(count)]
        return forecaster.predict_batch(contexts[:count], stamps[:count], pred_len=args.pred_len,
                                        sample_count=args.paths, verbose=False, generator=generators)

    forecast(min(2, args.windows))  # warm-up: allocator, thread pool
    timers = {name: Timer(owner, method) for name, owner, method in (
        ("tokenizer encode", forecaster.tokenizer, "encode"),
        ("predictor decoding loop", forecaster.model, "generate_tokens"),
        ("tokenizer decode", forecaster, "_decode_window"))}
    # inside the decoding loop (module functions, looked up at call time by their callers)
    inner = {name: Timer(owner, method) for name, owner, method in (
        ("the prompts through the backbone", generation_kronos, "_encode_prompt"),
        ("attention over shared prompts", fast_decoding, "shared_prompt_attention"),
        ("sampling", generation_kronos, "sample_tokens"))}
    start, cpu_start = time.perf_counter(), time.process_time()
    forecast(args.windows)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start  # all threads; time the machine gave to other processes is not counted
    rate_after = gemm_rate(args.threads)
    # the machine's speed drifts (other processes): the rate around the forecast, and both ends shown
    rate = (rate_before + rate_after) / 2

    model, tokenizer = forecaster.model, forecaster.tokenizer
    prompts, generation = useful_flops(model, args.windows, args.paths, args.lookback, args.pred_len)
    useful = prompts + generation
    window = min(args.lookback + args.pred_len, max(forecaster.max_context, args.pred_len))
    encode = 2 * linear_macs(tokenizer, ("embed", "encoder.", "quant")) * args.windows * args.lookback
    decoder = 2 * linear_macs(tokenizer, ("decoder.", "head", "post_quant"))
    # the window's context part once per series, the generated candles once per path (tokenizer_decoding); of the
    # context's pass through the last decoder block only the keys and values are computed, and no head
    last = f"decoder.{len(tokenizer.decoder) - 1}."
    context_decoder = decoder - 2 * linear_macs(
        tokenizer, ("head", last + "self_attn.q_proj", last + "self_attn.out_proj", last + "ffn.")
    )
    if args.paths > 1 and window > args.pred_len:
        decode = args.windows * ((window - args.pred_len) * context_decoder + args.paths * args.pred_len * decoder)
    else:
        decode = decoder * args.windows * args.paths * window

    print(f"case: {args.windows} windows x {args.paths} paths, lookback {args.lookback}, {args.pred_len} ahead, "
          f"Kronos-small + Tokenizer-base sizes, {args.threads} threads")
    print(f"fp32 GEMM rate (2048^3, best of 5):       {rate:8.1f} GFLOP/s (before {rate_before:.1f}, after "
          f"{rate_after:.1f})")
    print(f"wall time:                                {wall:8.2f} s (CPU time {cpu:.2f} s on {args.threads} threads)")
    print(f"useful predictor work:                    {useful / 1e9:8.1f} GFLOP "
          f"(prompts {prompts / 1e9:.1f}, generation {generation / 1e9:.1f})")
    print(f"useful rate:                              {useful / wall / 1e9:8.1f} GFLOP/s = "
          f"{100 * useful / wall / 1e9 / rate:.1f}% of GEMM (bar: 50%)")
    print(f"tokenizer linear work (not counted):      encode {encode / 1e9:.1f} GFLOP, decode {decode / 1e9:.1f} GFLOP "
          f"(the last {window}-token window: its context once per series, the rest per path)")
    print("where the time goes:")
    accounted = 0.0
    for name, timer in timers.items():
        accounted += timer.total
        print(f"  {name:28s} {timer.total:8.2f} s  {100 * timer.total / wall:5.1f}%  ({timer.calls} calls)")
    print(f"  {'the rest (pandas, numpy)':28s} {wall - accounted:8.2f} s  {100 * (wall - accounted) / wall:5.1f}%")
    for name, timer in inner.items():
        print(f"    {name:34s} {timer.total:6.2f} s  {100 * timer.total / wall:5.1f}%  ({timer.calls} calls)")
    loop = timers["predictor decoding loop"].total
    print(f"predictor decoding loop alone: {useful / loop / 1e9:.1f} GFLOP/s = {100 * useful / loop / 1e9 / rate:.1f}% "
          "of GEMM")
    print(f"tokenizer decode rate: {decode / max(timers['tokenizer decode'].total, 1e-9) / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
