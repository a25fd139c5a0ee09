# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""PyTorch Kronos: the K-line tokenizer and the autoregressive predictor as transformers models.

Kronos (Shi et al., AAAI 2026; upstream shiyu-coder/Kronos, MIT) forecasts financial candlesticks. A tokenizer
turns each normalised candle into a coarse token ``s1`` and a fine token ``s2`` with a Binary Spherical Quantizer,
and a decoder-only predictor generates ``s1`` and then ``s2`` given ``s1``, candle after candle.

Submodules carry upstream's attribute names, so upstream state dicts load without renaming. Where upstream
behaviour is a bug rather than something the published weights depend on, this file fixes it; each such place
says so, and docs/architecture.md lists them all.

This file imports only ``torch``, ``transformers`` and its sibling configuration, so it can run as remote code.
"""

import copy
import math
import numbers
import re
import threading
import weakref
from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from .configuration_kronos import KronosConfig, KronosTokenizerConfig

# Sizes of the calendar tables, in the order of the stamp features: minute, hour, weekday, day, month.
STAMP_FIELDS = ("minute", "hour", "weekday", "day", "month")
STAMP_SIZES = (60, 24, 7, 32, 13)
# the smallest sampling temperature: float32 logits divided by less may overflow to inf (top_k=1 is greedy)
MIN_TEMPERATURE = 1e-6


# --------------------------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class KronosOutput(ModelOutput):
    """
    Output of [`KronosForTokenPrediction.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            `(ce_s1 + ce_s2) / 2`, returned when `s1_labels` and `s2_labels` are given.
        s1_logits (`torch.FloatTensor` of shape `(batch, seq_len, 2**s1_bits)`):
            Logits of the next coarse token.
        s2_logits (`torch.FloatTensor` of shape `(batch, seq_len, 2**s2_bits)`):
            Logits of the next fine token, conditioned on an s1 token (the label, a teacher-forced target, or a
            sample from `s1_logits`; see [`KronosConfig.s2_conditioning`]).
        s1_loss (`torch.FloatTensor` of shape `()`, *optional*): Cross-entropy of the s1 head.
        s2_loss (`torch.FloatTensor` of shape `()`, *optional*): Cross-entropy of the s2 head.
        context (`torch.FloatTensor` of shape `(batch, seq_len, d_model)`):
            Final normalised hidden states, the context that `decode_s2` attends to.
    """

    loss: torch.FloatTensor | None = None
    s1_logits: torch.FloatTensor | None = None
    s2_logits: torch.FloatTensor | None = None
    s1_loss: torch.FloatTensor | None = None
    s2_loss: torch.FloatTensor | None = None
    context: torch.FloatTensor | None = None


@dataclass
class KronosTokenizerOutput(ModelOutput):
    """
    Output of [`KronosTokenizerModel.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`):
            Upstream's tokenizer training loss, `(mse(coarse_reconstruction, x) + mse(reconstruction, x) + bsq_loss) / 2`.
        reconstruction (`torch.FloatTensor` of shape `(batch, seq_len, d_in)`): Decoded from the full code.
        coarse_reconstruction (`torch.FloatTensor` of shape `(batch, seq_len, d_in)`): Decoded from the s1 bits only.
        bsq_loss (`torch.FloatTensor` of shape `()`): Commitment plus entropy penalty of the quantizer.
        quantized (`torch.FloatTensor` of shape `(batch, seq_len, s1_bits + s2_bits)`): Codes, `±1/sqrt(codebook_dim)`.
        indices (`torch.LongTensor` of shape `(batch, seq_len)`): Full token ids (s1 in the low bits).
    """

    loss: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    coarse_reconstruction: torch.FloatTensor | None = None
    bsq_loss: torch.FloatTensor | None = None
    quantized: torch.FloatTensor | None = None
    indices: torch.LongTensor | None = None


# --------------------------------------------------------------------------------------------------------------------
# Key/value cache
# --------------------------------------------------------------------------------------------------------------------


class KronosCache:
    """
    Key/value cache for incremental decoding with [`KronosForTokenPrediction`].

    It holds one entry per transformer block plus one for the dependency-aware layer (its keys and values are
    projections of the final context, which never changes for past positions because the backbone is causal).
    Storage is preallocated for `max_length` positions, so a decoding step writes in place instead of
    concatenating. With `rolling=True`, a full cache drops its oldest position on every append: this is the
    approximate sliding-window mode (see [`KronosForTokenPrediction.generate_tokens`]).

    Args:
        max_length (`int`): Positions the cache can hold.
        rolling (`bool`, defaults to `False`): Drop the oldest positions instead of failing when full.
    """

    def __init__(self, max_length, rolling=False):
        if max_length < 1:
            raise ValueError(f"`max_length` must be positive, got {max_length}")
        self.max_length = int(max_length)
        self.rolling = rolling
        self.keys = {}
        self.values = {}
        self.length = 0  # positions currently stored
        self.position_offset = 0  # rotary position of the next token (keeps growing when rolling)
        self._rows = None  # see `rows`
        self._batch_size = None

    def get_seq_length(self):
        return self.length

    def update(self, layer_idx, key, value):
        """Store `key`/`value` of shape `(batch, heads, new, head_dim)` and return everything cached for the layer."""
        new = key.shape[-2]
        if layer_idx not in self.keys:
            shape = (self._batch_size or key.shape[0], key.shape[1], self.max_length, key.shape[-1])
            self.keys[layer_idx] = key.new_empty(shape)
            self.values[layer_idx] = value.new_empty(shape)
        k_buf, v_buf = self.keys[layer_idx], self.values[layer_idx]
        if self._rows is not None:
            k_buf, v_buf = k_buf[self._rows], v_buf[self._rows]
        start = self.length
        if start + new > self.max_length:
            if not self.rolling:
                raise ValueError(
                    f"KronosCache is full ({self.length} + {new} > {self.max_length}); re-encode the window or use "
                    "rolling=True"
                )
            drop = start + new - self.max_length
            if drop >= self.max_length:
                k_buf.copy_(key[..., -self.max_length :, :])
                v_buf.copy_(value[..., -self.max_length :, :])
                return k_buf, v_buf
            k_buf[..., : start - drop, :] = k_buf[..., drop:start, :].clone()
            v_buf[..., : start - drop, :] = v_buf[..., drop:start, :].clone()
            start -= drop
        # narrow() rather than indexing: this runs once per layer and decoding step
        k_buf.narrow(2, start, new).copy_(key)
        v_buf.narrow(2, start, new).copy_(value)
        return k_buf.narrow(2, 0, start + new), v_buf.narrow(2, 0, start + new)

    def rows(self, rows, batch_size):
        """
        This cache restricted to the batch rows `rows` (a slice) of `batch_size`: its updates write those rows of
        this cache's buffers (allocated for all `batch_size` rows). For encoding a prompt a few series at a time; call
        `advance` on this cache, not on the view, once every row is written.
        """
        view = copy.copy(self)  # shares the buffers
        view._rows, view._batch_size = rows, batch_size
        return view

    def read(self, layer_idx):
        """Everything committed for a layer: `(keys, values)`, each `(batch, heads, length, head_dim)`."""
        return self.keys[layer_idx].narrow(2, 0, self.length), self.values[layer_idx].narrow(2, 0, self.length)

    def advance(self, new):
        """Commit `new` positions written by the last forward pass (once per pass, after every layer wrote them)."""
        self.length = min(self.length + new, self.max_length)
        self.position_offset += new

    def repeat_interleave(self, repeats):
        """Repeat every batch row `repeats` times, so one encoded prompt serves several sample paths."""
        for store in (self.keys, self.values):
            for idx, buf in store.items():
                store[idx] = buf.repeat_interleave(repeats, dim=0)
        return self

    def to(self, device):
        for store in (self.keys, self.values):
            for idx, buf in store.items():
                store[idx] = buf.to(device)
        return self


class KronosPathKV:
    """
    What one layer attends to in a [`KronosPathCache`]: the prompt's keys and values, one row per series, and each
    sample path's own generated ones.

    Args:
        prompt_key, prompt_value (`torch.Tensor` of shape `(series, heads, prompt_len, head_dim)`)
        key, value (`torch.Tensor` of shape `(series * paths, heads, new, head_dim)` or `None`): Generated positions.
        paths (`int`): Sample paths per series (rows are series-major: `b * paths + s`).
        prompt_keep (`torch.Tensor` of shape `(series, 1, 1, prompt_len)`, *optional*): `True` where a prompt
            position is real (not left padding).
    """

    def __init__(self, prompt_key, prompt_value, key, value, paths, prompt_keep=None):
        self.prompt_key, self.prompt_value = prompt_key, prompt_value
        self.key, self.value = key, value
        self.paths = paths
        self.prompt_keep = prompt_keep

    def attend(self, query):
        """
        Scaled dot-product attention of `query` `(series * paths, heads, 1, head_dim)` over the prompt and the
        path's generated positions → `(series * paths, heads, 1, head_dim)`.

        The two parts are computed apart and merged through their softmax maxima and normalisers, which is the
        attention over both up to float rounding. The prompt's part takes every path of a series as one query row
        of a single product, so its keys and values are read once per series instead of once per path.
        """
        rows, heads, q_len, dim = query.shape
        if q_len != 1:
            raise ValueError(f"KronosPathKV attends one new position per path, got {q_len}")
        series = rows // self.paths
        scale = 1.0 / math.sqrt(dim)
        q = query.float()

        def per_path(t):  # (series, heads, paths, n) → (series * paths, heads, 1, n)
            return t.transpose(1, 2).reshape(rows, heads, 1, t.shape[-1])

        shared = q.reshape(series, self.paths, heads, dim).transpose(1, 2)
        scores = torch.matmul(shared, self.prompt_key.float().transpose(-1, -2)) * scale
        if self.prompt_keep is not None:
            scores = scores.masked_fill(~self.prompt_keep, float("-inf"))
        top = scores.amax(dim=-1, keepdim=True)
        weights = torch.exp(scores - top)
        total = weights.sum(dim=-1, keepdim=True)
        out = torch.matmul(weights, self.prompt_value.float())
        top, total, out = per_path(top), per_path(total), per_path(out)
        if self.key is not None:
            scores = torch.matmul(q, self.key.float().transpose(-1, -2)) * scale
            top_new = scores.amax(dim=-1, keepdim=True)
            weights = torch.exp(scores - top_new)
            both = torch.maximum(top, top_new)
            old, new = torch.exp(top - both), torch.exp(top_new - both)
            out = out * old + torch.matmul(weights, self.value.float()) * new
            total = total * old + weights.sum(dim=-1, keepdim=True) * new
        return (out / total).to(query.dtype)


class KronosPathCache:
    """
    Key/value cache for sample paths that share their prompt: the prompt's keys and values are held once per series
    (every path of a series starts from the same prompt), the generated positions once per path.

    A [`KronosCache`] with the prompt repeated for every path holds `paths` copies of it, and every decoding step
    reads all of them. Here a step reads the prompt once per series (see [`KronosPathKV.attend`]) and the cache
    holds the prompt once. Layers call `update(...).attend(query)` instead of attending over `update`'s keys.

    Args:
        prompt (`KronosCache`): The prompt's cache, one row per series, every position written and committed.
        paths (`int`): Sample paths per series; rows are series-major (`b * paths + s`).
        max_new (`int`): Generated positions it can hold.
        prompt_mask (`torch.Tensor` of shape `(series, prompt_len)`, *optional*): 1 = real, 0 = left padding.
    """

    rolling = False

    def __init__(self, prompt, paths, max_new, prompt_mask=None):
        self.paths = int(paths)
        self.max_new = int(max_new)
        self.prompt_length = prompt.length
        self.prompt_keys = {idx: buf.narrow(2, 0, prompt.length) for idx, buf in prompt.keys.items()}
        self.prompt_values = {idx: buf.narrow(2, 0, prompt.length) for idx, buf in prompt.values.items()}
        self.prompt_mask = prompt_mask
        self._keep = {}  # the prompt mask as attention takes it, per device
        self.keys = {}
        self.values = {}
        self.new = 0  # generated positions committed
        self.position_offset = prompt.position_offset

    @property
    def length(self):
        """Positions visible to a path: the prompt and its generated ones."""
        return self.prompt_length + self.new

    def get_seq_length(self):
        return self.length

    def _path_kv(self, layer_idx, new):
        prompt_key = self.prompt_keys[layer_idx]
        keep = None
        if self.prompt_mask is not None:
            device = prompt_key.device
            if device not in self._keep:
                self._keep[device] = self.prompt_mask.to(device=device, dtype=torch.bool)[:, None, None, :]
            keep = self._keep[device]
        key = value = None
        if new:
            key, value = self.keys[layer_idx].narrow(2, 0, new), self.values[layer_idx].narrow(2, 0, new)
        return KronosPathKV(prompt_key, self.prompt_values[layer_idx], key, value, self.paths, keep)

    def update(self, layer_idx, key, value):
        """Store the generated `key`/`value` `(series * paths, heads, new, head_dim)`; return a [`KronosPathKV`]."""
        new = key.shape[-2]
        if self.new + new > self.max_new:
            raise ValueError(f"KronosPathCache is full ({self.new} + {new} > {self.max_new} generated positions)")
        if layer_idx not in self.keys:
            shape = (key.shape[0], key.shape[1], self.max_new, key.shape[-1])
            self.keys[layer_idx], self.values[layer_idx] = key.new_empty(shape), value.new_empty(shape)
        self.keys[layer_idx].narrow(2, self.new, new).copy_(key)
        self.values[layer_idx].narrow(2, self.new, new).copy_(value)
        return self._path_kv(layer_idx, self.new + new)

    def read(self, layer_idx):
        """Everything committed for a layer, as a [`KronosPathKV`]."""
        return self._path_kv(layer_idx, self.new)

    def advance(self, new):
        """Commit `new` generated positions (once per pass, after every layer wrote them)."""
        self.new += new
        self.position_offset += new


# --------------------------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------------------------


def _execution_device(module):
    """
    The device `module` computes on.

    Once accelerate has dispatched a model (`device_map=` spanning devices, or offload), a module called through its
    `forward` gets its inputs moved by the hook on it, but the helper methods that the decoding paths call directly
    (`cond_forward`, `project_kv`, `emb_s1`) bypass the hook on their parent. They move their inputs to this device.
    An offloaded module keeps its weights on the meta device and its hook names the device it runs on.
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


def _to_module(tensor, module, cast=False):
    """`tensor` moved to `module`'s execution device (and with `cast=True` to its weight's dtype); a no-op when it is there."""
    device = _execution_device(module)
    dtype = module.weight.dtype if cast else None
    return tensor.to(device=device, dtype=dtype)


class KronosLinear(nn.Linear):
    """
    `nn.Linear` with a faster CPU path for the few-row products of autoregressive decoding.

    A decoding step multiplies one row (or a few: one per sample path) by every weight matrix, so its speed is the
    speed at which the weights stream from memory. For one row on CPU, BLAS picks a matrix-vector kernel that runs
    on a single thread at about a third of the memory bandwidth (2-core AMD EPYC: ~9 GB/s of ~32). Splitting the
    output features into one block per thread and multiplying the blocks as one batched product lets every thread
    stream its own block: ~30 GB/s on the same machine, 2-3x faster per matrix.

    The path is taken only without autograd, for float32 on CPU and at most `max_fast_rows` rows (from 8 rows on,
    BLAS's own kernels are as fast); training and long sequences go through `F.linear` unchanged. Every output is
    still one dot product over all input features, so results agree with `F.linear` to float32 rounding (the two
    kernels may accumulate in different orders).
    """

    max_fast_rows = 4

    def forward(self, hidden_states):
        # cheapest tests first: this runs for every matrix of every decoding step
        if (
            torch.is_grad_enabled()
            or hidden_states.numel() > self.max_fast_rows * self.in_features
            or hidden_states.dtype != torch.float32
            or not hidden_states.is_contiguous()
        ):
            return F.linear(hidden_states, self.weight, self.bias)
        views = few_row_views(self.weight, self.bias)
        if views is None:
            return F.linear(hidden_states, self.weight, self.bias)
        return few_row_linear(hidden_states, *views)


def _row_blocks(n_out):
    """How many row blocks a weight is split into: one per thread (2 to 8), dividing `n_out` (1: do not split)."""
    blocks = max(2, min(torch.get_num_threads(), 8))
    while n_out % blocks:
        blocks -= 1
    return blocks


def few_row_views(weight, bias, parts=1):
    """
    `weight` `(out, in)` and `bias` `(out,)` viewed as row blocks `(blocks, out / blocks, in)` and
    `(blocks, out / blocks, 1)` for [`few_row_linear`], or `None` where the split does not apply (not a contiguous
    float32 weight on CPU, or `out` not divisible). A weight made of `parts` equal matrices stacked (see
    [`concatenated_view`]) has each split as it would be alone, so every output is computed as without stacking.
    """
    if weight.dtype != torch.float32 or weight.device.type != "cpu" or not weight.is_contiguous():
        return None
    n_out, n_in = weight.shape
    blocks = _row_blocks(n_out // parts) * parts
    if blocks == parts:
        return None
    bias_blocks = None if bias is None else bias.view(blocks, n_out // blocks, 1)
    return weight.view(blocks, n_out // blocks, n_in), bias_blocks


def few_row_linear(hidden_states, weight_blocks, bias_blocks):
    """`F.linear` of a few contiguous float32 rows `(..., in)` as one batched product over the row blocks of the weight."""
    blocks, block_out, n_in = weight_blocks.shape
    n_out = blocks * block_out
    n_rows = hidden_states.numel() // n_in
    # (blocks, in, rows) with strides (0, 1, in): every block reads the same inputs
    inputs = hidden_states.as_strided((blocks, n_in, n_rows), (0, 1, n_in))
    if bias_blocks is None:
        out = torch.bmm(weight_blocks, inputs)
    else:
        out = torch.baddbmm(bias_blocks, weight_blocks, inputs)
    # (blocks, out / blocks, rows) is (out, rows) in memory
    if n_rows == 1:
        return out.view(*hidden_states.shape[:-1], n_out)
    return out.view(n_out, n_rows).t().reshape(*hidden_states.shape[:-1], n_out)


class _PackedMemory(bytearray):
    """The bytes [`KronosPreTrainedModel.pack_weights`] lays parameters out in (a subclass, to be weakly referenced)."""


# the live blocks of packed parameters: id → (weak reference, first address, end address)
_PACKED_MEMORY = {}
# one packing at a time (two forecasters built at once on one model would otherwise split it over two blocks)
_PACKING_LOCK = threading.Lock()


def _register_packed(memory):
    """Record a new [`_PackedMemory`] block until it is freed; returns its first address."""
    start = torch.frombuffer(memory, dtype=torch.uint8).data_ptr()
    key = id(memory)
    ref = weakref.ref(memory, lambda _, key=key: _PACKED_MEMORY.pop(key, None))
    _PACKED_MEMORY[key] = (ref, start, start + len(memory))
    return start


def _packed_memory_at(address):
    """`(block, its first address)` of the live packed block holding `address`, else `(None, None)`."""
    for ref, start, end in list(_PACKED_MEMORY.values()):
        if start <= address < end:
            memory = ref()
            if memory is not None:
                return memory, start
    return None, None


def _memory_view(tensor):
    """What identifies a view of memory: two tensors with equal keys read and write the same elements."""
    return tensor.data_ptr(), tensor.dtype, tensor.shape, tensor.stride()


def concatenated_view(tensors):
    """
    The CPU tensors `(n_i, ...)` as one tensor `(sum n_i, ...)` over the memory they occupy when
    [`KronosPreTrainedModel.pack_weights`] laid them back to back, else `None`. The result aliases the tensors (a
    change to one shows in the other); the tensors themselves keep their own storages.
    """
    first = tensors[0]
    if first.device.type != "cpu":
        return None
    memory, start = _packed_memory_at(first.data_ptr())
    if memory is None:
        return None
    address = first.data_ptr()
    for tensor in tensors:
        if (
            tensor.data_ptr() != address
            or tensor.shape[1:] != first.shape[1:]
            or tensor.dtype != first.dtype
            or tensor.device != first.device
            or not tensor.is_contiguous()
        ):
            return None
        address += tensor.numel() * tensor.element_size()
    if address > start + len(memory):
        return None
    shape = (sum(tensor.shape[0] for tensor in tensors), *first.shape[1:])
    count = math.prod(shape)
    return torch.frombuffer(memory, dtype=first.dtype, count=count, offset=first.data_ptr() - start).view(shape)


class KronosRMSNorm(nn.Module):
    """
    Root-mean-square norm, computed in float32 and cast back before the weight (as upstream).

    When the weight is kept in float32 under a half-precision model (`_keep_in_fp32_modules_strict`), the product
    is taken in float32 and cast to the input's dtype once, so the next layer gets the dtype it expects.
    """

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, hidden_states):
        return rms_norm(hidden_states, self.weight, self.eps)


def rms_norm(hidden_states, weight, eps):
    """The arithmetic of [`KronosRMSNorm`]."""
    if hidden_states.dtype == torch.float32 and weight.dtype == torch.float32:
        # the same arithmetic in fewer dispatches (bitwise equal on CPU), which matters when decoding one token
        return F.rms_norm(hidden_states, weight.shape, weight, eps)
    x = hidden_states.float()
    x = x * torch.rsqrt(torch.mean(x * x, dim=-1, keepdim=True) + eps)
    if weight.dtype == hidden_states.dtype:
        return x.type_as(hidden_states) * weight
    return (x * weight.float()).to(hidden_states.dtype)


class KronosFeedForward(nn.Module):
    """SwiGLU feed-forward block: `w2(silu(w1 x) * w3 x)`, then dropout."""

    def __init__(self, d_model, ff_dim, ffn_dropout_p=0.0):
        super().__init__()
        self.w1 = KronosLinear(d_model, ff_dim, bias=False)
        self.w3 = KronosLinear(d_model, ff_dim, bias=False)
        self.w2 = KronosLinear(ff_dim, d_model, bias=False)
        self.ffn_dropout = nn.Dropout(ffn_dropout_p)

    def forward(self, hidden_states):
        return self.ffn_dropout(self.w2(F.silu(self.w1(hidden_states)) * self.w3(hidden_states)))


class KronosRotaryEmbedding(nn.Module):
    """
    Rotary position embedding over one head of size `dim` (rotate-half convention).

    `inv_freq` is a non-persistent float32 buffer: upstream saves it in its checkpoints, but a copy loaded in
    bfloat16 would shift every angle, so it is always rebuilt in float32 (`_init_weights`) and the saved copy is
    ignored on load.
    """

    def __init__(self, dim, theta=10000.0):
        super().__init__()
        self.dim = dim
        self.theta = theta
        self.register_buffer("inv_freq", self.compute_inv_freq(dim, theta), persistent=False)

    @staticmethod
    def compute_inv_freq(dim, theta=10000.0, device=None):
        return 1.0 / (theta ** (torch.arange(0, dim, 2, device=device).float() / dim))

    def forward(self, position_ids, dtype):
        """
        `position_ids` `(seq_len,)` → `(cos, signed_sin)`, each `(1, 1, seq_len, dim)` in `dtype`, for
        [`apply_rotary`]: `cos` is `cos(θ)` over both halves, `signed_sin` is `-sin(θ)` over the first and `sin(θ)` over
        the second.
        """
        inv_freq = self.inv_freq
        if inv_freq.dtype != torch.float32 or inv_freq.device != position_ids.device:
            inv_freq = self.compute_inv_freq(self.dim, self.theta, position_ids.device)
        freqs = torch.outer(position_ids.float(), inv_freq)
        cos = freqs.cos()
        sin = freqs.sin()
        cos = torch.cat((cos, cos), dim=-1)
        signed_sin = torch.cat((-sin, sin), dim=-1)
        return cos[None, None].to(dtype), signed_sin[None, None].to(dtype)


def apply_rotary(x, cos, signed_sin):
    """
    Rotate `x` `(..., seq_len, dim)` by the angles of `cos`/`signed_sin` from [`KronosRotaryEmbedding`].

    This is the rotate-half form `x * cos + cat(-x2, x1) * sin` written as `x * cos + roll(x, dim / 2) * signed_sin`:
    the same products (a sign moved from one factor to the other is exact), in three operations instead of six,
    which counts when a decoding step rotates one position per layer.
    """
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin


def eager_attention(query, key, value, attn_mask, is_causal, dropout_p, training):
    """Matmul-softmax attention with the semantics of `F.scaled_dot_product_attention` (bool mask: True = keep)."""
    scale = 1.0 / math.sqrt(query.shape[-1])
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if is_causal:  # top-left aligned, as the fused kernels do
        q_len, k_len = query.shape[-2], key.shape[-2]
        causal = torch.ones(q_len, k_len, dtype=torch.bool, device=query.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(query.dtype)
    probs = F.dropout(probs, p=dropout_p, training=training)
    return torch.matmul(probs, value)


def attend(config, query, key, value, attn_mask, is_causal, dropout_p, training):
    """Dispatch on `config._attn_implementation`: "sdpa" (the default) or "eager"; both give the same numbers."""
    dropout_p = dropout_p if training else 0.0
    if getattr(config, "_attn_implementation", None) == "eager":
        return eager_attention(query, key, value, attn_mask, is_causal, dropout_p, training)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal)


def build_attention_mask(attention_mask, q_len, k_len, causal, top_left=False):
    """
    Turn a transformers-style padding mask into what the attention kernels take.

    Args:
        attention_mask (`torch.Tensor` of shape `(batch, k_len)` or `None`): 1 for real positions, 0 for padding,
            covering cached and new positions.
        q_len (`int`): Query positions. They are the last `q_len` key positions (a cache before them), or with
            `top_left=True` the first ones (upstream's dependency layer, whose causal mask is the fused kernels'
            top-left aligned one even when a single query faces the whole context).
        causal (`bool`): Whether a query may only see keys up to its own position.

    Returns:
        `(mask, is_causal)`: a boolean mask `(batch or 1, 1, q_len, k_len)` (True = attend) or `None`, and whether the
        kernel should apply its own causal mask. A row left with no visible key (a padding query) sees its own
        position instead, so no row is fully masked (which would give NaN).
    """
    if attention_mask is None:
        if not causal or (q_len == 1 and not top_left):
            return None, False
        if q_len == k_len:
            return None, True
    device = attention_mask.device if attention_mask is not None else None
    offset = 0 if top_left else k_len - q_len
    q_pos = torch.arange(q_len, device=device) + offset
    k_pos = torch.arange(k_len, device=device)
    if causal:
        mask = k_pos[None, :] <= q_pos[:, None]
    else:
        mask = torch.ones(q_len, k_len, dtype=torch.bool, device=device)
    mask = mask[None, None]
    if attention_mask is not None:
        keep = attention_mask.to(device=device, dtype=torch.bool)[:, None, None, :]
        mask = mask & keep
        # a row with nothing left to attend to (a padding query) falls back to its own position
        mask = mask | (~mask.any(dim=-1, keepdim=True) & (k_pos[None, :] == q_pos[:, None])[None, None])
    return mask, False


class KronosAttentionBase(nn.Module):
    """Projections, rotary table and dropout shared by the self- and cross-attention (upstream's parameter names)."""

    def __init__(self, config, d_model, n_heads, attn_dropout_p=0.0, resid_dropout_p=0.0, layer_idx=None):
        super().__init__()
        self.config = config
        self.d_model = d_model
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.layer_idx = layer_idx
        self.q_proj = KronosLinear(d_model, d_model)
        self.k_proj = KronosLinear(d_model, d_model)
        self.v_proj = KronosLinear(d_model, d_model)
        self.out_proj = KronosLinear(d_model, d_model)
        self.rotary = KronosRotaryEmbedding(self.head_dim, getattr(config, "rope_theta", 10000.0))
        self.attn_dropout_p = attn_dropout_p
        self.resid_dropout = nn.Dropout(resid_dropout_p)

    def _split(self, x):
        batch, length, _ = x.shape
        return x.view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)

    def _merge(self, out):
        """`(batch, heads, len, head_dim)` → output projection and residual dropout, `(batch, len, d_model)`."""
        batch, _, length, _ = out.shape
        return self.resid_dropout(self.out_proj(out.transpose(1, 2).reshape(batch, length, self.d_model)))


class KronosAttention(KronosAttentionBase):
    """Causal multi-head self-attention with rotary embeddings (upstream `MultiHeadAttentionWithRoPE`)."""

    def forward(self, hidden_states, position_embeddings, attention_mask=None, cache=None):
        """
        Args:
            hidden_states (`torch.Tensor` of shape `(batch, seq_len, d_model)`): New positions.
            position_embeddings (`tuple` of two `torch.Tensor` of shape `(1, 1, seq_len, head_dim)`): `cos` and
                `signed_sin` of the new positions' rotary angles, computed once per pass by [`KronosRotaryEmbedding`].
            attention_mask (`torch.Tensor` of shape `(batch, past + seq_len)`, *optional*): 1 = real, 0 = padding.
            cache (`KronosCache`, *optional*): Past keys and values, updated in place.
        """
        q_len = hidden_states.shape[1]
        query = self._split(self.q_proj(hidden_states))
        key = self._split(self.k_proj(hidden_states))
        value = self._split(self.v_proj(hidden_states))
        cos, sin = (t.to(device=query.device, dtype=query.dtype) for t in position_embeddings)
        query, key = apply_rotary(query, cos, sin), apply_rotary(key, cos, sin)
        if isinstance(cache, KronosPathCache):
            return self._merge(cache.update(self.layer_idx, key, value).attend(query))
        if cache is not None:
            key, value = cache.update(self.layer_idx, key, value)
        mask, is_causal = build_attention_mask(attention_mask, q_len, key.shape[-2], causal=True)
        out = attend(self.config, query, key, value, mask, is_causal, self.attn_dropout_p, self.training)
        return self._merge(out)


class KronosCrossAttention(KronosAttentionBase):
    """
    Cross-attention of the dependency-aware layer (upstream `MultiHeadCrossAttentionWithRoPE`): the s1 embedding
    queries the backbone context.

    Two upstream behaviours that the published weights were trained with are kept exactly:
    the rotary table is built for the *query* length and applied to queries and keys alike, so with a single query
    (autoregressive decoding) neither is rotated; and the attention is causal only in training mode.
    """

    def project_kv(self, context):
        """Keys and values of context positions `(batch, len, d_model)` → two `(batch, heads, len, head_dim)`."""
        context = _to_module(context, self.k_proj, cast=True)
        return self._split(self.k_proj(context)), self._split(self.v_proj(context))

    def forward(self, query, key_value=None, attention_mask=None, kv=None):
        """
        Args:
            query (`torch.Tensor` of shape `(batch, q_len, d_model)`): Embeddings of the conditioning s1 tokens.
            key_value (`torch.Tensor` of shape `(batch, k_len, d_model)`): The context.
            attention_mask (`torch.Tensor` of shape `(batch, k_len)`, *optional*): 1 = real, 0 = padding.
            kv (`tuple` or [`KronosPathKV`], *optional*): Precomputed `project_kv(context)` (cached), used instead
                of `key_value`.
        """
        q_len = query.shape[1]
        q = self._split(self.q_proj(_to_module(query, self.q_proj, cast=True)))
        if isinstance(kv, KronosPathKV):
            return self._merge(kv.attend(q))  # one query: no rotary, no mask (as below)
        if kv is not None:
            k, v = (t.to(q.device) for t in kv)
        else:
            k, v = self.project_kv(key_value)
        if attention_mask is not None:
            attention_mask = attention_mask.to(q.device)
        k_len = k.shape[-2]
        if q_len > 1:
            if q_len != k_len:
                raise ValueError(f"dependency layer: {q_len} queries for {k_len} context positions")
            cos, sin = self.rotary(torch.arange(q_len, device=q.device), q.dtype)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        # a single query gets the rotary table of length 1 (position 0, the identity), and so do all keys
        mask, is_causal = build_attention_mask(attention_mask, q_len, k_len, causal=self.training, top_left=True)
        out = attend(self.config, q, k, v, mask, is_causal, self.attn_dropout_p, self.training)
        return self._merge(out)


class KronosDependencyAwareLayer(nn.Module):
    """Conditions the context on an s1 token: `norm(context + cross_attn(query=emb_s1(s1), key=value=context))`."""

    def __init__(self, config, d_model, n_heads=4, attn_dropout_p=0.0, resid_dropout_p=0.0, eps=1e-5, layer_idx=None):
        super().__init__()
        self.cross_attn = KronosCrossAttention(config, d_model, n_heads, attn_dropout_p, resid_dropout_p, layer_idx)
        self.norm = KronosRMSNorm(d_model, eps)

    def forward(self, hidden_states, sibling_embed, attention_mask=None):
        """`hidden_states` `(batch, seq_len, d)`, `sibling_embed` `(batch, 1 or seq_len, d)` → `(batch, seq_len, d)`."""
        attn_out = self.cross_attn(sibling_embed, hidden_states, attention_mask=attention_mask)
        return self.norm(hidden_states + attn_out)


class KronosTransformerBlock(GradientCheckpointingLayer):
    """Pre-norm transformer block: RMSNorm → causal RoPE attention → residual → RMSNorm → SwiGLU → residual."""

    def __init__(self, config, d_model, n_heads, ff_dim, ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0, layer_idx=None):
        super().__init__()
        eps = getattr(config, "rms_norm_eps", 1e-5)
        self.norm1 = KronosRMSNorm(d_model, eps)
        self.self_attn = KronosAttention(config, d_model, n_heads, attn_dropout_p, resid_dropout_p, layer_idx)
        self.norm2 = KronosRMSNorm(d_model, eps)
        self.ffn = KronosFeedForward(d_model, ff_dim, ffn_dropout_p)

    def forward(self, hidden_states, position_embeddings, attention_mask=None, cache=None):
        hidden_states = hidden_states + self.self_attn(
            self.norm1(hidden_states), position_embeddings, attention_mask, cache=cache
        )
        return hidden_states + self.ffn(self.norm2(hidden_states))


def rotary_embeddings(blocks, position_ids, dtype):
    """Rotary `(cos, signed_sin)` for `position_ids`, computed once per pass and shared by `blocks` (same head size)."""
    if len(blocks) == 0:
        return None
    return blocks[0].self_attn.rotary(position_ids, dtype)


def make_transformer_blocks(config, count):
    """`count` transformer blocks with the sizes and dropouts of `config` (predictor or tokenizer), indexed for caches."""
    return nn.ModuleList(
        [
            KronosTransformerBlock(
                config,
                config.d_model,
                config.n_heads,
                config.ff_dim,
                config.ffn_dropout_p,
                config.attn_dropout_p,
                config.resid_dropout_p,
                layer_idx=i,
            )
            for i in range(count)
        ]
    )


class KronosHierarchicalEmbedding(nn.Module):
    """Embeds an (s1, s2) token pair: `fusion_proj([emb_s1(s1) * sqrt(d), emb_s2(s2) * sqrt(d)])`."""

    def __init__(self, s1_bits, s2_bits, d_model):
        super().__init__()
        self.s1_bits = s1_bits
        self.s2_bits = s2_bits
        self.d_model = d_model
        self.emb_s1 = nn.Embedding(2**s1_bits, d_model)
        self.emb_s2 = nn.Embedding(2**s2_bits, d_model)
        self.fusion_proj = KronosLinear(2 * d_model, d_model)

    def split_token(self, token_ids):
        """Split composite ids (`s1 << s2_bits | s2`) into `(s1_ids, s2_ids)`."""
        token_ids = token_ids.long()
        return token_ids >> self.s2_bits, token_ids & ((1 << self.s2_bits) - 1)

    def forward(self, s1_ids, s2_ids):
        scale = math.sqrt(self.d_model)
        return self.fusion_proj(torch.cat([self.emb_s1(s1_ids) * scale, self.emb_s2(s2_ids) * scale], dim=-1))


class KronosSinusoidalTable(nn.Embedding):
    """A frozen sinusoidal lookup table; its own class so that `_init_weights` fills it with sinusoids."""

    def __init__(self, num_embeddings, d_model):
        super().__init__(num_embeddings, d_model)
        self.weight.requires_grad_(False)

    @staticmethod
    def sinusoid_table(num_embeddings, d_model):
        position = torch.arange(num_embeddings, dtype=torch.float32)[:, None]
        div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * -(math.log(10000.0) / d_model))
        table = torch.zeros(num_embeddings, d_model)
        table[:, 0::2] = torch.sin(position * div_term)
        table[:, 1::2] = torch.cos(position * div_term)
        return table


class KronosFixedEmbedding(nn.Module):
    """Calendar embedding by a frozen sinusoidal table (used when `learn_te=False`); never receives gradients."""

    def __init__(self, num_embeddings, d_model):
        super().__init__()
        self.emb = KronosSinusoidalTable(num_embeddings, d_model)

    def forward(self, x):
        return self.emb(x).detach()


class KronosTemporalEmbedding(nn.Module):
    """Sum of minute, hour, weekday, day-of-month and month embeddings of each candle's timestamp."""

    def __init__(self, d_model, learn_te=True):
        super().__init__()
        embed = nn.Embedding if learn_te else KronosFixedEmbedding
        self.minute_embed = embed(60, d_model)
        self.hour_embed = embed(24, d_model)
        self.weekday_embed = embed(7, d_model)
        self.day_embed = embed(32, d_model)
        self.month_embed = embed(13, d_model)

    def forward(self, stamp):
        """`stamp`: `(batch, seq_len, 5)` calendar features (minute, hour, weekday, day, month), any numeric dtype."""
        stamp = stamp.long()
        return (
            self.hour_embed(stamp[:, :, 1])
            + self.weekday_embed(stamp[:, :, 2])
            + self.day_embed(stamp[:, :, 3])
            + self.month_embed(stamp[:, :, 4])
            + self.minute_embed(stamp[:, :, 0])
        )


class KronosDualHead(nn.Module):
    """The s1 projection (`forward`) and the s2 projection of the s1-conditioned context (`cond_forward`)."""

    def __init__(self, s1_bits, s2_bits, d_model):
        super().__init__()
        self.vocab_s1 = 2**s1_bits
        self.vocab_s2 = 2**s2_bits
        self.proj_s1 = KronosLinear(d_model, self.vocab_s1)
        self.proj_s2 = KronosLinear(d_model, self.vocab_s2)

    def forward(self, hidden_states):
        return self.proj_s1(_to_module(hidden_states, self.proj_s1, cast=True))

    def cond_forward(self, hidden_states):
        return self.proj_s2(_to_module(hidden_states, self.proj_s2, cast=True))


class KronosBinarySphericalQuantizer(nn.Module):
    """
    Binary Spherical Quantizer (Zhao et al., 2024) in the configuration Kronos uses: sign quantisation of an
    L2-normalised code with a straight-through gradient, a commitment loss and a soft entropy penalty.
    """

    def __init__(self, embed_dim, beta, gamma0, gamma, zeta, group_size):
        super().__init__()
        self.embed_dim = embed_dim
        self.beta = beta
        self.gamma0 = gamma0
        self.gamma = gamma
        self.zeta = zeta
        self.group_size = group_size
        self.num_groups = embed_dim // group_size
        # upstream persists these two integer tables in its checkpoints; keep them so its state dicts load as they are
        self.register_buffer("basis", 2 ** torch.arange(embed_dim - 1, -1, -1))
        self.register_buffer("group_basis", 2 ** torch.arange(group_size - 1, -1, -1))

    def quantize(self, z):
        zhat = torch.where(z > 0, torch.ones_like(z), -torch.ones_like(z))
        return z + (zhat - z).detach()

    def forward(self, z, collect_metrics=True):
        """`z`: unit-norm codes `(..., embed_dim)` → `(quantized, loss)`; the loss is 0 without metrics."""
        zq = self.quantize(z) * (1.0 / self.embed_dim**0.5)
        if not collect_metrics:
            return zq, zq.new_zeros(())
        persample_entropy, codebook_entropy = self.soft_entropy(z)
        entropy_penalty = self.gamma0 * persample_entropy - self.gamma * codebook_entropy
        commit_loss = self.beta * torch.mean(((zq.detach() - z) ** 2).sum(dim=-1))
        return zq, commit_loss + self.zeta * entropy_penalty

    def soft_entropy(self, z):
        """
        Per-sample and codebook entropy of the soft bit assignments `p(bit) = sigmoid(±4 z / sqrt(D))`.

        Upstream also computes grouped sub-code probabilities, then overwrites them with these per-bit ones before
        averaging, so its "codebook" entropy is the entropy of each bit's batch-average marginal, summed over
        bits. That is what the published tokenizers were trained with, so it is what this computes.
        """
        p = torch.sigmoid(-4 * z / self.embed_dim**0.5)
        bit_prob = torch.stack([p, 1 - p], dim=-1)
        persample = -(bit_prob * torch.log(bit_prob + 1e-8)).sum(dim=-1).sum(dim=-1).mean()
        avg_prob = bit_prob.reshape(-1, self.embed_dim, 2).mean(dim=0)
        codebook_entropy = -(avg_prob * torch.log(avg_prob + 1e-8)).sum(dim=-1).sum()
        return persample, codebook_entropy


class KronosBSQuantizer(nn.Module):
    """Normalises the pre-quantisation code and splits the binary code into s1 (low) and s2 (high) token ids."""

    def __init__(self, s1_bits, s2_bits, beta, gamma0, gamma, zeta, group_size):
        super().__init__()
        self.s1_bits = s1_bits
        self.s2_bits = s2_bits
        self.codebook_dim = s1_bits + s2_bits
        self.bsq = KronosBinarySphericalQuantizer(self.codebook_dim, beta, gamma0, gamma, zeta, group_size)

    @staticmethod
    def bits_to_indices(bits):
        """Codes `(..., n)` → ids, bit i (from the left) weighing `2**i`."""
        weights = 2 ** torch.arange(bits.shape[-1], dtype=torch.long, device=bits.device)
        return ((bits >= 0).long() * weights).sum(-1)

    def forward(self, z, half=False, collect_metrics=True):
        z = F.normalize(z, dim=-1)
        quantized, bsq_loss = self.bsq(z, collect_metrics=collect_metrics)
        if half:
            indices = [
                self.bits_to_indices(quantized[..., : self.s1_bits]),
                self.bits_to_indices(quantized[..., self.s1_bits :]),
            ]
        else:
            indices = self.bits_to_indices(quantized)
        return bsq_loss, quantized, indices


# --------------------------------------------------------------------------------------------------------------------
# Input checks (public entry points only; the decoding loop skips them)
# --------------------------------------------------------------------------------------------------------------------


def _check_ids(name, ids, vocab):
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of token ids, got {type(ids).__name__}")
    if ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"`{name}` must hold integer token ids (int64 or int32), got dtype {ids.dtype}")
    if ids.dim() != 2:
        raise ValueError(f"`{name}` must have shape (batch, seq_len), got {tuple(ids.shape)}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise ValueError(f"`{name}` has ids outside [0, {vocab}): min {int(ids.min())}, max {int(ids.max())}")


def _check_stamp(stamp, batch, seq_len, name="stamp"):
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


def _check_mask(attention_mask, batch, length, left_padded=False):
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


def _check_count(name, value, minimum=1):
    """`value` as an `int` of at least `minimum`, or a `TypeError`/`ValueError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"`{name}` must be at least {minimum}, got {value}")
    return int(value)


