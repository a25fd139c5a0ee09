# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""The demo model bundled with the package: a tiny Kronos predictor and tokenizer trained on synthetic K-lines.

It exists so that `kronos-forecast` and the examples run on a fresh machine without downloading anything. It is
**not** a pretrained Kronos: it was trained for a few CPU minutes on series from
[`transformers_kronos.synthetic`], by `examples/build_demo_model.py` (which rebuilds it bit for bit), and its
forecasts say nothing about real markets. For real use load the published checkpoints (NeoQuasar/Kronos-*).

Example:

```python
>>> from transformers_kronos.demo import load_demo
>>> model, tokenizer = load_demo()
>>> model.config.s1_bits == tokenizer.config.s1_bits
True
```
"""

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

if TYPE_CHECKING:
    import torch

    from ..modeling_kronos import KronosForTokenPrediction, KronosTokenizerModel

DEMO_PREDICTOR = "predictor"
DEMO_TOKENIZER = "tokenizer"


def demo_path(part: str = DEMO_PREDICTOR) -> Path:
    """Directory of the bundled `"predictor"` or `"tokenizer"` checkpoint (transformers format)."""
    if part not in (DEMO_PREDICTOR, DEMO_TOKENIZER):
        raise ValueError(f"`part` must be {DEMO_PREDICTOR!r} or {DEMO_TOKENIZER!r}, got {part!r}")
    path = Path(str(resources.files(__name__).joinpath(part)))
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"the bundled demo {part} is missing from {path}; rebuild it with `python examples/build_demo_model.py`"
        )
    return path


def load_demo(
    dtype: Optional["torch.dtype"] = None, device: Optional[Union[str, "torch.device"]] = None
) -> tuple["KronosForTokenPrediction", "KronosTokenizerModel"]:
    """
    Load the bundled demo predictor and tokenizer.

    Args:
        dtype (`torch.dtype`, *optional*): Load in this dtype (default float32).
        device (`str` or `torch.device`, *optional*): Move both models there (default CPU).

    Returns:
        `(KronosForTokenPrediction, KronosTokenizerModel)`, both in eval mode.
    """
    from transformers.utils import logging as hf_logging

    from ..modeling_kronos import KronosForTokenPrediction, KronosTokenizerModel

    kwargs = {} if dtype is None else {"dtype": dtype}
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # two small local files: a loading bar each would only be noise
    try:
        model = KronosForTokenPrediction.from_pretrained(demo_path(DEMO_PREDICTOR), **kwargs).eval()
        tokenizer = KronosTokenizerModel.from_pretrained(demo_path(DEMO_TOKENIZER), **kwargs).eval()
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if device is not None:
        model, tokenizer = model.to(device), tokenizer.to(device)
    return model, tokenizer


__all__ = ["demo_path", "load_demo"]
