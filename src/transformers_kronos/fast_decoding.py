# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""A faster decoding step for plain Kronos predictors on CPU, selected by [`KronosForecaster`].

A decoding step applies ~60 weight matrices and ~300 small operations to one position per path. On CPU what
surrounds the arithmetic then costs as much as the arithmetic itself, and [`KronosFastSteps`] trims it:

- going through the modules (calls, hook checks, re-deriving views of the weights): it looks the weights up once
  per forecast and runs the modules' own arithmetic, with the same functions in the same order;
- BLAS's matrix-vector kernel, which for one row runs on a single thread at about a third of the memory bandwidth:
  [`few_row_linear`] splits the weight's output features into one block per thread and multiplies the blocks as one
  batched product, so every thread streams its own block (2-3x faster per matrix on a 2-core CPU);
- the operations around the products, which a step runs by the hundred: RMS norms in 5 operations instead of
  `F.rms_norm`'s 24 on CPU, the feed-forward's residual added by its last product, one row's output used as it
  lies (2,036 ATen calls per step on Kronos-small became 1,512);
- the number of products: the query/key/value projections of a block, its gate and up projections and the
  dependency layer's key/value projections each run as one product over their weights stacked in one tensor, which
  the parameters become slices of ([`stacked_parameters`]: their names, values and checkpoints do not change).

The prompt's pass through the backbone ([`KronosFastPrompt`], what [`KronosFastSteps.prompt_pass`] gives a plain
model) runs hundreds of positions per product, so BLAS is already efficient there; it applies the same stacked
products, norms and joint rotation of queries and keys, and calls the modules' attention kernel directly.

