# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Argument checks that need no third-party package: shared by the torch side (modelling, generation, forecasting)
and the torch-free side (pandas preprocessing, ONNX Runtime forecasting).

This file imports only the standard library, so it ships as remote code next to ``modeling_kronos.py``.
"""

import math
import numbers

__all__ = ["MIN_TEMPERATURE", "check_count", "check_sampling"]

# the smallest sampling temperature: float32 logits divided by less may overflow to inf (top_k=1 is greedy)
MIN_TEMPERATURE = 1e-6


def check_count(name: str, value: object, minimum: int = 1) -> int:
    """`value` as an `int` of at least `minimum`, or a `TypeError`/`ValueError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"`{name}` must be at least {minimum}, got {value}")
    return int(value)


def check_sampling(temperature: float, top_k: int | None, top_p: float | None, temperature_name: str = "temperature"):
    """
    Validate sampling controls; returns them normalised: `(float temperature, int top_k, float top_p)`, with
    `top_k=None` → 0 (no top-k filter) and `top_p=None` → 1.0 (no nucleus filter).
    """
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"`{temperature_name}` (temperature) must be a number, got {type(temperature).__name__}")
    if not math.isfinite(temperature) or temperature < MIN_TEMPERATURE:
        raise ValueError(
            f"`{temperature_name}` (temperature) must be finite and at least {MIN_TEMPERATURE:g} (below, logits / "
            f"temperature overflows float32; use top_k=1 for greedy decoding), got {temperature}"
        )
    top_k = 0 if top_k is None else top_k
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral):
        raise TypeError(f"`top_k` must be an integer (0 or None: no top-k filter), got {type(top_k).__name__}")
    if top_k < 0:
        raise ValueError(f"`top_k` must be >= 0 (0: no top-k filter), got {top_k}")
    top_p = 1.0 if top_p is None else top_p
    if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real):
        raise TypeError(f"`top_p` must be a number in (0, 1], got {type(top_p).__name__}")
    if not 0 < top_p <= 1:
        raise ValueError(f"`top_p` must lie in (0, 1], got {top_p}")
    return float(temperature), int(top_k), float(top_p)
