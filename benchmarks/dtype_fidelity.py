# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""How closely bfloat16 and float16 loads of Kronos track the float32 load, and what keeping modules in float32 buys.

For each published size (weights: the upstream initialisation, seeded; no trained weights are available here) the
checkpoint (1-d parameters perturbed off their constant init, see `perturb_vectors`) is saved once, then loaded with `dtype=torch.float32`, `torch.bfloat16` and `torch.float16`, each time
with a different set of modules kept in float32 (`_keep_in_fp32_modules_strict`, patterns on parameter names).
The inputs are candles from the project's synthetic K-line generator, normalised as the forecaster does; the
predictor sees the (random-init) tokenizer's tokens of them and their calendar stamps.

Predictor: cosine similarity of the s1 and s2 logit vectors to float32 (mean and worst position) and top-1
agreement (same arg-max), s2 teacher-forced on the next s1 so that both runs condition on the same token.
Tokenizer: agreement of the s1 and s2 ids from `encode`, and relative error of the reconstruction from `decode`.

Greedy decoding (`--greedy-device`, e.g. `cuda`): `generate_tokens` with `top_k=1` from the same prompts, float32
on the CPU against (a) the bfloat16 load on that device and, on a GPU, (b) `device_map="auto"` with the GPU's
`max_memory` set to half the weights, the rest offloaded to the CPU. Reported: the fraction of generated positions
whose (s1, s2) pair equals the float32 one, and the first step where a path diverges (after it, the contexts differ).

Usage: python benchmarks/dtype_fidelity.py [--sizes mini small base] [--length 256] [--output out/dtype_fidelity.json]
       [--greedy-device cpu|cuda] [--greedy-steps 32]
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from transformers_kronos import KronosConfig, KronosForTokenPrediction, KronosTokenizerConfig, KronosTokenizerModel
from transformers_kronos.synthetic import generate_klines

REFERENCE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "kronos_reference_configs.json")
FALLBACK_REFERENCE = "/work/shared/kronos_reference_configs.json"

# which modules to keep in float32: patterns searched in parameter names, as transformers matches them
PREDICTOR_VARIANTS = {
    "default": None,
    "none": [],
    "norms": ["norm"],
    "time_emb": ["time_emb"],
    "dep_layer": ["dep_layer"],
    "head": ["head"],
    "norms+head": ["norm", "head"],
}
TOKENIZER_VARIANTS = {
    "default": None,
    "none": [],
    "norms": ["norm"],
    "quant_embed": ["^quant_embed"],
    "norms+quant_embed": ["norm", "^quant_embed"],
}
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def load_reference():
    for path in (REFERENCE, FALLBACK_REFERENCE):
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                return json.load(f)
    raise FileNotFoundError("kronos_reference_configs.json not found")


def public(config):
    return {k: v for k, v in config.items() if not k.startswith("_")}


def candles(batch, length, seed=0):
    """Normalised candles `(batch, length, 6)` and stamps `(batch, length, 5)` from the synthetic generator."""
    xs, stamps = [], []
    for b in range(batch):
        frame = generate_klines(periods=length, seed=seed + b)
        values = frame[["open", "high", "low", "close", "volume", "amount"]].to_numpy(dtype=np.float64)
        values = (values - values.mean(0)) / (values.std(0) + 1e-5)
        xs.append(np.clip(values, -5, 5))
        ts = frame["timestamps"].dt
        stamps.append(np.stack([ts.minute, ts.hour, ts.dayofweek, ts.day, ts.month], axis=-1))
    return torch.tensor(np.stack(xs), dtype=torch.float32), torch.tensor(np.stack(stamps), dtype=torch.float32)