def check_sampling(temperature, top_k, top_p, temperature_name="temperature"):
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
    if top_k is None:
        top_k = 0
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral):
        raise TypeError(f"`top_k` must be an integer (0 or None: no top-k filter), got {type(top_k).__name__}")
    if top_k < 0:
        raise ValueError(f"`top_k` must be >= 0 (0: no top-k filter), got {top_k}")
    if top_p is None:
        top_p = 1.0
    if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real):
        raise TypeError(f"`top_p` must be a number in (0, 1], got {type(top_p).__name__}")
    if not 0 < top_p <= 1:
        raise ValueError(f"`top_p` must lie in (0, 1], got {top_p}")
    return float(temperature), int(top_k), float(top_p)


def _check_same_shape(**tensors):
    shapes = {name: tuple(t.shape[:2]) for name, t in tensors.items() if t is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"batch size and length must agree: {shapes}")


# --------------------------------------------------------------------------------------------------------------------
# Sampling (pure torch, shared by the decoding loop and the forecaster)
# --------------------------------------------------------------------------------------------------------------------


def filter_logits(logits, top_k=0, top_p=1.0):
    """
    Top-k, then nucleus (top-p) filtering, in place of the logits of `(rows, vocab)`.

    Unlike upstream, which returns after top-k and so ignores `top_p` whenever `top_k > 0`, both filters apply (in
    transformers' order). With one filter active the kept set is upstream's exactly: nucleus keeps the most likely
    tokens until their cumulative probability first exceeds `top_p`, and always the most likely one.
    """
    if top_k is not None and top_k > 0:
        top_k = min(int(top_k), logits.shape[-1])
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
        remove = cumulative > top_p
        remove[..., 1:] = remove[..., :-1].clone()
        remove[..., 0] = False
        logits = logits.masked_fill(remove.scatter(-1, sorted_idx, remove), float("-inf"))
    return logits


