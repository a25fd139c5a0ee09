#!/usr/bin/env python
# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""
Rebuild the demo model bundled with the package (`src/transformers_kronos/demo/`) and the sample CSV
(`examples/data/sample_kline.csv`), reproducibly, from nothing but this repository.

    python examples/build_demo_model.py [--work-dir build/demo_model] [--tokenizer-steps 400] [--predictor-steps 800]
                                        [--output-dir src/transformers_kronos/demo] [--sample-csv examples/data/sample_kline.csv]

The demo is **not** a pretrained Kronos. It is a tiny tokenizer and predictor trained from scratch for a few
CPU minutes on synthetic K-lines from `transformers_kronos.synthetic`, with the project's own fine-tuning scripts
(`examples/finetune_kronos_tokenizer.py`, then `examples/finetune_kronos.py`, i.e. the transformers `Trainer`).
It lets `kronos-forecast` run on a fresh machine with no download; its forecasts carry no information about
real markets.

Steps:
1. 32 synthetic series of 3000 five-minute candles (seed 0) are written to `<work-dir>/train.csv`; the sample CSV
   is a separate series (seed 2026) that the model never sees in training.
2. A new tokenizer (8 + 8 bits) is trained on windows of that data.
3. A new predictor (3 layers, d_model 96, `max_context` 512) is trained on the same windows, tokenized by the
   frozen tokenizer of step 2.
4. The two `config.json` + `model.safetensors` pairs are copied into the package (no remote-code files:
   the package itself provides the classes).

Everything is seeded; on the same software versions and thread count the weights come out identical.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "examples"))

from transformers_kronos.synthetic import generate_collection, generate_klines  # noqa: E402

DEMO_DIR = REPO / "src" / "transformers_kronos" / "demo"
SAMPLE_CSV = REPO / "examples" / "data" / "sample_kline.csv"

SEED = 0
SAMPLE_SEED = 2026
TOKENIZER_CONFIG = "d_model=64,n_heads=4,ff_dim=128,n_enc_layers=3,n_dec_layers=3,s1_bits=8,s2_bits=8,group_size=4"
PREDICTOR_CONFIG = "n_layers=3,d_model=96,n_heads=4,ff_dim=256,s1_bits=8,s2_bits=8,max_context=512"


def write_sample_csv(path):
    """1200 five-minute candles (25 trading days) of a series the demo model was not trained on."""
    frame = generate_klines(1200, start="2024-09-02", initial_price=35.0, volatility=0.0025, seed=SAMPLE_SEED)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S")
    return frame


def common_training_args(output_dir, steps, learning_rate, batch_size):
    return [
        "--output_dir", str(output_dir),
        "--max_steps", str(steps),
        "--learning_rate", str(learning_rate),
        "--lr_scheduler_type", "cosine",
        "--warmup_steps", str(max(1, steps // 20)),
        "--weight_decay", "0.01",
        "--per_device_train_batch_size", str(batch_size),
        "--logging_steps", str(max(1, steps // 10)),
        "--save_strategy", "no",
        "--report_to", "none",
        "--seed", str(SEED),
        "--data_seed", str(SEED),
        "--dataloader_num_workers", "0",
        "--use_cpu", "true",
        "--disable_tqdm", "true",
    ]


def run_script(module_name, argv):
    """Run an example script's `main(argv)` in this process, with the torch RNG seeded for the model's init."""
    module = __import__(module_name)
    torch.manual_seed(SEED)  # the scripts build a new model before the Trainer seeds anything
    status = module.main(argv)
    if status:
        raise SystemExit(f"{module_name} failed with status {status}")


def install(run_dir, target):
    """Copy a trained checkpoint's weights and config into the package, without remote-code files."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copyfile(run_dir / "model.safetensors", target / "model.safetensors")
    (target / "model.safetensors").chmod(0o644)
    config = json.loads((run_dir / "config.json").read_text())
    config.pop("auto_map", None)  # the installed package registers the classes; no code ships next to the weights
    (target / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--work-dir", default=str(REPO / "build" / "demo_model"), help="scratch directory")
    parser.add_argument("--tokenizer-steps", type=int, default=400)
    parser.add_argument("--predictor-steps", type=int, default=800)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (fixed, for reproducibility)")
    parser.add_argument("--output-dir", default=str(DEMO_DIR), help="where the demo checkpoints go (the package)")
    parser.add_argument("--sample-csv", default=str(SAMPLE_CSV), help="where the sample CSV goes")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()

    output_dir, sample_csv = Path(args.output_dir), Path(args.sample_csv)
    write_sample_csv(sample_csv)
    train_csv = work / "train.csv"
    generate_collection(32, periods=3000, seed=SEED).to_csv(train_csv, index=False)
    data_args = [
        "--train_file", str(train_csv),
        "--series_column", "series_id",
        "--validation_split_percentage", "10",
        "--window_stride", "4",
    ]

    tokenizer_dir = work / "tokenizer"
    run_script(
        "finetune_kronos_tokenizer",
        ["--config_overrides", TOKENIZER_CONFIG, "--lookback", "90", "--pred_window", "10", *data_args,
         *common_training_args(tokenizer_dir, args.tokenizer_steps, 2e-3, 32)],
    )
    predictor_dir = work / "predictor"
    run_script(
        "finetune_kronos",
        ["--config_overrides", PREDICTOR_CONFIG, "--tokenizer_name_or_path", str(tokenizer_dir),
         "--lookback", "192", "--pred_window", "48", *data_args,
         *common_training_args(predictor_dir, args.predictor_steps, 2e-3, 16)],
    )

    install(tokenizer_dir, output_dir / "tokenizer")
    install(predictor_dir, output_dir / "predictor")
    size = sum(p.stat().st_size for p in output_dir.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors"))
    print(f"demo model written to {output_dir} ({size / 2**20:.2f} MiB) and sample data to {sample_csv} "
          f"in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
