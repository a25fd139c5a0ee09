# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Decoding with the Kronos predictor: its key/value caches (transformers `Cache`s), sampling, and the decoding loop.

The predictor caches one entry per transformer block plus one for the dependency-aware layer, whose keys and values
are projections of the final context (which never changes for past positions, since the backbone is causal).
Several sample paths of one series share their prompt's entries ([`KronosPathCache`]).

This file imports only ``torch``, ``transformers`` and its siblings, so it ships as remote code.
"""

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache, CacheLayerMixin
from transformers.utils import ModelOutput

from .checks import check_sampling  # torch-free, so the ONNX Runtime forecaster shares it
from .utils import check_count, check_mask, check_stamp, execution_device, is_tracing, to_module_device


__all__ = [
    "GenerationPlan",
    "KronosCache",
    "KronosCacheLayer",
    "KronosGenerationOutput",
    "KronosModuleSteps",
    "KronosPathCache",
    "KronosSharedPromptLayer",
    "KronosStaticCache",
    "KronosStaticLayer",
    "KronosStaticSteps",
    "check_generator",
    "check_prompt",
    "check_sampling",
    "compiled_steps",
    "filter_logits",
    "generate",
    "make_plan",
    "module_prompt_pass",
    "sample_tokens",
    "shared_prompt_attention",
    "static_step",
]


@dataclass
class KronosGenerationOutput(ModelOutput):
    """
    Output of [`generate`].

    Args:
        s1_ids, s2_ids (`torch.LongTensor` of shape `(batch * sample_count, pred_len)`): The generated tokens, rows
            series-major (`b * sample_count + s`).
        attention_mask (`torch.LongTensor` of shape `(batch * sample_count, prompt_len)`, *optional*): The prompt's
            padding mask repeated for every path.
    """

    s1_ids: torch.LongTensor | None = None
    s2_ids: torch.LongTensor | None = None
    attention_mask: torch.LongTensor | None = None


# --------------------------------------------------------------------------------------------------------------------
# Caches
# --------------------------------------------------------------------------------------------------------------------


class KronosCacheLayer(CacheLayerMixin):
    """
    Keys and values `(batch, heads, length, head_dim)` of one layer. With `max_length`, in buffers preallocated for
    that many positions, written in place (with `rolling=True` a full layer drops its oldest positions instead of
    refusing more); without, grown by concatenation.
    """

    is_sliding = False

    def __init__(self, max_length: int | None = None, rolling: bool = False):
        super().__init__()
        self.max_length = max_length
        self.rolling = rolling
        self.length = 0  # positions held
        self.cumulative_length = 0  # positions ever written (keeps growing when rolling)

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor, batch_size: int | None = None):
        self.device = key_states.device
        rows = batch_size or key_states.shape[0]
        size = self.max_length or 0
        self.keys = key_states.new_empty(rows, key_states.shape[1], size, key_states.shape[-1])
        self.values = value_states.new_empty(rows, value_states.shape[1], size, value_states.shape[-1])
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Store new positions `(batch, heads, new, head_dim)`; return every held position of the layer."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        self.cumulative_length += new
        if self.max_length is None:
            self.keys = torch.cat([self.keys, key_states], dim=-2)
            self.values = torch.cat([self.values, value_states], dim=-2)
            self.length += new
            return self.keys, self.values
        start = self._make_room(new)
        if new >= self.max_length:  # the new positions alone fill the layer (rolling: overflow it, keep their last)
            self.keys.copy_(key_states[..., -self.max_length :, :])
            self.values.copy_(value_states[..., -self.max_length :, :])
            self.length = self.max_length
            return self.keys, self.values
        # narrow() rather than indexing: this runs once per layer and decoding step
        self.keys.narrow(2, start, new).copy_(key_states)
        self.values.narrow(2, start, new).copy_(value_states)
        self.length = start + new
        return self.keys.narrow(2, 0, self.length), self.values.narrow(2, 0, self.length)

    def _make_room(self, new: int) -> int:
        """Where `new` positions go; a rolling layer first shifts out what would overflow."""
        start = self.length
        if start + new <= self.max_length:
            return start
        if not self.rolling:
            raise ValueError(
                f"KronosCache is full ({self.length} + {new} > {self.max_length}); re-encode the window or use "
                "rolling=True"
            )
        drop = start + new - self.max_length
        if drop < start:
            self.keys[..., : start - drop, :] = self.keys[..., drop:start, :].clone()
            self.values[..., : start - drop, :] = self.values[..., drop:start, :].clone()
        return max(start - drop, 0)

    def read(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every held position: `(keys, values)`, each `(batch, heads, length, head_dim)`."""
        return self.keys.narrow(2, 0, self.length), self.values.narrow(2, 0, self.length)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return -1 if self.max_length is None else self.max_length

    def reset(self) -> None:
        """Empty the layer for a new sequence; preallocated buffers are kept."""
        super().reset()
        # `super` knows only `cumulative_length`: the held positions are ours, and an unbounded layer's tensors hold
        # exactly them (`update` appends to whatever they hold)
        self.length = 0
        if self.is_initialized and self.max_length is None:
            self.keys, self.values = self.keys[..., :0, :], self.values[..., :0, :]

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self.keys = self.keys.repeat_interleave(repeats, dim=0)
            self.values = self.values.repeat_interleave(repeats, dim=0)


