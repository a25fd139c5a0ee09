#!/usr/bin/env python
# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""
Fine-tune the Kronos predictor on your own K-line data with the transformers `Trainer`.

    python examples/finetune_kronos.py \
        --model_name_or_path NeoQuasar/Kronos-small --tokenizer_name_or_path NeoQuasar/Kronos-Tokenizer-base \
        --train_file data.csv [--validation_file val.csv | --validation_split_percentage 10] \
        --lookback 90 --pred_window 10 --output_dir out --max_steps 1000 [any TrainingArguments]

The data file (CSV, Parquet) holds `timestamps, open, high, low, close[, volume, amount]` and, for many instruments,
a series-id column named by `--series_column`. Model and tokenizer may be upstream-format or converted checkpoints,
local or on the Hub; without `--model_name_or_path` a new predictor is built from `--config_name` and/or
`--config_overrides`. The output directory receives the fine-tuned predictor (loadable with
`AutoModel.from_pretrained`) and, under `tokenizer/`, the tokenizer it was trained with.

Any `TrainingArguments` flag works (`--per_device_train_batch_size`, `--gradient_accumulation_steps`, `--bf16`,
`--gradient_checkpointing`, `--eval_strategy steps`, `--resume_from_checkpoint`, ...), and so do `torchrun` and
`accelerate launch` (see docs/finetuning.md).

