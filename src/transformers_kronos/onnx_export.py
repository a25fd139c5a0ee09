# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Exporting Kronos to ONNX: the predictor's and the tokenizer's graphs, with dynamic batch and length.

The graphs run the project's own modules (`decode_s1`, `decode_s2`, the backbone over a [`KronosCache`], `encode` and
`decode` with `half=True`), traced by `torch.onnx.export(dynamo=True)`. Every graph takes an `attention_mask`
(1 = real, 0 = left padding; all ones when nothing is padded), so one graph serves padded and unpadded batches.

A predictor folder holds:

- `decode_s1.onnx`: `s1_ids`, `s2_ids` `(batch, seq)` int64, `stamp` `(batch, seq, 5)` int64, `attention_mask`
  `(batch, seq)` int64 → `s1_logits` `(batch, seq, 2**s1_bits)`, `context` `(batch, seq, d_model)`;
- `decode_s2.onnx`: `context` `(batch, seq, d_model)`, `s1_ids` `(batch, 1)` (one s1 token per row, broadcast over
  the context, as upstream's decoding loop calls it), `attention_mask` `(batch, seq)` → `s2_logits`
  `(batch, seq, 2**s2_bits)`;
- `decode_s1_cached.onnx`, the cached step: `decode_s1`'s inputs for the new positions, `attention_mask` over the
  held and new positions, `position_ids` `(seq,)` (rotary positions of the new ones) and `past_key_{i}`,
  `past_value_{i}` `(batch, heads, past, head_dim)` for every block `i` and, last, the dependency layer →
  `s1_logits`, `context` of the new positions and `present_key_{i}`, `present_value_{i}` (past, then new);
- `decode_s2_cached.onnx`: the newest position's `context` `(batch, 1, d_model)`, `s1_ids` `(batch, 1)`, the
  dependency layer's keys and values (`dep_key`, `dep_value`, from `present_key_{n_layers}`) and `attention_mask`
  `(batch, past)` → `s2_logits` `(batch, 1, 2**s2_bits)`.

A tokenizer folder holds `encode.onnx` (`x` `(batch, seq, d_in)` float32, `attention_mask` → `s1_ids`, `s2_ids`) and
`decode.onnx` (`s1_ids`, `s2_ids`, `attention_mask` → `x`). Beside the graphs: the model's `config.json` and
`kronos_onnx.json`, which names every graph's inputs and outputs (with their dtypes and dimensions) and the sizes
that a runtime needs (see [`transformers_kronos.onnx.OnnxForecaster`]).
"""

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .configuration_kronos import detect_config
from .conversion import read_source_config, resolve_source
from .generation_kronos import KronosCache
from .io_utils import atomic_directory
from .modeling_kronos import KronosForTokenPrediction, KronosTokenizerModel
from .onnx import METADATA_NAME, cache_names, read_metadata

__all__ = [
    "DEFAULT_OPSET",
    "SUPPORTED_OPSETS",
    "VERIFY_TOLERANCE",
    "export_checkpoint",
    "export_predictor",
    "export_tokenizer",
    "verify_export",
]

# the opsets of torch's ONNX function library that ONNX Runtime runs
SUPPORTED_OPSETS = tuple(range(18, 24))
DEFAULT_OPSET = 18
# largest |ONNX Runtime - PyTorch| that --verify accepts on float outputs (token ids must be equal)
VERIFY_TOLERANCE = 1e-4
# the two shapes --verify runs: (batch, seq, past) — past is the cached step's held positions
VERIFY_SHAPES = ((1, 5, 3), (3, 17, 11))


# --------------------------------------------------------------------------------------------------------------------
# The traced modules: thin wrappers over the models' own methods
# --------------------------------------------------------------------------------------------------------------------


def _cache_from(model: KronosForTokenPrediction, past: list[torch.Tensor], layers: range) -> KronosCache:
    """A growing [`KronosCache`] holding `past` (keys and values alternating) in `layers`."""
    cache = KronosCache(model.config.n_layers + 1)
    for index, layer in enumerate(layers):
        cache.update(past[2 * index], past[2 * index + 1], layer)
    return cache


class DecodeS1(nn.Module):
    """`decode_s1` with a padding mask."""

    def __init__(self, model: KronosForTokenPrediction):
        super().__init__()
        self.model = model

    def forward(
        self, s1_ids: torch.Tensor, s2_ids: torch.Tensor, stamp: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.decode_s1(s1_ids, s2_ids, stamp, attention_mask, validate=False)


class DecodeS2(nn.Module):
    """`decode_s2` with one s1 token per row."""

    def __init__(self, model: KronosForTokenPrediction):
        super().__init__()
        self.model = model

    def forward(self, context: torch.Tensor, s1_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.decode_s2(context, s1_ids, attention_mask, validate=False)


class DecodeS1Cached(nn.Module):
    """The backbone after held keys and values, then the s1 head; returns every layer's keys and values."""

    def __init__(self, model: KronosForTokenPrediction):
        super().__init__()
        self.model = model

    def forward(self, s1_ids, s2_ids, stamp, attention_mask, position_ids, past: list[torch.Tensor]):
        model = self.model
        cache = _cache_from(model, past, range(model.config.n_layers + 1))
        context = model.backbone(s1_ids, s2_ids, stamp, attention_mask, cache, position_ids=position_ids)
        model.dep_layer.cache_context(context, cache)
        present = [t for layer in cache.layers for t in layer.read()]
        return (model.head(context), context, *present)


class DecodeS2Cached(nn.Module):
    """The s2 head of the newest position, its dependency layer attending to the held context keys and values."""

    def __init__(self, model: KronosForTokenPrediction):
        super().__init__()
        self.model = model

    def forward(
        self,
        context: torch.Tensor,
        s1_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        dep_key: torch.Tensor,
        dep_value: torch.Tensor,
    ) -> torch.Tensor:
        model = self.model
        cache = _cache_from(model, [dep_key, dep_value], range(model.config.n_layers, model.config.n_layers + 1))
        sibling = model.embedding.emb_s1(s1_ids)
        return model.head.cond_forward(model.dep_layer(context, sibling, attention_mask, cache=cache))


class Encode(nn.Module):
    """The tokenizer's `encode(half=True)`: `(s1_ids, s2_ids)`."""

    def __init__(self, tokenizer: KronosTokenizerModel):
        super().__init__()
        self.tokenizer = tokenizer

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s1_ids, s2_ids = self.tokenizer.encode(x, half=True, attention_mask=attention_mask)
        return s1_ids, s2_ids


class Decode(nn.Module):
    """The tokenizer's `decode(half=True)`."""

    def __init__(self, tokenizer: KronosTokenizerModel):
        super().__init__()
        self.tokenizer = tokenizer

    def forward(self, s1_ids: torch.Tensor, s2_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.tokenizer.decode([s1_ids, s2_ids], half=True, attention_mask=attention_mask)


# --------------------------------------------------------------------------------------------------------------------
# Example inputs (for tracing and for verification)
# --------------------------------------------------------------------------------------------------------------------


def _cache_layers(config) -> list[tuple[int, int]]:
    """`(heads, head_dim)` of each cache layer: the blocks, then the dependency layer."""
    blocks = [(config.n_heads, config.d_model // config.n_heads)] * config.n_layers
    return blocks + [(config.dependency_heads, config.d_model // config.dependency_heads)]


def _left_padded_mask(batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """A `(batch, length)` mask whose later rows have some left padding (the first row has none)."""
    mask = torch.ones(batch, length, dtype=torch.int64)
    for row in range(1, batch):
        mask[row, : int(torch.randint(0, max(1, length // 2), (), generator=generator))] = 0
    return mask


def _tokens(config, batch, length, generator):
    s1 = torch.randint(0, 2**config.s1_bits, (batch, length), generator=generator)
    s2 = torch.randint(0, 2**config.s2_bits, (batch, length), generator=generator)
    return s1, s2


def _stamp(batch, length, generator):
    sizes = (60, 24, 7, 32, 13)
    return torch.stack([torch.randint(0, n, (batch, length), generator=generator) for n in sizes], dim=-1)


def predictor_inputs(model: KronosForTokenPrediction, batch: int, seq: int, past: int, seed: int = 0) -> dict:
    """
    Random inputs of the four predictor graphs, `{graph: {input name: tensor}}`, for `batch` rows of `seq` positions
    (`past` of them held by the cached step, which then feeds the rest one by one or all at once).
    """
    config, generator = model.config, torch.Generator().manual_seed(seed)
    s1, s2 = _tokens(config, batch, seq, generator)
    stamp = _stamp(batch, seq, generator)
    mask = _left_padded_mask(batch, seq, generator)
    context = torch.randn(batch, seq, config.d_model, generator=generator)
    s1_next = torch.randint(0, 2**config.s1_bits, (batch, 1), generator=generator)
    with torch.no_grad():
        held = DecodeS1Cached(model)(
            s1[:, :past], s2[:, :past], stamp[:, :past], mask[:, :past], torch.arange(past), _empty_past(config, batch)
        )[2:]
    new = slice(past, seq)
    dep_key, dep_value = held[-2], held[-1]
    return {
        "decode_s1": {"s1_ids": s1, "s2_ids": s2, "stamp": stamp, "attention_mask": mask},
        "decode_s2": {"context": context, "s1_ids": s1_next, "attention_mask": mask},
        "decode_s1_cached": {
            "s1_ids": s1[:, new], "s2_ids": s2[:, new], "stamp": stamp[:, new], "attention_mask": mask,
            "position_ids": torch.arange(past, seq), "past": list(held),
        },  # fmt: skip
        "decode_s2_cached": {
            "context": context[:, past - 1 : past], "s1_ids": s1_next, "attention_mask": mask[:, :past],
            "dep_key": dep_key, "dep_value": dep_value,
        },  # fmt: skip
    }


def _empty_past(config, batch: int) -> list[torch.Tensor]:
    return [torch.zeros(batch, heads, 0, dim) for heads, dim in _cache_layers(config) for _ in range(2)]


def tokenizer_inputs(tokenizer: KronosTokenizerModel, batch: int, seq: int, seed: int = 0) -> dict:
    """Random inputs of the two tokenizer graphs, `{graph: {input name: tensor}}`."""
    config, generator = tokenizer.config, torch.Generator().manual_seed(seed)
    s1, s2 = _tokens(config, batch, seq, generator)
    mask = _left_padded_mask(batch, seq, generator)
    x = torch.randn(batch, seq, config.d_in, generator=generator).clamp(-5, 5)
    return {
        "encode": {"x": x, "attention_mask": mask},
        "decode": {"s1_ids": s1, "s2_ids": s2, "attention_mask": mask},
    }


# --------------------------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class GraphSpec:
    """One graph: its traced module, input and output names, and the dynamic dimensions of each input."""

    module: nn.Module
    inputs: dict
    output_names: list[str]
    dynamic_shapes: dict
    rename: dict | None = None  # {input name: {axis: dimension name}}


def predictor_graphs(model: KronosForTokenPrediction) -> dict[str, GraphSpec]:
    """The four predictor graphs, with example inputs of 2 rows, 6 positions (4 held by the cached step)."""
    dim = torch.export.Dim
    batch, seq, past, total = dim("batch"), dim("seq"), dim("past"), dim.DYNAMIC
    inputs = predictor_inputs(model, batch=2, seq=6, past=4)
    layers = model.config.n_layers + 1
    past_names, present_names = cache_names("past", layers), cache_names("present", layers)
    ids, mask = {0: batch, 1: seq}, {0: batch, 1: seq}
    return {
        "decode_s1": GraphSpec(
            DecodeS1(model), inputs["decode_s1"], ["s1_logits", "context"],
            {"s1_ids": ids, "s2_ids": ids, "stamp": {0: batch, 1: seq}, "attention_mask": mask},
        ),
        "decode_s2": GraphSpec(
            DecodeS2(model), inputs["decode_s2"], ["s2_logits"],
            {"context": {0: batch, 1: seq}, "s1_ids": {0: batch}, "attention_mask": mask},
        ),
        "decode_s1_cached": GraphSpec(
            DecodeS1Cached(model), {**inputs["decode_s1_cached"]}, ["s1_logits", "context", *present_names],
            {
                "s1_ids": ids, "s2_ids": ids, "stamp": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: total},
                "position_ids": {0: seq}, "past": [{0: batch, 2: past}] * len(past_names),
            },
            rename={"attention_mask": {1: "past + seq"}},
        ),
        "decode_s2_cached": GraphSpec(
            DecodeS2Cached(model), inputs["decode_s2_cached"], ["s2_logits"],
            {
                "context": {0: batch}, "s1_ids": {0: batch}, "attention_mask": {0: batch, 1: past},
                "dep_key": {0: batch, 2: past}, "dep_value": {0: batch, 2: past},
            },
        ),
    }  # fmt: skip


def tokenizer_graphs(tokenizer: KronosTokenizerModel) -> dict[str, GraphSpec]:
    """The two tokenizer graphs, with example inputs of 2 rows of 6 candles."""
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    inputs = tokenizer_inputs(tokenizer, batch=2, seq=6)
    both = {0: batch, 1: seq}
    return {
        "encode": GraphSpec(Encode(tokenizer), inputs["encode"], ["s1_ids", "s2_ids"], {"x": both, "attention_mask": both}),
        "decode": GraphSpec(
            Decode(tokenizer), inputs["decode"], ["x"], {"s1_ids": both, "s2_ids": both, "attention_mask": both}
        ),
    }


def _input_names(spec: GraphSpec) -> list[str]:
    names = []
    for name, value in spec.inputs.items():
        if isinstance(value, list):  # the cached step's past keys and values
            names += cache_names("past", len(value) // 2)
        else:
            names.append(name)
    return names


def _export_graph(spec: GraphSpec, path: Path, opset: int) -> None:
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # it notes at every export that torchvision's operators are not installed
    try:
        _trace(spec, path, opset)
    finally:
        registration.setLevel(level)
    if spec.rename:
        _rename_dims(path, spec.rename)


def _rename_dims(path: Path, rename: dict) -> None:
    """Give the dynamic dimensions that the exporter named after its symbols (`s54`) readable names."""
    import onnx

    model = onnx.load(str(path))
    for value in model.graph.input:
        for axis, name in rename.get(value.name, {}).items():
            value.type.tensor_type.shape.dim[axis].dim_param = name
    onnx.save(model, str(path))


def _trace(spec: GraphSpec, path: Path, opset: int) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on deprecations inside torch and transformers
        program = torch.onnx.export(
            spec.module.eval(),
            (),
            kwargs=spec.inputs,
            input_names=_input_names(spec),
            output_names=spec.output_names,
            dynamic_shapes=spec.dynamic_shapes,
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    program.save(str(path), external_data=False)


def _describe(path: Path) -> dict:
    """Names, element types and dimensions (numbers, or names for dynamic ones) of a saved graph's inputs and outputs."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def values(items) -> list[dict]:
        return [
            {
                "name": v.name,
                "dtype": onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
                "shape": [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim],
            }
            for v in items
        ]

    return {"file": path.name, "inputs": values(graph.input), "outputs": values(graph.output)}


def _sizes(kind: str, config) -> dict:
    """What a runtime needs to know of the network beyond its graphs."""
    if kind == "tokenizer":
        keys = ("d_in", "d_model", "s1_bits", "s2_bits")
        return {k: getattr(config, k) for k in keys}
    sizes = {k: getattr(config, k) for k in ("d_model", "n_layers", "s1_bits", "s2_bits", "max_context")}
    sizes["cache_layers"] = [{"heads": h, "head_dim": d} for h, d in _cache_layers(config)]
    return sizes


def _export_all(kind: str, model, graphs: dict[str, GraphSpec], folder, opset: int) -> dict:
    folder = Path(folder)
    described = {}
    for name, spec in graphs.items():
        path = folder / f"{name}.onnx"
        _export_graph(spec, path, opset)
        described[name] = _describe(path)
    model.config.to_json_file(folder / "config.json")  # the config alone (save_pretrained would copy its code)
    metadata = {"format": 1, "kind": kind, "opset": opset, "sizes": _sizes(kind, model.config), "graphs": described}
    (folder / METADATA_NAME).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def export_predictor(model: KronosForTokenPrediction, folder: str | os.PathLike, opset: int = DEFAULT_OPSET) -> dict:
    """Write the predictor's four graphs, its config and `kronos_onnx.json` into the existing `folder`; returns the
    metadata."""
    model.eval()
    return _export_all("predictor", model, predictor_graphs(model), folder, opset)


def export_tokenizer(tokenizer: KronosTokenizerModel, folder: str | os.PathLike, opset: int = DEFAULT_OPSET) -> dict:
    """Write the tokenizer's two graphs, its config and `kronos_onnx.json` into the existing `folder`."""
    tokenizer.eval()
    return _export_all("tokenizer", tokenizer, tokenizer_graphs(tokenizer), folder, opset)


# --------------------------------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------------------------------


def _feeds(inputs: dict) -> dict:
    feeds = {}
    for name, value in inputs.items():
        if isinstance(value, list):
            feeds.update({n: t.numpy() for n, t in zip(cache_names("past", len(value) // 2), value)})
        else:
            feeds[name] = value.numpy()
    return feeds


def _run_torch(module: nn.Module, inputs: dict) -> list[np.ndarray]:
    with torch.no_grad():
        out = module.eval()(**inputs)
    out = out if isinstance(out, (tuple, list)) else (out,)
    return [t.numpy() for t in out]


def compare_outputs(graph: str, names: list[str], got: list[np.ndarray], want: list[np.ndarray]) -> float:
    """Largest |got - want| over a graph's outputs; raises `ValueError` on a shape mismatch or differing token ids."""
    worst = 0.0
    for name, a, b in zip(names, got, want):
        if a.shape != b.shape:
            raise ValueError(f"{graph}: output {name!r} has shape {a.shape} in ONNX Runtime but {b.shape} in PyTorch")
        if np.issubdtype(b.dtype, np.integer):
            if not np.array_equal(a, b):
                raise ValueError(
                    f"{graph}: ONNX Runtime's {name!r} differs from PyTorch's at {int((a != b).sum())} of {a.size} "
                    "positions (token ids must be equal)"
                )
        else:
            worst = max(worst, float(np.abs(a.astype(np.float64) - b).max()))
    return worst


def verify_export(model, folder: str | os.PathLike, shapes=VERIFY_SHAPES, tolerance: float = VERIFY_TOLERANCE) -> dict:
    """
    Run every graph of an exported `folder` in ONNX Runtime (CPU) against `model` in PyTorch, at each
    `(batch, seq, past)` of `shapes`, on random inputs with left padding.

    Returns:
        `{graph: largest absolute difference of its float outputs}` over the shapes.

    Raises:
        `ValueError` naming the graph when a difference exceeds `tolerance` or token ids differ.
    """
    import onnxruntime as ort

    folder = Path(folder)
    metadata = read_metadata(folder)
    predictor = isinstance(model, KronosForTokenPrediction)
    wrappers = (
        {"decode_s1": DecodeS1, "decode_s2": DecodeS2, "decode_s1_cached": DecodeS1Cached, "decode_s2_cached": DecodeS2Cached}
        if predictor else {"encode": Encode, "decode": Decode}
    )  # fmt: skip
    errors = dict.fromkeys(wrappers, 0.0)
    for batch, seq, past in shapes:
        cases = predictor_inputs(model, batch, seq, past, seed=seq) if predictor else tokenizer_inputs(model, batch, seq, seed=seq)
        for graph, wrapper in wrappers.items():
            description = metadata["graphs"][graph]
            session = ort.InferenceSession(str(folder / description["file"]), providers=["CPUExecutionProvider"])
            got = session.run(None, _feeds(cases[graph]))
            want = _run_torch(wrapper(model), cases[graph])
            names = [o["name"] for o in description["outputs"]]
            errors[graph] = max(errors[graph], compare_outputs(graph, names, got, want))
            if errors[graph] > tolerance:
                raise ValueError(
                    f"{graph}: ONNX Runtime differs from PyTorch by {errors[graph]:.2e} (above {tolerance:g}) at batch "
                    f"{batch}, length {seq}"
                )
    return errors


# --------------------------------------------------------------------------------------------------------------------
# From a checkpoint folder
# --------------------------------------------------------------------------------------------------------------------


def check_output(output, force: bool) -> Path:
    """The output folder as an absolute path; `ValueError` when it exists without `force`, or is neither empty nor
    an earlier export (so that a mistyped path never deletes unrelated files)."""
    if not isinstance(output, (str, os.PathLike)) or not str(output).strip():
        raise ValueError(f"the output must be a directory path, got {output!r}")
    output = Path(output).absolute()
    if not (output.exists() or output.is_symlink()):
        return output
    if not force:
        raise ValueError(f"the output {str(output)!r} already exists; pass --force (force=True) to replace it")
    if output.is_symlink() or not output.is_dir():
        raise ValueError(f"the output {str(output)!r} exists and is not a directory; choose another output")
    if any(output.iterdir()) and not (output / METADATA_NAME).is_file():
        raise ValueError(
            f"refusing to replace {str(output)!r}: it is not an ONNX export of Kronos (no {METADATA_NAME}); choose "
            "another output, or remove it yourself"
        )
    return output


def check_opset(opset) -> int:
    """`opset` as an int if torch's ONNX exporter and ONNX Runtime both support it, else `ValueError`."""
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in SUPPORTED_OPSETS:
        raise ValueError(
            f"unsupported ONNX opset {opset!r}: choose one of {SUPPORTED_OPSETS[0]}-{SUPPORTED_OPSETS[-1]} "
            f"(default {DEFAULT_OPSET})"
        )
    return opset


def check_checkpoint(checkpoint) -> tuple[str, str]:
    """`(local folder, kind)` of a checkpoint ("predictor" or "tokenizer"), read from its config; `ValueError` when
    it is missing or not a Kronos checkpoint."""
    local_dir, _ = resolve_source(checkpoint)
    kind, _ = detect_config(read_source_config(local_dir))
    return local_dir, ("tokenizer" if kind == "tokenizer" else "predictor")


def load_checkpoint(checkpoint) -> tuple[str, nn.Module]:
    """`(kind, model)`: "predictor" or "tokenizer", and the model (upstream-format or converted) in eval mode."""
    local_dir, kind = check_checkpoint(checkpoint)
    cls = KronosTokenizerModel if kind == "tokenizer" else KronosForTokenPrediction
    model = cls.from_pretrained(local_dir, dtype=torch.float32)
    return kind, model.eval()


def export_checkpoint(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    opset: int = DEFAULT_OPSET,
    verify: bool = False,
    force: bool = False,
) -> dict:
    """
    Export a predictor or tokenizer checkpoint (a local folder or a Hub id; upstream-format or converted) to ONNX.

    The folder is written all-or-nothing: bad input (a missing checkpoint, an existing `output` without `force`, an
    unsupported `opset`) and a failed verification raise `ValueError` and leave nothing behind.

    Returns:
        `{"kind", "path", "opset", "graphs", "verification"}`: the graphs' file names, and with `verify=True` the
        largest difference between ONNX Runtime and PyTorch per graph.
    """
    opset = check_opset(opset)
    output = check_output(output, force)
    if verify:
        import onnxruntime  # noqa: F401 - fail before exporting, not after
    kind, model = load_checkpoint(checkpoint)
    export = export_tokenizer if kind == "tokenizer" else export_predictor
    with atomic_directory(output) as folder:
        metadata = export(model, folder, opset)
        verification = verify_export(model, folder) if verify else None
    graphs = [g["file"] for g in metadata["graphs"].values()]
    return {"kind": kind, "path": str(output), "opset": opset, "graphs": graphs, "verification": verification}
