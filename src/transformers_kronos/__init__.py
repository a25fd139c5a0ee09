# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Kronos, the foundation model for financial candlesticks, as native transformers models."""

from transformers import AutoConfig, AutoModel

from .configuration_kronos import KronosConfig, KronosTokenizerConfig
from .modeling_kronos import (
    KronosCache,
    KronosForTokenPrediction,
    KronosOutput,
    KronosPreTrainedModel,
    KronosTokenizerModel,
    KronosTokenizerOutput,
    config_from_upstream,
    filter_logits,
    sample_tokens,
)
from .conversion import convert_checkpoint
from .data import KronosWindowDataset
from .forecasting import KronosForecaster, calendar_features, infer_future_timestamps
from .pipelines import KlineForecastingPipeline
from .reading import KlineReadError, KlineReadWarning, read_klines

__version__ = "0.1.0"

# fine-tuning helpers import the transformers Trainer, so they load on first use
_TRAINING_NAMES = ("KronosTokenizerTrainer", "KronosTrainer", "KronosWindowCollator")


def __getattr__(name):
    if name in _TRAINING_NAMES:
        from . import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register():
    for config_cls, model_cls in ((KronosConfig, KronosForTokenPrediction), (KronosTokenizerConfig, KronosTokenizerModel)):
        AutoConfig.register(config_cls.model_type, config_cls, exist_ok=True)
        AutoModel.register(config_cls, model_cls, exist_ok=True)
        # save_pretrained then writes `auto_map` and copies the code, so checkpoints also load as remote code
        config_cls.register_for_auto_class()
        model_cls.register_for_auto_class("AutoModel")


_register()

__all__ = [
    "KlineForecastingPipeline",
    "KlineReadError",
    "KlineReadWarning",
    "KronosCache",
    "KronosConfig",
    "KronosForTokenPrediction",
    "KronosForecaster",
    "KronosOutput",
    "KronosPreTrainedModel",
    "KronosTokenizerConfig",
    "KronosTokenizerModel",
    "KronosTokenizerOutput",
    "KronosTokenizerTrainer",
    "KronosTrainer",
    "KronosWindowCollator",
    "KronosWindowDataset",
    "calendar_features",
    "config_from_upstream",
    "convert_checkpoint",
    "filter_logits",
    "infer_future_timestamps",
    "read_klines",
    "sample_tokens",
]
