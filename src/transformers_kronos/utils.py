# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Small helpers shared by the modelling, generation and forecasting modules: argument checks, device choice,
forward-hook detection and stable seeds.

This file imports only ``torch`` and the standard library, so it ships as remote code next to ``modeling_kronos.py``.
"""

import hashlib

import torch

from .checks import check_count  # noqa: F401 - torch-free (shared with the ONNX Runtime forecaster); re-exported

__all__ = [
    "STAMP_FIELDS",
    "STAMP_SIZES",
    "check_candles",
    "check_context",
    "check_count",
    "check_device",
    "check_ids",
    "check_label_tensors",
    "check_labels",
    "check_mask",
    "check_same_shape",
    "check_stamp",
    "check_tokenizer_ids",
    "default_device",
    "execution_device",
    "has_accelerator",
    "is_tracing",
    "runs_forward_hooks",
    "series_generator",
    "series_seed",
    "to_module_device",
]

# Sizes of the calendar tables, in the order of the stamp features: minute, hour, weekday, day, month.
STAMP_FIELDS = ("minute", "hour", "weekday", "day", "month")
STAMP_SIZES = (60, 24, 7, 32, 13)


def is_tracing() -> bool:
    """Whether torch.compile or torch.export is tracing: checks that read tensor values are skipped then."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


def has_accelerator() -> bool:
    """Whether torch sees a CUDA, MPS or XPU device."""
    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return (
        torch.cuda.is_available()
        or (mps is not None and mps.is_available())
        or (xpu is not None and xpu.is_available())
    )