def sample_tokens(logits, temperature=1.0, top_k=0, top_p=1.0, generator=None):
    """
    Sample one id per row of `logits` `(rows, vocab)` → `(rows, 1)` after temperature and filtering.

    `generator` is one `torch.Generator` for all rows, or a list of them that splits the rows into as many equal,
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


def check_generator(generator, batch):
    """
    Check `generator`: `None`, a `torch.Generator`, or a list or tuple of `batch` generators (one per series).
    Returns it, a tuple when it is a sequence.
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
    if len(generator) != batch:
        raise ValueError(f"`generator` holds {len(generator)} generators but there are {batch} series: give one per series")
    return tuple(generator)


# --------------------------------------------------------------------------------------------------------------------
# Pretrained base class
# --------------------------------------------------------------------------------------------------------------------


class KronosPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading behaviour shared by the Kronos predictor and tokenizer."""

    config_class = KronosConfig
    base_model_prefix = "kronos"
    main_input_name = "s1_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = [
        "KronosTransformerBlock",
        "KronosDependencyAwareLayer",
        "KronosDualHead",
        "KronosHierarchicalEmbedding",
        "KronosTemporalEmbedding",
        "KronosBSQuantizer",
    ]
    # a KronosCache passed as `cache=` must not be moved by accelerate's hooks: each layer's entry lives on its device
    _skip_keys_device_placement = ["cache", "past_key_values"]
    # upstream checkpoints persist the rotary frequencies; they are rebuilt in float32 here instead
    _keys_to_ignore_on_load_unexpected = [r"rotary\.inv_freq"]

    def post_init(self):
        super().post_init()
        self._build_fp32_kept_in_fp32()

    def _build_fp32_kept_in_fp32(self):
        """
        Give the weights matched by `_keep_in_fp32_modules_strict` float32 storage when the model is built in half
        precision (as `from_pretrained(dtype=torch.bfloat16)` does, on the meta device). transformers 5 casts them to
        float32 only as it reads them, so weights offloaded to disk (whose dtype it takes from the model as built)
        or missing from the checkpoint would otherwise stay in half precision.
        """
        patterns = getattr(self, "_keep_in_fp32_modules_strict", None)
        if not patterns:
            return
        kept = re.compile("|".join(pattern.replace("*", ".*") for pattern in patterns))
        for name, param in self.named_parameters():
            if param.dtype in (torch.float16, torch.bfloat16) and kept.search(name):
                param.data = param.data.float()

    def _init_weights(self, module):
        """Upstream's initialisation: Xavier-normal linears, N(0, d^-1/2) embeddings, unit norms; fixed tables rebuilt."""
        if isinstance(module, nn.Linear):
            init.xavier_normal_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, KronosSinusoidalTable):
            init.copy_(module.weight, module.sinusoid_table(*module.weight.shape))
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=self.config.d_model**-0.5)
        elif isinstance(module, KronosRMSNorm):
            init.ones_(module.weight)
        elif isinstance(module, KronosRotaryEmbedding):
            init.copy_(module.inv_freq, module.compute_inv_freq(module.dim, module.theta))
        elif isinstance(module, KronosBinarySphericalQuantizer):
            init.copy_(module.basis, 2 ** torch.arange(module.embed_dim - 1, -1, -1))
            init.copy_(module.group_basis, 2 ** torch.arange(module.group_size - 1, -1, -1))

    def _adjacent_groups(self):
        """Lists of linear layers applied to the same input, whose weights [`pack_weights`] places side by side."""
        return []

    def pack_weights(self):
        """
        Copy the parameters into one new 64-byte-aligned block of memory, with the weights (and the biases) of each
        group of linear layers that read the same input side by side. Values, dtypes, `requires_grad` and the
        parameter objects themselves are kept, and every parameter keeps a storage of its own, so optimizers, hooks,
        `save_pretrained`, safetensors, accelerate and `torch.save` see the same model as before.

        Why: on CPU, transformers 5 leaves loaded weights in the memory-mapped safetensors file, often at offsets
        that are not aligned to cache lines, and a decoding step streams all of them for every token. Copied out and
        aligned, and with each block's query/key/value and gate/up matrices adjacent so that [`KronosDirectSteps`]
        multiplies each group as one product, a Kronos-small forecast runs ~7% faster on a 2-core CPU
        (docs/forecasting.md). [`KronosForecaster`] calls this for plain models on CPU.

        A packed model stays packed until its parameters are replaced (`.to()` another device or dtype, a copy);
        calling this again then packs anew, and on a packed model does nothing.

        Raises:
            `ValueError` when the parameters are not all on the CPU, or were created under `torch.inference_mode`
            (their storage cannot be replaced).

        Returns:
            The model.
        """
        with _PACKING_LOCK:
            obstacle = self._packing_obstacle()
            if obstacle is not None:
                raise ValueError(f"cannot pack the weights: {obstacle}")
            if not self._is_packed():
                self._pack()
        return self

    def _pack(self):
        """The copy behind [`pack_weights`]."""
        # one slot per distinct piece of memory: parameters sharing theirs (tied) keep sharing it
        slots = {}
        for param in self.parameters():
            if param.numel() == 0:
                continue
            slots.setdefault(_memory_view(param), []).append(param)
        slot_of = {id(param): key for key, params in slots.items() for param in params}
        # each stackable group, laid out back to back; every other slot after them
        runs = [[slot_of[id(tensor)] for tensor in tensors] for tensors in self._stacked_runs()]
        placed = {key for run in runs for key in run}
        runs += [[key] for key in slots if key not in placed]
        sizes = [[math.prod(key[2]) * slots[key][0].element_size() for key in run] for run in runs]
        starts, total = [], 0
        for run_sizes in sizes:
            starts.append(total)
            total += -(-sum(run_sizes) // 64) * 64
        memory = _PackedMemory(total + 64)
        offset = (-_register_packed(memory)) % 64
        # ordinary tensors even when called under inference mode: the model may be trained afterwards
        with torch.inference_mode(False), torch.no_grad():
            for run, run_sizes, start in zip(runs, sizes, starts):
                start += offset
                for key, size in zip(run, run_sizes):
                    first = slots[key][0]
                    view = torch.frombuffer(memory, dtype=first.dtype, count=first.numel(), offset=start)
                    view = view.view(first.shape)
                    view.copy_(first)
                    for param in slots[key]:
                        param.data = view
                    start += size

    def _packing_obstacle(self):
        """Why [`pack_weights`] cannot pack this model, or `None`."""
        devices = {param.device.type for param in self.parameters()}
        if devices != {"cpu"}:
            return f"every parameter must be on the CPU; this model has parameters on {sorted(devices)}"
        if any(param.is_inference() for param in self.parameters()):
            return "its parameters were created under torch.inference_mode, so their storage cannot be replaced"
        # parameters may share memory only as identical views: a copy could not keep a transposed or partial tie
        views, ranges = set(), []
        for param in self.parameters():
            view = _memory_view(param)
            if param.numel() == 0 or view in views:
                continue
            views.add(view)
            span = sum((size - 1) * stride for size, stride in zip(param.shape, param.stride())) + 1
            ranges.append((param.data_ptr(), param.data_ptr() + span * param.element_size()))
        ranges.sort()
        if any(start < end for (_, end), (start, _) in zip(ranges, ranges[1:])):
            return "some parameters share memory through different views (a transposed or partial tie)"
        return None

    def _stacked_runs(self):
        """
        The weight lists and bias lists of `_adjacent_groups()` that [`pack_weights`] lays out back to back: those
        of distinct, non-empty parameters of one dtype and row shape whose sizes are multiples of 64 bytes (so that
        each starts aligned), none already in an earlier run.
        """
        runs, placed = [], set()
        for group in self._adjacent_groups():
            for tensors in ([module.weight for module in group], [module.bias for module in group]):
                if any(not isinstance(tensor, nn.Parameter) or tensor.numel() == 0 for tensor in tensors):
                    continue  # no bias, or not a parameter
                addresses = [tensor.data_ptr() for tensor in tensors]
                if (
                    len(set(addresses)) < len(addresses)  # tied
                    or not placed.isdisjoint(addresses)
                    or len({(tensor.dtype, tensor.shape[1:]) for tensor in tensors}) > 1
                    # every member 64-byte aligned: MKL rounds some products differently on misaligned weights
                    or any(tensor.numel() * tensor.element_size() % 64 for tensor in tensors)
                ):
                    continue
                runs.append(tensors)
                placed.update(addresses)
        return runs

    def _is_packed(self):
        """Whether [`pack_weights`] has nothing to do: every parameter in its memory, every stackable group stacked."""
        if any(_packed_memory_at(param.data_ptr())[0] is None for param in self.parameters() if param.numel()):
            return False
        return all(concatenated_view(tensors) is not None for tensors in self._stacked_runs())

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """
        Load a converted checkpoint, or an upstream (`PyTorchModelHubMixin`) checkpoint as it is: a `config.json`
        without `model_type` is read as upstream's `__init__` arguments. The model is returned in eval mode.
        """
        if kwargs.get("config") is None and not model_args:
            upstream = _load_upstream_config(cls, pretrained_model_name_or_path, kwargs)
            if upstream is not None:
                kwargs["config"] = upstream
        _check_device_map(cls, pretrained_model_name_or_path, kwargs)
        lean = _open_for_half_precision(cls, pretrained_model_name_or_path, model_args, kwargs)
        if lean is not None:
            handle, config, state_dict = lean
            try:
                loaded = super().from_pretrained(None, config=config, state_dict=state_dict, **kwargs)
            finally:
                handle.__exit__(None, None, None)
            model = loaded[0] if isinstance(loaded, tuple) else loaded
            model.name_or_path = model.config._name_or_path = str(pretrained_model_name_or_path)
            return loaded
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        except OSError as err:
            import os

            if os.path.isdir(str(pretrained_model_name_or_path)):
                raise
            # transformers' message for a mistyped path or an unreachable repo names neither; say which it was
            raise OSError(
                f"cannot load {str(pretrained_model_name_or_path)!r}: it is not a local directory, and as a Hub repo "
                f"id it could not be found or fetched ({' '.join(str(err).split())})"
            ) from err


_HUB_KWARGS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")
# from_pretrained arguments that the lean half-precision path below passes through unchanged
_LEAN_KWARGS = ("config", "dtype", "device_map", "output_loading_info", "attn_implementation")


def _has_accelerator():
    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return (
        torch.cuda.is_available()
        or (mps is not None and mps.is_available())
        or (xpu is not None and xpu.is_available())
    )


def _open_for_half_precision(cls, name_or_path, model_args, kwargs):
    """
    For a bfloat16/float16 load of a local single-file safetensors checkpoint onto the CPU, open the
    file for positioned reads instead of transformers' memory map and return `(handle, config, state_dict)`, where the
    state dict holds lazy slices; otherwise None.

    transformers maps the file and casts each tensor as it loads it, which makes no float32 copy but keeps every page of
    the float32 file resident until the end: loading a float32 Kronos-base into bfloat16 peaked at 1.5x the file size.
    Reading tensor by tensor frees each float32 buffer once cast, so the peak is about the half-precision model
    (benchmarks/load_memory.py). The weights are identical either way, float32-kept modules included.
    """
    import os

    dtype = kwargs.get("dtype")
    if isinstance(dtype, str) and dtype in ("bfloat16", "float16"):
        dtype = getattr(torch, dtype)
    if dtype not in (torch.bfloat16, torch.float16) or model_args:
        return None
    device_map = kwargs.get("device_map")
    if device_map == "auto" and not _has_accelerator():
        device_map = "cpu"  # "auto" places everything on the CPU here
    if device_map not in (None, "cpu", {"": "cpu"}):
        return None  # placement over devices or disk: transformers' own loader handles it
    if any(key not in _LEAN_KWARGS for key in kwargs):
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
_DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


def _check_device(device, where):
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


def _check_device_map(cls, name_or_path, kwargs):
    """
    Reject a `device_map` that transformers would take silently or fail on deep inside loading: a device that does
    not exist here, or a per-module dict that names modules the model does not have or leaves weights unplaced.
    The module names come from the model built on the meta device (no memory, no weights read).
    """
    max_memory = kwargs.get("max_memory")
    if isinstance(max_memory, dict):
        for key, budget in max_memory.items():
            if key not in ("cpu", "disk", "mps"):
                _check_device(key, f"max_memory key {key!r}")
            if isinstance(budget, (int, float)) and not isinstance(budget, bool) and budget < 0:
                raise ValueError(f"max_memory[{key!r}] must not be negative, got {budget}")
    device_map = kwargs.get("device_map")
    if device_map is None:
        return
    if isinstance(device_map, str) and device_map in _DEVICE_MAP_STRATEGIES:
        return
    if not isinstance(device_map, dict):
        _check_device(device_map, "device_map")
        return
    for key, device in device_map.items():
        if not isinstance(key, str):
            raise ValueError(f"device_map keys must be module names (str), got {key!r}")
        if device != "disk":
            _check_device(device, f"device_map[{key!r}]")

    import copy

    from transformers import PretrainedConfig

    config = kwargs.get("config")
    if not isinstance(config, PretrainedConfig):
        hub_kwargs = {k: kwargs[k] for k in _HUB_KWARGS if k in kwargs}
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


def _load_upstream_config(cls, name_or_path, kwargs):
    """Return a config built from an upstream `config.json` (no `model_type`), or None for a transformers checkpoint."""
    import json
    import os

    from transformers.utils import cached_file

    hub_kwargs = {k: kwargs[k] for k in _HUB_KWARGS if k in kwargs}
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
        _check_kronos_kind(cls, raw["model_type"], name_or_path)
        return None
    # config attributes passed to from_pretrained (e.g. max_context=2048) override the file, as for any checkpoint
    import inspect

    params = inspect.signature(cls.config_class.__init__).parameters
    overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in params and k != "self" and k != "kwargs"}
    for key in ("attn_implementation",):
        if key in kwargs:
            overrides[key] = kwargs[key]
    return config_from_upstream({**raw, **overrides}, expected=cls.config_class)


