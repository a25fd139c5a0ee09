# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Loading Kronos checkpoints: upstream `config.json` files, `device_map` checks and a lean half-precision read.

[`KronosPreTrainedModel.from_pretrained`] calls these before handing over to transformers. This file imports only
``torch``, ``transformers`` and its siblings, so it ships as remote code.
"""

import copy
import inspect
import json
import os
from collections.abc import Callable

import torch
from transformers import PretrainedConfig
from transformers.utils import cached_file

from .configuration_kronos import check_kronos_kind, config_from_upstream
from .utils import check_device, has_accelerator

__all__ = ["HUB_KWARGS", "check_device_map", "load_pretrained", "open_for_half_precision", "upstream_config"]

HUB_KWARGS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")
# from_pretrained arguments that the lean half-precision path below passes through unchanged
LEAN_KWARGS = ("config", "dtype", "device_map", "output_loading_info", "attn_implementation")


def open_for_half_precision(cls: type, name_or_path: object, model_args: tuple, kwargs: dict):
    """
    For a bfloat16/float16 load of a local single-file safetensors checkpoint onto the CPU, open the
    file for positioned reads instead of transformers' memory map and return `(handle, config, state_dict)`, where the
    state dict holds lazy slices; otherwise None.

    transformers maps the file and casts each tensor as it loads it, which makes no float32 copy but keeps every page of
    the float32 file resident until the end: loading a float32 Kronos-base into bfloat16 peaked at 1.5x the file size.
    Reading tensor by tensor frees each float32 buffer once cast, so the peak is about the half-precision model
    (benchmarks/load_memory.py). The weights are identical either way, float32-kept modules included.
    """
    dtype = kwargs.get("dtype")
    if isinstance(dtype, str) and dtype in ("bfloat16", "float16"):
        dtype = getattr(torch, dtype)
    if dtype not in (torch.bfloat16, torch.float16) or model_args:
        return None
    device_map = kwargs.get("device_map")
    if device_map == "auto" and not has_accelerator():
        device_map = "cpu"  # "auto" places everything on the CPU here
    if device_map not in (None, "cpu", {"": "cpu"}):
        return None  # placement over devices or disk: transformers' own loader handles it
    if any(key not in LEAN_KWARGS for key in kwargs):
        return None  # hub options, config overrides...: transformers' own path handles them
    path = os.path.join(str(name_or_path), "model.safetensors")
    if not os.path.isfile(path):
        return None
    from transformers.modeling_utils import safe_open

    try:
        handle = safe_open(path, framework="pt", device="cpu", backend="pread")
    except TypeError:
        return None  # a safetensors release without positioned reads: keep the memory map
    config = kwargs.pop("config", None)
    if config is None:
        config = cls.config_class.from_pretrained(name_or_path)
    return handle, config, {key: handle.get_slice(key) for key in handle.keys()}
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


def check_device_map(cls: type, name_or_path: object, kwargs: dict) -> None:
    """
    Reject a `device_map` that transformers would take silently or fail on deep inside loading: a device that does
    not exist here, or a per-module dict that names modules the model does not have or leaves weights unplaced.
    The module names come from the model built on the meta device (no memory, no weights read).
    """
    max_memory = kwargs.get("max_memory")
    if isinstance(max_memory, dict):
        for key, budget in max_memory.items():
            if key not in ("cpu", "disk", "mps"):
                check_device(key, f"max_memory key {key!r}")
            if isinstance(budget, (int, float)) and not isinstance(budget, bool) and budget < 0:
                raise ValueError(f"max_memory[{key!r}] must not be negative, got {budget}")
    device_map = kwargs.get("device_map")
    if device_map is None:
        return
    if isinstance(device_map, str) and device_map in DEVICE_MAP_STRATEGIES:
        return
    if not isinstance(device_map, dict):
        check_device(device_map, "device_map")
        return
    for key, device in device_map.items():
        if not isinstance(key, str):
            raise ValueError(f"device_map keys must be module names (str), got {key!r}")
        if device != "disk":
            check_device(device, f"device_map[{key!r}]")

    config = kwargs.get("config")
    if not isinstance(config, PretrainedConfig):
        hub_kwargs = {k: kwargs[k] for k in HUB_KWARGS if k in kwargs}
        config = cls.config_class.from_pretrained(name_or_path, **hub_kwargs)
    with torch.device("meta"):
        model = cls(copy.deepcopy(config))
    known = {name for name, _ in model.named_modules()}
    known.update(name for name, _ in model.named_parameters())
    known.update(name for name, _ in model.named_buffers())
    unknown = sorted(key for key in device_map if key and key not in known)
    if unknown:
        top = [name for name, _ in model.named_children()]
        raise ValueError(f"device_map names modules that {cls.__name__} does not have: {unknown} (its top-level modules: {top})")
    if "" not in device_map:
        unplaced = [
            name
            for name in model.state_dict()
            if not any(name == key or name.startswith(key + ".") for key in device_map)
        ]
        if unplaced:
            raise ValueError(f"device_map places no device for {len(unplaced)} weight(s) of {cls.__name__}, e.g. {unplaced[:5]}")


def upstream_config(cls: type, name_or_path: object, kwargs: dict) -> PretrainedConfig | None:
    """Return a config built from an upstream `config.json` (no `model_type`), or None for a transformers checkpoint."""
    hub_kwargs = {k: kwargs[k] for k in HUB_KWARGS if k in kwargs}
    subfolder = hub_kwargs.pop("subfolder", "") or ""
    if os.path.isdir(os.path.join(str(name_or_path), subfolder)):
        path = os.path.join(str(name_or_path), subfolder, "config.json")
        if not os.path.isfile(path):
            return None
    else:
        try:
            path = cached_file(name_or_path, "config.json", subfolder=subfolder, _raise_exceptions_for_missing_entries=False, **hub_kwargs)
        except Exception:
            return None  # let from_pretrained raise its own, clearer error
        if path is None:
            return None
    with open(path, encoding="utf-8") as f:
        try:
            raw = json.load(f)
        except json.JSONDecodeError:
            return None
    if not isinstance(raw, dict):
        return None
    if "model_type" in raw:
        check_kronos_kind(cls.config_class, raw["model_type"], name_or_path)
        return None
    # config attributes passed to from_pretrained (e.g. max_context=2048) override the file, as for any checkpoint
    params = inspect.signature(cls.config_class.__init__).parameters
    overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in params and k != "self" and k != "kwargs"}
    for key in ("attn_implementation",):
        if key in kwargs:
            overrides[key] = kwargs[key]
    return config_from_upstream({**raw, **overrides}, expected=cls.config_class)


def load_pretrained(cls: type, load: Callable, name_or_path: object, model_args: tuple, kwargs: dict):
    """
    [`KronosPreTrainedModel.from_pretrained`]: an upstream `config.json` read as such, the `device_map` checked, a
    half-precision CPU load read tensor by tensor; then transformers' own `from_pretrained` (`load`).
    """
    if kwargs.get("config") is None and not model_args:
        upstream = upstream_config(cls, name_or_path, kwargs)
        if upstream is not None:
            kwargs["config"] = upstream
    check_device_map(cls, name_or_path, kwargs)
    lean = open_for_half_precision(cls, name_or_path, model_args, kwargs)
    if lean is not None:
        handle, config, state_dict = lean
        try:
            loaded = load(None, config=config, state_dict=state_dict, **kwargs)
        finally:
            handle.__exit__(None, None, None)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model.name_or_path = model.config._name_or_path = str(name_or_path)
        return loaded
    try:
        return load(name_or_path, *model_args, **kwargs)
    except OSError as err:
        if os.path.isdir(str(name_or_path)):
            raise
        # transformers' message for a mistyped path or an unreachable repo names neither; say which it was
        raise OSError(
            f"cannot load {str(name_or_path)!r}: it is not a local directory, and as a Hub repo id it could not be "
            f"found or fetched ({' '.join(str(err).split())})"
        ) from err
