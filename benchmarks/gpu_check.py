# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""One GPU check: parity, half precision, device_map="auto" and forecast speed, printed as one table.

On a Kronos-small-sized predictor and a Kronos-Tokenizer-base-sized tokenizer with random weights (written by
upstream's own `save_pretrained`, loaded by both sides), greedy forecasts so the sides can be compared:

1. parity: our fp32 forecast on the device against our fp32 forecast on CPU;
2. bf16 and fp16 forecasts on the device against fp32 there;
3. `device_map="auto"` over every visible GPU against the single-device fp32 forecast;
4. forecast speed for the three benchmark cases and a batch of 256 series: upstream's `KronosPredictor`, ours eager,
   ours with `compile=True` (the decoding step compiled once, CUDA graphs on CUDA);
5. whole markets (issue 19): 256 and 5,000 series x 10 sample paths, lookback 400, 20 ahead, each series drawn
   from its own generator as `kronos-forecast --output-dir` draws them: wall time, series per second, and the useful
   predictor work per second (as `benchmarks/universe_throughput.py` counts it) against the device's fp32 matrix
   product rate measured in the same run;
6. with onnxruntime (on a GPU, the `onnxruntime-gpu` package, whose CUDA execution provider is then used), the same
   weights exported to ONNX and forecast by `OnnxForecaster`: its forecast against ours in fp32 and its speed per
   case (`--no-onnx` skips it; so does a machine whose onnxruntime lacks the device's provider, with a note).

    python benchmarks/gpu_check.py                       # on cuda: a few minutes on one GPU (not yet timed)
    python benchmarks/gpu_check.py --device cpu --quick  # a small smoke run that the script works (no GPU needed)
    PYTHONPATH=src python benchmarks/gpu_check.py --output gpu_check.md  # from a checkout, the table kept in a file

Every row is printed (and, with `--output`, the table rewritten) as soon as it is measured, so a run stopped at a
time limit keeps what it measured. Needs the upstream reference (`pip install --no-deps kronos-model-arch einops`,
imported as `model`).
"""

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from forecast_speed import MODEL_CONFIG, TOKENIZER_CONFIG, series_inputs  # noqa: E402
from universe_throughput import gemm_rate, synchronize, useful_flops  # noqa: E402

CASES = [
    ("lookback 256, pred 120, 1 series", 256, 120, 1),
    ("lookback 400, pred 120, 1 series (window slides)", 400, 120, 1),
    ("8 series x lookback 256, pred 60", 256, 60, 8),
    ("256 series x lookback 256, pred 60", 256, 60, 256),
]
QUICK_CASES = [("quick: lookback 32, pred 4, 1 series", 32, 4, 1), ("quick: 3 series x lookback 32, pred 4", 32, 4, 3)]
# (series, sample paths, lookback, pred_len, paths decoded together): issue 19's market sizes
UNIVERSE_CASES = [(256, 10, 400, 20, None), (5000, 10, 400, 20, 10_000)]
QUICK_UNIVERSE_CASES = [(3, 2, 32, 4, None)]
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


def accuracy_rows(paths, device: str, quick: bool) -> Iterator[tuple[str, str]]:
    """Parity against CPU, half precision against fp32, device_map="auto" against one device."""
    from transformers_kronos import KronosForecaster

    lookback, pred_len, count = (32, 4, 2) if quick else (256, 24, 4)
    fp32 = forecast(KronosForecaster.from_pretrained(*paths, device=device), lookback, pred_len, count)
    cpu = forecast(KronosForecaster.from_pretrained(*paths, device="cpu"), lookback, pred_len, count)
    yield f"fp32 {device} vs fp32 cpu (max rel. diff)", f"{relative_error(fp32, cpu):.2e}"
    for dtype in (torch.bfloat16, torch.float16):
        half = forecast(KronosForecaster.from_pretrained(*paths, device=device, dtype=dtype), lookback, pred_len, count)
        yield f"{str(dtype)[6:]} vs fp32 on {device} (max rel. diff)", f"{relative_error(half, fp32):.2e}"
    gpus = torch.cuda.device_count() if device.startswith("cuda") else 0
    if gpus:
        spread = KronosForecaster.from_pretrained(*paths, device_map="auto")
        devices = sorted({str(d) for d in getattr(spread.model, "hf_device_map", {"": device}).values()})
        auto = forecast(spread, lookback, pred_len, count)
        yield f'device_map="auto" over {gpus} GPU(s) {devices} vs one device', f"{relative_error(auto, fp32):.2e}"
    else:
        yield 'device_map="auto"', "skipped: no GPU visible"


def speed_rows(paths, device: str, quick: bool) -> Iterator[tuple[str, str]]:
    """Seconds per forecast for each case: upstream, ours eager, ours compiled (and its forecasts against eager's)."""
    import model as upstream

    from transformers_kronos import KronosForecaster

    up_model = upstream.Kronos.from_pretrained(paths[0]).eval()
    up_tok = upstream.KronosTokenizer.from_pretrained(paths[1]).eval()
    predictor = upstream.KronosPredictor(up_model, up_tok, device=device, max_context=512)
    eager = KronosForecaster.from_pretrained(*paths, device=device)
    compiled = KronosForecaster.from_pretrained(*paths, device=device, compile=True)
    for name, lookback, pred_len, count in QUICK_CASES if quick else CASES:
        xs, x_tss, y_tss = (list(t) for t in zip(*series_inputs(lookback, pred_len, count)))
        options = dict(top_k=1, verbose=False)
        up, _ = timed(lambda: predictor.predict_batch(xs, x_tss, y_tss, pred_len, **options), device)
        ours, want = timed(lambda: eager.predict_batch(xs, x_tss, y_tss, pred_len, **options), device)
        fast, got = timed(lambda: compiled.predict_batch(xs, x_tss, y_tss, pred_len, **options), device)
        diff = relative_error(*(np.stack([frame.to_numpy() for frame in frames]) for frames in (got, want)))
        yield name, (f"upstream {up:.2f} s | ours {ours:.2f} s ({up / ours:.1f}x) | compiled {fast:.2f} s "
                     f"({up / fast:.1f}x; max rel. diff to eager {diff:.1e})")


def universe_rows(paths, device: str, quick: bool) -> Iterator[tuple[str, str]]:
    """Whole markets: wall time, series per second and useful predictor work per second against the fp32 GEMM rate."""
    from transformers_kronos import KronosForecaster
    from transformers_kronos.synthetic import generate_klines

    forecaster = KronosForecaster.from_pretrained(*paths, device=device)
    rate = gemm_rate(size=1024 if quick else 8192, device=device) * 1e9
    for count, samples, lookback, pred_len, batch_size in QUICK_UNIVERSE_CASES if quick else UNIVERSE_CASES:
        # 256 distinct series at most, repeated (making one takes ~10 ms; speed does not depend on the values)
        frames = [generate_klines(lookback, seed=i) for i in range(min(count, 256))]
        frames = [frames[i % len(frames)] for i in range(count)]
        contexts, stamps = [f.drop(columns="timestamps") for f in frames], [f["timestamps"] for f in frames]

        def run(n):
            generators = [torch.Generator(device).manual_seed(i) for i in range(n)]
            return forecaster.predict_batch(contexts[:n], stamps[:n], pred_len=pred_len, sample_count=samples,
                                            verbose=False, generator=generators, batch_size=batch_size)

        run(min(2, count))  # warm-up: kernels, allocator
        synchronize(device)
        start = time.perf_counter()
        run(count)
        synchronize(device)
        wall = time.perf_counter() - start
        useful = sum(useful_flops(forecaster.model, count, samples, lookback, pred_len))
        yield (f"market: {count} series x {samples} paths, lookback {lookback}, {pred_len} ahead",
               f"{wall:.2f} s, {count / wall:.0f} series/s, useful work {useful / wall / 1e12:.3f} TFLOP/s = "
               f"{100 * useful / wall / rate:.1f}% of fp32 GEMM ({rate / 1e12:.2f} TFLOP/s)")


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


def onnx_rows(paths, exported, device: str, provider: str, quick: bool) -> Iterator[tuple[str, str]]:
    """`OnnxForecaster` on `provider` over the `exported` graphs of `paths`: parity with our fp32 forecast, and speed."""
    from transformers_kronos import KronosForecaster
    from transformers_kronos.onnx import OnnxForecaster

    providers = [provider] + (["CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [])
    onnx = OnnxForecaster(*exported, max_context=512, providers=providers)
    lookback, pred_len, count = (32, 4, 2) if quick else (256, 24, 4)
    want = forecast(KronosForecaster.from_pretrained(*paths, device=device, max_context=512), lookback, pred_len, count)
    got = forecast(onnx, lookback, pred_len, count)
    yield f"ONNX Runtime ({provider}) vs ours fp32 on {device} (max rel. diff)", f"{relative_error(got, want):.2e}"
    for name, lookback, pred_len, count in QUICK_CASES if quick else CASES:
        xs, x_tss, y_tss = (list(t) for t in zip(*series_inputs(lookback, pred_len, count)))
        seconds, _ = timed(lambda: onnx.predict_batch(xs, x_tss, y_tss, pred_len, top_k=1, verbose=False), device)
        yield f"{name}, ONNX Runtime", f"{seconds:.2f} s"


SECTIONS = ("accuracy", "speed", "market", "onnx")


class Report:
    """The result table, printed row by row as measured and, with `path`, rewritten whole after every row."""

    def __init__(self, title: str, path: str | None):
        self.header = f"| check ({title}) | result |\n| --- | --- |"
        self.rows, self.path = [], path
        print(self.header, flush=True)

    def add(self, check: str, result: str) -> None:
        self.rows.append(f"| {check} | {result} |")
        print(self.rows[-1], flush=True)
        if self.path:
            with open(self.path, "w", encoding="utf-8") as f:
                f.write("\n".join([self.header, *self.rows]) + "\n")

    def section(self, name: str, rows) -> None:
        """Add the rows of one section as they come; a section that fails adds one row saying so, and the run goes on."""
        try:
            for check, result in rows:
                self.add(check, result)
        except Exception as err:  # noqa: BLE001  (a rare GPU session keeps the other sections' rows)
            from transformers_kronos.io_utils import one_line

            message = f"{type(err).__name__}: {one_line(err)}"[:300]
            self.add(f"{name}", f"failed: {message}")


def sections_flag(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(SECTIONS)} (got {text!r})")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="device to check (default cuda)")
    parser.add_argument("--quick", action="store_true", help="tiny models and cases: a smoke run that the script works")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime rows (and their export)")
    parser.add_argument("--sections", type=sections_flag, default=SECTIONS,
                        help=f"comma-separated, in this order: {','.join(SECTIONS)} (default: all)")
    parser.add_argument("--output", metavar="FILE", help="also keep the table in FILE, rewritten after every row")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: no CUDA device here; use --device cpu --quick for a smoke run")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    start = time.perf_counter()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    report = Report(f"{name}, torch {torch.__version__}", args.output)
    sections = [s for s in args.sections if not (s == "onnx" and args.no_onnx)]
    with tempfile.TemporaryDirectory() as folder:
        paths = write_checkpoints(folder, args.quick)
        rows = {"accuracy": accuracy_rows, "speed": speed_rows, "market": universe_rows}
        for section in sections:
            if section == "onnx":
                report.section(section, onnx_section(paths, folder, args.device, args.quick))
            else:
                report.section(section, rows[section](paths, args.device, args.quick))
    print(f"\n{time.perf_counter() - start:.0f} s in all", flush=True)


def onnx_section(paths, folder: str, device: str, quick: bool):
    """The ONNX Runtime rows, or one row saying why there are none."""
    provider, why_not = onnx_provider(device)
    if provider is None:
        yield "ONNX Runtime", why_not
        return
    yield from onnx_rows(paths, export_both(paths, folder), device, provider, quick)


if __name__ == "__main__":
    main()
