# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Peak resident memory while loading a Kronos-base-sized checkpoint, compared with its size on disk.

A predictor with the published Kronos-base configuration (102.3M parameters, random weights: no trained weights are
available here) is saved once as a float32 safetensors checkpoint, and once more from a bfloat16 load (what a
bfloat16 conversion writes: bfloat16 weights, float32-kept modules in float32). Every measurement then runs in a fresh Python
process, so nothing cached by an earlier load counts: the child imports torch and transformers, resets its peak-RSS
counter (`/proc/self/clear_refs`), loads the checkpoint, and reports `VmHWM` (peak resident set) and `VmRSS` from
`/proc/self/status`. The figure that matters is the *load overhead*: peak RSS during loading minus the RSS just
before it (the interpreter and libraries), divided by the checkpoint's size on disk. The target is at most 1.3x.

Scenarios: `from_pretrained` with `dtype` float32 and bfloat16, with and without `device_map` ("cpu", "auto"), the
bfloat16 checkpoint with `dtype="auto"`, and, for contrast, the naive path that `from_pretrained` avoids (build the
model in float32 with random init, read the whole state dict into memory, copy it in, then cast to bfloat16).
Ratios are to the size on disk of the checkpoint that the scenario loads.

Usage: python benchmarks/load_memory.py [--checkpoint DIR] [--output out/load_memory.json]
Linux only (it reads /proc).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

# checkpoint: "fp32" (float32 safetensors) or "bf16" (the same weights saved from a bfloat16 load, float32-kept
# modules included, as `convert_checkpoint(dtype="bfloat16")` writes them)
SCENARIOS = {
    "fp32 ckpt, from_pretrained fp32": dict(checkpoint="fp32", dtype="float32"),
    "fp32 ckpt, from_pretrained fp32 device_map=cpu": dict(checkpoint="fp32", dtype="float32", device_map="cpu"),
    "fp32 ckpt, from_pretrained bf16": dict(checkpoint="fp32", dtype="bfloat16"),
    "fp32 ckpt, from_pretrained bf16 device_map=auto": dict(checkpoint="fp32", dtype="bfloat16", device_map="auto"),
    "fp32 ckpt, naive fp32 init+load_state_dict+.to(bf16)": dict(checkpoint="fp32", dtype="bfloat16", naive=True),
    "bf16 ckpt, from_pretrained dtype=auto": dict(checkpoint="bf16", dtype="auto"),
}
TARGET = 1.3


def status():
    """Selected `/proc/self/status` fields in bytes."""
    fields = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) * 1024
    return fields


class Sampler:
    """Polls `/proc/self/status` from a thread: the peaks of anonymous and of file-backed resident memory, which
    `VmHWM` (their sum's peak) does not separate. File-backed pages are the memory-mapped checkpoint: clean page
    cache that the kernel can drop at any time, unlike anonymous memory (tensors the loader allocated)."""

    def __init__(self, interval=0.001):
        import threading

        self.interval = interval
        self.peaks = {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            now = status()
            for key in self.peaks:
                self.peaks[key] = max(self.peaks[key], now[key])
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def child(path, dtype, device_map, naive):
    """Load the checkpoint once and print the memory figures as JSON (runs in its own process)."""
    import torch
    import transformers

    import transformers_kronos  # noqa: F401  (imported before the counter is reset: library memory is not the load's)

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    dtype = dtype if dtype == "auto" else getattr(torch, dtype)
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")  # reset VmHWM to the current RSS: the peak below is the peak of the load alone
    before = status()
    with Sampler() as sampler:
        model = _load(path, dtype, device_map, naive)
    after = status()
    # parameters may still be lazy views of the memory-mapped file: touch every one, as a first forward pass would
    with torch.no_grad():
        for param in model.parameters():
            param.sum()
    touched = status()
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()})
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    print(json.dumps({"before": before, "after": after, "after_touch": touched, "sampled_peaks": sampler.peaks,
                      "param_bytes": params, "param_dtypes": dtypes}))


def _load(path, dtype, device_map, naive):
    from transformers_kronos import KronosConfig, KronosForTokenPrediction

    if naive:
        from safetensors.torch import load_file

        model = KronosForTokenPrediction(KronosConfig.from_pretrained(path))
        model.load_state_dict(load_file(os.path.join(path, "model.safetensors")), strict=False)
        model = model.to(dtype).eval()
    else:
        kwargs = {"dtype": dtype}
        if device_map is not None:
            kwargs["device_map"] = device_map
        model = KronosForTokenPrediction.from_pretrained(path, **kwargs)
    return model


