#!/usr/bin/env python
# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""
Time one fine-tuning step through the transformers `Trainer` against upstream's hand-written step.

Both sides train the same weights (a Kronos-small-sized predictor and a Kronos-Tokenizer-base-sized tokenizer,
random init, written by upstream and loaded here) on windows of the same shape:

- upstream, as its fine-tuning scripts do it, on one fixed pre-collated batch: tokenize with the frozen tokenizer,
  `model(s1[:, :-1], s2[:, :-1], stamp[:, :-1])`, `head.compute_loss`, backward, clip the gradient norm at 3,
  AdamW step, learning-rate schedule step;
- ours, `KronosTrainer.train()` with the same optimizer and clipping, `s2_conditioning="sampled"` (upstream's
  objective), drawing its batches from a `KronosWindowDataset` through the Trainer's data loader. A step is the time
  between two consecutive `on_step_end` callbacks, so it includes everything the Trainer does per step (data
  loading, collation, tokenization, logging bookkeeping).

The two sides alternate step by step (an upstream step runs inside the Trainer's `on_step_end` callback, outside
the Trainer's timed interval), so that a busy machine slows both alike; medians and minima of wall time are compared,
and on CPU also the process's CPU time per step, which other processes' load disturbs less.

    python benchmarks/train_speed.py [--batch-size 8] [--lookback 90] [--pred-window 10] [--steps 10]

Needs the upstream reference (`pip install --no-deps kronos-model-arch einops`, imported as `model`).
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from transformers import TrainerCallback, TrainingArguments  # noqa: E402

from transformers_kronos import KronosForTokenPrediction, KronosTokenizerModel  # noqa: E402
from transformers_kronos.data import KronosWindowDataset  # noqa: E402
from transformers_kronos.synthetic import generate_klines  # noqa: E402
from transformers_kronos.training import KronosTrainer, KronosWindowCollator  # noqa: E402

SMALL = dict(s1_bits=10, s2_bits=10, n_layers=8, d_model=512, n_heads=8, ff_dim=1024, ffn_dropout_p=0.25,
             attn_dropout_p=0.1, resid_dropout_p=0.25, token_dropout_p=0.1, learn_te=True)
TOKENIZER_BASE = dict(d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4, n_dec_layers=4, ffn_dropout_p=0.0,
                      attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=10, s2_bits=10, beta=0.05, gamma0=1.0,
                      gamma=1.1, zeta=0.05, group_size=4)
LEARNING_RATE, WEIGHT_DECAY, CLIP = 4e-5, 0.1, 3.0


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class UpstreamStep:
    """Upstream's hand-written fine-tuning step on one fixed batch."""

    def __init__(self, model, tokenizer, batch, total_steps, device):
        self.model, self.tokenizer, self.device = model.train(), tokenizer, device
        self.x, self.stamp = batch["x"].to(device), batch["stamp"].to(device)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=LEARNING_RATE, total_steps=total_steps)

    def __call__(self):
        with torch.no_grad():
            s1, s2 = self.tokenizer.encode(self.x, half=True)
        s1_logits, s2_logits = self.model(s1[:, :-1], s2[:, :-1], self.stamp[:, :-1])
        loss = self.model.head.compute_loss(s1_logits, s2_logits, s1[:, 1:], s2[:, 1:])[0]
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=CLIP)
        self.optimizer.step()
        self.scheduler.step()


class Interleave(TrainerCallback):
    """
    After every Trainer step, run one upstream step, so that both sides share the machine's noise step by step.

    The Trainer's step time is measured from the end of the previous upstream step to the end of this Trainer step
    (data loading, tokenization, forward, backward, clipping, optimizer and scheduler, bookkeeping); the upstream
    step is timed on its own.
    """

    def __init__(self, upstream_step, device, warmup=1):
        self.upstream_step, self.device, self.warmup = upstream_step, device, warmup
        self.trainer_times, self.upstream_times = [], []
        self.trainer_cpu, self.upstream_cpu = [], []

    @staticmethod
    def clocks():
        # wall time, and CPU time of this process (all threads): the latter is far less sensitive to other load
        return time.perf_counter(), time.process_time()

    def on_train_begin(self, args, state, control, **kwargs):
        synchronize(self.device)
        self.resumed = self.clocks()

    def on_step_end(self, args, state, control, **kwargs):
        synchronize(self.device)
        now = self.clocks()
        self.upstream_step()
        synchronize(self.device)
        done = self.clocks()
        if state.global_step > self.warmup:  # the first steps pay for allocations on both sides
            self.trainer_times.append(now[0] - self.resumed[0])
            self.trainer_cpu.append(now[1] - self.resumed[1])
            self.upstream_times.append(done[0] - now[0])
            self.upstream_cpu.append(done[1] - now[1])
        self.resumed = self.clocks()


