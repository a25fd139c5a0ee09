# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Forecasting K-lines on ONNX Runtime, without PyTorch.

[`OnnxForecaster`] runs the graphs that `conversion_scripts/export_onnx.py` writes (see
`transformers_kronos.onnx_export`) with `onnxruntime` and numpy, behind the same pandas API as
[`KronosForecaster`] (both are [`forecasting_base.KlineForecaster`]s). Its decoding loop is the PyTorch one's: the
prompt's last window through the cached step once per series, then one token per step with the keys and values held
in numpy arrays; past `max_context`, `sliding="exact"` re-encodes the last window every step and `sliding="rolling"`
drops the oldest held position. Sampling (temperature, top-k, then nucleus) is numpy's.

This module imports neither torch nor transformers (importing `transformers_kronos` without them installed gives
the torch-free part of the package), so it runs in a slim container: see docs/deployment.md.
"""

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .forecasting_base import (
    FEATURE_COLUMNS,
    TIME_FEATURES,
    KlineForecaster,
    check_forecaster_options,
    check_network_pair,
)

__all__ = [
    "METADATA_NAME", "OnnxForecaster", "cache_names", "filter_logits", "quiet_session_options", "read_metadata",
    "sample_tokens",
]  # fmt: skip

METADATA_NAME = "kronos_onnx.json"
PREDICTOR_GRAPHS = ("decode_s1", "decode_s2", "decode_s1_cached", "decode_s2_cached")
TOKENIZER_GRAPHS = ("encode", "decode")


def cache_names(prefix: str, layers: int) -> list[str]:
    """The cached step's key/value input (`prefix="past"`) or output (`"present"`) names: `{prefix}_key_0`,
    `{prefix}_value_0`, `{prefix}_key_1`, ... for `layers` cache layers (the blocks, then the dependency layer)."""
    return [f"{prefix}_{kind}_{i}" for i in range(layers) for kind in ("key", "value")]


def read_metadata(folder: str | os.PathLike, kind: str | None = None) -> dict:
    """
    The `kronos_onnx.json` of an exported folder (the graphs' inputs and outputs, the network's sizes); with
    `kind` ("predictor" or "tokenizer"), a `ValueError` when the folder holds the other network.
    """
    path = Path(folder) / METADATA_NAME
    if not path.is_file():
        raise ValueError(
            f"{str(folder)!r} is not an ONNX export of Kronos (no {METADATA_NAME}); write one with "
            "conversion_scripts/export_onnx.py"
        )
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if kind is not None and metadata.get("kind") != kind:
        raise ValueError(f"{str(folder)!r} holds an exported {metadata.get('kind')}, not a {kind}")
    return metadata


# --------------------------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------------------------


def filter_logits(logits: np.ndarray, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """
    Top-k, then nucleus (top-p) filtering of `logits` `(rows, vocab)`, as `generation_kronos.filter_logits` does it:
    top-k keeps every token at least as likely as the k-th; nucleus keeps the most likely tokens until their
    cumulative probability first exceeds `top_p`, and always the most likely one. Filtered tokens get `-inf`.
    """
    logits = np.asarray(logits, dtype=np.float32)
    if top_k and top_k > 0:
        k = min(int(top_k), logits.shape[-1])
        kth = np.partition(logits, -k, axis=-1)[:, -k:].min(axis=-1, keepdims=True)
        logits = np.where(logits < kth, -np.inf, logits).astype(np.float32)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-logits, axis=-1, kind="stable")
        sorted_logits = np.take_along_axis(logits, order, axis=-1)
        cumulative = np.cumsum(_softmax(sorted_logits), axis=-1)
        remove = cumulative > top_p
        remove[:, 1:] = remove[:, :-1].copy()
        remove[:, 0] = False
        unsorted = np.empty_like(remove)
        np.put_along_axis(unsorted, order, remove, axis=-1)
        logits = np.where(unsorted, -np.inf, logits).astype(np.float32)
    return logits


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def sample_tokens(
    logits: np.ndarray,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: np.random.Generator | Sequence[np.random.Generator] | None = None,
) -> np.ndarray:
    """
    One id per row of `logits` `(rows, vocab)` → `(rows, 1)` int64, after temperature and [`filter_logits`], by
    inverting each row's cumulative distribution at a uniform draw. `generator` is one `numpy.random.Generator` for
    all rows or one per equal group of consecutive rows (one per series), as in `generation_kronos.sample_tokens`.
    """
    if temperature != 1.0:
        logits = logits / np.float32(temperature)
    probs = _softmax(filter_logits(logits, top_k, top_p).astype(np.float64))
    rows = probs.shape[0]
    if isinstance(generator, (list, tuple)):
        per_group = rows // len(generator)
        uniform = np.concatenate([g.random(per_group) for g in generator])
    else:
        uniform = (generator if generator is not None else np.random.default_rng()).random(rows)
    cdf = np.cumsum(probs, axis=-1)
    # the first token whose cumulative probability exceeds the draw: never a filtered (zero-probability) one
    ids = (cdf <= (uniform * cdf[:, -1])[:, None]).sum(axis=-1)
    return np.minimum(ids, probs.shape[-1] - 1).astype(np.int64)[:, None]


def check_numpy_generator(generator, count: int):
    """`None`, a seed, a `numpy.random.Generator`, or a list of `count` of them (one per series) → the generator(s)."""
    if generator is None or isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    if isinstance(generator, (list, tuple)):
        if len(generator) != count:
            raise ValueError(f"`generator` holds {len(generator)} generators but there are {count} series: give one per series")
        return tuple(check_numpy_generator(g, 1) or np.random.default_rng() for g in generator)
    raise TypeError(
        "`generator` must be a numpy.random.Generator, an integer seed, or a list of them (one per series), got "
        f"{type(generator).__name__}"
    )


# --------------------------------------------------------------------------------------------------------------------
# The forecaster
# --------------------------------------------------------------------------------------------------------------------


def quiet_session_options(threads: int | None = None) -> "onnxruntime.SessionOptions":
    """
    ONNX Runtime session options whose idle threads sleep instead of spinning: the forecaster holds six sessions,
    each with its own thread pool, and spinning pools busy-wait after each run, taking cores from the rest of the
    process (the speed benchmark's process used 135% CPU while it only waited for a child process).
    `threads`: intra-op threads per session (ONNX Runtime's default when `None`: one per core).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if threads is not None:
        options.intra_op_num_threads = threads
    return options


class _Sessions:
    """The ONNX Runtime sessions of one exported folder, run by graph name with numpy inputs."""

    def __init__(self, folder, metadata, names, providers, session_options):
        import onnxruntime as ort

        self.sessions = {}
        for name in names:
            if name not in metadata["graphs"]:
                raise ValueError(f"{str(folder)!r} lacks the graph {name!r}: export it again")
            path = Path(folder) / metadata["graphs"][name]["file"]
            if not path.is_file():
                raise ValueError(f"{str(path)!r} is missing: export the folder again")
            self.sessions[name] = ort.InferenceSession(str(path), sess_options=session_options, providers=providers)

    def run(self, name: str, **feeds) -> list[np.ndarray]:
        return self.sessions[name].run(None, feeds)


class OnnxForecaster(KlineForecaster):
    """
    Forecasts K-lines with an exported Kronos predictor and tokenizer on ONNX Runtime; torch is not needed.

    `predict`, `predict_batch`, `predict_quantiles` and `predict_quantiles_batch` take [`KronosForecaster`]'s
    arguments and return the same frames; greedy forecasts (`top_k=1`) equal its own to float rounding. Sampled paths
    follow the same distribution but other random numbers: `generator` is a `numpy.random.Generator`, an integer
    seed, or a list of them (one per series), not a `torch.Generator`.

    Args:
        model_dir (`str` or `os.PathLike`): The exported predictor (`export_onnx.py` output).
        tokenizer_dir (`str` or `os.PathLike`): The exported tokenizer it was trained with.
        max_context (`int`, *optional*): Tokens the predictor attends to; defaults to the exported config's.
        clip (`float`, defaults to 5): Normalised inputs are clipped to `[-clip, clip]`.
        providers (`list`, *optional*): ONNX Runtime execution providers, e.g. `["CUDAExecutionProvider",
            "CPUExecutionProvider"]`; defaults to the CPU.
        session_options (`onnxruntime.SessionOptions`, *optional*): E.g. thread counts; defaults to
            [`quiet_session_options`] (idle threads sleep rather than spin).
    """

    def __init__(self, model_dir, tokenizer_dir, max_context=None, clip=5, providers=None, session_options=None):
        model_meta = read_metadata(model_dir, "predictor")
        tokenizer_meta = read_metadata(tokenizer_dir, "tokenizer")
        self.sizes, tokenizer_sizes = model_meta["sizes"], tokenizer_meta["sizes"]
        check_network_pair(self.sizes, tokenizer_sizes)
        max_context = self.sizes["max_context"] if max_context is None else max_context
        self.max_context, self.clip = check_forecaster_options(max_context, clip)
        providers = providers or ["CPUExecutionProvider"]
        session_options = session_options or quiet_session_options()
        self.model = _Sessions(model_dir, model_meta, PREDICTOR_GRAPHS, providers, session_options)
        self.tokenizer = _Sessions(tokenizer_dir, tokenizer_meta, TOKENIZER_GRAPHS, providers, session_options)
        self.cache_layers = len(self.sizes["cache_layers"])

    def _check_generator(self, generator, count):
        return check_numpy_generator(generator, count)

    def _generate_pass(self, series, pred_len, T, top_k, top_p, sample_count, sliding, generator, bar):
        """`KronosForecaster._generate_pass` on ONNX Runtime: `(batch, sample_count, pred_len, 6)` normalised."""
        batch, longest = len(series), max(len(s.x) for s in series)
        x = np.zeros((batch, longest, len(FEATURE_COLUMNS)), dtype=np.float32)
        stamp = np.zeros((batch, longest + pred_len, len(TIME_FEATURES)), dtype=np.int64)
        mask = np.zeros((batch, longest + pred_len), dtype=np.int64)
        for i, s in enumerate(series):
            x[i, longest - len(s.x) :] = s.x
            stamp[i, longest - len(s.x) : longest] = s.x_stamp
            stamp[i, longest:] = s.y_stamp
            mask[i, longest - len(s.x) :] = 1
        s1, s2 = self.tokenizer.run("encode", x=x, attention_mask=mask[:, :longest])
        loop = _DecodingLoop(self, s1, s2, stamp, mask, pred_len, sample_count, sliding)
        sampling = {"temperature": T, "top_k": top_k, "top_p": top_p, "generator": generator}
        tokens = loop.run(sampling, progress=lambda: bar.update(1))
        # the last window of tokens through the tokenizer's decoder, as KronosForecaster
        total = longest + pred_len
        start = max(0, total - max(self.max_context, pred_len))
        decode_mask = np.repeat(mask[:, start:], sample_count, axis=0)
        (decoded,) = self.tokenizer.run(
            "decode", s1_ids=tokens[0][:, start:], s2_ids=tokens[1][:, start:], attention_mask=decode_mask
        )
        return decoded[:, -pred_len:].reshape(batch, sample_count, pred_len, len(FEATURE_COLUMNS))


class _DecodingLoop:
    """
    `generation_kronos.generate` on ONNX Runtime: the prompt's last window once per series through the cached step,
    its keys and values repeated for the paths, then one token per step (or, past `max_context` with exact sliding,
    the whole window).
    """

    def __init__(self, forecaster: OnnxForecaster, s1, s2, stamp, mask, pred_len, paths, sliding):
        self.model, self.max_context, self.sliding = forecaster.model, forecaster.max_context, sliding
        self.layers = forecaster.cache_layers
        self.heads = [(layer["heads"], layer["head_dim"]) for layer in forecaster.sizes["cache_layers"]]
        self.prompt_len, self.pred_len, self.paths = s1.shape[1], pred_len, paths
        rows, total = s1.shape[0] * paths, s1.shape[1] + pred_len
        self.s1 = np.zeros((rows, total), dtype=np.int64)
        self.s2 = np.zeros((rows, total), dtype=np.int64)
        self.s1[:, : self.prompt_len] = np.repeat(s1, paths, axis=0)
        self.s2[:, : self.prompt_len] = np.repeat(s2, paths, axis=0)
        self.stamp, self.mask = np.repeat(stamp, paths, axis=0), np.repeat(mask, paths, axis=0)
        self.prompt_stamp, self.prompt_mask, self.prompt_s1, self.prompt_s2 = stamp, mask, s1, s2

    def _prefill(self):
        """The prompt's last window, once per series → `(s1 logits, last context, past)`, repeated per path."""
        start = max(0, self.prompt_len - self.max_context)
        window = slice(start, self.prompt_len)
        series = self.prompt_s1.shape[0]
        empty = [np.zeros((series, *self._head_shape(i, 0)), dtype=np.float32) for i in range(self.layers) for _ in (0, 1)]
        s1_logits, context, *past = self.model.run(
            "decode_s1_cached", s1_ids=self.prompt_s1[:, window], s2_ids=self.prompt_s2[:, window],
            stamp=self.prompt_stamp[:, window], attention_mask=self.prompt_mask[:, window],
            position_ids=np.arange(self.prompt_len - start, dtype=np.int64), **self._past_feeds(empty),
        )  # fmt: skip
        repeat = lambda a: np.repeat(a, self.paths, axis=0)  # noqa: E731
        return repeat(s1_logits[:, -1]), repeat(context[:, -1:]), [repeat(p) for p in past]

    def _head_shape(self, layer, length):
        return (self.heads[layer][0], length, self.heads[layer][1])

    def _past_feeds(self, past):
        return dict(zip(cache_names("past", self.layers), past))

    def run(self, sampling: dict, progress) -> tuple[np.ndarray, np.ndarray]:
        """Decode; returns every token `(s1, s2)`, each `(rows, prompt_len + pred_len)`."""
        s1_logits, last, past = self._prefill()
        seen = held = past[0].shape[2]  # positions ever written (rotary), and held in the cache
        context, length = None, self.prompt_len
        for step in range(self.pred_len):
            next_s1 = sample_tokens(s1_logits, **sampling)
            if context is None:
                (s2_logits,) = self.model.run(
                    "decode_s2_cached", context=last, s1_ids=next_s1, attention_mask=self.mask[:, length - held : length],
                    dep_key=past[-2], dep_value=past[-1],
                )  # fmt: skip
            else:
                (s2_logits,) = self.model.run(
                    "decode_s2", context=context, s1_ids=next_s1,
                    attention_mask=self.mask[:, length - context.shape[1] : length],
                )  # fmt: skip
            self.s1[:, length], self.s2[:, length] = next_s1[:, 0], sample_tokens(s2_logits[:, -1], **sampling)[:, 0]
            length += 1
            progress()
            if step == self.pred_len - 1:
                break
            if context is None and (length <= self.max_context or self.sliding == "rolling"):
                if held == self.max_context:  # rolling: the oldest position leaves the cache
                    past = [np.ascontiguousarray(p[:, :, 1:]) for p in past]
                    held -= 1
                s1_logits, last, past = self._step(length, held, seen, past)
                held, seen = held + 1, seen + 1
            else:
                context, s1_logits = self._window(length)
        return self.s1, self.s2

    def _step(self, length, held, seen, past):
        """Feed position `length - 1` through the cached step after `held` positions."""
        new = slice(length - 1, length)
        s1_logits, last, *past = self.model.run(
            "decode_s1_cached", s1_ids=self.s1[:, new], s2_ids=self.s2[:, new], stamp=self.stamp[:, new],
            attention_mask=self.mask[:, length - held - 1 : length], position_ids=np.array([seen], dtype=np.int64),
            **self._past_feeds(past),
        )  # fmt: skip
        return s1_logits[:, -1], last, past

    def _window(self, length):
        """Exact sliding: the last `max_context` positions re-encoded (positions from 0, as upstream)."""
        window = slice(length - self.max_context, length)
        s1_logits, context = self.model.run(
            "decode_s1", s1_ids=self.s1[:, window], s2_ids=self.s2[:, window], stamp=self.stamp[:, window],
            attention_mask=self.mask[:, window],
        )  # fmt: skip
        return context, s1_logits[:, -1]
