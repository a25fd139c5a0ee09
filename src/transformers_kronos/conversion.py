# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""
Conversion of upstream Kronos checkpoints to transformers checkpoints.

Every published Kronos checkpoint (NeoQuasar/Kronos-mini, -small, -base and NeoQuasar/Kronos-Tokenizer-2k, -base) was
written by upstream's `PyTorchModelHubMixin`: a `config.json` holding the bare `__init__` arguments (no `model_type`)
and a `model.safetensors` whose keys are upstream's module names. Our submodules carry the same names, so the weights
need no renaming; what changes is around them:

- `config.json` gains `model_type`, `architectures`, `auto_map`, `dtype` and the transformers-only fields
  (`max_context`, `dependency_heads`, ...);
- the rotary `inv_freq` buffers upstream persists are dropped (they are rebuilt in float32 on load);
- the remote-code files (`configuration_kronos.py`, `modeling_kronos.py`) are copied next to the weights, so the
  folder loads with `trust_remote_code=True` where this package is not installed;
- a model card (`README.md`) says where the weights come from and how to load them.

[`convert_checkpoint`] is the entry point; `conversion_scripts/convert_kronos_original_to_hf.py` is a command line
over it. Bad input raises `ValueError` naming the problem, and the destination is only ever written complete: the
checkpoint is built in a temporary directory next to it and moved into place at the end.
"""

import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from collections.abc import Sequence
from typing import Optional, Union

import torch

from .configuration_kronos import (
    CONFIG_KINDS,
    UPSTREAM_MODEL_KEYS,
    UPSTREAM_TOKENIZER_KEYS,
    KronosConfig,
    KronosTokenizerConfig,
    detect_config,
)
from .io_utils import atomic_directory, one_line
from .modeling_kronos import KronosForTokenPrediction, KronosTokenizerModel

CONFIG_NAME = "config.json"
SAFE_WEIGHTS_NAME = "model.safetensors"
PICKLE_WEIGHTS_NAME = "pytorch_model.bin"

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
KINDS = CONFIG_KINDS

# Keys upstream checkpoints persist that our models rebuild instead of loading.
_REBUILT_KEYS = re.compile(r"(^|\.)rotary\.inv_freq$")

# The published checkpoints, by architecture: (name, training context, tokenizer to pair with).
_PUBLISHED_PREDICTORS = {
    (10, 10, 4, 256, 4, 512): ("Kronos-mini", 2048, "NeoQuasar/Kronos-Tokenizer-2k"),
    (10, 10, 8, 512, 8, 1024): ("Kronos-small", 512, "NeoQuasar/Kronos-Tokenizer-base"),
    (10, 10, 12, 832, 16, 2048): ("Kronos-base", 512, "NeoQuasar/Kronos-Tokenizer-base"),
}
_TOKENIZER_PAIRS = {
    "Kronos-Tokenizer-2k": "NeoQuasar/Kronos-mini",
    "Kronos-Tokenizer-base": "NeoQuasar/Kronos-small and NeoQuasar/Kronos-base",
}

_UPSTREAM_URL = "https://github.com/shiyu-coder/Kronos"


class ConversionNote(UserWarning):
    """Advice about a conversion that succeeded (e.g. a context length below the one the model was trained with)."""
_VERIFY_TOLERANCE = 1e-5


# --------------------------------------------------------------------------------------------------------------------
# Reading the source
# --------------------------------------------------------------------------------------------------------------------


def _looks_like_repo_id(name):
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return name.count("/") == 1


def resolve_source(
    src: Union[str, os.PathLike], revision: Optional[str] = None, cache_dir: Optional[str] = None
) -> tuple[str, Optional[str]]:
    """
    Return `(local_dir, repo_id)` for a checkpoint given as a local directory or a Hub repo id.

    A Hub checkpoint is fetched with `huggingface_hub.snapshot_download` (its config and weights only); `repo_id` is
    `None` for a local directory.
    """
    src = os.fspath(src)
    if os.path.exists(src):
        if revision is not None:
            raise ValueError(f"`revision` only applies to Hub repo ids, but {src!r} is a local path")
        if not os.path.isdir(src):
            raise ValueError(f"the checkpoint {src!r} is a file; pass the directory that holds config.json")
        return src, None
    if not _looks_like_repo_id(src):
        raise ValueError(f"the checkpoint {src!r} is neither an existing directory nor a Hub repo id (owner/name)")

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        local_dir = snapshot_download(
            src,
            revision=revision,
            cache_dir=cache_dir,
            allow_patterns=[CONFIG_NAME, SAFE_WEIGHTS_NAME, PICKLE_WEIGHTS_NAME],
        )
    except RepositoryNotFoundError:
        raise ValueError(f"the checkpoint {src!r} is not a local directory and no such repo exists on the Hub") from None
    except RevisionNotFoundError:
        raise ValueError(f"the Hub repo {src!r} has no revision {revision!r}") from None
    except LocalEntryNotFoundError:
        raise ValueError(
            f"the checkpoint {src!r} is not a local directory, and the Hub repo could not be fetched "
            "(offline, or no network) nor found in the local cache"
        ) from None
    except (HfHubHTTPError, OSError) as err:
        raise ValueError(f"could not fetch {src!r} from the Hub: {one_line(err)}") from None
    return local_dir, src


def read_source_config(local_dir: Union[str, os.PathLike]) -> dict:
    """The `config.json` of a checkpoint directory, as a dictionary."""
    path = os.path.join(local_dir, CONFIG_NAME)
    if not os.path.isfile(path):
        raise ValueError(f"{local_dir!r} has no {CONFIG_NAME}; is it a Kronos checkpoint?")
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(raw).__name__}")
    return raw


def load_source_state_dict(
    local_dir: Union[str, os.PathLike], allow_pickle: bool = False
) -> tuple[dict[str, torch.Tensor], str]:
    """
    The weights of a checkpoint directory: `model.safetensors`, or a pickled `pytorch_model.bin` when
    `allow_pickle=True` (read with `torch.load(..., weights_only=True)`, which runs no arbitrary code).
    """
    safe_path = os.path.join(local_dir, SAFE_WEIGHTS_NAME)
    pickle_path = os.path.join(local_dir, PICKLE_WEIGHTS_NAME)
    if os.path.isfile(safe_path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state_dict = load_file(safe_path)
        except (SafetensorError, OSError) as err:
            raise ValueError(f"{safe_path} is truncated or corrupt: {one_line(err)}") from None
        source = SAFE_WEIGHTS_NAME
    elif os.path.isfile(pickle_path):
        if not allow_pickle:
            raise ValueError(
                f"{local_dir!r} holds only a pickled {PICKLE_WEIGHTS_NAME}; pickles can run code when loaded, so "
                "conversion refuses them unless allowed (--allow-pickle / allow_pickle=True)"
            )
        try:
            state_dict = torch.load(pickle_path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for corrupt or unsafe pickles
            raise ValueError(f"{pickle_path} could not be read safely: {one_line(err)}") from None
        source = PICKLE_WEIGHTS_NAME
        if not isinstance(state_dict, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
        ):
            raise ValueError(f"{pickle_path} does not hold a state dict (a mapping of names to tensors)")
    else:
        raise ValueError(f"{local_dir!r} has no {SAFE_WEIGHTS_NAME} (nor {PICKLE_WEIGHTS_NAME})")
    if not state_dict:
        raise ValueError(f"{os.path.join(local_dir, source)} holds no tensors")
    return state_dict, source


def check_state_dict(
    model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str = SAFE_WEIGHTS_NAME
) -> dict[str, torch.Tensor]:
    """
    Raise `ValueError` unless `state_dict` holds exactly the weights `model` expects, with the shapes its config
    implies (upstream's persisted rotary frequencies excepted: they are rebuilt, not loaded), and all of them finite.
    """
    expected = model.state_dict()
    given = {k: v for k, v in state_dict.items() if not _REBUILT_KEYS.search(k)}
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    mismatched = [
        (k, tuple(given[k].shape), tuple(expected[k].shape))
        for k in sorted(set(given) & set(expected))
        if tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    if mismatched:
        key, got, want = mismatched[0]
        more = f" (and {len(mismatched) - 1} more)" if len(mismatched) > 1 else ""
        raise ValueError(
            f"the weights contradict config.json: {key} has shape {got} in {source} but the config implies {want}{more}"
        )
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise ValueError(f"{source} lacks weights the config implies: {', '.join(missing[:3])}{more}")
    if unexpected:
        more = f" (and {len(unexpected) - 3} more)" if len(unexpected) > 3 else ""
        raise ValueError(f"{source} has weights the config does not describe: {', '.join(unexpected[:3])}{more}")
    for key, tensor in given.items():
        if tensor.is_floating_point() != expected[key].is_floating_point():
            raise ValueError(f"{key} in {source} has dtype {tensor.dtype}, expected a tensor like {expected[key].dtype}")
    broken = [key for key in sorted(given) if given[key].is_floating_point() and not torch.isfinite(given[key]).all()]
    if broken:
        more = f" (and {len(broken) - 3} more)" if len(broken) > 3 else ""
        raise ValueError(f"{source} holds NaN or infinite weights in {', '.join(broken[:3])}{more}: a broken checkpoint")
    return given


def _stored_dtype(state_dict):
    """The floating-point dtype most of the weights are stored in (float32 when there are none)."""
    counts = {}
    for tensor in state_dict.values():
        if tensor.is_floating_point():
            counts[tensor.dtype] = counts.get(tensor.dtype, 0) + tensor.numel()
    return max(counts, key=counts.get) if counts else torch.float32


# --------------------------------------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------------------------------------


def published_name(kind: str, config, repo_id: Optional[str] = None) -> Optional[str]:
    """The published checkpoint a config corresponds to (e.g. `"Kronos-mini"`), or `None`."""
    if repo_id is not None and repo_id.split("/")[0] == "NeoQuasar":
        return repo_id.split("/")[1]
    if kind == "model":
        key = (config.s1_bits, config.s2_bits, config.n_layers, config.d_model, config.n_heads, config.ff_dim)
        if key in _PUBLISHED_PREDICTORS:
            return _PUBLISHED_PREDICTORS[key][0]
    return None


def _pairing(kind, name):
    if kind == "model":
        for published, _, tokenizer in _PUBLISHED_PREDICTORS.values():
            if name == published:
                return f"Pair it with the tokenizer **{tokenizer}** (converted the same way)."
        return (
            "Pair it with the tokenizer it was trained with: NeoQuasar/Kronos-Tokenizer-2k for Kronos-mini, "
            "NeoQuasar/Kronos-Tokenizer-base for Kronos-small and Kronos-base."
        )
    if name in _TOKENIZER_PAIRS:
        return f"It is the tokenizer of **{_TOKENIZER_PAIRS[name]}**."
    return (
        "Pair it with the predictor trained on its tokens: Kronos-Tokenizer-2k serves NeoQuasar/Kronos-mini, "
        "Kronos-Tokenizer-base serves NeoQuasar/Kronos-small and NeoQuasar/Kronos-base."
    )


def model_card(
    kind: str,
    config,
    dtype: torch.dtype,
    repo_id: Optional[str] = None,
    target: Optional[str] = None,
    source_dtype: Optional[torch.dtype] = None,
    kept: Sequence[str] = (),
) -> str:
    """The `README.md` of a converted checkpoint (YAML metadata, provenance, pairing, usage)."""
    name = published_name(kind, config, repo_id)
    source = repo_id or "a local upstream checkpoint"
    target = target or "path/to/converted-checkpoint"
    cls_name = "KronosTokenizerModel" if kind == "tokenizer" else "KronosForTokenPrediction"
    title = f"{name} (transformers format)" if name else f"Kronos {'tokenizer' if kind == 'tokenizer' else 'predictor'}"
    metadata = ["library_name: transformers", "license: mit", "pipeline_tag: time-series-forecasting", "tags:"]
    metadata += [f"- {tag}" for tag in ("kronos", "time-series", "forecasting", "finance", "candlestick", "k-line")]
    if repo_id is not None:
        metadata.append(f"base_model: {repo_id}")
    if kind == "model":
        what = (
            "the Kronos **predictor**: a decoder-only transformer that generates the coarse (s1) and fine (s2) token "
            "of each next candle"
        )
        context = (
            f"`max_context` is {config.max_context}: the longest window the model attends to when forecasting."
        )
        if name == "Kronos-mini":
            context += " Kronos-mini was trained with a context of 2048 candles."
        example = (
            "s1 = torch.randint(0, 2**model.config.s1_bits, (1, 64))\n"
            "s2 = torch.randint(0, 2**model.config.s2_bits, (1, 64))\n"
            "s1_logits, context = model.decode_s1(s1, s2)  # (1, 64, 2**s1_bits), (1, 64, d_model)"
        )
    else:
        what = (
            "the Kronos **tokenizer**: it turns each normalised candle (open, high, low, close, volume, amount) into a "
            "coarse token s1 and a fine token s2, and back"
        )
        context = ""
        example = (
            f"x = torch.randn(1, 64, {config.d_in})  # normalised candles\n"
            "s1_ids, s2_ids = model.encode(x, half=True)  # two (1, 64) tensors of token ids\n"
            "candles = model.decode([s1_ids, s2_ids], half=True)  # (1, 64, d_in)"
        )
    dtype_name = str(dtype).replace("torch.", "")
    if source_dtype is None or source_dtype == dtype:
        fidelity = "They are unchanged: the converted model gives the upstream model's logits to 1e-5 in float32."
    else:
        fidelity = (
            f"They were rounded from {str(source_dtype).replace('torch.', '')} to {dtype_name}"
            + (f" (the few that transformers keeps in {', '.join(k.replace('torch.', '') for k in kept)} at this "
               "precision are stored so)" if kept else "")
            + "; computed in the same precision, the converted model gives the upstream model's logits to 1e-5."
        )
    return f"""---
{chr(10).join(metadata)}
---

# {title}

This is {what}.

The weights are those of {source}, converted from upstream's `PyTorchModelHubMixin` format to a native
transformers checkpoint (stored in {dtype_name}) with transformers-kronos. {fidelity}

- Upstream code: [shiyu-coder/Kronos]({_UPSTREAM_URL}), MIT licence; published weights:
  [NeoQuasar](https://huggingface.co/NeoQuasar).
- Paper: *Kronos: A Foundation Model for the Language of Financial Markets* (Shi et al.).

{_pairing(kind, name)} {context}

## Usage

With the `transformers-kronos` package installed (`pip install transformers-kronos`):

```python
import torch
import transformers_kronos  # registers the Kronos classes with the Auto* factories
from transformers import AutoModel

model = AutoModel.from_pretrained("{target}")  # a {cls_name}, in eval mode
{example}
```

Without the package, the modelling code shipped in this folder runs as remote code:

```python
from transformers import AutoModel

model = AutoModel.from_pretrained("{target}", trust_remote_code=True)
```
"""


# --------------------------------------------------------------------------------------------------------------------
# Verification against upstream
# --------------------------------------------------------------------------------------------------------------------


def _import_upstream():
    import importlib

    try:
        module = importlib.import_module("model")
    except ImportError:
        module = None
    if module is None or not hasattr(module, "Kronos") or not hasattr(module, "KronosTokenizer"):
        raise ValueError(
            "verification needs the upstream reference implementation, importable as `model` "
            "(pip install --no-deps kronos-model-arch einops)"
        )
    return module


def _upstream_module(kind, config, state_dict):
    """The upstream network holding `state_dict` (float32), in eval mode."""
    upstream = _import_upstream()
    keys = UPSTREAM_TOKENIZER_KEYS if kind == "tokenizer" else UPSTREAM_MODEL_KEYS
    cls = upstream.KronosTokenizer if kind == "tokenizer" else upstream.Kronos
    module = cls(**{k: getattr(config, k) for k in keys})
    weights = {k: (v.float() if v.is_floating_point() else v) for k, v in state_dict.items()}
    missing, unexpected = module.load_state_dict(weights, strict=False)
    # an already converted source has no rotary frequencies; upstream's own (float32) ones are then kept
    if [k for k in missing if not _REBUILT_KEYS.search(k)] or unexpected:
        raise ValueError(f"the upstream {cls.__name__} does not accept these weights: {missing + unexpected}")
    return module.eval()


def _compare(name, ours, theirs, report):
    diff = (ours.float() - theirs.float()).abs().max().item()
    report[name] = diff
    if not diff <= _VERIFY_TOLERANCE:
        raise ValueError(f"verification failed: {name} differ from upstream by {diff:.3g} (tolerance {_VERIFY_TOLERANCE})")


@torch.no_grad()
def verify_checkpoint(
    converted_dir: Union[str, os.PathLike],
    kind: str,
    config,
    state_dict: dict[str, torch.Tensor],
    seed: int = 0,
    batch_size: int = 2,
    seq_len: int = 24,
) -> dict:
    """
    Load `converted_dir` with transformers and compare it with upstream's network holding the same weights on random
    inputs: logits and reconstructions to 1e-5 in float32, token ids exactly.

    The converted side is loaded in float32, and the upstream side gets the weights as they were stored (e.g. rounded
    to bfloat16), so the check isolates the conversion from the precision the weights are kept in.

    Returns:
        `dict` of the largest absolute differences seen, by output.
    """
    upstream_module = _upstream_module(kind, config, state_dict)
    model_cls = KronosTokenizerModel if kind == "tokenizer" else KronosForTokenPrediction
    ours = model_cls.from_pretrained(converted_dir, dtype=torch.float32).eval()
    generator = torch.Generator().manual_seed(seed)
    report = {}
    if kind == "tokenizer":
        x = torch.randn(batch_size, seq_len, config.d_in, generator=generator)
        ids = ours.encode(x)
        if not torch.equal(ids, upstream_module.encode(x)):
            raise ValueError("verification failed: token ids from `encode` differ from upstream")
        halves, upstream_halves = ours.encode(x, half=True), upstream_module.encode(x, half=True)
        if not all(torch.equal(a, b) for a, b in zip(halves, upstream_halves)):
            raise ValueError("verification failed: token ids from `encode(half=True)` differ from upstream")
        _compare("decoded candles", ours.decode(ids), upstream_module.decode(ids), report)
        output = ours(x)
        (coarse, full), _, _, _ = upstream_module(x)
        _compare("reconstructions", output.reconstruction, full, report)
        _compare("coarse reconstructions", output.coarse_reconstruction, coarse, report)
        report["token ids"] = "identical"
        return report

    s1 = torch.randint(0, 2**config.s1_bits, (batch_size, seq_len), generator=generator)
    s2 = torch.randint(0, 2**config.s2_bits, (batch_size, seq_len), generator=generator)
    targets = torch.randint(0, 2**config.s1_bits, (batch_size, seq_len), generator=generator)
    sizes = (60, 24, 7, 32, 13)
    stamp = torch.stack([torch.randint(0, n, (batch_size, seq_len), generator=generator) for n in sizes], -1).float()
    s1_logits, context = ours.decode_s1(s1, s2, stamp)
    up_s1_logits, up_context = upstream_module.decode_s1(s1, s2, stamp)
    _compare("s1 logits", s1_logits, up_s1_logits, report)
    _compare("contexts", context, up_context, report)
    _compare("s2 logits", ours.decode_s2(context, targets), upstream_module.decode_s2(up_context, targets), report)
    output = ours(s1, s2, stamp, use_teacher_forcing=True, s1_targets=targets)
    up_s1, up_s2 = upstream_module(s1, s2, stamp, use_teacher_forcing=True, s1_targets=targets)
    _compare("forward s2 logits", output.s2_logits, up_s2, report)
    if not torch.equal(s1_logits.argmax(-1), up_s1_logits.argmax(-1)):
        raise ValueError("verification failed: the most likely s1 tokens differ from upstream")
    report["token ids"] = "identical"
    return report


# --------------------------------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------------------------------


def _resolve_dtype(dtype):
    if dtype is None or isinstance(dtype, torch.dtype):
        if dtype is not None and dtype not in DTYPES.values():
            raise ValueError(f"`dtype` must be one of {sorted(DTYPES)}, got {dtype}")
        return dtype
    if isinstance(dtype, str) and dtype.replace("torch.", "") in DTYPES:
        return DTYPES[dtype.replace("torch.", "")]
    raise ValueError(f"`dtype` must be one of {sorted(DTYPES)}, got {dtype!r}")


def _check_push_target(push_to_hub):
    if push_to_hub is None:
        return
    from huggingface_hub import constants
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(push_to_hub, str) or "/" not in push_to_hub:
        raise ValueError(f"`push_to_hub` must be a Hub repo id like 'owner/name', got {push_to_hub!r}")
    try:
        validate_repo_id(push_to_hub)
    except HFValidationError as err:
        raise ValueError(f"`push_to_hub` is not a valid repo id: {one_line(err)}") from None
    if constants.HF_HUB_OFFLINE:
        raise ValueError("cannot push to the Hub with HF_HUB_OFFLINE set")


def _check_replaceable(dst):
    """
    Raise unless `force=True` may replace `dst`: an empty directory or a Kronos checkpoint (a `config.json` that
    [`detect_config`] reads), so that a mistyped output path never deletes unrelated files.
    """
    if dst.is_symlink() or not dst.is_dir():
        raise ValueError(f"the output {str(dst)!r} exists and is not a directory; choose another output")
    if not any(dst.iterdir()):
        return
    try:
        detect_config(read_source_config(dst))
    except ValueError:
        raise ValueError(
            f"refusing to replace {str(dst)!r}: it is not a Kronos checkpoint directory (no Kronos {CONFIG_NAME}); "
            "choose another output, or remove it yourself"
        ) from None


def _check_arguments(dst, max_context, verify, force, push_to_hub):
    """The checks that need no source: the destination as an absolute path, refused if it exists without `force`."""
    if verify:
        _import_upstream()  # fail before converting, not after
    if max_context is not None and (isinstance(max_context, bool) or not isinstance(max_context, int) or max_context < 1):
        raise ValueError(f"`max_context` must be a positive integer, got {max_context!r}")
    _check_push_target(push_to_hub)
    if not isinstance(dst, (str, os.PathLike)) or not str(dst).strip():
        raise ValueError(f"the output must be a directory path, got {dst!r}")
    dst = Path(dst).absolute()
    if (dst.exists() or dst.is_symlink()) and not force:
        raise ValueError(f"the output {str(dst)!r} already exists; pass --force / force=True to replace it")
    return dst


def _check_source_and_destination(local_dir, dst):
    source_dir = Path(local_dir).resolve()
    if source_dir == dst.resolve():
        raise ValueError("the output directory must differ from the checkpoint directory")
    if dst.resolve() in source_dir.parents:
        raise ValueError("the output directory must not contain the checkpoint directory (it would be replaced)")
    if dst.exists() or dst.is_symlink():
        _check_replaceable(dst)


def _load_source_model(local_dir, kind, max_context, allow_pickle):
    """The source checkpoint as one of our models in eval mode: `(kind, config, model, source file, stored dtype)`."""
    kind, config = detect_config(read_source_config(local_dir), kind)
    if max_context is not None:
        if kind == "tokenizer":
            raise ValueError("`max_context` applies to the predictor only, but the checkpoint is a tokenizer")
        config.max_context = max_context
    state_dict, source = load_source_state_dict(local_dir, allow_pickle=allow_pickle)
    model = (KronosTokenizerModel if kind == "tokenizer" else KronosForTokenPrediction)(config)
    weights = check_state_dict(model, state_dict, source)
    model.load_state_dict(weights, strict=True)
    return kind, config, model.eval(), source, _stored_dtype(weights)


def _warn_short_mini_context(kind, name, config, max_context):
    if kind == "model" and max_context is None and name == "Kronos-mini" and config.max_context < 2048:
        warnings.warn(
            f"Kronos-mini was trained with a 2048-candle context but max_context is {config.max_context}; "
            "pass --max-context 2048 (max_context=2048) to use all of it",
            ConversionNote,
            stacklevel=3,
        )


def _save_in_dtype(model, folder, dtype):
    """
    Save `model` into `folder` as transformers holds it in memory for `dtype`: a half-precision checkpoint is the
    float32 one loaded with `dtype=`, so the model's own rules apply (modules kept in float32 stay float32).
    Returns the tensors written.
    """
    from safetensors.torch import load_file

    if dtype != torch.float32:
        scratch = Path(tempfile.mkdtemp(prefix=".float32-", dir=folder))
        model.save_pretrained(scratch, save_original_format=False)
        model = type(model).from_pretrained(scratch, dtype=dtype)
        shutil.rmtree(scratch)
    model.save_pretrained(folder, save_original_format=False)
    return load_file(Path(folder) / SAFE_WEIGHTS_NAME)


def convert_checkpoint(
    src: Union[str, os.PathLike],
    dst: Union[str, os.PathLike],
    kind: str = "auto",
    max_context: Optional[int] = None,
    dtype: Optional[Union[str, torch.dtype]] = None,
    verify: bool = False,
    force: bool = False,
    allow_pickle: bool = False,
    push_to_hub: Optional[str] = None,
    revision: Optional[str] = None,
    cache_dir: Optional[str] = None,
) -> dict:
    """
    Convert an upstream Kronos checkpoint into a transformers checkpoint.

    Args:
        src (`str` or `os.PathLike`): An upstream checkpoint directory, or a Hub repo id such as
            `"NeoQuasar/Kronos-small"`. An already converted checkpoint is accepted too (to change its dtype or
            `max_context`).
        dst (`str` or `os.PathLike`): The directory to write. It must not exist unless `force=True`.
        kind (`str`): `"auto"` (detected from the config keys), `"model"` (the predictor) or `"tokenizer"`.
        max_context (`int`, *optional*): The predictor's `max_context` (default 512; Kronos-mini was trained with
            2048). Not valid for a tokenizer.
        dtype (`str` or `torch.dtype`, *optional*): Storage dtype, `"float32"`, `"bfloat16"` or `"float16"`; by
            default the dtype the source stores its weights in.
        verify (`bool`): Compare the converted checkpoint with the upstream network on random inputs (needs the
            upstream reference installed, importable as `model`).
        force (`bool`): Replace an existing `dst`, if it is an empty directory or a Kronos checkpoint.
        allow_pickle (`bool`): Accept a pickled `pytorch_model.bin` when the source has no `model.safetensors`.
        push_to_hub (`str`, *optional*): Upload the converted folder to this Hub repo id (created if missing).
        revision (`str`, *optional*): Branch, tag or commit of a Hub `src`.
        cache_dir (`str`, *optional*): Hub cache directory for a Hub `src`.

    Returns:
        `dict` with `path` (the written directory), `kind`, `dtype`, `source` (the weights file read), `published`
        (the published checkpoint it matches, or `None`) and `verification` (the differences measured, or `None`).
    """
    dtype = _resolve_dtype(dtype)
    dst = _check_arguments(dst, max_context, verify, force, push_to_hub)
    local_dir, repo_id = resolve_source(src, revision=revision, cache_dir=cache_dir)
    _check_source_and_destination(local_dir, dst)
    kind, config, model, source, stored = _load_source_model(local_dir, kind, max_context, allow_pickle)
    target_dtype = dtype or stored
    name = published_name(kind, config, repo_id)
    _warn_short_mini_context(kind, name, config, max_context)

    report = None
    with atomic_directory(dst) as tmp:
        written = _save_in_dtype(model, tmp, target_dtype)
        kept = sorted({str(v.dtype) for v in written.values() if v.is_floating_point()} - {str(target_dtype)})
        (tmp / "README.md").write_text(
            model_card(kind, config, target_dtype, repo_id=repo_id, target=push_to_hub, source_dtype=stored, kept=kept),
            encoding="utf-8",
        )
        if verify:
            # upstream gets the weights as written (e.g. rounded to bfloat16), and both sides compute in float32
            report = verify_checkpoint(tmp, kind, config, written)

    if push_to_hub is not None:
        push_checkpoint(dst, push_to_hub)
    return {
        "path": str(dst),
        "kind": kind,
        "dtype": str(target_dtype).replace("torch.", ""),
        "source": source,
        "published": name,
        "verification": report,
    }


def push_checkpoint(
    path: Union[str, os.PathLike], repo_id: str, private: Optional[bool] = None, token: Optional[str] = None
) -> None:
    """
    Upload a converted folder as it is (weights, config, remote code and model card) to a Hub model repo, creating
    the repo when it does not exist.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(path),
            repo_type="model",
            commit_message="Add Kronos checkpoint converted with transformers-kronos",
        )
    except (HfHubHTTPError, OSError) as err:
        raise ValueError(f"the checkpoint was written to {str(path)!r} but pushing it to {repo_id!r} failed: {one_line(err)}") from None


__all__ = [
    "ConversionNote",
    "check_state_dict",
    "convert_checkpoint",
    "detect_config",
    "load_source_state_dict",
    "model_card",
    "push_checkpoint",
    "read_source_config",
    "resolve_source",
    "verify_checkpoint",
]