def _check_kronos_kind(cls, model_type, name_or_path):
    """
    Raise when a converted checkpoint holds the other Kronos network (a tokenizer loaded as the predictor or the
    reverse): transformers would load it with every weight missing, that is, randomly initialised.
    """
    kinds = {KronosConfig.model_type: "KronosForTokenPrediction", KronosTokenizerConfig.model_type: "KronosTokenizerModel"}
    expected = getattr(cls.config_class, "model_type", None)
    if model_type in kinds and expected in kinds and model_type != expected:
        raise ValueError(
            f"{str(name_or_path)!r} is a {model_type!r} checkpoint, not a {expected!r} one: load it with "
            f"{kinds[model_type]}.from_pretrained (or AutoModel)"
        )


def config_from_upstream(raw, expected=None):
    """
    Build a [`KronosConfig`] or [`KronosTokenizerConfig`] from an upstream `config.json` dictionary.

    Raises `ValueError` when the keys match neither network, or match the other one than `expected`.
    """
    from .configuration_kronos import UPSTREAM_MODEL_KEYS, UPSTREAM_TOKENIZER_KEYS

    keys = set(raw)
    if set(UPSTREAM_TOKENIZER_KEYS) <= keys:
        config_cls = KronosTokenizerConfig
    elif set(UPSTREAM_MODEL_KEYS) <= keys:
        config_cls = KronosConfig
    else:
        missing_model = sorted(set(UPSTREAM_MODEL_KEYS) - keys)
        missing_tok = sorted(set(UPSTREAM_TOKENIZER_KEYS) - keys)
        raise ValueError(
            "config.json is neither a Kronos predictor nor a Kronos tokenizer config "
            f"(predictor keys missing: {missing_model}; tokenizer keys missing: {missing_tok})"
        )
    if expected is not None and config_cls is not expected:
        raise ValueError(
            f"this checkpoint holds a {config_cls.__name__[:-6]} but {expected.__name__[:-6]} was asked for; "
            f"load it with {'KronosTokenizerModel' if config_cls is KronosTokenizerConfig else 'KronosForTokenPrediction'}"
        )
    import inspect
    import warnings

    known = set(inspect.signature(config_cls.__init__).parameters) | set(inspect.signature(PretrainedConfig.__init__).parameters)
    unknown = sorted(keys - known - {"attn_implementation", "kwargs", "self"})
    if unknown:
        # a transformers config keeps any key as an attribute, so a misspelt one would change nothing in silence
        warnings.warn(
            f"config.json has key(s) {unknown} that Kronos does not read: they are kept in the config but change "
            "nothing (a misspelling?)",
            UserWarning,
            stacklevel=2,
        )
    return config_cls(**raw)


