# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""
Kronos, the foundation model for financial candlesticks, as native transformers models.

With torch and transformers installed, importing the package registers the Kronos configs and models with the Auto
classes and exposes everything below. Without them (a slim deployment image), it exposes the torch-free part: the
K-line reader, the pandas helpers and, from `transformers_kronos.onnx`, the ONNX Runtime forecaster; the torch-side
names then raise an `ImportError` that says so.
"""

from .forecasting_base import calendar_features, infer_future_timestamps
from .reading import KlineReadError, KlineReadWarning, read_klines

try:
    import torch  # noqa: F401
    import transformers  # noqa: F401
except ModuleNotFoundError as err:
    if err.name not in ("torch", "transformers"):
        raise
    _MISSING = err.name
else:
    _MISSING = None

if _MISSING is None:
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
    from .forecasting import KronosForecaster
    from .pipelines import KlineForecastingPipeline

__version__ = "0.1.0"

# fine-tuning helpers import the transformers Trainer, so they load on first use
_TRAINING_NAMES = ("KronosTokenizerTrainer", "KronosTrainer", "KronosWindowCollator")
_TORCH_NAMES = (
    "KlineForecastingPipeline", "KronosCache", "KronosConfig", "KronosForTokenPrediction", "KronosForecaster",
    "KronosOutput", "KronosPreTrainedModel", "KronosTokenizerConfig", "KronosTokenizerModel", "KronosTokenizerOutput",
    "KronosWindowDataset", "config_from_upstream", "convert_checkpoint", "filter_logits", "sample_tokens",
)  # fmt: skip


def __getattr__(name):
    if _MISSING is not None and (name in _TORCH_NAMES or name in _TRAINING_NAMES):
        raise ImportError(
            f"transformers_kronos.{name} needs {_MISSING}, which is not installed (pip install transformers-kronos); "
            "without torch, forecast from exported graphs with transformers_kronos.onnx.OnnxForecaster"
        )
    if name in _TRAINING_NAMES:
        from . import training

        return getattr(training, name)
    if name == "OnnxForecaster":
        from .onnx import OnnxForecaster

        return OnnxForecaster
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register():
    for config_cls, model_cls in ((KronosConfig, KronosForTokenPrediction), (KronosTokenizerConfig, KronosTokenizerModel)):
        AutoConfig.register(config_cls.model_type, config_cls, exist_ok=True)
        AutoModel.register(config_cls, model_cls, exist_ok=True)
        # save_pretrained then writes `auto_map` and copies the code, so checkpoints also load as remote code
        config_cls.register_for_auto_class()
        model_cls.register_for_auto_class("AutoModel")


if _MISSING is None:
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
    "OnnxForecaster",
    "calendar_features",
    "config_from_upstream",
    "convert_checkpoint",
    "filter_logits",
    "infer_future_timestamps",
    "read_klines",
    "sample_tokens",
]

if _MISSING is not None:
    __all__ = [name for name in __all__ if name not in _TORCH_NAMES + _TRAINING_NAMES]
