# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Fine-tuning Kronos with the transformers `Trainer`.

The predictor learns from token ids, but the data are candles; [`KronosTrainer`] bridges the two. Its batches hold
normalised windows `x` and their calendar features `stamp` (see [`KronosWindowDataset`]); inside `compute_loss`
the frozen [`KronosTokenizerModel`] turns each window into `s1`/`s2` ids on the training device, in float32 and
without gradients, and the predictor's own `forward` computes `(ce_s1 + ce_s2) / 2` on the ids shifted by one
candle. Everything else (devices, DDP/FSDP/DeepSpeed, mixed precision, gradient accumulation and checkpointing,
checkpoints, resume, logging, PEFT) is the `Trainer`'s.

[`KronosTokenizerTrainer`] trains the tokenizer itself on the same windows with its reconstruction + BSQ loss.
"""

from typing import Optional

import torch
from transformers import Trainer

from .configuration_kronos import KronosConfig, KronosTokenizerConfig

__all__ = [
    "KronosTokenizerTrainer",
    "KronosTrainer",
    "KronosWindowCollator",
    "check_tokenizer_compatible",
    "tokenize_windows",
]


class KronosWindowCollator:
    """
    Stack the items of a [`KronosWindowDataset`] into a batch.

    Returns a dict with `"x"` of shape `(batch, window, d_in)` and `"stamp"` of shape `(batch, window, 5)`, both float32.
    """

    def __call__(self, features):
        if not features:
            raise ValueError("cannot collate an empty list of windows")
        bad = next((f for f in features if not isinstance(f, dict)), None)
        if bad is not None:
            raise TypeError(f"windows must be dicts with 'x' and 'stamp' (as KronosWindowDataset yields), got {type(bad).__name__}")
        batch = {}
        for key in ("x", "stamp"):
            missing = next((f for f in features if key not in f), None)
            if missing is not None:
                raise ValueError(f"every window must have a {key!r} entry, got keys {sorted(missing)}")
            tensors = [torch.as_tensor(f[key], dtype=torch.float32) for f in features]
            shapes = {tuple(t.shape) for t in tensors}
            if len(shapes) > 1:
                raise ValueError(f"windows of different shapes cannot be batched: {sorted(shapes)}")
            batch[key] = torch.stack(tensors)
        return batch


def _config_of(model):
    config = getattr(model, "config", None)
    # a PEFT wrapper or a DDP module exposes the Kronos config one level down
    if config is None and hasattr(model, "module"):
        config = getattr(model.module, "config", None)
    return config


def check_tokenizer_compatible(model, tokenizer, num_features: Optional[int] = None) -> None:
    """
    Raise `ValueError` unless `tokenizer` produces the tokens `model` reads (same `s1_bits` and `s2_bits`) and,
    when `num_features` is given, reads that many features per candle.

    Args:
        model: a [`KronosForTokenPrediction`] (or its config).
        tokenizer: a [`KronosTokenizerModel`] (or its config).
        num_features (`int`, *optional*): Features per candle in the data.
    """
    model_config = model if isinstance(model, KronosConfig) else _config_of(model)
    tokenizer_config = tokenizer if isinstance(tokenizer, KronosTokenizerConfig) else _config_of(tokenizer)
    if not isinstance(tokenizer_config, KronosTokenizerConfig):
        raise TypeError(f"expected a KronosTokenizerModel, got {type(tokenizer).__name__}")
    if model_config is not None:
        if not isinstance(model_config, KronosConfig):
            raise TypeError(f"expected a KronosForTokenPrediction, got {type(model).__name__}")
        if (model_config.s1_bits, model_config.s2_bits) != (tokenizer_config.s1_bits, tokenizer_config.s2_bits):
            raise ValueError(
                f"the tokenizer makes tokens of s1_bits={tokenizer_config.s1_bits}, s2_bits={tokenizer_config.s2_bits} "
                f"but the model reads s1_bits={model_config.s1_bits}, s2_bits={model_config.s2_bits}; "
                "pair the model with the tokenizer it was trained with"
            )
    if num_features is not None and num_features != tokenizer_config.d_in:
        raise ValueError(
            f"the data have {num_features} features per candle but the tokenizer reads d_in={tokenizer_config.d_in}"
        )


@torch.no_grad()
def tokenize_windows(tokenizer, x: torch.Tensor, stamp: torch.Tensor) -> dict[str, torch.Tensor]:
    """
    Tokenize normalised windows and shift them into predictor inputs and labels.

    Tokenization runs in the tokenizer's own dtype with autocast disabled, so mixed-precision training sees the
    same tokens as float32 inference.

    Args:
        tokenizer ([`KronosTokenizerModel`]): The frozen tokenizer.
        x (`torch.Tensor` of shape `(batch, window, d_in)`): Normalised candles.
        stamp (`torch.Tensor` of shape `(batch, window, 5)`): Calendar features.

    Returns:
        `dict` of `s1_ids`, `s2_ids`, `stamp` (positions `0 .. window-2`) and `s1_labels`, `s2_labels` (positions
        `1 .. window-1`), ready for [`KronosForTokenPrediction.forward`].
    """
    for name, value in (("x", x), ("stamp", stamp)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"`{name}` must be a torch.Tensor, got {type(value).__name__}")
    if x.dim() != 3 or x.shape[1] < 2:
        raise ValueError(f"`x` must have shape (batch, window >= 2, d_in), got {tuple(x.shape)}")
    if stamp.shape[:2] != x.shape[:2]:
        raise ValueError(f"`stamp` must have the batch and window of `x` {tuple(x.shape[:2])}, got {tuple(stamp.shape)}")
    device = x.device
    with torch.autocast(device_type=device.type, enabled=False):
        s1, s2 = tokenizer.encode(x, half=True)
    return {
        "s1_ids": s1[:, :-1],
        "s2_ids": s2[:, :-1],
        "stamp": stamp[:, :-1],
        "s1_labels": s1[:, 1:],
        "s2_labels": s2[:, 1:],
    }


class _WindowTrainerMixin:
    """
    What both trainers share: batches of windows that feed `compute_loss` (not `model.forward` directly), a loss that
    is a per-batch mean, and evaluation of that loss (the stock `prediction_step` only computes a loss when the batch
    holds labels).
    """

    # `compute_loss` returns a per-batch mean: the Trainer divides it by the number of accumulated batches, so
    # `gradient_accumulation_steps * per_device_train_batch_size` gives the same loss and gradient as one batch
    # of that size (windows all have the same length, so every micro-batch holds the same number of tokens).
    loss_is_scaled_for_ga = False

    def _set_signature_columns_if_needed(self):
        # the batch feeds `compute_loss`, not `model.forward`: keep the window columns whatever the model's signature
        if self._signature_columns is None:
            self._signature_columns = ["x", "stamp"]

    def prediction_step(
        self, model: torch.nn.Module, inputs: dict, prediction_loss_only: bool, ignore_keys: Optional[list[str]] = None
    ) -> tuple:
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
        loss = loss.detach().mean()
        if prediction_loss_only:
            return loss, None, None
        return loss, self._prediction_logits(outputs), self._prediction_labels(inputs, outputs)

    def _prediction_logits(self, outputs):
        return None

    def _prediction_labels(self, inputs, outputs):
        return None


class KronosTrainer(_WindowTrainerMixin, Trainer):
    """
    A `Trainer` for [`KronosForTokenPrediction`] on windows of candles.

    Args:
        model: The predictor (or a PEFT model wrapping it).
        kronos_tokenizer ([`KronosTokenizerModel`]): The tokenizer that the predictor's tokens come from. It is
            frozen (eval mode, no gradients), moved to the training device on first use, and never saved by the
            `Trainer` (save it next to the model yourself, as `examples/finetune_kronos.py` does).
        data_collator: Defaults to [`KronosWindowCollator`].
        All other arguments are the `Trainer`'s.

    The batches are `{"x": (batch, lookback + pred_window + 1, 6), "stamp": (batch, ..., 5)}`; `compute_loss`
    tokenizes them with [`tokenize_windows`] and returns the model's `loss`. How the s2 head is conditioned during
    training is `model.config.s2_conditioning` (`"teacher_forcing"`, the default, or `"sampled"` as upstream's
    fine-tuning scripts do).
    """

    def __init__(self, model=None, args=None, data_collator=None, *, kronos_tokenizer=None, **kwargs):
        if kronos_tokenizer is None:
            raise ValueError("KronosTrainer needs `kronos_tokenizer`, the KronosTokenizerModel of the predictor")
        check_tokenizer_compatible(model, kronos_tokenizer)
        kronos_tokenizer.eval()
        kronos_tokenizer.requires_grad_(False)
        self.kronos_tokenizer = kronos_tokenizer
        super().__init__(model=model, args=args, data_collator=data_collator or KronosWindowCollator(), **kwargs)
        # `compute_loss` never forwards `num_items_in_batch`, whatever the model's signature says
        self.model_accepts_loss_kwargs = False

    def tokenize(self, inputs: dict) -> dict:
        """Token ids and shifted labels of a batch of windows (see [`tokenize_windows`])."""
        x = inputs["x"]
        first = next(self.kronos_tokenizer.parameters())
        if first.device != x.device:
            self.kronos_tokenizer.to(x.device)
        self.kronos_tokenizer.eval()  # `Trainer` only switches the trained model between train and eval
        return tokenize_windows(self.kronos_tokenizer, x, inputs["stamp"])

    def compute_loss(
        self, model: torch.nn.Module, inputs: dict, return_outputs: bool = False, num_items_in_batch: Optional[int] = None
    ):
        tokens = self.tokenize(inputs)
        outputs = model(**tokens, return_dict=True)
        loss = outputs["loss"]
        if return_outputs:
            return loss, {**outputs, "s1_labels": tokens["s1_labels"], "s2_labels": tokens["s2_labels"]}
        return loss

    def _prediction_logits(self, outputs):
        return outputs["s1_logits"], outputs["s2_logits"]

    def _prediction_labels(self, inputs, outputs):
        return outputs["s1_labels"], outputs["s2_labels"]


class KronosTokenizerTrainer(_WindowTrainerMixin, Trainer):
    """
    A `Trainer` for [`KronosTokenizerModel`] on windows of candles: the loss is the model's own
    `(mse(coarse) + mse(full) + bsq_loss) / 2`. Calendar features in the batch are not used.
    """

    def __init__(self, model=None, args=None, data_collator=None, **kwargs):
        super().__init__(model=model, args=args, data_collator=data_collator or KronosWindowCollator(), **kwargs)
        self.model_accepts_loss_kwargs = False

    def compute_loss(
        self, model: torch.nn.Module, inputs: dict, return_outputs: bool = False, num_items_in_batch: Optional[int] = None
    ):
        outputs = model(x=inputs["x"], return_dict=True)
        return (outputs["loss"], outputs) if return_outputs else outputs["loss"]

    def _prediction_logits(self, outputs):
        return outputs["reconstruction"]

    def _prediction_labels(self, inputs, outputs):
        return inputs["x"]