With `--eval_backtest`, the validation split is also backtested (transformers_kronos.evaluation, docs/evaluation.md)
before and after training: MAE, MASE, CRPS, coverage, direction accuracy and IC of the forecasts against the naive
baselines, logged side by side and written to `eval_backtest.csv` in the output directory, so you can see whether
fine-tuning helped the forecasts and not only the loss.
"""

import copy
import json
import logging
import os
import sys
from dataclasses import dataclass, field

import pandas as pd

import transformers
from transformers import HfArgumentParser, TrainingArguments, set_seed

from transformers_kronos import KronosConfig, KronosForTokenPrediction, KronosTokenizerModel, config_from_upstream
from transformers_kronos.data import KronosWindowDataset, load_kline_table
from transformers_kronos.training import KronosTrainer, check_tokenizer_compatible

logger = logging.getLogger("finetune_kronos")


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Predictor to fine-tune: a Hub id or a local directory (upstream-format or converted)."},
    )
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "The KronosTokenizerModel that makes the predictor's tokens (kept frozen)."}
    )
    config_name: str | None = field(
        default=None,
        metadata={"help": "Train a new predictor from this config.json (upstream or transformers format) instead."},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Config values for a new predictor, e.g. 'n_layers=2,d_model=64,n_heads=4,ff_dim=128'."},
    )
    s2_conditioning: str | None = field(
        default=None,
        metadata={
            "help": "What the s2 head is conditioned on in training: 'teacher_forcing' (the true next s1, default of "
            "the config) or 'sampled' (an s1 sampled from the model, as upstream's fine-tuning scripts)."
        },
    )


@dataclass
class DataArguments:
    train_file: str | None = field(default=None, metadata={"help": "Training K-lines, a .csv or .parquet file."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation K-lines (.csv or .parquet)."})
    validation_split_percentage: float = field(
        default=0.0,
        metadata={"help": "Without --validation_file: hold out the last PERCENT of every series for validation."},
    )
    lookback: int = field(default=90, metadata={"help": "Context candles per window (normalisation statistics)."})
    pred_window: int = field(default=10, metadata={"help": "Candles to predict after the lookback."})
    timestamp_column: str = field(default="timestamps", metadata={"help": "Column of timestamps."})
    series_column: str | None = field(default=None, metadata={"help": "Column of series ids (many instruments)."})
    clip: float = field(default=5.0, metadata={"help": "Normalised values are clipped to [-clip, clip]."})
    window_stride: int = field(default=1, metadata={"help": "Distance between consecutive window starts."})


@dataclass
class BacktestArguments:
    eval_backtest: bool = field(
        default=False,
        metadata={"help": "Backtest the validation split before and after training (docs/evaluation.md): the last "
                  "--eval_backtest_windows windows of --lookback/--pred_window per series, against naive baselines."},
    )
    eval_backtest_windows: int = field(default=8, metadata={"help": "Backtest origins per validation series."})
    eval_backtest_samples: int = field(default=10, metadata={"help": "Sample paths per backtest window."})


def parse_overrides(text):
    """'a=1,b=x' -> {'a': 1, 'b': 'x'} (values parsed as JSON when possible)."""
    values = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if "=" not in item:
            raise ValueError(f"--config_overrides expects key=value pairs separated by commas, got {item!r}")
        key, value = (s.strip() for s in item.split("=", 1))
        try:
            values[key] = json.loads(value)
        except json.JSONDecodeError:
            values[key] = value
    return values


def build_datasets(data_args):
    if data_args.train_file is None:
        raise ValueError("--train_file is required")
    kwargs = dict(
        timestamp_column=data_args.timestamp_column,
        series_column=data_args.series_column,
        clip=data_args.clip,
        stride=data_args.window_stride,
    )
    if data_args.validation_file is not None and data_args.validation_split_percentage > 0:
        raise ValueError("give either --validation_file or --validation_split_percentage, not both")
    if data_args.validation_file is None and data_args.validation_split_percentage > 0:
        if data_args.validation_split_percentage >= 100:
            raise ValueError("--validation_split_percentage must lie in [0, 100)")
        return KronosWindowDataset.from_splits(
            data_args.train_file,
            data_args.lookback,
            data_args.pred_window,
            data_args.validation_split_percentage / 100,
            **kwargs,
        )
    train = KronosWindowDataset(data_args.train_file, data_args.lookback, data_args.pred_window, **kwargs)
    validation = None
    if data_args.validation_file is not None:
        validation = KronosWindowDataset(data_args.validation_file, data_args.lookback, data_args.pred_window, **kwargs)
    return train, validation


def build_model(model_args):
    if model_args.model_name_or_path is not None:
        if model_args.config_name or model_args.config_overrides:
            raise ValueError("--config_name/--config_overrides build a new model; drop them or --model_name_or_path")
        model = KronosForTokenPrediction.from_pretrained(model_args.model_name_or_path)
    else:
        if model_args.config_name is None and model_args.config_overrides is None:
            raise ValueError("give --model_name_or_path, or --config_name/--config_overrides for a new predictor")
        values = {}
        if model_args.config_name is not None:
            with open(model_args.config_name, encoding="utf-8") as f:
                values = json.load(f)
        values.update(parse_overrides(model_args.config_overrides or ""))
        if "model_type" in values:
            config = KronosConfig.from_dict(values)
        else:
            config = config_from_upstream(values, expected=KronosConfig) if "learn_te" in values else KronosConfig(**values)
        model = KronosForTokenPrediction(config)
    if model_args.s2_conditioning is not None:
        KronosConfig(s2_conditioning=model_args.s2_conditioning)  # validates the value
        model.config.s2_conditioning = model_args.s2_conditioning
    return model


def prepare(model_args, data_args):
    """Everything that can fail on bad input, before the Trainer exists (so nothing is written on failure)."""
    if model_args.tokenizer_name_or_path is None:
        raise ValueError("--tokenizer_name_or_path is required")
    train, validation = build_datasets(data_args)
    tokenizer = KronosTokenizerModel.from_pretrained(model_args.tokenizer_name_or_path)
    model = build_model(model_args)
    check_tokenizer_compatible(model, tokenizer, num_features=train.num_features)
    window = data_args.lookback + data_args.pred_window
    if window > model.config.max_context:
        raise ValueError(
            f"lookback + pred_window = {window} exceeds the model's max_context ({model.config.max_context})"
        )
    return model, tokenizer, train, validation


def validation_frame(data_args):
    """
    The validation split as a K-line table: `--validation_file`, or the last `--validation_split_percentage` of
    each series of `--train_file`, cut where [`transformers_kronos.data.chronological_split`] cuts it.
    """
    if data_args.validation_file is not None:
        return load_kline_table(data_args.validation_file)
    if data_args.validation_split_percentage <= 0:
        raise ValueError("--eval_backtest needs a validation split: --validation_file or --validation_split_percentage")
    frame = load_kline_table(data_args.train_file)
    fraction = data_args.validation_split_percentage / 100
    groups = [frame] if data_args.series_column is None else [g for _, g in frame.groupby(data_args.series_column)]
    return pd.concat([g.iloc[len(g) - int(round(len(g) * fraction)) :] for g in groups], ignore_index=True)


def run_backtest(model, tokenizer, validation, data_args, backtest_args, device):
    """Backtest copies of `model` and `tokenizer` on the validation split; returns the metrics table."""
    from transformers_kronos import KronosForecaster
    from transformers_kronos.evaluation import backtest

    forecaster = KronosForecaster(copy.deepcopy(model), copy.deepcopy(tokenizer), device=device)
    result = backtest(
        forecaster, validation, lookback=data_args.lookback, pred_len=data_args.pred_window,
        windows=backtest_args.eval_backtest_windows, samples=backtest_args.eval_backtest_samples,
        id_column=data_args.series_column, timestamp_column=data_args.timestamp_column, plot=False, verbose=False,
    )
    return result.metrics


def backtest_comparison(before, after):
    """One table of the backtest metrics before and after training (the baselines do not change)."""
    table = pd.concat([before.assign(stage="before"), after.assign(stage="after")], ignore_index=True)
    kronos = table["model"] == "kronos"
    table = pd.concat([table[kronos], table[~kronos & (table["stage"] == "before")].assign(stage="baseline")])
    return table[["stage", *before.columns]].reset_index(drop=True)


def _has_accelerator():
    import torch

    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6: CUDA, MPS, XPU, ...
    return accelerator.is_available() if accelerator is not None else torch.cuda.is_available()


def parse_arguments(parser, argv):
    """
    The script's argument dataclasses from `argv`: a single `.json` file, or command-line flags. Without a GPU the
    run is on the CPU, as `--use_cpu` says (which `TrainingArguments` demands before it accepts `--bf16` there).
    """
    on_cpu = not _has_accelerator()
    if len(argv) == 1 and argv[0].endswith(".json"):
        path = os.path.abspath(argv[0])
        try:
            with open(path, encoding="utf-8") as f:
                values = json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read the arguments file {argv[0]}: {err}") from None
        if on_cpu and isinstance(values, dict):
            values.setdefault("use_cpu", True)
        return parser.parse_dict(values)
    if on_cpu and not any(a == "--use_cpu" or a.startswith("--use_cpu=") for a in argv):
        argv = [*argv, "--use_cpu"]
    return parser.parse_args_into_dataclasses(args=argv)


def configure_logging(training_args, logger):
    """Log at the level `training_args` gives this process (with several processes, only the main one informs)."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    transformers.utils.logging.set_verbosity(log_level)