# --------------------------------------------------------------------------------------------------------------------
# Decoding steps (for KronosForTokenPrediction.generate_tokens)
# --------------------------------------------------------------------------------------------------------------------


def _plain_placement(model):
    """Every parameter of `model` on one (not meta) device with one dtype, and no accelerate hooks placing them."""
    placements = {(param.device, param.dtype) for param in model.parameters()}
    if len(placements) != 1 or next(iter(placements))[0].type == "meta":
        return False
    return all(getattr(module, "_hf_hook", None) is None for module in model.modules())


class KronosModuleSteps:
    """
    The operations of one decoding step, run through the predictor's modules. Valid for every model: dispatched
    with `device_map` or offloaded (accelerate hooks), wrapped by adapters, or with weights of mixed dtypes.

    Args:
        model ([`KronosForTokenPrediction`]): The predictor.
        stamps (`torch.Tensor` of shape `(rows, total, 5)`): Calendar features of every position (prompt, then
            forecast), one row per sample path.
    """

    def __init__(self, model, stamps):
        self.model = model
        self.stamps = stamps

    def s1_logits(self, last):
        """`last` `(rows, 1, d_model)`, the context of the newest position → `(rows, 2**s1_bits)` next-s1 logits."""
        return self.model.head(last[:, -1])

    def s2_logits(self, last, s1_ids, kv, attention_mask):
        """
        Next-s2 logits `(rows, 2**s2_bits)` given the sampled `s1_ids` `(rows, 1)`, the dependency layer's keys and
        values `kv` of the visible context and its padding mask `(rows, k_len)` (or `None`).
        """
        model = self.model
        sibling = model.embedding.emb_s1(_to_module(s1_ids, model.embedding.emb_s1))
        attn = model.dep_layer.cross_attn(sibling, attention_mask=attention_mask, kv=kv)
        return model.head.cond_forward(model.dep_layer.norm(last.to(attn.device) + attn))[:, -1]

    def append(self, s1_ids, s2_ids, index, attention_mask, cache):
        """
        Run the tokens `(rows, 1)` of position `index` through the backbone with `cache` (updated and advanced,
        dependency layer included); `attention_mask` `(rows, k_len)` covers the cached and new positions.

        Returns:
            The new position's context `(rows, 1, d_model)`.
        """
        model = self.model
        dep = model.dep_layer.cross_attn
        last = model._backbone(s1_ids, s2_ids, self.stamps[:, index : index + 1], attention_mask, cache)
        cache.update(dep.layer_idx, *dep.project_kv(last))
        cache.advance(1)
        return last