Every output is still one dot product over all input features, so the logits agree with the modules' to float32
rounding (the kernels may sum in different orders, and the norms take their sum of squares another way);
tests/test_fast_decoding.py checks it. The modelling file does not import this module.
"""

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .generation_kronos import KronosCache, KronosModuleSteps, KronosPathCache, module_prompt_pass, shared_prompt_attention
from .modeling_kronos import (
    KronosAttention,
    KronosDependencyAwareLayer,
    KronosDualHead,
    KronosFeedForward,
    KronosFixedEmbedding,
    KronosHierarchicalEmbedding,
    KronosRMSNorm,
    KronosRotaryEmbedding,
    KronosSinusoidalTable,
    KronosTemporalEmbedding,
    KronosTransformerBlock,
    apply_rotary,
    build_attention_mask,
    eager_attention_forward,
)
from .utils import runs_forward_hooks

__all__ = ["KronosFastPrompt", "KronosFastSteps", "MAX_FAST_ROWS", "few_row_linear", "few_row_views", "stacked_parameters"]

# from 8 rows on, BLAS's own kernels are as fast
MAX_FAST_ROWS = 4


def _row_blocks(n_out: int) -> int:
    """How many row blocks a weight is split into: one per thread (2 to 8), dividing `n_out` (1: do not split)."""
    blocks = max(2, min(torch.get_num_threads(), 8))
    while n_out % blocks:
        blocks -= 1
    return blocks


def few_row_views(
    weight: torch.Tensor, bias: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """
    `weight` `(out, in)` and `bias` `(out,)` viewed as row blocks `(blocks, out / blocks, in)` and
    `(blocks, out / blocks, 1)` for [`few_row_linear`], or `None` where the split does not apply (not a contiguous
    float32 weight on CPU, or `out` not divisible).
    """
    if weight.dtype != torch.float32 or weight.device.type != "cpu" or not weight.is_contiguous():
        return None
    n_out, n_in = weight.shape
    blocks = _row_blocks(n_out)
    if blocks == 1:
        return None
    bias_blocks = None if bias is None else bias.view(blocks, n_out // blocks, 1)
    return weight.view(blocks, n_out // blocks, n_in), bias_blocks


def few_row_linear(
    hidden_states: torch.Tensor, weight_blocks: torch.Tensor, bias_blocks: torch.Tensor | None
) -> torch.Tensor:
    """
    `F.linear` of a few contiguous float32 rows `(..., in)` as one batched product over the weight's row blocks. The
    product starts from `bias_blocks` (`beta=1`): the bias, or for one row any addend in that layout, such as the
    residual the layer's output is added to.
    """
    blocks, block_out, n_in = weight_blocks.shape
    n_out = blocks * block_out
    # (blocks, in, rows), every block reading the same inputs (a stride-0 expand, no copy)
    inputs = hidden_states.reshape(-1, n_in).t().expand(blocks, n_in, -1)
    if bias_blocks is None:
        out = torch.bmm(weight_blocks, inputs)
    else:
        out = torch.baddbmm(bias_blocks, weight_blocks, inputs)
    # (blocks, out / blocks, rows) is (out, rows) in memory, which for one row is already (1, out)
    if inputs.shape[-1] == 1:
        return out.view(*hidden_states.shape[:-1], n_out)
    return out.view(n_out, -1).t().reshape(*hidden_states.shape[:-1], n_out)


def _stacked_view(tensors: list[torch.Tensor]) -> torch.Tensor | None:
    """
    `tensors` `(n_i, ...)` as one tensor `(sum n_i, ...)` over the storage they share, when they lie in it one after
    another (each `is_set_to` its slice of the whole: same storage, offset, shape and strides); else `None`.
    """
    first = tensors[0]
    if any(t.dtype != first.dtype or t.shape[1:] != first.shape[1:] or not t.is_contiguous() for t in tensors):
        return None
    shape = (sum(t.shape[0] for t in tensors), *first.shape[1:])
    storage = first.untyped_storage()
    if (first.storage_offset() + math.prod(shape)) * first.element_size() > storage.nbytes():
        return None
    whole = first.new_empty(0).set_(storage, first.storage_offset(), shape)
    start = 0
    for t in tensors:
        if not t.is_set_to(whole[start : start + t.shape[0]]):
            return None
        start += t.shape[0]
    return whole


def stacked_parameters(parameters: list[nn.Parameter]) -> torch.Tensor:
    """
    The parameters `(n_i, ...)` stacked into one tensor `(sum n_i, ...)` that they are views of, so that the layers
    they belong to can be applied as one product (the query, key and value projections; the gate and up projections).

    The first call lays them out one after another in new memory and points every parameter's `.data` at its slice
    (the parameters stay the same objects, with the same values: optimizers, adapters, `state_dict` and
    `save_pretrained`, which writes them as separate tensors, see them as before); later calls find them laid out
    and only rebuild the view. Parameters that were replaced since (moved, loaded anew) are laid out again.
    """
    with torch.inference_mode(False), torch.no_grad():  # ordinary tensors, usable for training afterwards
        whole = _stacked_view([p.data for p in parameters])
        if whole is None:
            whole = torch.cat([p.data for p in parameters])
            start = 0
            for p in parameters:
                p.data = whole[start : start + p.shape[0]]
                start += p.shape[0]
    return whole


class _Linear:
    """A linear layer's weights, looked up once: `F.linear`, or [`few_row_linear`] for a few rows."""

    def __init__(self, module: nn.Linear | None, fast: bool, weight=None, bias=None):
        if module is not None:
            weight, bias = module.weight, module.bias
        self.weight, self.bias = weight, bias
        self.views = few_row_views(weight, bias) if fast else None

    @classmethod
    def stacked(cls, modules: list[nn.Linear], fast: bool) -> "_Linear":
        """The layers `modules` (same input, all with or all without bias) as one layer, their outputs concatenated."""
        weight = stacked_parameters([m.weight for m in modules])
        bias = None if modules[0].bias is None else stacked_parameters([m.bias for m in modules])
        return cls(None, fast, weight, bias)

    def __call__(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.views is not None and hidden_states.is_contiguous():
            return few_row_linear(hidden_states, *self.views)
        return F.linear(hidden_states, self.weight, self.bias)

    def add_to(self, residual: torch.Tensor, hidden_states: torch.Tensor) -> torch.Tensor:
        """`residual + self(hidden_states)`, in one product for one row through a weight without bias."""
        one_row = hidden_states.shape[0] == 1 and hidden_states.is_contiguous() and residual.is_contiguous()
        if self.views is not None and self.bias is None and one_row:
            weight_blocks = self.views[0]
            return few_row_linear(hidden_states, weight_blocks, residual.view(*weight_blocks.shape[:2], 1))
        return residual + self(hidden_states)


class _Norm:
    """
    A [`KronosRMSNorm`]'s weight, looked up once: `F.rms_norm`, or for a few rows `x * w / sqrt(mean(x**2) + eps)`
    with the sum of squares taken as a squared vector norm: the same value to float32 rounding in 5 operations, where
    `F.rms_norm`'s composite dispatches 24 on CPU (it upcasts and copies), which a decoding step pays 18 times.
    """

    def __init__(self, norm: KronosRMSNorm, fast: bool):
        self.weight, self.fast, self.eps = norm.weight, fast, norm.eps
        self.eps_tensor = torch.tensor(norm.eps, dtype=norm.weight.dtype)

    def __call__(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if not self.fast:
            return F.rms_norm(hidden_states, self.weight.shape, self.weight, self.eps)
        norm_2 = torch.linalg.vector_norm(hidden_states, dim=-1, keepdim=True)
        mean_square = torch.addcmul(self.eps_tensor, norm_2, norm_2, value=1.0 / hidden_states.shape[-1])
        return (hidden_states * self.weight) * mean_square.rsqrt_()


class KronosFastSteps(KronosModuleSteps):
    """
    [`KronosModuleSteps`] with the weights used directly instead of through module calls, and few-row products
    split over the CPU's threads. Only for plain float32 models on CPU (see [`KronosFastSteps.supports`]).
    """

    # everything a plain predictor is built from; anything else (an adapter, a quantized layer) means "use modules"
    _plain_types = (
        nn.ModuleList, nn.Dropout, nn.Embedding, nn.Linear, KronosRMSNorm, KronosRotaryEmbedding, KronosAttention,
        KronosFeedForward, KronosTransformerBlock, KronosDependencyAwareLayer, KronosHierarchicalEmbedding,
        KronosTemporalEmbedding, KronosFixedEmbedding, KronosSinusoidalTable, KronosDualHead,
    )  # fmt: skip

    @classmethod
    def supports(cls, model: nn.Module) -> bool:
        """
        Whether `model` is plain: in eval mode, every parameter a float32 CPU tensor, built only from the modelling
        file's modules, with no forward hooks (accelerate's dispatch, user hooks, global hooks).
        """
        if model.training or any(p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()):
            return False
        for module in model.modules():
            if (module is not model and type(module) not in cls._plain_types) or runs_forward_hooks(module):
                return False
        return True

    @classmethod
    def prompt_pass(cls, model: nn.Module) -> Callable:
        """[`KronosFastPrompt`] for a plain model (see [`supports`]), else the modules' pass."""
        return KronosFastPrompt(model) if cls.supports(model) else super().prompt_pass(model)

    def __init__(self, model: nn.Module, stamps: torch.Tensor):
        super().__init__(model, stamps)
        fast = stamps.shape[0] <= MAX_FAST_ROWS
        self.implementation = model.config._attn_implementation or "sdpa"
        self.d_model = model.config.d_model
        self.stamp_ids = stamps.long()
        embedding = model.embedding
        self.emb_s1, self.emb_s2 = embedding.emb_s1.weight, embedding.emb_s2.weight
        self.fusion = _Linear(embedding.fusion_proj, fast)
        self.scale = math.sqrt(embedding.d_model)
        # in the order KronosTemporalEmbedding sums them: (stamp column, table)
        order = ((1, "hour_embed"), (2, "weekday_embed"), (3, "day_embed"), (4, "month_embed"), (0, "minute_embed"))
        self.calendar = [(column, _table(getattr(model.time_emb, name))) for column, name in order]
        self.layers = [_Block(block, fast) for block in model.transformer]
        self.norm = _Norm(model.norm, fast)
        dep = model.dep_layer.cross_attn
        self.dep_idx, self.dep_heads, self.dep_scaling = dep.layer_idx, dep.n_heads, dep.scaling
        # stacked first: the separate layers' views then read the stacked memory too
        self.dep_kv = _Linear.stacked([dep.k_proj, dep.v_proj], fast) if fast else None
        self.dep_q, self.dep_k, self.dep_v, self.dep_out = (_Linear(m, fast) for m in (dep.q_proj, dep.k_proj, dep.v_proj, dep.out_proj))
        self.dep_norm = _Norm(model.dep_layer.norm, fast)
        self.head_s1, self.head_s2 = _Linear(model.head.proj_s1, fast), _Linear(model.head.proj_s2, fast)
        # rotary angles of every position a step can take (the cache's positions never exceed the stamps'),
        # elementwise the same numbers as computing them per step
        positions = torch.arange(stamps.shape[1], device=stamps.device)
        self.cos, self.signed_sin = model.rotary_emb(positions, self.emb_s1.dtype)

    def attend(self, query, key, value, attention_mask, cache, layer_idx: int, scaling: float, causal: bool) -> torch.Tensor:
        """The modules' attention for one query per row → `(rows, 1, d_model)` before the output projection."""
        if isinstance(cache, KronosPathCache):
            out, _ = shared_prompt_attention(None, query, key, value, None, scaling, **cache.prompt(layer_idx))
        else:
            mask, is_causal = build_attention_mask(attention_mask, 1, key.shape[-2], causal=causal, top_left=not causal)
            if self.implementation == "eager":
                out, _ = eager_attention_forward(self.model, query, key, value, mask, scaling, is_causal=is_causal)
            else:  # what transformers' sdpa function computes for one query
                out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling).transpose(1, 2)
        return out.reshape(out.shape[0], 1, self.d_model)

    def s1_logits(self, last: torch.Tensor) -> torch.Tensor:
        return self.head_s1(last[:, -1])

    def s2_logits(
        self,
        last: torch.Tensor,
        s1_ids: torch.Tensor,
        cache: KronosCache | KronosPathCache | None = None,
        attention_mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        query = _split_heads(self.dep_q(F.embedding(s1_ids, self.emb_s1)), self.dep_heads)
        if context is not None:
            key, value = (_split_heads(linear(context), self.dep_heads) for linear in (self.dep_k, self.dep_v))
        else:
            key, value = cache.layers[self.dep_idx].read()
        out = self.attend(query, key, value, attention_mask, cache if context is None else None, self.dep_idx, self.dep_scaling, False)
        return self.head_s2(self.dep_norm(last + self.dep_out(out)))[:, -1]

    def append(
        self,
        s1_ids: torch.Tensor,
        s2_ids: torch.Tensor,
        index: int,
        attention_mask: torch.Tensor | None,
        cache: KronosCache | KronosPathCache,
    ) -> torch.Tensor:
        tokens = [F.embedding(s1_ids, self.emb_s1) * self.scale, F.embedding(s2_ids, self.emb_s2) * self.scale]
        hidden_states = self.fusion(torch.cat(tokens, dim=-1))
        stamp = self.stamp_ids[:, index : index + 1]
        calendar = None
        for column, table in self.calendar:
            term = F.embedding(stamp[:, :, column], table)
            calendar = term if calendar is None else calendar + term
        hidden_states = hidden_states + calendar
        position = cache.seen_tokens
        rotary = self.cos[:, :, position : position + 1], self.signed_sin[:, :, position : position + 1]
        for layer in self.layers:
            hidden_states = layer(self, hidden_states, rotary, attention_mask, cache)
        last = self.norm(hidden_states)
        if self.dep_kv is None:
            key, value = _split_heads(self.dep_k(last), self.dep_heads), _split_heads(self.dep_v(last), self.dep_heads)
        else:
            key, value = _keys_values(self.dep_kv(last), self.dep_heads)
        cache.update(key, value, self.dep_idx)
        return last


def _table(module: nn.Module) -> torch.Tensor:
    return (module.emb if isinstance(module, KronosFixedEmbedding) else module).weight


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """`apply_rotary` in three operations instead of four (the product and sum fused)."""
    return torch.addcmul(x * cos, x.roll(x.shape[-1] // 2, dims=-1), signed_sin)


def _split_heads(hidden_states: torch.Tensor, heads: int) -> torch.Tensor:
    """`(rows, len, d)` → `(rows, heads, len, d / heads)`, a view, as `KronosAttention.split_heads`."""
    rows, length, _ = hidden_states.shape
    return hidden_states.view(rows, length, heads, -1).transpose(1, 2)


def _rotated_qkv(qkv: torch.Tensor, heads: int, rotary) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    A stacked query/key/value product `(rows, len, 3 * d)` → rotated queries and keys, and values, each `(rows,
    heads, len, d / heads)`. Queries and keys are rotated together (`rotary`, cos and signed sin, broadcast over
    `(rows, len, 2, heads, d / heads)`): elementwise, so the same numbers as one at a time.
    """
    rows, length, _ = qkv.shape
    parts = qkv.view(rows, length, 3, heads, -1)
    query, key = _rotate(parts[:, :, :2], *rotary).transpose(1, 3).unbind(2)
    return query, key, parts[:, :, 2].transpose(1, 2)


def _keys_values(kv: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A stacked key/value product `(rows, len, 2 * d)` → keys and values, each `(rows, heads, len, d / heads)`."""
    rows, length, _ = kv.shape
    return kv.view(rows, length, 2, heads, -1).transpose(1, 3).unbind(2)


class _Block:
    """One transformer block's weights, for [`KronosFastSteps.append`]."""

    def __init__(self, block: KronosTransformerBlock, fast: bool):
        attn, ffn = block.self_attn, block.ffn
        self.norm1, self.norm2 = _Norm(block.norm1, fast), _Norm(block.norm2, fast)
        # a few rows: the query/key/value and the gate/up projections as one product each (see stacked_parameters);
        # more rows keep the modules' separate products, and with them the modules' numbers bitwise
        self.qkv = _Linear.stacked([attn.q_proj, attn.k_proj, attn.v_proj], fast) if fast else None
        self.w13 = _Linear.stacked([ffn.w1, ffn.w3], fast) if fast else None
        self.q, self.k, self.v, self.out = (_Linear(m, fast) for m in (attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj))
        self.w1, self.w3, self.w2 = (_Linear(m, fast) for m in (ffn.w1, ffn.w3, ffn.w2))
        self.layer_idx, self.heads, self.scaling = attn.layer_idx, attn.n_heads, attn.scaling

    def _qkv(self, normed: torch.Tensor, rotary):
        """Rotated queries and keys, and values, each `(rows, heads, 1, head_dim)`."""
        if self.qkv is None:
            query, key, value = (_split_heads(linear(normed), self.heads) for linear in (self.q, self.k, self.v))
            return apply_rotary(query, *rotary), apply_rotary(key, *rotary), value
        return _rotated_qkv(self.qkv(normed), self.heads, rotary)

    def _ffn(self, residual: torch.Tensor, normed: torch.Tensor) -> torch.Tensor:
        """`residual` plus the feed-forward of `normed`."""
        if self.w13 is None:
            return self.w2.add_to(residual, F.silu(self.w1(normed)) * self.w3(normed))
        gate, up = self.w13(normed).view(*normed.shape[:-1], 2, -1).unbind(-2)
        return self.w2.add_to(residual, F.silu(gate) * up)

    def __call__(self, steps: KronosFastSteps, hidden_states, rotary, attention_mask, cache):
        query, key, value = self._qkv(self.norm1(hidden_states), rotary)
        key, value = cache.update(key, value, self.layer_idx)
        out = steps.attend(query, key, value, attention_mask, cache, self.layer_idx, self.scaling, True)
        hidden_states = hidden_states + self.out(out)
        return self._ffn(hidden_states, self.norm2(hidden_states))


class KronosFastPrompt:
    """
    A prompt through a plain float32 predictor on CPU ([`KronosFastSteps.prompt_pass`]): the modules' arithmetic
    with the weights looked up once and fewer, larger operations (see [`KronosFastPrompt.__call__`]). Models with
    eager attention go through the modules.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.blocks = [_PromptBlock(block) for block in model.transformer]
        self.norm = _Norm(model.norm, True)
        dep = model.dep_layer.cross_attn
        self.dep_kv = _Linear.stacked([dep.k_proj, dep.v_proj], False)
        self.dep_idx, self.dep_heads = dep.layer_idx, dep.n_heads
        # the pass calls F.scaled_dot_product_attention, as the modules do with sdpa (eager attention sums otherwise)
        self.sdpa = (model.config._attn_implementation or "sdpa") == "sdpa"

    def applies(self, cache) -> bool:
        """Whether [`__call__`] computes a pass into `cache` (a [`KronosCache`], with sdpa attention) itself."""
        return self.sdpa and isinstance(cache, KronosCache)

    def __call__(self, s1_ids, s2_ids, stamp, attention_mask, cache: KronosCache) -> torch.Tensor:
        """
        New positions `(batch, len)` through the backbone into `cache`, as [`module_prompt_pass`] → the context
        `(batch, len, d_model)`. To float32 rounding the same numbers (the stacked products may sum in another order,
        the norms take their sum of squares another way); tests/test_fast_decoding.py compares them.
        """
        length = s1_ids.shape[1]
        if not self.applies(cache):
            return module_prompt_pass(self.model, s1_ids, s2_ids, stamp, attention_mask, cache)
        model = self.model
        hidden_states = model.embedding(s1_ids, s2_ids)
        if stamp is not None:
            hidden_states = hidden_states + model.time_emb(stamp)
        positions = torch.arange(cache.seen_tokens, cache.seen_tokens + length, device=hidden_states.device)
        # (len, 1, 1, head_dim): broadcast over (batch, len, 2, heads, head_dim), queries and keys together
        rotary = [t.view(length, 1, 1, -1) for t in model.rotary_emb(positions, hidden_states.dtype)]
        for block in self.blocks:
            hidden_states = block(hidden_states, rotary, attention_mask, cache)
        context = self.norm(hidden_states)
        cache.update(*_keys_values(self.dep_kv(context), self.dep_heads), self.dep_idx)
        return context


class _PromptBlock:
    """One transformer block's weights, for [`KronosFastPrompt`]."""

    def __init__(self, block: KronosTransformerBlock):
        attn, ffn = block.self_attn, block.ffn
        self.norm1, self.norm2 = _Norm(block.norm1, True), _Norm(block.norm2, True)
        self.qkv = _Linear.stacked([attn.q_proj, attn.k_proj, attn.v_proj], False)
        self.w13 = _Linear.stacked([ffn.w1, ffn.w3], False)
        self.out, self.w2 = _Linear(attn.out_proj, False), _Linear(ffn.w2, False)
        self.layer_idx, self.heads, self.scaling = attn.layer_idx, attn.n_heads, attn.scaling

    def _attention(self, hidden_states: torch.Tensor, rotary, attention_mask, cache: KronosCache) -> torch.Tensor:
        """The attention's output `(batch, len, d_model)` before its projection (the projections die with this call)."""
        batch, length, d_model = hidden_states.shape
        query, key, value = _rotated_qkv(self.qkv(self.norm1(hidden_states)), self.heads, rotary)
        key, value = cache.update(key, value, self.layer_idx)
        # what the modules' sdpa attention computes: on CPU the same flash kernel, causal or with the same mask
        mask, is_causal = build_attention_mask(attention_mask, length, key.shape[-2], causal=True)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, is_causal=is_causal, scale=self.scaling)
        # the kernel lays its output out query-major: (batch, len, heads, head_dim) is a view
        return out.transpose(1, 2).reshape(batch, length, d_model)

    def __call__(self, hidden_states: torch.Tensor, rotary, attention_mask, cache: KronosCache) -> torch.Tensor:
        # in-place operations on fresh products: the same values, with fewer large temporaries
        hidden_states = self.out(self._attention(hidden_states, rotary, attention_mask, cache)).add_(hidden_states)
        gate, up = self.w13(self.norm2(hidden_states)).view(*hidden_states.shape[:-1], 2, -1).unbind(2)
        return self.w2(F.silu(gate).mul_(up)).add_(hidden_states)