def run(model, tokenizer, dataset, upstream_step, batch_size, steps, device, workdir):
    interleave = Interleave(upstream_step, device)
    args = TrainingArguments(
        output_dir=str(workdir),
        max_steps=steps + interleave.warmup,
        per_device_train_batch_size=batch_size,
        learning_rate=LEARNING_RATE,
        weight_decay=WEIGHT_DECAY,
        max_grad_norm=CLIP,
        optim="adamw_torch",
        lr_scheduler_type="linear",
        logging_steps=10_000,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=device.type == "cpu",
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = KronosTrainer(
        model=model, args=args, train_dataset=dataset, kronos_tokenizer=tokenizer, callbacks=[interleave]
    )
    trainer.train()
    return interleave


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lookback", type=int, default=90)
    parser.add_argument("--pred-window", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per side")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    try:
        import model as upstream
    except ImportError:
        sys.exit("train_speed.py: error: the upstream reference is needed (pip install --no-deps kronos-model-arch einops)")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    transformers_logging = __import__("transformers").utils.logging
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()

    window = args.lookback + args.pred_window + 1
    dataset = KronosWindowDataset(generate_klines(window + 4 * args.batch_size), args.lookback, args.pred_window)
    batch = KronosWindowCollator()([dataset[i] for i in range(args.batch_size)])

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        upstream.Kronos(**SMALL).save_pretrained(str(tmp / "model"))
        upstream.KronosTokenizer(**TOKENIZER_BASE).save_pretrained(str(tmp / "tokenizer"))
        up_tokenizer = upstream.KronosTokenizer.from_pretrained(str(tmp / "tokenizer")).to(device).eval()
        tokenizer = KronosTokenizerModel.from_pretrained(tmp / "tokenizer").to(device)
        up_model = upstream.Kronos.from_pretrained(str(tmp / "model")).to(device)
        upstream_step = UpstreamStep(up_model, up_tokenizer, batch, args.steps + 1, device)
        model = KronosForTokenPrediction.from_pretrained(tmp / "model")
        model.config.s2_conditioning = "sampled"  # upstream's objective
        timings = run(model, tokenizer, dataset, upstream_step, args.batch_size, args.steps, device, tmp / "out")
        ours, theirs = timings.trainer_times, timings.upstream_times
        ours_cpu, theirs_cpu = timings.trainer_cpu, timings.upstream_cpu

    up_median, our_median = statistics.median(theirs), statistics.median(ours)
    ratio = our_median / up_median
    min_ratio = min(ours) / min(theirs)
    cpu_ratio = statistics.median(ours_cpu) / statistics.median(theirs_cpu)
    threads = torch.get_num_threads()
    print(f"device {device} ({threads} threads), Kronos-small-sized predictor + Kronos-Tokenizer-base-sized tokenizer, "
          f"batch {args.batch_size} x {window} candles, {len(theirs)} timed steps per side")
    print(f"{'':28s}{'median s/step':>14s}{'min':>9s}{'max':>9s}")
    print(f"{'upstream hand-written step':28s}{up_median:14.3f}{min(theirs):9.3f}{max(theirs):9.3f}")
    print(f"{'KronosTrainer step':28s}{our_median:14.3f}{min(ours):9.3f}{max(ours):9.3f}")
    print(f"ratio Trainer / upstream: median {ratio:.3f} (overhead {100 * (ratio - 1):+.1f}%; target within +10%), "
          f"best step {min_ratio:.3f}")
    if device.type == "cpu":
        print(f"CPU time per step (process time, robust to other load): upstream {statistics.median(theirs_cpu):.3f} s, "
              f"Trainer {statistics.median(ours_cpu):.3f} s, ratio {cpu_ratio:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "device": str(device), "threads": threads, "batch_size": args.batch_size, "window": window,
            "upstream_s": theirs, "trainer_s": ours, "upstream_median_s": up_median,
            "trainer_median_s": our_median, "ratio": ratio, "min_ratio": min_ratio,
            "upstream_cpu_s": theirs_cpu, "trainer_cpu_s": ours_cpu, "cpu_ratio": cpu_ratio,
        }, indent=2))


if __name__ == "__main__":
    main()
