#!/usr/bin/env python
# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""
Fine-tune (or train from scratch) the Kronos K-line tokenizer with the transformers `Trainer`.

    python examples/finetune_kronos_tokenizer.py \
        --tokenizer_name_or_path NeoQuasar/Kronos-Tokenizer-base --train_file data.csv \
        [--validation_file val.csv | --validation_split_percentage 10] --lookback 90 --pred_window 10 \
        --output_dir out --max_steps 1000 [any TrainingArguments]

The loss is the tokenizer's own: reconstruction from the coarse (s1) bits and from the full code, plus the BSQ
commitment and entropy terms. Without `--tokenizer_name_or_path` a new tokenizer is built from `--config_name`
and/or `--config_overrides`. A predictor keeps working with a fine-tuned tokenizer only if the tokens keep their
meaning: fine-tune the predictor afterwards on the new tokenizer (examples/finetune_kronos.py).
"""

import json
import logging
import os
import sys
from dataclasses import dataclass, field

import transformers
from transformers import HfArgumentParser, TrainingArguments, set_seed

from transformers_kronos import KronosTokenizerConfig, KronosTokenizerModel, config_from_upstream
from transformers_kronos.training import KronosTokenizerTrainer, check_tokenizer_compatible

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from finetune_kronos import (  # noqa: E402
    DataArguments,
    build_datasets,
    configure_logging,
    parse_arguments,
    parse_overrides,
)

logger = logging.getLogger("finetune_kronos_tokenizer")


@dataclass
class TokenizerArguments:
    tokenizer_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Tokenizer to fine-tune: a Hub id or a local directory (upstream-format or converted)."},
    )
    config_name: str | None = field(
        default=None,
        metadata={"help": "Train a new tokenizer from this config.json (upstream or transformers format) instead."},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Config values for a new tokenizer, e.g. 'd_model=64,n_heads=4,s1_bits=8,s2_bits=8'."},
    )


def build_tokenizer(args):
    if args.tokenizer_name_or_path is not None:
        if args.config_name or args.config_overrides:
            raise ValueError("--config_name/--config_overrides build a new tokenizer; drop them or --tokenizer_name_or_path")
        return KronosTokenizerModel.from_pretrained(args.tokenizer_name_or_path)
    if args.config_name is None and args.config_overrides is None:
        raise ValueError("give --tokenizer_name_or_path, or --config_name/--config_overrides for a new tokenizer")
    values = {}
    if args.config_name is not None:
        with open(args.config_name, encoding="utf-8") as f:
            values = json.load(f)
    values.update(parse_overrides(args.config_overrides or ""))
    if "model_type" in values:
        config = KronosTokenizerConfig.from_dict(values)
    elif "group_size" in values and "n_enc_layers" in values and "beta" in values:
        config = config_from_upstream(values, expected=KronosTokenizerConfig)
    else:
        config = KronosTokenizerConfig(**values)
    return KronosTokenizerModel(config)


def main(argv=None):
    parser = HfArgumentParser((TokenizerArguments, DataArguments, TrainingArguments))
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = os.path.basename(__file__)
    # quiet loading: on bad input the only output is the one-line error
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        tokenizer_args, data_args, training_args = parse_arguments(parser, argv)
        train_dataset, eval_dataset = build_datasets(data_args)
        tokenizer = build_tokenizer(tokenizer_args)
        check_tokenizer_compatible(None, tokenizer, num_features=train_dataset.num_features)
    except (ValueError, TypeError, OSError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()

    configure_logging(training_args, logger)
    logger.info(
        "%d training windows%s of %d candles; tokenizer %s",
        len(train_dataset),
        f", {len(eval_dataset)} validation windows" if eval_dataset is not None else "",
        train_dataset.window,
        tokenizer_args.tokenizer_name_or_path or "(new)",
    )

    set_seed(training_args.seed)
    tokenizer.requires_grad_(True)
    trainer = KronosTokenizerTrainer(
        model=tokenizer, args=training_args, train_dataset=train_dataset, eval_dataset=eval_dataset
    )
    resume = training_args.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "last"):
        resume = True
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    if eval_dataset is not None:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