def default_device() -> torch.device:
    """cuda if available, then mps, then cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_device(device: object, where: str) -> None:
    """Raise `ValueError` unless `device` names a device that exists here ("disk" is checked by the caller)."""
    if isinstance(device, bool) or not isinstance(device, (str, int, torch.device)):
        raise ValueError(f"{where} must be a device name, index or torch.device, got {type(device).__name__}")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"{where}: {device!r} is not a device on this machine ({err})") from None
    if resolved.type in ("cpu", "meta"):
        return
    backend = getattr(torch, resolved.type, None)
    is_available = getattr(backend, "is_available", None)
    if is_available is not None and not is_available():
        raise ValueError(f"{where}: {device!r} is not available on this machine (torch.{resolved.type} has no device)")
    device_count = getattr(backend, "device_count", None)
    if resolved.index is not None and device_count is not None and resolved.index >= device_count():
        raise ValueError(f"{where}: {device!r} does not exist, this machine has {device_count()} {resolved.type} device(s)")


def execution_device(module: torch.nn.Module) -> torch.device | None:
    """
    The device `module` computes on.

    Once accelerate has dispatched a model (`device_map=` spanning devices, or offload), a module called through its
    `forward` gets its inputs moved by its hook, but a submodule called directly by its parent's helper methods does
    not: those move their inputs here. An offloaded module keeps its weights on the meta device and its hook names
    the device it runs on.
    """
    for sub in module.modules():
        hook = getattr(sub, "_hf_hook", None)
        for h in (hook, *getattr(hook, "hooks", ())):  # a SequentialHook wraps several hooks
            device = getattr(h, "execution_device", None)
            if device is not None:
                return torch.device(device)
        for param in sub.parameters(recurse=False):
            if param.device.type != "meta":
                return param.device
    return None


def runs_forward_hooks(module: torch.nn.Module) -> bool:
    """
    Whether calling `module` runs forward hooks: its own (forward or pre-forward), accelerate's (`_hf_hook`) or global
    ones. A fast path that uses a module's weights without calling it applies only where none would run.
    """
    hooks = torch.nn.modules.module
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or getattr(module, "_hf_hook", None) is not None
        or getattr(hooks, "_global_forward_hooks", None)
        or getattr(hooks, "_global_forward_pre_hooks", None)
    )


def to_module_device(tensor: torch.Tensor, module: torch.nn.Module, cast: bool = False) -> torch.Tensor:
    """`tensor` on `module`'s execution device (and with `cast=True` in its weight's dtype); a no-op when it is there."""
    dtype = module.weight.dtype if cast else None
    return tensor.to(device=execution_device(module), dtype=dtype)


# Checks of model inputs (eager only: they read tensor values)



def check_ids(name: str, ids: object, vocab: int) -> None:
    """Token ids `(batch, seq_len)` of an integer dtype, all in `[0, vocab)`."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of token ids, got {type(ids).__name__}")
    if ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"`{name}` must hold integer token ids (int64 or int32), got dtype {ids.dtype}")
    if ids.dim() != 2:
        raise ValueError(f"`{name}` must have shape (batch, seq_len), got {tuple(ids.shape)}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise ValueError(f"`{name}` has ids outside [0, {vocab}): min {int(ids.min())}, max {int(ids.max())}")


def check_stamp(stamp: object, batch: int, seq_len: int, name: str = "stamp") -> None:
    """Calendar features `(batch, seq_len, 5)` (or `None`), each field within its table."""
    if stamp is None:
        return
    if not isinstance(stamp, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(stamp).__name__}")
    if stamp.dim() != 3 or stamp.shape[0] != batch or stamp.shape[1] != seq_len or stamp.shape[2] != len(STAMP_SIZES):
        raise ValueError(
            f"`{name}` must have shape ({batch}, {seq_len}, {len(STAMP_SIZES)}) (minute, hour, weekday, day, month), "
            f"got {tuple(stamp.shape)}"
        )
    if stamp.is_complex() or stamp.dtype == torch.bool:
        raise TypeError(f"`{name}` must hold integer or float calendar features, got dtype {stamp.dtype}")
    if stamp.is_floating_point() and not torch.isfinite(stamp).all():
        raise ValueError(f"`{name}` contains NaN or inf")
    for i, (field, size) in enumerate(zip(STAMP_FIELDS, STAMP_SIZES)):
        column = stamp[..., i]
        if column.numel() and (float(column.min()) < 0 or float(column.max()) >= size):
            raise ValueError(
                f"`{name}` field {field!r} must lie in [0, {size}), got values in [{float(column.min())}, {float(column.max())}]"
            )


def check_mask(attention_mask: object, batch: int, length: int, left_padded: bool = False) -> None:
    """A padding mask `(batch, length)` of 0 and 1 with a real position in every row (and with `left_padded`, its
    padding before the real positions, as decoding appends after them)."""
    if attention_mask is None:
        return
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(f"`attention_mask` must be a torch.Tensor, got {type(attention_mask).__name__}")
    if tuple(attention_mask.shape) != (batch, length):
        raise ValueError(f"`attention_mask` must have shape ({batch}, {length}), got {tuple(attention_mask.shape)}")
    if attention_mask.is_complex() or not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
        raise ValueError("`attention_mask` must hold only 0 (padding) and 1 (real positions)")
    if length and not bool(attention_mask.bool().any(dim=-1).all()):
        raise ValueError("`attention_mask` has a row without any real position")
    if left_padded and length > 1 and bool((attention_mask[:, 1:] < attention_mask[:, :-1]).any()):
        raise ValueError("`attention_mask` must pad on the left (zeros before ones), since tokens are appended on the right")


def check_same_shape(**tensors: torch.Tensor | None) -> None:
    """The given tensors agree in batch size and length."""
    shapes = {name: tuple(t.shape[:2]) for name, t in tensors.items() if t is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"batch size and length must agree: {shapes}")


def check_context(context: object, s1_ids: torch.Tensor, vocab: int) -> None:
    """`decode_s2`'s inputs: the float context `(batch, seq_len, d)` and s1 ids of length 1 or `seq_len`."""
    check_ids("s1_ids", s1_ids, vocab)
    if not isinstance(context, torch.Tensor) or context.dim() != 3 or not context.is_floating_point():
        got = f"shape {tuple(context.shape)} of {context.dtype}" if isinstance(context, torch.Tensor) else type(context).__name__
        raise TypeError(f"`context` must be the float tensor `(batch, seq_len, d_model)` that decode_s1 returns, got {got}")
    if context.shape[0] != s1_ids.shape[0]:
        raise ValueError(f"batch size of `context` ({context.shape[0]}) and `s1_ids` ({s1_ids.shape[0]}) differ")
    if s1_ids.shape[1] not in (1, context.shape[1]):
        raise ValueError(f"`s1_ids` must have length 1 or {context.shape[1]}, got {s1_ids.shape[1]}")


def check_labels(name: str, labels: object, vocab: int) -> None:
    """Label ids in `[0, vocab)`, or -100 (ignored)."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of token ids, got {type(labels).__name__}")
    if labels.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"`{name}` must hold integer token ids (int64 or int32), got dtype {labels.dtype}")
    valid = labels[labels != -100]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= vocab):
        raise ValueError(f"`{name}` has ids outside [0, {vocab}) (use -100 to ignore a position)")


def check_label_tensors(s1_ids, s1_vocab: int, s2_vocab: int, s1_labels=None, s2_labels=None, s1_targets=None) -> None:
    """The predictor's labels and teacher-forcing targets: token tensors of the inputs' shape, ids in range."""
    for name, labels in (("s1_labels", s1_labels), ("s2_labels", s2_labels), ("s1_targets", s1_targets)):
        if labels is not None:
            if not isinstance(labels, torch.Tensor):
                raise TypeError(f"`{name}` must be a torch.Tensor of token ids, got {type(labels).__name__}")
            if tuple(labels.shape) != tuple(s1_ids.shape):
                raise ValueError(f"`{name}` must have shape {tuple(s1_ids.shape)}, got {tuple(labels.shape)}")
    if s1_labels is not None:
        check_labels("s1_labels", s1_labels, s1_vocab)
        check_labels("s2_labels", s2_labels, s2_vocab)
    if s1_targets is not None:
        check_ids("s1_targets", s1_targets, s1_vocab)


def check_candles(x: object, d_in: int, attention_mask: object = None) -> None:
    """The tokenizer's input: finite float candles `(batch, seq_len, d_in)`, and their padding mask."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`x` must be a torch.Tensor of shape (batch, seq_len, {d_in}), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"`x` must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 3 or x.shape[-1] != d_in:
        raise ValueError(f"`x` must have shape (batch, seq_len, d_in={d_in}), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("`x` contains NaN or inf")
    check_mask(attention_mask, x.shape[0], x.shape[1])


def check_tokenizer_ids(indices: object, half: bool, s1_bits: int, s2_bits: int, attention_mask: object = None) -> None:
    """The tokenizer's `decode` input: full ids `(batch, seq_len)`, or with `half` a pair `[s1_ids, s2_ids]`."""
    if half:
        if not isinstance(indices, (list, tuple)) or len(indices) != 2:
            raise TypeError("with `half=True`, `indices` must be a pair [s1_ids, s2_ids]")
        check_ids("s1_ids", indices[0], 2**s1_bits)
        check_ids("s2_ids", indices[1], 2**s2_bits)
        check_same_shape(s1_ids=indices[0], s2_ids=indices[1])
        shape = indices[0].shape
    else:
        check_ids("indices", indices, 2 ** (s1_bits + s2_bits))
        shape = indices.shape
    check_mask(attention_mask, shape[0], shape[1])


def series_seed(seed: int, series_id) -> int:
    """A stable 63-bit seed for one series: BLAKE2b of the run's seed and the id's text (not Python's `hash()`)."""
    digest = hashlib.blake2b(f"{int(seed)}\x1f{series_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def series_generator(seed: int, series_id, device="cpu") -> torch.Generator:
    """A `torch.Generator` on `device` seeded with [`series_seed`]`(seed, series_id)`."""
    generator = torch.Generator(device=device)
    generator.manual_seed(series_seed(seed, series_id))
    return generator