def build_checkpoint(path):
    import torch
    import transformers

    from transformers_kronos import KronosConfig, KronosForTokenPrediction

    transformers.utils.logging.disable_progress_bar()
    reference = "/work/shared/kronos_reference_configs.json"
    local = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "kronos_reference_configs.json")
    for candidate in (local, reference):
        if os.path.isfile(candidate):
            with open(candidate, encoding="utf-8") as f:
                config = {k: v for k, v in json.load(f)["Kronos-base"].items() if not k.startswith("_")}
            break
    else:  # the published Kronos-base configuration
        config = dict(s1_bits=10, s2_bits=10, n_layers=12, d_model=832, n_heads=16, ff_dim=2048, ffn_dropout_p=0.2,
                      attn_dropout_p=0.0, resid_dropout_p=0.2, token_dropout_p=0.0, learn_te=True)
    torch.manual_seed(0)
    KronosForTokenPrediction(KronosConfig(**config)).save_pretrained(path)
    KronosForTokenPrediction.from_pretrained(path, dtype=torch.bfloat16).save_pretrained(path + "-bf16")


def mib(n):
    return n / 2**20


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a saved predictor checkpoint (default: build a Kronos-base-sized one)")
    parser.add_argument("--output", default="out/load_memory.json")
    parser.add_argument("--child", nargs=4, metavar=("PATH", "DTYPE", "DEVICE_MAP", "NAIVE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        path, dtype, device_map, naive = args.child
        child(path, dtype, None if device_map == "none" else device_map, naive == "1")
        return 0
    if not os.path.isfile("/proc/self/status"):
        print("error: this benchmark reads /proc/self/status (Linux only)", file=sys.stderr)
        return 2
    if args.checkpoint is not None and not os.path.isfile(os.path.join(args.checkpoint, "model.safetensors")):
        print(f"error: {args.checkpoint} holds no model.safetensors", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as tmp:
        if args.checkpoint is None:
            build_checkpoint(os.path.join(tmp, "kronos-base"))
            paths = {"fp32": os.path.join(tmp, "kronos-base"), "bf16": os.path.join(tmp, "kronos-base-bf16")}
        else:
            paths = {"fp32": args.checkpoint}
        sizes = {
            name: sum(os.path.getsize(os.path.join(p, f)) for f in os.listdir(p) if f.endswith(".safetensors"))
            for name, p in paths.items()
        }
        results = {"checkpoint_bytes": sizes, "target_ratio": TARGET, "scenarios": {}}
        for name, size in sizes.items():
            print(f"{name} checkpoint on disk: {mib(size):.1f} MiB")
        print(
            f"{'scenario':53s} {'params':>7s} {'load peak':>10s} {'ratio':>6s} {'anon peak':>10s} {'file peak':>10s} "
            f"{'peak w/ use':>11s} {'ratio':>6s}   (MiB above the RSS before loading)"
        )
        for name, spec in SCENARIOS.items():
            if spec["checkpoint"] not in paths:
                continue
            path, disk = paths[spec["checkpoint"]], sizes[spec["checkpoint"]]
            command = [sys.executable, os.path.abspath(__file__), "--child", path, spec["dtype"],
                       spec.get("device_map") or "none", "1" if spec.get("naive") else "0"]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"error: scenario {name!r} failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                return 1
            row = json.loads(done.stdout.strip().splitlines()[-1])
            before = row["before"]
            row["load_peak_bytes"] = row["after"]["VmHWM"] - before["VmRSS"]
            row["load_peak_ratio"] = row["load_peak_bytes"] / disk
            row["anon_peak_bytes"] = row["sampled_peaks"]["RssAnon"] - before["RssAnon"]
            row["file_peak_bytes"] = row["sampled_peaks"]["RssFile"] - before["RssFile"]
            row["peak_with_use_bytes"] = row["after_touch"]["VmHWM"] - before["VmRSS"]
            row["peak_with_use_ratio"] = row["peak_with_use_bytes"] / disk
            results["scenarios"][name] = row
            print(
                f"{name:53s} {mib(row['param_bytes']):7.1f} {mib(row['load_peak_bytes']):10.1f} "
                f"{row['load_peak_ratio']:6.2f} {mib(row['anon_peak_bytes']):10.1f} {mib(row['file_peak_bytes']):10.1f} "
                f"{mib(row['peak_with_use_bytes']):11.1f} {row['peak_with_use_ratio']:6.2f}"
            )

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
