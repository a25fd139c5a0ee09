# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""One GPU check: parity, half precision, device_map="auto" and forecast speed, printed as one table.

On a Kronos-small-sized predictor and a Kronos-Tokenizer-base-sized tokenizer with random weights (written by
upstream's own `save_pretrained`, loaded by both sides), greedy forecasts so the sides can be compared:

1. parity: our fp32 forecast on the device against our fp32 forecast on CPU;
2. bf16 and fp16 forecasts on the device against fp32 there;
3. `device_map="auto"` over every visible GPU against the single-device fp32 forecast;
4. forecast speed for the three benchmark cases and a batch of 256 series: upstream's `KronosPredictor`, ours eager,
   ours with `compile=True` (the decoding step compiled once, CUDA graphs on CUDA);
5. with onnxruntime (on a GPU, the `onnxruntime-gpu` package, whose CUDA execution provider is then used), the same
   weights exported to ONNX and forecast by `OnnxForecaster`: its forecast against ours in fp32 and its speed per
   case (`--no-onnx` skips it; so does a machine whose onnxruntime lacks the device's provider, with a note).

    python benchmarks/gpu_check.py                       # on cuda, about 5 minutes on one GPU
    python benchmarks/gpu_check.py --device cpu --quick  # a small smoke run that the script works (no GPU needed)

Needs the upstream reference (`pip install --no-deps kronos-model-arch einops`, imported as `model`).
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from forecast_speed import MODEL_CONFIG, TOKENIZER_CONFIG, series_inputs  # noqa: E402

CASES = [
    ("lookback 256, pred 120, 1 series", 256, 120, 1),
    ("lookback 400, pred 120, 1 series (window slides)", 400, 120, 1),
    ("8 series x lookback 256, pred 60", 256, 60, 8),
    ("256 series x lookback 256, pred 60", 256, 60, 256),
]
QUICK_CASES = [("quick: lookback 32, pred 4, 1 series", 32, 4, 1), ("quick: 3 series x lookback 32, pred 4", 32, 4, 3)]
QUICK_MODEL = dict(MODEL_CONFIG, n_layers=2, d_model=64, n_heads=4, ff_dim=128)
QUICK_TOKENIZER = dict(TOKENIZER_CONFIG, d_model=32, n_heads=2, ff_dim=64, n_enc_layers=2, n_dec_layers=2)


def write_checkpoints(folder: str, quick: bool) -> tuple[str, str]:
    """Upstream-format checkpoints of random models, as upstream's `save_pretrained` writes them."""
    import model as upstream

    torch.manual_seed(0)
    paths = os.path.join(folder, "model"), os.path.join(folder, "tokenizer")
    upstream.Kronos(**(QUICK_MODEL if quick else MODEL_CONFIG)).save_pretrained(paths[0])
    upstream.KronosTokenizer(**(QUICK_TOKENIZER if quick else TOKENIZER_CONFIG)).save_pretrained(paths[1])
    return paths


def forecast(forecaster, lookback: int, pred_len: int, count: int) -> np.ndarray:
    """Greedy forecasts of `count` synthetic series, stacked `(count, pred_len, 6)`."""
    xs, x_tss, y_tss = (list(t) for t in zip(*series_inputs(lookback, pred_len, count)))
    frames = forecaster.predict_batch(xs, x_tss, y_tss, pred_len, top_k=1, verbose=False)
    return np.stack([frame.to_numpy() for frame in frames])


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """Largest absolute difference over the forecast's scale."""
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int = 2) -> tuple[float, object]:
    """Best time of `repeats` runs after one warm-up (which also pays any compilation), and the last result."""
    result = fn()
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        result = fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best, result


def accuracy_rows(paths, device: str, quick: bool) -> list[tuple[str, str]]:
    """Parity against CPU, half precision against fp32, device_map="auto" against one device."""
    from transformers_kronos import KronosForecaster

    lookback, pred_len, count = (32, 4, 2) if quick else (256, 24, 4)
    fp32 = forecast(KronosForecaster.from_pretrained(*paths, device=device), lookback, pred_len, count)
    cpu = forecast(KronosForecaster.from_pretrained(*paths, device="cpu"), lookback, pred_len, count)
    rows = [(f"fp32 {device} vs fp32 cpu (max rel. diff)", f"{relative_error(fp32, cpu):.2e}")]
    for dtype in (torch.bfloat16, torch.float16):
        half = forecast(KronosForecaster.from_pretrained(*paths, device=device, dtype=dtype), lookback, pred_len, count)
        rows.append((f"{str(dtype)[6:]} vs fp32 on {device} (max rel. diff)", f"{relative_error(half, fp32):.2e}"))
    gpus = torch.cuda.device_count() if device.startswith("cuda") else 0
    if gpus:
        spread = KronosForecaster.from_pretrained(*paths, device_map="auto")
        devices = sorted({str(d) for d in getattr(spread.model, "hf_device_map", {"": device}).values()})
        auto = forecast(spread, lookback, pred_len, count)
        rows.append((f'device_map="auto" over {gpus} GPU(s) {devices} vs one device', f"{relative_error(auto, fp32):.2e}"))
    else:
        rows.append(('device_map="auto"', "skipped: no GPU visible"))
    return rows


def speed_rows(paths, device: str, quick: bool) -> list[tuple[str, str]]:
    """Seconds per forecast for each case: upstream, ours eager, ours compiled (and its forecasts against eager's)."""
    import model as upstream

    from transformers_kronos import KronosForecaster

    up_model = upstream.Kronos.from_pretrained(paths[0]).eval()
    up_tok = upstream.KronosTokenizer.from_pretrained(paths[1]).eval()
    predictor = upstream.KronosPredictor(up_model, up_tok, device=device, max_context=512)
    eager = KronosForecaster.from_pretrained(*paths, device=device)
    compiled = KronosForecaster.from_pretrained(*paths, device=device, compile=True)
    rows = []
    for name, lookback, pred_len, count in QUICK_CASES if quick else CASES:
        xs, x_tss, y_tss = (list(t) for t in zip(*series_inputs(lookback, pred_len, count)))
        options = dict(top_k=1, verbose=False)
        up, _ = timed(lambda: predictor.predict_batch(xs, x_tss, y_tss, pred_len, **options), device)
        ours, want = timed(lambda: eager.predict_batch(xs, x_tss, y_tss, pred_len, **options), device)
        fast, got = timed(lambda: compiled.predict_batch(xs, x_tss, y_tss, pred_len, **options), device)
        diff = relative_error(*(np.stack([frame.to_numpy() for frame in frames]) for frames in (got, want)))
        rows.append((name, f"upstream {up:.2f} s | ours {ours:.2f} s ({up / ours:.1f}x) | compiled {fast:.2f} s "
                           f"({up / fast:.1f}x; max rel. diff to eager {diff:.1e})"))
    return rows


def onnx_provider(device: str) -> tuple[str | None, str]:
    """ONNX Runtime's execution provider for `device`, or `None` and why it is not there."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime as ort
    except ImportError as err:
        return None, f"skipped: {err} (pip install onnxruntime onnx onnxscript, or onnxruntime-gpu)"
    provider = "CUDAExecutionProvider" if device.startswith("cuda") else "CPUExecutionProvider"
    if provider not in ort.get_available_providers():
        return None, f"skipped: this onnxruntime has no {provider} (install onnxruntime-gpu)"
    return provider, ""


def export_both(paths, folder: str) -> tuple[str, str]:
    """The predictor and tokenizer at `paths` exported to ONNX under `folder`."""
    from transformers_kronos.onnx_export import export_checkpoint

    exported = tuple(os.path.join(folder, f"onnx-{os.path.basename(p)}") for p in paths)
    for path, out in zip(paths, exported):
        export_checkpoint(path, out)
    return exported


def onnx_rows(paths, exported, device: str, provider: str, quick: bool) -> list[tuple[str, str]]:
    """`OnnxForecaster` on `provider` over the `exported` graphs of `paths`: parity with our fp32 forecast, and speed."""
    from transformers_kronos import KronosForecaster
    from transformers_kronos.onnx import OnnxForecaster

    providers = [provider] + (["CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [])
    onnx = OnnxForecaster(*exported, max_context=512, providers=providers)
    lookback, pred_len, count = (32, 4, 2) if quick else (256, 24, 4)
    want = forecast(KronosForecaster.from_pretrained(*paths, device=device, max_context=512), lookback, pred_len, count)
    got = forecast(onnx, lookback, pred_len, count)
    rows = [(f"ONNX Runtime ({provider}) vs ours fp32 on {device} (max rel. diff)", f"{relative_error(got, want):.2e}")]
    for name, lookback, pred_len, count in QUICK_CASES if quick else CASES:
        xs, x_tss, y_tss = (list(t) for t in zip(*series_inputs(lookback, pred_len, count)))
        seconds, _ = timed(lambda: onnx.predict_batch(xs, x_tss, y_tss, pred_len, top_k=1, verbose=False), device)
        rows.append((f"{name}, ONNX Runtime", f"{seconds:.2f} s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="device to check (default cuda)")
    parser.add_argument("--quick", action="store_true", help="tiny models and cases: a smoke run that the script works")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime rows (and their export)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: no CUDA device here; use --device cpu --quick for a smoke run")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_checkpoints(folder, args.quick)
        rows = accuracy_rows(paths, args.device, args.quick) + speed_rows(paths, args.device, args.quick)
        if not args.no_onnx:
            provider, why_not = onnx_provider(args.device)
            if provider is None:
                rows.append(("ONNX Runtime", why_not))
            else:
                rows += onnx_rows(paths, export_both(paths, folder), args.device, provider, args.quick)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"\n| check ({name}, torch {torch.__version__}) | result |\n| --- | --- |")
    for check, result in rows:
        print(f"| {check} | {result} |")
    print(f"\n{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
