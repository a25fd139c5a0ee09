# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Small helpers shared by the modelling, generation and forecasting modules: argument checks and device choice.

This file imports only ``torch``, so it ships as remote code next to ``modeling_kronos.py``.
"""

import numbers

import torch

__all__ = ["check_count", "check_device", "default_device", "execution_device", "has_accelerator", "to_module_device"]


def check_count(name: str, value: object, minimum: int = 1) -> int:
    """`value` as an `int` of at least `minimum`, or a `TypeError`/`ValueError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"`{name}` must be at least {minimum}, got {value}")
    return int(value)


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


def to_module_device(tensor: torch.Tensor, module: torch.nn.Module, cast: bool = False) -> torch.Tensor:
    """`tensor` on `module`'s execution device (and with `cast=True` in its weight's dtype); a no-op when it is there."""
    dtype = module.weight.dtype if cast else None
    return tensor.to(device=execution_device(module), dtype=dtype)