class KronosDirectSteps(KronosModuleSteps):
    """
    [`KronosModuleSteps`] with the weights used directly instead of through module calls.

    A step applies ~60 weight matrices and ~300 small operations to a single position. On CPU, going through the
    modules (calls, hook checks, re-deriving views of the weights) then costs about as much as the arithmetic
    itself. Here the weights, and the row-block views that [`few_row_linear`] multiplies, are looked up once per
    forecast. The arithmetic is the modules' own, with the same functions in the same order, so the logits are
    bitwise equal to [`KronosModuleSteps`]' (tests/test_modeling_kronos.py checks it). On a packed model (see
    [`KronosPreTrainedModel.pack_weights`]) the query/key/value projections, the gate and up projections and the
    dependency layer's key/value projections are each one product of the stacked weights, split into the same row
    blocks as one at a time, so still bitwise equal, with fewer operations per step.

    Only for plain models, see [`KronosDirectSteps.supports`]; `generate_tokens` falls back to the modules otherwise.
    """

    # everything a plain predictor is built from; anything else (an adapter, a quantized layer) means "use modules"
    _plain_types = (
        nn.ModuleList, nn.Dropout, nn.Embedding, KronosLinear, KronosRMSNorm, KronosRotaryEmbedding, KronosAttention,
        KronosCrossAttention, KronosFeedForward, KronosTransformerBlock, KronosDependencyAwareLayer,
        KronosHierarchicalEmbedding, KronosTemporalEmbedding, KronosFixedEmbedding, KronosSinusoidalTable,
        KronosDualHead,
    )  # fmt: skip

    @classmethod
    def supports(cls, model):
        """
        Whether `model` is plain: in eval mode, every parameter on one device with one dtype, built only from this
        file's modules, with no forward hooks (accelerate's dispatch, user hooks, global hooks).
        """
        if model.training or not _plain_placement(model):
            return False
        if getattr(nn.modules.module, "_global_forward_hooks", None) or getattr(
            nn.modules.module, "_global_forward_pre_hooks", None
        ):
            return False
        for module in model.modules():
            if module is not model and type(module) not in cls._plain_types:
                return False
            if module._forward_hooks or module._forward_pre_hooks:
                return False
        return True

    def __init__(self, model, stamps):
        super().__init__(model, stamps)
        rows = stamps.shape[0]
        fast = rows <= KronosLinear.max_fast_rows

        def linear(module):
            return module.weight, module.bias, few_row_views(module.weight, module.bias) if fast else None

        def group(*modules):
            """`(one prepared product of the stacked weights or None, [prepared per module])`."""
            separate = [linear(module) for module in modules]
            if not fast or any(prepared[2] is None for prepared in separate):
                return None, separate
            weight = concatenated_view([module.weight for module in modules])
            has_bias = [module.bias is not None for module in modules]
            bias = concatenated_view([module.bias for module in modules]) if all(has_bias) else None
            if weight is None or (any(has_bias) and bias is None):
                return None, separate
            return (weight, bias, few_row_views(weight, bias, parts=len(modules))), separate

        # `attend` reads `_attn_implementation` only; a transformers config resolves attributes slowly
        self.config = SimpleNamespace(_attn_implementation=getattr(model.config, "_attn_implementation", None))
        self.d_model = model.config.d_model
        self.stamp_ids = stamps.long()
        embedding, time_emb = model.embedding, model.time_emb
        self.emb_s1, self.emb_s2 = embedding.emb_s1.weight, embedding.emb_s2.weight
        self.fusion = linear(embedding.fusion_proj)
        self.scale = math.sqrt(embedding.d_model)

        def table(module):
            return (module.emb if isinstance(module, KronosFixedEmbedding) else module).weight

        # in the order KronosTemporalEmbedding sums them: (stamp column, table)
        order = ((1, "hour_embed"), (2, "weekday_embed"), (3, "day_embed"), (4, "month_embed"), (0, "minute_embed"))
        self.calendar = [(column, table(getattr(time_emb, name))) for column, name in order]
        self.layers = []
        for block in model.transformer:
            attn, ffn = block.self_attn, block.ffn
            self.layers.append(
                (
                    (block.norm1.weight, block.norm1.eps),
                    group(attn.q_proj, attn.k_proj, attn.v_proj),
                    linear(attn.out_proj),
                    (block.norm2.weight, block.norm2.eps),
                    group(ffn.w1, ffn.w3),
                    linear(ffn.w2),
                    attn.layer_idx,
                    attn.n_heads,
                )
            )
        self.norm = (model.norm.weight, model.norm.eps)
        dep = model.dep_layer.cross_attn
        self.dep_idx, self.dep_heads = dep.layer_idx, dep.n_heads
        self.dep_q, self.dep_kv, self.dep_out = linear(dep.q_proj), group(dep.k_proj, dep.v_proj), linear(dep.out_proj)
        self.dep_norm = (model.dep_layer.norm.weight, model.dep_layer.norm.eps)
        self.head_s1, self.head_s2 = linear(model.head.proj_s1), linear(model.head.proj_s2)
        # rotary angles of every position a step can take (the cache's positions never exceed the stamps'),
        # elementwise the same numbers as computing them per step
        positions = torch.arange(stamps.shape[1], device=stamps.device)
        self.cos, self.signed_sin = model.transformer[0].self_attn.rotary(positions, self.emb_s1.dtype)

    @staticmethod
    def _linear(hidden_states, prepared):
        """[`KronosLinear.forward`] under `no_grad`, from prepared `(weight, bias, row-block views or None)`."""
        weight, bias, views = prepared
        if views is not None and hidden_states.is_contiguous():
            return few_row_linear(hidden_states, *views)
        return F.linear(hidden_states, weight, bias)

    def _heads(self, hidden_states, heads):
        """`(rows, 1, d)` → `(rows, heads, 1, d / heads)`, as `KronosAttentionBase._split`."""
        rows = hidden_states.shape[0]
        return hidden_states.view(rows, 1, heads, self.d_model // heads).transpose(1, 2)

    def _stacked_heads(self, hidden_states, prepared, parts, heads):
        """`(rows, 1, d)` through `parts` stacked projections → `(rows, 1, parts, heads, d / heads)`."""
        rows = hidden_states.shape[0]
        return self._linear(hidden_states, prepared).view(rows, 1, parts, heads, self.d_model // heads)

    def _merge(self, out, prepared):
        """Attention output `(rows, heads, 1, head_dim)` → output projection `(rows, 1, d)`, as `_merge`."""
        return self._linear(out.transpose(1, 2).reshape(out.shape[0], 1, self.d_model), prepared)

    def s1_logits(self, last):
        return self._linear(last[:, -1], self.head_s1)

    def s2_logits(self, last, s1_ids, kv, attention_mask):
        query = self._heads(self._linear(F.embedding(s1_ids, self.emb_s1), self.dep_q), self.dep_heads)
        if isinstance(kv, KronosPathKV):
            out = kv.attend(query)
        else:
            key, value = kv
            mask, is_causal = build_attention_mask(attention_mask, 1, key.shape[-2], causal=False, top_left=True)
            out = attend(self.config, query, key, value, mask, is_causal, 0.0, False)
        attn = self._merge(out, self.dep_out)
        return self._linear(rms_norm(last + attn, *self.dep_norm), self.head_s2)[:, -1]

    def append(self, s1_ids, s2_ids, index, attention_mask, cache):
        linear = self._linear
        tokens = [F.embedding(s1_ids, self.emb_s1) * self.scale, F.embedding(s2_ids, self.emb_s2) * self.scale]
        hidden_states = linear(torch.cat(tokens, dim=-1), self.fusion)
        stamp = self.stamp_ids[:, index : index + 1]
        calendar = None
        for column, table in self.calendar:
            term = F.embedding(stamp[:, :, column], table)
            calendar = term if calendar is None else calendar + term
        hidden_states = hidden_states + calendar
        position = cache.position_offset
        cos, sin = self.cos[:, :, position : position + 1], self.signed_sin[:, :, position : position + 1]
        shared = isinstance(cache, KronosPathCache)
        for norm1, qkv, out_proj, norm2, gate_up, w2, layer_idx, heads in self.layers:
            normed = rms_norm(hidden_states, *norm1)
            if qkv[0] is not None:
                parts = self._stacked_heads(normed, qkv[0], 3, heads)
                # the query and key rotated together: elementwise, so the same numbers as one at a time
                query, key = (part.transpose(1, 2) for part in apply_rotary(parts[:, :, :2], cos, sin).unbind(2))
                value = parts[:, :, 2].transpose(1, 2)
            else:
                query, key, value = (self._heads(linear(normed, prepared), heads) for prepared in qkv[1])
                query, key = apply_rotary(query, cos, sin), apply_rotary(key, cos, sin)
            if shared:
                out = cache.update(layer_idx, key, value).attend(query)
            else:
                key, value = cache.update(layer_idx, key, value)
                mask, is_causal = build_attention_mask(attention_mask, 1, key.shape[-2], causal=True)
                out = attend(self.config, query, key, value, mask, is_causal, 0.0, False)
            hidden_states = hidden_states + self._merge(out, out_proj)
            normed = rms_norm(hidden_states, *norm2)
            if gate_up[0] is not None:
                gate, up = linear(normed, gate_up[0]).view(normed.shape[0], 1, 2, -1).unbind(2)
            else:
                gate, up = (linear(normed, prepared) for prepared in gate_up[1])
            hidden_states = hidden_states + linear(F.silu(gate) * up, w2)
        last = rms_norm(hidden_states, *self.norm)
        if self.dep_kv[0] is not None:
            parts = self._stacked_heads(last, self.dep_kv[0], 2, self.dep_heads)
            key, value = (part.transpose(1, 2) for part in parts.unbind(2))
        else:
            key, value = (self._heads(linear(last, prepared), self.dep_heads) for prepared in self.dep_kv[1])
        cache.update(self.dep_idx, key, value)
        cache.advance(1)
        return last


# --------------------------------------------------------------------------------------------------------------------
# The predictor
# --------------------------------------------------------------------------------------------------------------------


class KronosForTokenPrediction(KronosPreTrainedModel):
    """
    The Kronos predictor: a decoder-only transformer over (s1, s2) token pairs with calendar embeddings and a dual
    head that predicts the next s1 token and then, conditioned on it, the next s2 token.

    Upstream's methods keep their names and semantics (`decode_s1`, `decode_s2`, and `forward` with
    `use_teacher_forcing`/`s1_targets`), so upstream's own inference loop runs on this class unchanged.
    """

    config_class = KronosConfig
    # positions (series x prompt length) that `generate_tokens` runs through the backbone in one pass
    _prompt_positions_per_pass = 512
    # sample paths of a series share their prompt's keys and values while decoding (KronosPathCache); False repeats
    # them for every path (the tests compare the two)
    _share_prompt_across_paths = True
    # kept in float32 under bfloat16/float16 loads (patterns on parameter names): the RMSNorm weights and the dual
    # head; measured in docs/big-model-inference.md (benchmarks/dtype_fidelity.py), they cost <2% of the weights
    _keep_in_fp32_modules_strict = ["norm", "head"]

    def __init__(self, config):
        super().__init__(config)
        self.s1_bits = config.s1_bits
        self.s2_bits = config.s2_bits
        self.s1_vocab_size = 2**config.s1_bits
        self.s2_vocab_size = 2**config.s2_bits
        self.d_model = config.d_model
        self.token_drop = nn.Dropout(config.token_dropout_p)
        self.embedding = KronosHierarchicalEmbedding(config.s1_bits, config.s2_bits, config.d_model)
        self.time_emb = KronosTemporalEmbedding(config.d_model, config.learn_te)
        self.transformer = make_transformer_blocks(config, config.n_layers)
        self.norm = KronosRMSNorm(config.d_model, config.rms_norm_eps)
        # upstream builds this layer with its default head count and no dropout, whatever the config says
        self.dep_layer = KronosDependencyAwareLayer(
            config, config.d_model, config.dependency_heads, eps=config.rms_norm_eps, layer_idx=config.n_layers
        )
        self.head = KronosDualHead(config.s1_bits, config.s2_bits, config.d_model)
        self.post_init()

    def _adjacent_groups(self):
        # what a decoding step multiplies as one product once packed (see KronosDirectSteps)
        groups = []
        for block in self.transformer:
            attn, ffn = block.self_attn, block.ffn
            groups += [[attn.q_proj, attn.k_proj, attn.v_proj], [ffn.w1, ffn.w3]]
        dep = self.dep_layer.cross_attn
        return groups + [[dep.k_proj, dep.v_proj]]

    # ------------------------------------------------------------------ backbone

    def _backbone(self, s1_ids, s2_ids, stamp=None, attention_mask=None, cache=None):
        """Embeddings → transformer blocks → final norm: `(batch, seq_len, d_model)` context."""
        hidden_states = self.embedding(s1_ids, s2_ids)
        if stamp is not None:
            hidden_states = hidden_states + self.time_emb(stamp.to(hidden_states.device)).to(hidden_states.dtype)
        hidden_states = self.token_drop(hidden_states)
        seq_len = s1_ids.shape[1]
        offset = cache.position_offset if cache is not None else 0
        position_ids = torch.arange(offset, offset + seq_len, device=hidden_states.device)
        position_embeddings = rotary_embeddings(self.transformer, position_ids, hidden_states.dtype)
        for layer in self.transformer:
            hidden_states = layer(hidden_states, position_embeddings, attention_mask, cache=cache)
        return self.norm(hidden_states)

    def _validate(self, s1_ids, s2_ids, stamp, attention_mask, past_length=0):
        _check_ids("s1_ids", s1_ids, self.s1_vocab_size)
        _check_ids("s2_ids", s2_ids, self.s2_vocab_size)
        _check_same_shape(s1_ids=s1_ids, s2_ids=s2_ids)
        _check_stamp(stamp, s1_ids.shape[0], s1_ids.shape[1])
        _check_mask(attention_mask, s1_ids.shape[0], past_length + s1_ids.shape[1])

    # ------------------------------------------------------------------ upstream API

    def decode_s1(self, s1_ids, s2_ids, stamp=None, attention_mask=None, validate=True):
        """
        Run the backbone and the s1 head over every position (upstream's decoding step).

        Args:
            s1_ids (`torch.LongTensor` of shape `(batch, seq_len)`): Coarse tokens.
            s2_ids (`torch.LongTensor` of shape `(batch, seq_len)`): Fine tokens.
            stamp (`torch.Tensor` of shape `(batch, seq_len, 5)`, *optional*): Calendar features.
            attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): 1 = real, 0 = padding.
            validate (`bool`): Check ids, stamp and mask first (skip only in trusted hot loops).

        Returns:
            `(s1_logits, context)` of shapes `(batch, seq_len, 2**s1_bits)` and `(batch, seq_len, d_model)`.
        """
        if validate:
            self._validate(s1_ids, s2_ids, stamp, attention_mask)
        context = self._backbone(s1_ids, s2_ids, stamp, attention_mask)
        return self.head(context), context

    def decode_s2(self, context, s1_ids, attention_mask=None, validate=True):
        """
        The s2 head, conditioned on `s1_ids` through the dependency-aware layer.

        Args:
            context (`torch.Tensor` of shape `(batch, seq_len, d_model)`): From `decode_s1`.
            s1_ids (`torch.LongTensor` of shape `(batch, q_len)`): The conditioning s1 tokens, `q_len` 1 (upstream's
                decoding: one sampled token, broadcast over the context) or `seq_len` (teacher forcing).
            attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): 1 = real, 0 = padding.

        Returns:
            `s2_logits` of shape `(batch, seq_len, 2**s2_bits)`.
        """
        if validate:
            _check_ids("s1_ids", s1_ids, self.s1_vocab_size)
            if not isinstance(context, torch.Tensor) or context.dim() != 3 or not context.is_floating_point():
                raise TypeError(
                    "`context` must be the float tensor `(batch, seq_len, d_model)` that decode_s1 returns, got "
                    + (f"shape {tuple(context.shape)} of {context.dtype}" if isinstance(context, torch.Tensor)
                       else type(context).__name__)
                )
            if context.shape[0] != s1_ids.shape[0]:
                raise ValueError(f"batch size of `context` ({context.shape[0]}) and `s1_ids` ({s1_ids.shape[0]}) differ")
            if s1_ids.shape[1] not in (1, context.shape[1]):
                raise ValueError(f"`s1_ids` must have length 1 or {context.shape[1]}, got {s1_ids.shape[1]}")
            _check_mask(attention_mask, context.shape[0], context.shape[1])
        sibling = self.embedding.emb_s1(_to_module(s1_ids, self.embedding.emb_s1))
        return self.head.cond_forward(self.dep_layer(context, sibling, attention_mask))

    def forward(
        self,
        s1_ids,
        s2_ids,
        stamp=None,
        attention_mask=None,
        use_teacher_forcing=False,
        s1_targets=None,
        s1_labels=None,
        s2_labels=None,
        return_dict=None,
        **kwargs,
    ):
        """
        Full forward pass, for training and scoring.

        Args:
            s1_ids, s2_ids (`torch.LongTensor` of shape `(batch, seq_len)`): Input tokens.
            stamp (`torch.Tensor` of shape `(batch, seq_len, 5)`, *optional*): Calendar features of the inputs.
            attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): 1 = real, 0 = padding.
            use_teacher_forcing (`bool`): Condition s2 on `s1_targets` (upstream's switch).
            s1_targets (`torch.LongTensor` of shape `(batch, seq_len)`, *optional*): Teacher-forcing s1 tokens.
            s1_labels, s2_labels (`torch.LongTensor` of shape `(batch, seq_len)`, *optional*): The next tokens,
                aligned with the inputs; -100 is ignored. Both together give `loss = (ce_s1 + ce_s2) / 2`, with s2
                conditioned as `config.s2_conditioning` says (the labels, or a sample of the model's s1).

        Without labels and without teacher forcing, s2 is conditioned on an s1 sampled from the model, as upstream.

        Returns:
            [`KronosOutput`] (or a tuple without the `None` fields when `return_dict=False`).
        """
        if (s1_labels is None) != (s2_labels is None):
            raise ValueError("pass both `s1_labels` and `s2_labels`, or neither")
        self._validate(s1_ids, s2_ids, stamp, attention_mask)
        if use_teacher_forcing and s1_targets is None and s1_labels is None:
            raise ValueError("`use_teacher_forcing=True` needs `s1_targets` (or `s1_labels`)")
        for name, labels in (("s1_labels", s1_labels), ("s2_labels", s2_labels), ("s1_targets", s1_targets)):
            if labels is not None:
                if not isinstance(labels, torch.Tensor):
                    raise TypeError(f"`{name}` must be a torch.Tensor of token ids, got {type(labels).__name__}")
                if tuple(labels.shape) != tuple(s1_ids.shape):
                    raise ValueError(f"`{name}` must have shape {tuple(s1_ids.shape)}, got {tuple(labels.shape)}")
        if s1_labels is not None:
            _check_labels("s1_labels", s1_labels, self.s1_vocab_size)
            _check_labels("s2_labels", s2_labels, self.s2_vocab_size)
        if s1_targets is not None:
            _check_ids("s1_targets", s1_targets, self.s1_vocab_size)

        context = self._backbone(s1_ids, s2_ids, stamp, attention_mask)
        s1_logits = self.head(context)

        if use_teacher_forcing:
            condition = s1_targets if s1_targets is not None else s1_labels.clamp(min=0)
        elif s1_labels is not None and self.config.s2_conditioning == "teacher_forcing":
            condition = s1_labels.clamp(min=0)  # ignored positions (-100) are conditioned on token 0
        else:
            probs = torch.softmax(s1_logits.detach().float(), dim=-1)
            condition = torch.multinomial(probs.view(-1, self.s1_vocab_size), 1).view(s1_ids.shape)
        sibling = self.embedding.emb_s1(_to_module(condition, self.embedding.emb_s1))
        s2_logits = self.head.cond_forward(self.dep_layer(context, sibling, attention_mask))

        loss = s1_loss = s2_loss = None
        if s1_labels is not None:
            s1_loss = F.cross_entropy(
                s1_logits.reshape(-1, self.s1_vocab_size).float(), s1_labels.reshape(-1).to(s1_logits.device), ignore_index=-100
            )
            s2_loss = F.cross_entropy(
                s2_logits.reshape(-1, self.s2_vocab_size).float(), s2_labels.reshape(-1).to(s2_logits.device), ignore_index=-100
            )
            loss = (s1_loss + s2_loss.to(s1_loss.device)) / 2

        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output = KronosOutput(
            loss=loss, s1_logits=s1_logits, s2_logits=s2_logits, s1_loss=s1_loss, s2_loss=s2_loss, context=context
        )
        return output if return_dict else output.to_tuple()

    # ------------------------------------------------------------------ fast decoding

    @torch.no_grad()
    def generate_tokens(
        self,
        s1_ids,
        s2_ids,
        stamp,
        future_stamp,
        pred_len,
        attention_mask=None,
        max_context=None,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        sample_count=1,
        sliding="exact",
        generator=None,
        progress=None,
    ):
        """
        Autoregressively sample `pred_len` (s1, s2) pairs after a prompt, with a key/value cache.

        While prompt and generated tokens fit in `max_context`, each step feeds one new token through the cache.
        Once they do not, upstream attends to the last `max_context` tokens with positions renumbered from 0; the
        default `sliding="exact"` re-encodes that window every step and gives upstream's numbers. `sliding="rolling"`
        keeps the cache and drops the oldest position instead: much faster for long forecasts, but approximate, since
        the kept positions were computed while the dropped ones were still visible (docs/forecasting.md measures it).

        The prompt is encoded once per series and its cache shared by the `sample_count` paths. Random draws
        happen in upstream's order (one `multinomial` over all paths for s1, then one for s2, per step), so with the
        same seed the paths follow upstream's whenever the probabilities agree to float precision.

        Args:
            s1_ids, s2_ids (`torch.LongTensor` of shape `(batch, seq_len)`): Prompt tokens, left-padded if their
                lengths differ.
            stamp (`torch.Tensor` of shape `(batch, seq_len, 5)`): Calendar features of the prompt.
            future_stamp (`torch.Tensor` of shape `(batch, pred_len, 5)`): Calendar features of the forecast steps.
            pred_len (`int`): Steps to generate.
            attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): 1 = real, 0 = left padding.
            max_context (`int`, *optional*): Window length; defaults to `config.max_context`.
            temperature, top_k, top_p: Sampling controls (see [`filter_logits`]).
            sample_count (`int`): Paths per series; rows of the output are series-major (`b * sample_count + s`).
            sliding (`str`): `"exact"` or `"rolling"`, see above.
            generator (`torch.Generator` or `list[torch.Generator]`, *optional*): Source of randomness (else the
                global RNG); a list holds one generator per series, from which that series' paths alone are drawn,
                so its tokens do not depend on the other series in the batch.
            progress (`callable`, *optional*): Called with the step index after every step (for progress bars).

        Returns:
            `(s1, s2, attention_mask)`: the generated tokens, each `(batch * sample_count, pred_len)`, and the mask of
            the prompt repeated per path (or `None`).
        """
        max_context = _check_count("max_context", self.config.max_context if max_context is None else max_context)
        if sliding not in ("exact", "rolling"):
            raise ValueError(f"`sliding` must be 'exact' or 'rolling', got {sliding!r}")
        pred_len = _check_count("pred_len", pred_len)
        sample_count = _check_count("sample_count", sample_count)
        temperature, top_k, top_p = check_sampling(temperature, top_k, top_p)
        generator = check_generator(generator, s1_ids.shape[0])
        for name, value in (("stamp", stamp), ("future_stamp", future_stamp)):
            if value is None:
                raise TypeError(f"`{name}` is required: the calendar features (minute, hour, weekday, day, month)")
        self._validate(s1_ids, s2_ids, stamp, None)
        if s1_ids.shape[1] == 0:
            raise ValueError("the prompt is empty: `s1_ids` and `s2_ids` need at least one position")
        _check_mask(attention_mask, s1_ids.shape[0], s1_ids.shape[1], left_padded=True)
        _check_stamp(future_stamp, s1_ids.shape[0], pred_len, name="future_stamp")
        if attention_mask is not None and bool(attention_mask.all()):
            attention_mask = None  # nothing padded: the unmasked kernels are faster and match upstream bitwise
        # inference mode skips autograd's bookkeeping on every operation (~20% of a one-row step on CPU); the tokens
        # are cloned outside it, so callers get ordinary tensors
        with torch.inference_mode():
            s1, s2 = self._generate(
                s1_ids, s2_ids, stamp, future_stamp, pred_len, attention_mask, max_context, temperature, top_k,
                top_p, sample_count, sliding, generator, progress,
            )  # fmt: skip
        prompt_mask = attention_mask.repeat_interleave(sample_count, dim=0) if attention_mask is not None else None
        return s1.clone(), s2.clone(), prompt_mask

    def _generate(
        self, s1_ids, s2_ids, stamp, future_stamp, pred_len, attention_mask, max_context, temperature, top_k, top_p,
        sample_count, sliding, generator, progress,
    ):  # fmt: skip
        """The loop of [`generate_tokens`] (inputs checked): the generated `(s1, s2)`, each `(rows, pred_len)`."""
        device = _execution_device(self.embedding)
        batch, prompt_len = s1_ids.shape
        rows = batch * sample_count
        total = prompt_len + pred_len

        # every token the model may see (prompt, then what is generated), one row per path
        tokens_s1 = s1_ids.new_zeros(rows, total, device=device)
        tokens_s2 = s2_ids.new_zeros(rows, total, device=device)
        tokens_s1[:, :prompt_len] = s1_ids.to(device).repeat_interleave(sample_count, dim=0)
        tokens_s2[:, :prompt_len] = s2_ids.to(device).repeat_interleave(sample_count, dim=0)
        full_stamp = torch.cat([stamp.to(device), future_stamp.to(device)], dim=1)
        full_mask = None
        if attention_mask is not None:
            full_mask = attention_mask.to(device=device, dtype=torch.long)
            full_mask = torch.cat([full_mask, full_mask.new_ones(batch, pred_len)], dim=1)

        def window_mask(end, held):
            return full_mask[:, end - held : end] if full_mask is not None else None

        dep = self.dep_layer.cross_attn
        # never more positions than the forecast can use (the last sampled token is never fed back): the buffers are
        # allocated up front
        capacity = min(max_context, total - 1)
        start = max(0, prompt_len - max_context)
        window = prompt_len - start
        # several paths per series share the prompt's keys and values (KronosPathCache) instead of repeating them;
        # a rolling cache drops prompt positions path by path, so it keeps the repeated layout
        shared = sample_count > 1 and sliding == "exact" and not self.training and self._share_prompt_across_paths
        cache = KronosCache(window if shared else capacity, rolling=sliding == "rolling")

        # encode the prompt's last window once per series, then share it across the paths; a few series per pass,
        # since the activations of a whole batch's prompts (the feed-forward layer alone holds three ff_dim-wide
        # tensors per position) would otherwise outweigh the cache itself
        per_pass = max(1, self._prompt_positions_per_pass // window)
        prompt_mask = window_mask(prompt_len, window)
        last = []
        for first in range(0, batch, per_pass):
            part = slice(first, min(first + per_pass, batch))
            rows_cache = cache.rows(part, batch)
            context = self._backbone(
                s1_ids[part, start:].to(device),
                s2_ids[part, start:].to(device),
                full_stamp[part, start:prompt_len],
                prompt_mask[part] if prompt_mask is not None else None,
                rows_cache,
            )
            rows_cache.update(dep.layer_idx, *dep.project_kv(context))
            last.append(context[:, -1:])
            del context  # only its last position is needed from here on (peak memory)
        del rows_cache  # it shares the cache's buffers, which exact sliding frees later
        cache.advance(window)
        last = torch.cat(last)
        if shared:
            cache = KronosPathCache(cache, sample_count, capacity - window, prompt_mask)
        elif sample_count > 1:
            cache.repeat_interleave(sample_count)
        if sample_count > 1:
            full_stamp = full_stamp.repeat_interleave(sample_count, dim=0)
            if full_mask is not None:
                full_mask = full_mask.repeat_interleave(sample_count, dim=0)
        last = last.repeat_interleave(sample_count, dim=0)
        window_context = None  # the re-encoded window, once the cache is given up (exact sliding)
        steps = (KronosDirectSteps if KronosDirectSteps.supports(self) else KronosModuleSteps)(self, full_stamp)

        length = prompt_len
        for step in range(pred_len):
            next_s1 = sample_tokens(steps.s1_logits(last), temperature, top_k, top_p, generator).to(device)
            if window_context is None:
                kv, held = cache.read(dep.layer_idx), cache.length
            else:
                kv, held = dep.project_kv(window_context), window_context.shape[1]
            s2_logits = steps.s2_logits(last, next_s1, kv, window_mask(length, held))
            next_s2 = sample_tokens(s2_logits, temperature, top_k, top_p, generator)
            tokens_s1[:, length] = next_s1[:, 0]
            tokens_s2[:, length] = next_s2[:, 0]
            length += 1
            if progress is not None:
                progress(step)
            if step == pred_len - 1:
                break
            if window_context is None and (length <= max_context or cache.rolling):
                # the new position goes through the cache
                new = slice(length - 1, length)
                held = min(cache.length + 1, max_context)
                last = steps.append(tokens_s1[:, new], tokens_s2[:, new], length - 1, window_mask(length, held), cache)
            else:
                # upstream renumbers the window's positions from 0 every step: re-encode it to stay exact
                if window_context is None:
                    cache = kv = None  # never read again: free its buffers before the first full-window pass
                begin = length - max_context
                window_context = self._backbone(
                    tokens_s1[:, begin:length],
                    tokens_s2[:, begin:length],
                    full_stamp[:, begin:length],
                    window_mask(length, max_context),
                )
                last = window_context[:, -1:]
        return tokens_s1[:, prompt_len:], tokens_s2[:, prompt_len:]


def _check_labels(name, labels, vocab):
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of token ids, got {type(labels).__name__}")
    if labels.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"`{name}` must hold integer token ids (int64 or int32), got dtype {labels.dtype}")
    valid = labels[labels != -100]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= vocab):
        raise ValueError(f"`{name}` has ids outside [0, {vocab}) (use -100 to ignore a position)")


# --------------------------------------------------------------------------------------------------------------------
# The tokenizer
# --------------------------------------------------------------------------------------------------------------------


class KronosTokenizerModel(KronosPreTrainedModel):
    """
    The Kronos K-line tokenizer: a causal transformer encoder, a Binary Spherical Quantizer that yields an s1 (coarse)
    and an s2 (fine) token per candle, and a causal transformer decoder back to candle space.

    As upstream, `n_enc_layers - 1` encoder and `n_dec_layers - 1` decoder blocks are built.
    """

    config_class = KronosTokenizerConfig
    main_input_name = "x"
    # kept in float32 under bfloat16/float16 loads: the RMSNorm weights and the projection whose signs become the
    # tokens (anchored: `post_quant_embed*` are not kept); measured in docs/big-model-inference.md
    _keep_in_fp32_modules_strict = ["norm", "^quant_embed"]

    def __init__(self, config):
        super().__init__(config)
        self.d_in = config.d_in
        self.s1_bits = config.s1_bits
        self.s2_bits = config.s2_bits
        self.codebook_dim = config.s1_bits + config.s2_bits
        self.embed = KronosLinear(config.d_in, config.d_model)
        self.head = KronosLinear(config.d_model, config.d_in)

        self.encoder = make_transformer_blocks(config, config.n_enc_layers - 1)
        self.decoder = make_transformer_blocks(config, config.n_dec_layers - 1)
        self.quant_embed = KronosLinear(config.d_model, self.codebook_dim)
        self.post_quant_embed_pre = KronosLinear(config.s1_bits, config.d_model)
        self.post_quant_embed = KronosLinear(self.codebook_dim, config.d_model)
        self.tokenizer = KronosBSQuantizer(
            config.s1_bits, config.s2_bits, config.beta, config.gamma0, config.gamma, config.zeta, config.group_size
        )
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, nn.Embedding):
            return  # the tokenizer has no embeddings (and its config no d_model-based std for them)
        super()._init_weights(module)

    def _check_x(self, x, attention_mask=None):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"`x` must be a torch.Tensor of shape (batch, seq_len, {self.d_in}), got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"`x` must be a floating-point tensor, got dtype {x.dtype}")
        if x.dim() != 3 or x.shape[-1] != self.d_in:
            raise ValueError(f"`x` must have shape (batch, seq_len, d_in={self.d_in}), got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("`x` contains NaN or inf")
        _check_mask(attention_mask, x.shape[0], x.shape[1])

    def _run(self, layers, hidden_states, attention_mask):
        position_ids = torch.arange(hidden_states.shape[1], device=hidden_states.device)
        position_embeddings = rotary_embeddings(layers, position_ids, hidden_states.dtype)
        for layer in layers:
            hidden_states = layer(hidden_states, position_embeddings, attention_mask)
        return hidden_states

    def _encode_latent(self, x, attention_mask=None):
        x = x.to(self.embed.weight.dtype)
        hidden_states = self._run(self.encoder, self.embed(x), attention_mask)
        return self.quant_embed(_to_module(hidden_states, self.quant_embed, cast=True))

    def _decode_latent(self, quantized, attention_mask=None, coarse=False):
        proj = self.post_quant_embed_pre if coarse else self.post_quant_embed
        return self.head(self._run(self.decoder, proj(quantized.to(proj.weight.dtype)), attention_mask))

    def encode(self, x, half=False, attention_mask=None):
        """
        Candles to token ids.

        Args:
            x (`torch.Tensor` of shape `(batch, seq_len, d_in)`): Normalised candles.
            half (`bool`): Return `[s1_ids, s2_ids]` (each `(batch, seq_len)`) instead of full ids.
            attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): 1 = real, 0 = padding.
        """
        self._check_x(x, attention_mask)
        _, _, indices = self.tokenizer(self._encode_latent(x, attention_mask), half=half, collect_metrics=False)
        return indices

    def indices_to_bits(self, indices, half=False):
        """Token ids to codes `±1/sqrt(codebook_dim)` of shape `(batch, seq_len, codebook_dim)`."""
        if half:
            s1_ids, s2_ids = indices
            s1_bits = (s1_ids.unsqueeze(-1) & (2 ** torch.arange(self.s1_bits, device=s1_ids.device))) != 0
            s2_bits = (s2_ids.unsqueeze(-1) & (2 ** torch.arange(self.s2_bits, device=s2_ids.device))) != 0
            bits = torch.cat([s1_bits, s2_bits], dim=-1)
        else:
            bits = (indices.unsqueeze(-1) & (2 ** torch.arange(self.codebook_dim, device=indices.device))) != 0
        return (bits.float() * 2 - 1) * (1.0 / self.codebook_dim**0.5)

    def decode(self, indices, half=False, attention_mask=None):
        """
        Token ids to candles.

        Args:
            indices: full ids `(batch, seq_len)`, or `[s1_ids, s2_ids]` with `half=True`.
            attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): 1 = real, 0 = padding.

        Returns:
            `torch.Tensor` of shape `(batch, seq_len, d_in)`.

        Upstream splits half ids at `codebook_dim // 2` bits, which is only right when `s1_bits == s2_bits` (true of
        every published tokenizer); here each half uses its own width.
        """
        if half:
            if not isinstance(indices, (list, tuple)) or len(indices) != 2:
                raise TypeError("with `half=True`, `indices` must be a pair [s1_ids, s2_ids]")
            _check_ids("s1_ids", indices[0], 2**self.s1_bits)
            _check_ids("s2_ids", indices[1], 2**self.s2_bits)
            _check_same_shape(s1_ids=indices[0], s2_ids=indices[1])
            shape = indices[0].shape
        else:
            _check_ids("indices", indices, 2**self.codebook_dim)
            shape = indices.shape
        _check_mask(attention_mask, shape[0], shape[1])
        return self._decode_latent(self.indices_to_bits(indices, half), attention_mask)

    def forward(self, x, attention_mask=None, return_dict=None, **kwargs):
        """
        Encode, quantise and decode, with upstream's tokenizer training loss.

        Args:
            x (`torch.Tensor` of shape `(batch, seq_len, d_in)`): Normalised candles.
            attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): 1 = real, 0 = padding; padded
                positions are left out of the reconstruction losses.

        Returns:
            [`KronosTokenizerOutput`].
        """
        self._check_x(x, attention_mask)
        bsq_loss, quantized, indices = self.tokenizer(self._encode_latent(x, attention_mask))
        coarse = self._decode_latent(quantized[..., : self.s1_bits], attention_mask, coarse=True)
        full = self._decode_latent(quantized, attention_mask)
        target = x.to(device=full.device, dtype=full.dtype)
        if attention_mask is None:
            recon = F.mse_loss(coarse, target) + F.mse_loss(full, target)
        else:
            keep = attention_mask.to(device=full.device, dtype=torch.bool)
            recon = F.mse_loss(coarse[keep], target[keep]) + F.mse_loss(full[keep], target[keep])
        loss = (recon + bsq_loss.to(recon.device)) / 2
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output = KronosTokenizerOutput(
            loss=loss,
            reconstruction=full,
            coarse_reconstruction=coarse,
            bsq_loss=bsq_loss,
            quantized=quantized,
            indices=indices,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "KronosCache",
    "KronosForTokenPrediction",
    "KronosOutput",
    "KronosPreTrainedModel",
    "KronosTokenizerModel",
    "KronosTokenizerOutput",
    "config_from_upstream",
    "filter_logits",
    "sample_tokens",
]