def perturb_vectors(model, seed=0):
    """Move every 1-d parameter (norm weights, biases) off its initial constant, as training does: a norm weight of
    exactly 1 is representable in every dtype and would hide what keeping it in float32 changes."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 1:
                param.add_(0.1 * torch.randn(param.shape, generator=generator))
    return model


def load(cls, path, dtype, keep):
    """Load with `keep` as the class's float32 patterns (None: the class's own default)."""
    default = cls.__dict__.get("_keep_in_fp32_modules_strict")
    if keep is not None:
        cls._keep_in_fp32_modules_strict = keep or None
    try:
        return cls.from_pretrained(path, dtype=dtype)
    finally:
        cls._keep_in_fp32_modules_strict = default


def logit_metrics(ref, low):
    ref, low = ref.float().flatten(0, -2), low.float().flatten(0, -2)
    cos = F.cosine_similarity(ref, low, dim=-1)
    top1 = (ref.argmax(-1) == low.argmax(-1)).float().mean()
    return {"cos_mean": cos.mean().item(), "cos_min": cos.min().item(), "top1": top1.item()}


@torch.no_grad()
def predictor_outputs(model, s1, s2, stamp):
    inputs, targets = (s1[:, :-1], s2[:, :-1], stamp[:, :-1]), s1[:, 1:]
    out = model(*inputs, use_teacher_forcing=True, s1_targets=targets)
    return out.s1_logits, out.s2_logits


@torch.no_grad()
def tokenizer_outputs(model, x):
    s1, s2 = model.encode(x, half=True)
    return s1, s2


@torch.no_grad()
def greedy_tokens(model, s1, s2, stamp, steps):
    """`generate_tokens` with `top_k=1` (the arg-max, whatever the generator) on the prompt's last positions."""
    prompt = s1.shape[1] - steps
    pair = model.generate_tokens(
        s1[:, :prompt], s2[:, :prompt], stamp[:, :prompt], stamp[:, prompt:], pred_len=steps, top_k=1
    )[:2]
    return torch.stack([t.cpu() for t in pair], dim=-1)  # (batch, steps, 2)