def main(argv=None):
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments, BacktestArguments))
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = os.path.basename(__file__)
    # quiet loading: on bad input the only output is the one-line error
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        model_args, data_args, training_args, backtest_args = parse_arguments(parser, argv)
        model, tokenizer, train_dataset, eval_dataset = prepare(model_args, data_args)
        before = None
        if backtest_args.eval_backtest and training_args.process_index == 0:
            validation = validation_frame(data_args)
            before = run_backtest(model, tokenizer, validation, data_args, backtest_args, training_args.device)
    except (ValueError, TypeError, OSError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()

    configure_logging(training_args, logger)
    logger.info(
        "%d training windows%s of %d candles; model %s, tokenizer %s",
        len(train_dataset),
        f", {len(eval_dataset)} validation windows" if eval_dataset is not None else "",
        train_dataset.window,
        model_args.model_name_or_path or "(new)",
        model_args.tokenizer_name_or_path,
    )

    set_seed(training_args.seed)
    trainer = KronosTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        kronos_tokenizer=tokenizer,
    )
    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "last"):
        resume = True  # the latest checkpoint in output_dir
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    if trainer.is_world_process_zero():
        # the tokenizer travels with the predictor, so the output directory is a complete forecaster
        tokenizer.save_pretrained(os.path.join(training_args.output_dir, "tokenizer"))
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    if eval_dataset is not None:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    if before is not None:
        after = run_backtest(model, tokenizer, validation, data_args, backtest_args, training_args.device)
        table = backtest_comparison(before, after)
        table.to_csv(os.path.join(training_args.output_dir, "eval_backtest.csv"), index=False)
        logger.info("validation backtest (docs/evaluation.md):\n%s", table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