class KronosCache(Cache):
    """
    Key/value cache of [`KronosForTokenPrediction`]: one [`KronosCacheLayer`] per transformer block, then one for the
    dependency-aware layer (index `n_layers`).

    Args:
        num_layers (`int`): Cache layers, `config.n_layers + 1`.
        max_length (`int`, *optional*): Positions each layer holds, preallocated; `None` grows without bound.
        rolling (`bool`): A full cache drops its oldest position on every append: the approximate sliding-window
            mode of [`generate`].
    """

    def __init__(self, num_layers: int, max_length: int | None = None, rolling: bool = False):
        if max_length is not None and max_length < 1:
            raise ValueError(f"`max_length` must be positive, got {max_length}")
        super().__init__(layers=[KronosCacheLayer(max_length, rolling) for _ in range(num_layers)])
        self.rolling = rolling
        self.view_of = None  # the cache whose rows this one is (row_view)

    @property
    def seen_tokens(self) -> int:
        """Positions ever written: the rotary position of the next one (it keeps growing when rolling)."""
        return self.layers[0].cumulative_length

    def read(self, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Every held position of a layer, without adding any."""
        return self.layers[layer_idx].read()

    def write_rows(self, rows: slice, batch_size: int, part: "KronosCache") -> None:
        """
        Copy `part`, the cache of the batch rows `rows` only, into those rows of this cache (allocated for
        `batch_size` rows on the first call), or, when `part` is a [`row_view`] of this cache, only take over its
        lengths. For encoding a prompt a few series at a time.
        """
        for layer, source in zip(self.layers, part.layers):
            if part.view_of is not self:
                keys, values = source.read()
                if not layer.is_initialized:
                    layer.lazy_initialization(keys, values, batch_size=batch_size)
                layer.keys[rows, :, : source.length] = keys
                layer.values[rows, :, : source.length] = values
            layer.length, layer.cumulative_length = source.length, source.cumulative_length

    def row_view(self, rows: slice) -> "KronosCache":
        """
        An empty cache over the batch rows `rows` of this (initialised) one: what is written to it lands in those
        rows, with no copy of its own. Rows written this way are taken over with [`write_rows`].
        """
        view = KronosCache(len(self.layers), self.layers[0].max_length, self.rolling)
        view.view_of = self
        for layer, source in zip(view.layers, self.layers):
            layer.keys, layer.values, layer.device = source.keys[rows], source.values[rows], source.device
            layer.is_initialized = True
        return view


class KronosStaticLayer(CacheLayerMixin):
    """
    One layer of a [`KronosStaticCache`]: keys and values `(batch, heads, slots, head_dim)` of a fixed shape (a
    [`KronosCacheLayer`]'s preallocated buffers), written in place at the cache's `write_index`.
    """

    is_sliding = False

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.keys, self.values = keys, values
        self.device = keys.device
        self.is_initialized = True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        pass  # built around existing buffers

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        raise NotImplementedError("a KronosStaticLayer is written through KronosStaticCache.update")

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.keys.shape[-2], 0

    def get_seq_length(self) -> int:
        return self.keys.shape[-2]

    def get_max_length(self) -> int:
        return self.keys.shape[-2]


class KronosStaticCache(Cache):
    """
    A fixed-shape view of a [`KronosCache`] preallocated for `max_context` positions, for a compiled decoding step
    (transformers' `StaticCache` style): `update` writes the new position into every layer's buffers at
    `write_index` (a `(1,)` long tensor, set before each step) and returns all the slots, so every step has the same
    shapes whatever the prompt length; the step's attention mask hides the slots not written yet. Slots past the
    prompt are zeroed once, so that masked slots never hold NaN.

    Args:
        cache ([`KronosCache`]): The prompt's cache, built with `max_length` (its buffers are shared, not copied).
    """

    def __init__(self, cache: KronosCache):
        for layer in cache.layers:
            layer.keys[..., layer.length :, :].zero_()
            layer.values[..., layer.length :, :].zero_()
        super().__init__(layers=[KronosStaticLayer(layer.keys, layer.values) for layer in cache.layers])
        self.source = cache
        self.write_index = torch.zeros(1, dtype=torch.long, device=cache.layers[0].keys.device)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        """Write one position `(batch, heads, 1, head_dim)` at `write_index`; return every slot of the layer."""
        layer = self.layers[layer_idx]
        index = self.write_index.to(layer.keys.device)  # layers may sit on several devices (device_map)
        layer.keys.index_copy_(2, index, key_states.to(layer.keys.dtype))
        layer.values.index_copy_(2, index, value_states.to(layer.values.dtype))
        return layer.keys, layer.values


class KronosSharedPromptLayer(CacheLayerMixin):
    """
    One layer of a [`KronosPathCache`]: the prompt's keys and values once per series, and each path's generated ones.

    `update` stores and returns the generated positions only; attention over both parts is
    [`shared_prompt_attention`] with `prompt()`.
    """

    is_sliding = False

    def __init__(
        self,
        prompt_keys: torch.Tensor,
        prompt_values: torch.Tensor,
        paths: int,
        max_new: int,
        prompt_keep: torch.Tensor | None = None,
    ):
        super().__init__()
        self.prompt_keys, self.prompt_values = prompt_keys, prompt_values
        self.prompt_keep = prompt_keep
        self.paths = paths
        self.max_new = max_new
        self.new = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        shape = (key_states.shape[0], key_states.shape[1], self.max_new, key_states.shape[-1])
        self.keys, self.values = key_states.new_empty(shape), value_states.new_empty(shape)
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        new = key_states.shape[-2]
        if self.new + new > self.max_new:
            raise ValueError(f"KronosPathCache is full ({self.new} + {new} > {self.max_new} generated positions)")
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.keys.narrow(2, self.new, new).copy_(key_states)
        self.values.narrow(2, self.new, new).copy_(value_states)
        self.new += new
        return self.read()

    def reset(self) -> None:
        """Drop the generated positions: back to the prompt alone, as built."""
        super().reset()
        self.new = 0

    def read(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if not self.is_initialized or self.new == 0:
            return None, None
        return self.keys.narrow(2, 0, self.new), self.values.narrow(2, 0, self.new)

    def prompt(self) -> dict:
        """The keyword arguments [`shared_prompt_attention`] takes for this layer's prompt."""
        keep = self.prompt_keep
        if keep is not None and keep.device != self.prompt_keys.device:
            keep = self.prompt_keep = keep.to(self.prompt_keys.device)
        return {"prompt_key": self.prompt_keys, "prompt_value": self.prompt_values, "prompt_keep": keep, "paths": self.paths}

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0

    def get_seq_length(self) -> int:
        return self.prompt_keys.shape[-2] + self.new

    def get_max_length(self) -> int:
        return self.prompt_keys.shape[-2] + self.max_new


class KronosPathCache(Cache):
    """
    Key/value cache for sample paths that share their prompt: the prompt's keys and values are held once per series,
    the generated positions once per path (rows series-major, `b * paths + s`).

    A [`KronosCache`] with the prompt repeated for every path holds `paths` copies of it, and every step reads all of
    them; here a step reads it once per series, see [`shared_prompt_attention`].

    Args:
        prompt ([`KronosCache`]): The prompt's cache, one row per series.
        paths (`int`): Sample paths per series.
        max_new (`int`): Generated positions it can hold.
        prompt_mask (`torch.Tensor` of shape `(series, prompt_len)`, *optional*): 1 = real, 0 = left padding.
    """

    def __init__(self, prompt: KronosCache, paths: int, max_new: int, prompt_mask: torch.Tensor | None = None):
        keep = None if prompt_mask is None else prompt_mask.to(torch.bool)[:, None, None, :]
        layers = [KronosSharedPromptLayer(*layer.read(), int(paths), int(max_new), keep) for layer in prompt.layers]
        super().__init__(layers=layers)
        self._prompt_seen = prompt.seen_tokens

    @property
    def seen_tokens(self) -> int:
        return self._prompt_seen + self.layers[0].new

    def read(self, layer_idx: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return self.layers[layer_idx].read()

    def prompt(self, layer_idx: int) -> dict:
        return self.layers[layer_idx].prompt()


def _attention_with_lse(query, key, value, scaling: float, mask: torch.Tensor | None = None):
    """
    Softmax attention `(batch, heads, q_len, dim)` over `key`/`value` `(batch, heads, k_len, dim)` with its
    log-normaliser: `(output (batch, heads, q_len, dim), logsumexp (batch, heads, q_len))`, in float32. `mask` is
    additive, `(batch or 1, 1, q_len or 1, k_len)` float32 (0 = attend, -inf = hide).

    On CPU in float32 this is the fused kernel `F.scaled_dot_product_attention` dispatches to, which returns the
    log-normaliser too (and lays both out query-major, so the callers' transposes below are free); elsewhere the same
    arithmetic as matmul and softmax.
    """
    if query.device.type == "cpu" and query.dtype == key.dtype == value.dtype == torch.float32:
        # the kernel reads rows of head_dim as contiguous (F.scaled_dot_product_attention ensures it before the call)
        query, key, value = (t if t.stride(-1) == 1 else t.contiguous() for t in (query, key, value))
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            query, key, value, 0.0, False, attn_mask=mask, scale=scaling
        )
    scores = torch.matmul(query.float(), key.float().transpose(-1, -2)) * scaling
    if mask is not None:
        scores = scores + mask
    top = scores.amax(dim=-1, keepdim=True)
    weights = torch.exp(scores - top)
    total = weights.sum(dim=-1, keepdim=True)
    return torch.matmul(weights, value.float()) / total, (top + total.log()).squeeze(-1)


def shared_prompt_attention(
    module: torch.nn.Module | None,
    query: torch.Tensor,
    key: torch.Tensor | None,
    value: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    scaling: float,
    *,
    prompt_key: torch.Tensor,
    prompt_value: torch.Tensor,
    paths: int,
    prompt_keep: torch.Tensor | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """
    Attention of new positions of every path, `query` `(series * paths, heads, q_len, head_dim)`, over the series'
    prompt `prompt_key`/`prompt_value` `(series, heads, prompt_len, head_dim)` and the path's own generated positions
    `key`/`value` `(series * paths, heads, new, head_dim)` (or `None`), of which the queries are the last `q_len`
    (causal among them) → `(series * paths, q_len, heads, head_dim)`, contiguous, in the layout of transformers'
    attention functions. `prompt_keep` `(series, 1, 1, prompt_len)` is `True` at real prompt positions; generated
    positions are never padding, so `attention_mask` is not read.

    The two parts are computed apart and merged through their log-normalisers, which is the attention over both up
    to float rounding. The prompt's part takes every query of a series' paths as one block of a single fused
    attention, so its keys and values are read once per series instead of once per path.
    """
    rows, heads, q_len, dim = query.shape
    series = rows // paths
    prompt_mask = None
    if prompt_keep is not None:
        prompt_mask = torch.zeros(prompt_keep.shape, dtype=torch.float32, device=query.device)
        prompt_mask = prompt_mask.masked_fill_(~prompt_keep.to(query.device), float("-inf"))
    # (series * paths, heads, q, d) → (series, heads, paths * q, d): a view when q_len is 1
    shared = query.view(series, paths, heads, q_len, dim).transpose(1, 2).reshape(series, heads, paths * q_len, dim)
    out, lse = _attention_with_lse(shared, prompt_key, prompt_value, scaling, prompt_mask)
    # back to one row per path, query-major: (series * paths, q, heads, ...)
    out = out.transpose(1, 2).reshape(rows, q_len, heads, dim)
    lse = lse.transpose(1, 2).reshape(rows, q_len, heads, 1)
    if key is not None:
        new = key.shape[-2]
        causal = None
        if 1 < q_len:  # the queries are the last q_len positions: each sees the generated ones up to its own
            visible = torch.ones(q_len, new, dtype=torch.bool, device=query.device).tril(new - q_len)
            causal = torch.zeros(1, 1, q_len, new, device=query.device).masked_fill_(~visible, float("-inf"))
        own, own_lse = _attention_with_lse(query, key, value, scaling, causal)
        own = own.transpose(1, 2).reshape(rows, q_len, heads, dim)
        own_lse = own_lse.transpose(1, 2).reshape(rows, q_len, heads, 1)
        # softmax over both parts = each part's softmax weighted by its share exp(lse) / sum exp(lse). A softmax
        # per row rather than elementwise exp: ATen's elementwise kernels leave a tensor's tail to scalar code that
        # rounds differently, which would make a path's numbers depend on how many rows are decoded beside it
        share = torch.softmax(torch.stack([lse, own_lse], dim=-1), dim=-1)[..., 0]
        out = own + (out - own) * share
    return out.to(query.dtype), None


# --------------------------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------------------------


def _sorted_descending(logits: torch.Tensor) -> torch.Tensor | None:
    """
    The rows of `logits` `(rows, vocab)` sorted in descending order, values only, or `None` where a row holds NaN.

    On CPU through numpy's sort (its vectorised quicksort sorts float32 several times faster than `torch.sort`, which
    also carries the indices along; tensors convert without a copy and without importing numpy). The sequence of
    values is the one `torch.sort` gives: a sorted sequence of numbers is unique, and ties are equal values.
    """
    if logits.device.type != "cpu" or logits.dtype != torch.float32 or is_tracing():
        return None  # traced code keeps to tensor operations
    # a copy, laid out as torch.sort's output; ascending order of the negation is descending order
    negated = torch.neg(logits.detach()).contiguous()
    negated.numpy().sort(axis=-1)
    values = negated.neg_()
    return None if bool(values[..., -1].isnan().any()) else values  # numpy puts NaN last


def _nucleus_threshold(logits: torch.Tensor, top_p: float) -> torch.Tensor | None:
    """
    The smallest logit `(rows, 1)` that nucleus filtering keeps in each row, when the kept set is exactly the logits
    at or above it; `None` where a row's threshold value also occurs just past the cut (which of the tied tokens
    upstream keeps then depends on `torch.sort`'s order) or where no fast sort applies.

    The kept set is upstream's: the same softmax and cumulative sum over the same sorted values (see
    [`_sorted_descending`]), cut at the first position whose cumulative probability exceeds `top_p`. The sum of
    non-negative numbers only grows, so the kept positions are a prefix of the sorted row.
    """
    sorted_logits = _sorted_descending(logits)
    if sorted_logits is None:
        return None
    cumulative = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
    vocab = sorted_logits.shape[-1]
    kept = (cumulative[..., :-1] > top_p).logical_not_().sum(dim=-1, keepdim=True) + 1
    threshold = sorted_logits.gather(-1, kept - 1)
    following = sorted_logits.gather(-1, kept.clamp(max=vocab - 1))
    if bool(((kept < vocab) & (following == threshold)).any()):
        return None
    return threshold


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """
    Top-k, then nucleus (top-p) filtering of the logits `(rows, vocab)`.

    Unlike upstream, which returns after top-k and so ignores `top_p` whenever `top_k > 0`, both filters apply (in
    transformers' order). With one filter active the kept set is upstream's exactly: nucleus keeps the most likely
    tokens until their cumulative probability first exceeds `top_p`, and always the most likely one. On CPU the cut
    is found on sorted values alone and applied as a threshold ([`_nucleus_threshold`]); elsewhere, and where tied
    values straddle the cut, the sorted indices scatter it back as upstream does.
    """
    if top_k is not None and top_k > 0:
        top_k = min(int(top_k), logits.shape[-1])
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        threshold = _nucleus_threshold(logits, top_p)
        if threshold is not None:
            return logits.masked_fill(logits < threshold, float("-inf"))
        sorted_logits, sorted_idx = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
        remove = cumulative > top_p
        remove[..., 1:] = remove[..., :-1].clone()
        remove[..., 0] = False
        logits = logits.masked_fill(remove.scatter(-1, sorted_idx, remove), float("-inf"))
    return logits


def sample_tokens(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> torch.Tensor:
    """
    Sample one id per row of `logits` `(rows, vocab)` → `(rows, 1)` after temperature and filtering.

    `generator` is one `torch.Generator` for all rows, or a sequence of them that splits the rows into as many equal,
    consecutive groups (one per series, its paths series-major): each group draws from its own generator only, so
    its tokens do not depend on the other groups.
    """
    if temperature != 1.0:
        logits = logits / temperature
    logits = filter_logits(logits, top_k, top_p)
    probs = torch.softmax(logits.float(), dim=-1)
    if not isinstance(generator, (list, tuple)):
        return torch.multinomial(probs, num_samples=1, generator=generator)
    groups = probs.split(probs.shape[0] // len(generator))
    return torch.cat([torch.multinomial(p, num_samples=1, generator=g) for p, g in zip(groups, generator)])


# --------------------------------------------------------------------------------------------------------------------
# The decoding loop
# --------------------------------------------------------------------------------------------------------------------


class KronosModuleSteps:
    """
    The three operations of a decoding step, through the predictor's own modules: valid for every model (dispatched
    with `device_map` or offloaded, wrapped by adapters, weights of mixed dtypes). `fast_decoding.KronosFastSteps`
    computes the same for plain models on CPU.

    Args:
        model ([`KronosForTokenPrediction`]): The predictor.
        stamps (`torch.Tensor` of shape `(rows, total, 5)`): Calendar features of every position (prompt, then
            forecast), one row per sample path.
    """

    def __init__(self, model, stamps: torch.Tensor):
        self.model = model
        self.stamps = stamps

    @classmethod
    def prompt_pass(cls, model) -> Callable:
        """
        What runs a prompt through the predictor, made once per [`generate`]: a function `(s1_ids, s2_ids, stamp,
        attention_mask, cache)` of new positions `(batch, len)` (stamps `(batch, len, 5)`, mask `(batch, k_len)`)
        that writes their keys and values to `cache`, the dependency layer's included, and returns their context
        `(batch, len, d_model)`. Here [`module_prompt_pass`], through the modules.
        """
        return functools.partial(module_prompt_pass, model)

    def s1_logits(self, last: torch.Tensor) -> torch.Tensor:
        """`last` `(rows, 1, d_model)`, the newest position's context → next-s1 logits `(rows, 2**s1_bits)`."""
        return self.model.head(last[:, -1])

    def s2_logits(
        self,
        last: torch.Tensor,
        s1_ids: torch.Tensor,
        cache: Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Next-s2 logits `(rows, 2**s2_bits)` given the sampled `s1_ids` `(rows, 1)`: the dependency layer attends to
        the context held in `cache`, or to `context` `(rows, k_len, d_model)`; `attention_mask` `(rows, k_len)`.
        """
        model = self.model
        sibling = model.embedding.emb_s1(to_module_device(s1_ids, model.embedding.emb_s1))
        conditioned = model.dep_layer(last, sibling, attention_mask, cache=cache, context=context)
        return model.head.cond_forward(conditioned)[:, -1]

    def append(
        self, s1_ids: torch.Tensor, s2_ids: torch.Tensor, index: int, attention_mask: torch.Tensor | None, cache: Cache
    ) -> torch.Tensor:
        """
        Run the tokens `(rows, 1)` of position `index` through the backbone with `cache` (dependency layer
        included); `attention_mask` `(rows, k_len)` covers the held and new positions. Returns the new position's
        context `(rows, 1, d_model)`.
        """
        return module_prompt_pass(self.model, s1_ids, s2_ids, self.stamps[:, index : index + 1], attention_mask, cache)


def module_prompt_pass(
    model: torch.nn.Module,
    s1_ids: torch.Tensor,
    s2_ids: torch.Tensor,
    stamp: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    cache: Cache,
) -> torch.Tensor:
    """[`KronosModuleSteps.prompt_pass`] through the modules: the backbone, then the dependency layer's cache."""
    context = model.backbone(s1_ids, s2_ids, stamp, attention_mask, cache)
    model.dep_layer.cache_context(context, cache)
    return context


def static_step(
    model: torch.nn.Module,
    s1_ids: torch.Tensor,
    s2_ids: torch.Tensor,
    stamp: torch.Tensor,
    position: torch.Tensor,
    attention_mask: torch.Tensor,
    cache: KronosStaticCache,
) -> torch.Tensor:
    """
    One position `(rows, 1)` with its calendar features `stamp` `(rows, 1, 5)` through the backbone and into the
    dependency layer's cache, over a [`KronosStaticCache`]. The rotary `position` `(1,)` and the slot mask
    `attention_mask` `(rows, slots)` are tensors, so that the shapes are the same at every step: what
    `torch.compile` needs to build it once. Returns the new position's context `(rows, 1, d)`.
    """
    last = model.backbone(s1_ids, s2_ids, stamp, attention_mask, cache, position_ids=position)
    model.dep_layer.cache_context(last, cache)
    return last


class KronosStaticSteps(KronosModuleSteps):
    """
    [`KronosModuleSteps`] whose backbone step ([`static_step`]) runs over a [`KronosStaticCache`]: the cache holds
    `max_context` slots from the start, each step writes its position at an index tensor and attends to every slot
    through a mask. The step's shapes then depend on the number of rows only, not on the prompt length or the step,
    so a compiled step ([`compiled_steps`]) is built once and, on CUDA, replayed as a CUDA graph.
    """

    # generate() builds the prompt's cache for `max_context` positions and keeps the prompt repeated per path
    static_cache = True
    step = staticmethod(static_step)

    def __init__(self, model, stamps: torch.Tensor):
        super().__init__(model, stamps)
        self.static = None

    def append(self, s1_ids: torch.Tensor, s2_ids: torch.Tensor, index: int, attention_mask, cache) -> torch.Tensor:
        # a full rolling cache first shifts out its oldest position (eagerly: it moves every slot)
        slot = [layer._make_room(1) for layer in cache.layers][0]
        if self.static is None or self.static.source is not cache:
            self.static = KronosStaticCache(cache)
            if self.static.write_index.device.type == "cuda":  # CUDA graphs: the buffers stay where they are
                for layer in self.static.layers:
                    torch._dynamo.mark_static_address(layer.keys)
                    torch._dynamo.mark_static_address(layer.values)
        self.static.write_index.fill_(slot)
        device = self.static.write_index.device
        slots = torch.zeros(s1_ids.shape[0], cache.layers[0].max_length, dtype=torch.bool, device=device)
        slots[:, : slot + 1] = True if attention_mask is None else attention_mask.to(device=device, dtype=torch.bool)
        position = torch.full((1,), cache.seen_tokens, dtype=torch.long, device=device)
        # contiguous: a column of the token table has its length as a stride, which the compiled step would guard on
        inputs = (t.contiguous() for t in (s1_ids, s2_ids, self.stamps[:, index : index + 1]))
        last = self.step(self.model, *inputs, position, slots, self.static)
        for layer in cache.layers:
            layer.length, layer.cumulative_length = slot + 1, layer.cumulative_length + 1
        return last


def compiled_steps(base: type = KronosStaticSteps, **options) -> type:
    """
    `base` (a [`KronosStaticSteps`]) with its step compiled by `torch.compile`, once per forecaster: its shapes do
    not change from step to step nor with the prompt length. `options` go to `torch.compile` (e.g.
    `mode="reduce-overhead"` for CUDA graphs).
    """
    compiled = torch.compile(base.step, **options)
    return type(f"Compiled{base.__name__}", (base,), {"step": staticmethod(compiled), "__doc__": base.__doc__})


@dataclass
class GenerationPlan:
    """Sizes of one decoding run."""

    batch: int
    prompt_len: int
    pred_len: int
    sample_count: int
    max_context: int
    sliding: str

    @property
    def start(self) -> int:  # first prompt position inside the first window
        return max(0, self.prompt_len - self.max_context)

    @property
    def window(self) -> int:
        return self.prompt_len - self.start

    @property
    def capacity(self) -> int:  # the last sampled token is never fed back
        return min(self.max_context, self.prompt_len + self.pred_len - 1)


class _Tokens:
    """Every token a run may see (prompt, then generated), one row per path, with stamps and padding mask."""

    def __init__(self, plan: GenerationPlan, s1_ids, s2_ids, stamp, future_stamp, attention_mask, device):
        rows, total, prompt_len = plan.batch * plan.sample_count, plan.prompt_len + plan.pred_len, plan.prompt_len
        self.s1 = s1_ids.new_zeros(rows, total, device=device)
        self.s2 = s2_ids.new_zeros(rows, total, device=device)
        self.s1[:, :prompt_len] = s1_ids.to(device).repeat_interleave(plan.sample_count, dim=0)
        self.s2[:, :prompt_len] = s2_ids.to(device).repeat_interleave(plan.sample_count, dim=0)
        self.stamp = torch.cat([stamp.to(device), future_stamp.to(device)], dim=1)
        self.mask = None
        if attention_mask is not None:
            mask = attention_mask.to(device=device, dtype=torch.long)
            self.mask = torch.cat([mask, mask.new_ones(plan.batch, plan.pred_len)], dim=1)

    def window_mask(self, end: int, held: int) -> torch.Tensor | None:
        return self.mask[:, end - held : end] if self.mask is not None else None

    def repeat_for_paths(self, paths: int) -> None:
        if paths > 1:
            self.stamp = self.stamp.repeat_interleave(paths, dim=0)
            if self.mask is not None:
                self.mask = self.mask.repeat_interleave(paths, dim=0)


def _encode_prompt(model, plan: GenerationPlan, tokens: _Tokens, s1_ids, s2_ids, prompt_pass: Callable, shared: bool, static: bool):
    """
    The prompt's last window through the model once per series, a few series per pass (a whole batch's activations
    would outweigh the cache itself), by `prompt_pass` ([`KronosModuleSteps.prompt_pass`]). Returns `(cache, last)`:
    the cache ready for the paths (a [`KronosPathCache`] when `shared`, preallocated for `max_context` positions
    when `static`) and the last position's context `(rows, 1, d_model)`.
    """
    num_layers, device = model.config.n_layers + 1, tokens.s1.device
    # a static cache has the same shape for every prompt: `max_context` positions
    size = plan.window if shared else plan.max_context if static else plan.capacity
    cache = KronosCache(num_layers, size, rolling=plan.sliding == "rolling")
    per_pass = max(1, model._prompt_positions_per_pass // plan.window)
    prompt_mask = tokens.window_mask(plan.prompt_len, plan.window)
    last = []
    for first in range(0, plan.batch, per_pass):
        rows = slice(first, min(first + per_pass, plan.batch))
        # every pass but a first of several writes straight into the cache's rows: a cache of the pass's own, then
        # copied, would raise the peak memory (the first pass tells the cache its shapes)
        if per_pass >= plan.batch:
            part = cache
        elif cache.layers[0].is_initialized:
            part = cache.row_view(rows)
        else:
            part = KronosCache(num_layers, plan.window)
        context = prompt_pass(
            s1_ids[rows, plan.start :].to(device),
            s2_ids[rows, plan.start :].to(device),
            tokens.stamp[rows, plan.start : plan.prompt_len],
            prompt_mask[rows] if prompt_mask is not None else None,
            part,
        )
        if part is not cache:
            cache.write_rows(rows, plan.batch, part)
        last.append(context[:, -1:])
        del context, part  # only the last position is needed from here on (peak memory)
    last = torch.cat(last).repeat_interleave(plan.sample_count, dim=0)
    if shared:
        cache = KronosPathCache(cache, plan.sample_count, plan.capacity - plan.window, prompt_mask)
    elif plan.sample_count > 1:
        cache.batch_repeat_interleave(plan.sample_count)
    return cache, last


def _sample_pair(steps, last, cache, context, tokens: _Tokens, length: int, sampling: dict):
    """Sample the next `(s1, s2)` `(rows, 1)` each, from the cache or (exact sliding) the re-encoded window."""
    next_s1 = sample_tokens(steps.s1_logits(last), **sampling).to(tokens.s1.device)
    held = context.shape[1] if context is not None else cache.get_seq_length(0)
    mask = tokens.window_mask(length, held)
    s2_logits = steps.s2_logits(last, next_s1, None if context is not None else cache, mask, context)
    return next_s1, sample_tokens(s2_logits, **sampling)


def generate(
    model,
    s1_ids: torch.Tensor,
    s2_ids: torch.Tensor,
    stamp: torch.Tensor,
    future_stamp: torch.Tensor,
    plan: GenerationPlan,
    attention_mask: torch.Tensor | None = None,
    sampling: dict | None = None,
    steps_class: type | None = None,
    progress: Callable[[int], None] | None = None,
) -> KronosGenerationOutput:
    """
    The decoding loop of [`KronosForTokenPrediction.generate_tokens`] (inputs already checked there).

    While prompt and generated tokens fit in `max_context`, each step feeds one token through the cache. Past that,
    `sliding="exact"` re-encodes the last window every step (upstream renumbers its positions from 0), and
    `sliding="rolling"` drops the cache's oldest position instead.
    """
    device = execution_device(model.embedding)
    sampling = sampling or {}
    tokens = _Tokens(plan, s1_ids, s2_ids, stamp, future_stamp, attention_mask, device)
    steps_class = steps_class or KronosModuleSteps
    static = getattr(steps_class, "static_cache", False)
    # the paths share the prompt's cache entries unless a rolling cache drops prompt positions path by path, or a
    # static cache needs every row of the same shape
    shared = (
        plan.sample_count > 1 and plan.sliding == "exact" and not static and not model.training
        and model._share_prompt_across_paths
    )
    cache, last = _encode_prompt(model, plan, tokens, s1_ids, s2_ids, steps_class.prompt_pass(model), shared, static)
    tokens.repeat_for_paths(plan.sample_count)
    steps = steps_class(model, tokens.stamp)
    context = None  # the re-encoded window, once the cache is given up (exact sliding)
    length = plan.prompt_len
    for step in range(plan.pred_len):
        next_s1, next_s2 = _sample_pair(steps, last, cache, context, tokens, length, sampling)
        tokens.s1[:, length], tokens.s2[:, length] = next_s1[:, 0], next_s2[:, 0]
        length += 1
        if progress is not None:
            progress(step)
        if step == plan.pred_len - 1:
            break
        if context is None and (length <= plan.max_context or plan.sliding == "rolling"):
            held = min(cache.get_seq_length(0) + 1, plan.max_context)
            new = slice(length - 1, length)
            last = steps.append(tokens.s1[:, new], tokens.s2[:, new], length - 1, tokens.window_mask(length, held), cache)
        else:
            cache = None  # never read again: freed before the first full-window pass
            begin = length - plan.max_context
            window = slice(begin, length)
            context = model.backbone(
                tokens.s1[:, window], tokens.s2[:, window], tokens.stamp[:, window], tokens.window_mask(length, plan.max_context)
            )
            last = context[:, -1:]
    return KronosGenerationOutput(s1_ids=tokens.s1[:, plan.prompt_len :], s2_ids=tokens.s2[:, plan.prompt_len :])


def make_plan(model, s1_ids, pred_len, sample_count, max_context, sliding) -> GenerationPlan:
    """Check the loop's sizes and return them as a plan."""
    max_context = check_count("max_context", model.config.max_context if max_context is None else max_context)
    if sliding not in ("exact", "rolling"):
        raise ValueError(f"`sliding` must be 'exact' or 'rolling', got {sliding!r}")
    batch, prompt_len = s1_ids.shape
    return GenerationPlan(batch, prompt_len, check_count("pred_len", pred_len), check_count("sample_count", sample_count), max_context, sliding)


def check_generator(generator, batch: int, sample_count: int = 1):
    """
    Check `generator`: `None`, a `torch.Generator`, or a list or tuple of `batch` generators (one per series) or of
    `batch * sample_count` (one per path, series-major). Returns it, a tuple when it is a sequence.
    """
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if not isinstance(generator, (list, tuple)):
        raise TypeError(
            f"`generator` must be a torch.Generator or a list of them (one per series), got {type(generator).__name__}"
        )
    bad = [type(g).__name__ for g in generator if not isinstance(g, torch.Generator)]
    if bad:
        raise TypeError(f"`generator` must be a torch.Generator or a list of them (one per series), got a list holding {bad[0]}")
    if len(generator) != batch and (sample_count == 1 or len(generator) != batch * sample_count):
        per_path = f" or {batch * sample_count} (one per path)" if sample_count > 1 else ""
        raise ValueError(
            f"`generator` holds {len(generator)} generators but there are {batch} series: give one per series{per_path}"
        )
    return tuple(generator)


def check_prompt(model, s1_ids, s2_ids, stamp, future_stamp, attention_mask, pred_len: int):
    """Check a prompt for `generate_tokens`; returns its mask, `None` when nothing is padded."""
    for name, value in (("stamp", stamp), ("future_stamp", future_stamp)):
        if value is None:
            raise TypeError(f"`{name}` is required: the calendar features (minute, hour, weekday, day, month)")
    model._validate(s1_ids, s2_ids, stamp, None)
    if s1_ids.shape[1] == 0:
        raise ValueError("the prompt is empty: `s1_ids` and `s2_ids` need at least one position")
    check_mask(attention_mask, s1_ids.shape[0], s1_ids.shape[1], left_padded=True)
    check_stamp(future_stamp, s1_ids.shape[0], pred_len, name="future_stamp")
    if attention_mask is not None and bool(attention_mask.all()):
        return None  # nothing padded: the unmasked kernels are faster and match upstream bitwise
    return attention_mask