def greedy_agreement(path, s1, s2, stamp, steps, device):
    """Greedy (s1, s2) agreement of the bfloat16 load on `device` (and, on a GPU, a GPU+CPU split) with float32/CPU."""
    reference = greedy_tokens(KronosForTokenPrediction.from_pretrained(path), s1, s2, stamp, steps)
    runs = {f"bf16 on {device}": dict(dtype=torch.bfloat16, device_map=device)}
    if torch.device(device).type != "cpu":
        full = KronosForTokenPrediction.from_pretrained(path)
        half = sum(p.numel() * p.element_size() for p in full.parameters()) // 2
        index = torch.device(device).index or 0
        runs[f"fp32, device_map=auto, {device} holds half"] = dict(
            device_map="auto", max_memory={index: half, "cpu": 8 * half}
        )
        runs[f"bf16, device_map=auto, {device} holds half"] = dict(
            dtype=torch.bfloat16, device_map="auto", max_memory={index: half // 2, "cpu": 8 * half}
        )
    report = {}
    for name, kwargs in runs.items():
        model = KronosForTokenPrediction.from_pretrained(path, **kwargs)
        got = greedy_tokens(model, s1, s2, stamp, steps)
        same = (got == reference).all(-1)  # (batch, steps)
        diverged = [int((~row).nonzero()[0]) if (~row).any() else steps for row in same]
        report[name] = {
            "agreement": same.float().mean().item(),
            "first_divergence": diverged,
            "device_map": getattr(model, "hf_device_map", None),
        }
        print(f"greedy {name:40s} agreement={report[name]['agreement']:.4f} first divergence={diverged}", flush=True)
    return report


def parse_args(argv):
    """The arguments, or `None` after printing one line when they are unusable."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["mini", "small", "base"], choices=["mini", "small", "base"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--output", default="out/dtype_fidelity.json")
    parser.add_argument("--greedy-device", help="also compare greedy decoding on this device (cpu, cuda, cuda:1)")
    parser.add_argument("--greedy-steps", type=int, default=32)
    args = parser.parse_args(argv)
    if args.batch < 1 or args.length < 2:
        print("error: --batch must be >= 1 and --length >= 2", file=sys.stderr)
        return None
    if args.greedy_device is not None:
        if not 1 <= args.greedy_steps < args.length:
            print("error: --greedy-steps must be in [1, --length)", file=sys.stderr)
            return None
        try:
            device = torch.device(args.greedy_device)
            if device.type != "cpu":
                torch.empty(0, device=device)
        except (RuntimeError, AssertionError) as err:
            print(f"error: --greedy-device {args.greedy_device!r} is not usable here ({err})", file=sys.stderr)
            return None
    return args


def tokenizer_rows(reference, tmp, x):
    """The tokenizer at every dtype and variant against float32: `(rows, tokenizer folder, (s1, s2) of float32)`."""
    torch.manual_seed(0)
    tokenizer = KronosTokenizerModel(KronosTokenizerConfig(**public(reference["Kronos-Tokenizer-base"])))
    tokenizer = perturb_vectors(tokenizer).eval()
    tok_dir = os.path.join(tmp, "tokenizer")
    tokenizer.save_pretrained(tok_dir)
    ref_s1, ref_s2 = tokenizer_outputs(tokenizer, x)
    ref_recon = tokenizer.decode([ref_s1, ref_s2], half=True)
    rows = {}
    for dname, dtype in DTYPES.items():
        for vname, keep in TOKENIZER_VARIANTS.items():
            model = load(KronosTokenizerModel, tok_dir, dtype, keep)
            s1, s2 = tokenizer_outputs(model, x)
            with torch.no_grad():
                recon = model.decode([ref_s1, ref_s2], half=True).float()
            row = {
                "s1_agree": (s1 == ref_s1).float().mean().item(),
                "s2_agree": (s2 == ref_s2).float().mean().item(),
                "recon_rel_err": ((recon - ref_recon).norm() / ref_recon.norm()).item(),
            }
            rows[f"{dname}/{vname}"] = row
            print(f"tokenizer {dname:8s} keep={vname:18s} " + " ".join(f"{k}={v:.5f}" for k, v in row.items()), flush=True)
    return rows, (ref_s1, ref_s2)


def predictor_rows(reference, size, path, tokens, stamp):
    """One predictor size (saved to `path`) at every dtype and variant against float32."""
    torch.manual_seed(0)
    model = perturb_vectors(KronosForTokenPrediction(KronosConfig(**public(reference[f"Kronos-{size}"])))).eval()
    model.save_pretrained(path)
    ref = predictor_outputs(model, *tokens, stamp)
    del model
    rows = {}
    for dname, dtype in DTYPES.items():
        for vname, keep in PREDICTOR_VARIANTS.items():
            model = load(KronosForTokenPrediction, path, dtype, keep)
            start = time.perf_counter()
            low = predictor_outputs(model, *tokens, stamp)
            row = {"forward_s": time.perf_counter() - start}
            for name, r, l in zip(("s1", "s2"), ref, low):
                row.update({f"{name}_{k}": v for k, v in logit_metrics(r, l).items()})
            rows[f"{size}/{dname}/{vname}"] = row
            metrics = " ".join(f"{k}={v:.5f}" for k, v in row.items() if k != "forward_s")
            print(f"{size:5s} {dname:8s} keep={vname:11s} {metrics}", flush=True)
            del model
    return rows


def main(argv=None):
    args = parse_args(argv)
    if args is None:
        return 2

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    reference = load_reference()
    x, stamp = candles(args.batch, args.length)
    results = {"batch": args.batch, "length": args.length, "torch": torch.__version__, "tokenizer": {}, "predictor": {}}
    with tempfile.TemporaryDirectory() as tmp:
        results["tokenizer"], tokens = tokenizer_rows(reference, tmp, x)
        for size in args.sizes:
            path = os.path.join(tmp, size)
            results["predictor"].update(predictor_rows(reference, size, path, tokens, stamp))
            if args.greedy_device is not None:
                results.setdefault("greedy", {})[size] = greedy_agreement(
                    path, *tokens, stamp, args.greedy_steps, args.greedy_device
                )
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
