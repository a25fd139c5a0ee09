# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""PyTorch Kronos: the K-line tokenizer and the autoregressive predictor as transformers models.

Kronos (Shi et al., AAAI 2026; upstream shiyu-coder/Kronos, MIT) forecasts financial candlesticks. A tokenizer
turns each normalised candle into a coarse token ``s1`` and a fine token ``s2`` with a Binary Spherical Quantizer,
and a decoder-only predictor generates ``s1`` and then ``s2`` given ``s1``, candle after candle.

Submodules carry upstream's attribute names, so upstream state dicts load without renaming. Where upstream
behaviour is a bug rather than something the published weights depend on, this file fixes it; each such place
says so, and docs/architecture.md lists them all. The caches and the decoding loop live in generation_kronos.py.

This file imports only ``torch``, ``transformers`` and its siblings, so it can run as remote code.
"""

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput

from .configuration_kronos import KronosConfig, KronosTokenizerConfig, config_from_upstream
from .generation_kronos import (
    KronosCache, KronosGenerationOutput, KronosModuleSteps, KronosPathCache, check_generator, check_prompt,
    check_sampling, filter_logits, generate, make_plan, sample_tokens, shared_prompt_attention,
)  # fmt: skip
from .loading_kronos import load_pretrained
from .utils import (
    check_candles, check_context, check_ids, check_label_tensors, check_mask, check_same_shape, check_stamp,
    check_tokenizer_ids, is_tracing, to_module_device,
)  # fmt: skip

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
        cache ([`KronosCache`], *optional*): Keys and values of every position so far, with `use_cache=True`.
        attentions (`tuple` of `torch.FloatTensor` of shape `(batch, heads, seq_len, past + seq_len)`, *optional*):
            Each transformer block's attention weights, with `output_attentions=True`.
    """

    loss: torch.FloatTensor | None = None
    s1_logits: torch.FloatTensor | None = None
    s2_logits: torch.FloatTensor | None = None
    s1_loss: torch.FloatTensor | None = None
    s2_loss: torch.FloatTensor | None = None
    context: torch.FloatTensor | None = None
    cache: Cache | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


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
# Building blocks
# --------------------------------------------------------------------------------------------------------------------


class KronosRMSNorm(nn.Module):
    """
    Root-mean-square norm, computed in float32 and cast back before the weight (as upstream).

    When the weight is kept in float32 under a half-precision model (`_keep_in_fp32_modules_strict`), the product
    is taken in float32 and cast to the input's dtype once, so the next layer gets the dtype it expects.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if hidden_states.dtype == torch.float32 and weight.dtype == torch.float32:
            # the same arithmetic in fewer dispatches (bitwise equal on CPU), which matters when decoding one token
            return F.rms_norm(hidden_states, weight.shape, weight, self.eps)
        x = hidden_states.float()
        x = x * torch.rsqrt(torch.mean(x * x, dim=-1, keepdim=True) + self.eps)
        if weight.dtype == hidden_states.dtype:
            return x.type_as(hidden_states) * weight
        return (x * weight.float()).to(hidden_states.dtype)


class KronosFeedForward(nn.Module):
    """SwiGLU feed-forward block: `w2(silu(w1 x) * w3 x)`, then dropout."""

    def __init__(self, config):
        super().__init__()
        self.w1 = nn.Linear(config.d_model, config.ff_dim, bias=False)
        self.w3 = nn.Linear(config.d_model, config.ff_dim, bias=False)
        self.w2 = nn.Linear(config.ff_dim, config.d_model, bias=False)
        self.ffn_dropout = nn.Dropout(config.ffn_dropout_p)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.ffn_dropout(self.w2(F.silu(self.w1(hidden_states)) * self.w3(hidden_states)))


class KronosRotaryEmbedding(nn.Module):
    """
    Rotary position embedding over one head of size `dim` (rotate-half convention), computed once per pass.

    `inv_freq` is a non-persistent float32 buffer: upstream saves one per attention module in its checkpoints, but a
    copy loaded in bfloat16 would shift every angle, so it is always rebuilt in float32 and the saved copies are
    ignored on load.
    """

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        self.dim = dim
        self.theta = theta
        self.register_buffer("inv_freq", self.compute_inv_freq(dim, theta), persistent=False)

    @staticmethod
    def compute_inv_freq(dim: int, theta: float = 10000.0, device=None) -> torch.Tensor:
        return 1.0 / (theta ** (torch.arange(0, dim, 2, device=device).float() / dim))

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """
        `position_ids` `(seq_len,)` → `(cos, signed_sin)`, each `(1, 1, seq_len, dim)` in `dtype`, for
        [`apply_rotary`]: `cos` is `cos(θ)` over both halves, `signed_sin` is `-sin(θ)` over the first and `sin(θ)`
        over the second.
        """
        inv_freq = self.inv_freq
        if inv_freq.dtype != torch.float32 or inv_freq.device != position_ids.device:
            inv_freq = self.compute_inv_freq(self.dim, self.theta, position_ids.device)
        freqs = torch.outer(position_ids.float(), inv_freq)
        cos, sin = freqs.cos(), freqs.sin()
        cos = torch.cat((cos, cos), dim=-1)
        signed_sin = torch.cat((-sin, sin), dim=-1)
        return cos[None, None].to(dtype), signed_sin[None, None].to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """
    Rotate `x` `(..., seq_len, dim)` by `cos`/`signed_sin` from [`KronosRotaryEmbedding`]: the rotate-half form
    `x * cos + cat(-x2, x1) * sin` as `x * cos + roll(x, dim / 2) * signed_sin`, the same products in fewer operations.
    """
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    is_causal: bool = False,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Matmul-softmax attention as transformers' sdpa function computes it (boolean mask, top-left causal), with weights."""
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if is_causal and attention_mask is None and query.shape[-2] > 1:
        attention_mask = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool, device=query.device).tril()
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, float("-inf"))
    weights = torch.softmax(scores.float(), dim=-1).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def build_attention_mask(
    attention_mask: torch.Tensor | None, q_len: int, k_len: int, causal: bool, top_left: bool = False
) -> tuple[torch.Tensor | None, bool]:
    """
    Turn a padding mask into what the attention functions take.

    Args:
        attention_mask (`torch.Tensor` of shape `(batch, k_len)` or `None`): 1 for real positions, 0 for padding,
            covering cached and new positions.
        q_len (`int`): Query positions. They are the last `q_len` key positions (a cache before them), or with
            `top_left=True` the first ones (upstream's dependency layer, whose causal mask is the fused kernels'
            top-left aligned one).
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
    q_pos = torch.arange(q_len, device=device) + (0 if top_left else k_len - q_len)
    k_pos = torch.arange(k_len, device=device)
    if causal:
        mask = k_pos[None, :] <= q_pos[:, None]
    else:
        mask = torch.ones(q_len, k_len, dtype=torch.bool, device=device)
    mask = mask[None, None]
    if attention_mask is not None:
        mask = mask & attention_mask.to(device=device, dtype=torch.bool)[:, None, None, :]
        # a row with nothing left to attend to (a padding query) falls back to its own position
        mask = mask | (~mask.any(dim=-1, keepdim=True) & (k_pos[None, :] == q_pos[:, None])[None, None])
    return mask, False


class KronosAttention(nn.Module):
    """
    Multi-head attention with rotary embeddings: causal self-attention (upstream `MultiHeadAttentionWithRoPE`), or,
    with `is_cross=True`, the dependency layer's cross-attention (upstream `MultiHeadCrossAttentionWithRoPE`), whose
    queries are s1 embeddings and whose keys and values are the backbone context.

    Two upstream behaviours of the cross-attention that the published weights were trained with are kept: the rotary
    table is built for the query length and applied to queries and keys alike (so a single query, as in decoding,
    rotates nothing), and the attention is causal only in training mode.
    """

    def __init__(self, config, layer_idx: int, n_heads: int | None = None, is_cross: bool = False, dropout: bool = True):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.is_cross = is_cross
        self.is_causal = not is_cross
        self.d_model = config.d_model
        self.n_heads = n_heads or config.n_heads
        self.head_dim = self.d_model // self.n_heads
        self.scaling = 1.0 / math.sqrt(self.head_dim)  # what F.scaled_dot_product_attention uses by default
        self.q_proj = nn.Linear(self.d_model, self.d_model)
        self.k_proj = nn.Linear(self.d_model, self.d_model)
        self.v_proj = nn.Linear(self.d_model, self.d_model)
        self.out_proj = nn.Linear(self.d_model, self.d_model)
        # upstream builds the cross-attention without dropout, whatever the config says
        self.attn_dropout_p = config.attn_dropout_p if dropout else 0.0
        self.resid_dropout = nn.Dropout(config.resid_dropout_p if dropout else 0.0)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """`(batch, len, d_model)` → `(batch, heads, len, head_dim)`."""
        return x.view(x.shape[0], x.shape[1], self.n_heads, self.head_dim).transpose(1, 2)

    def project_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of context positions `(batch, len, d_model)` → two `(batch, heads, len, head_dim)`."""
        context = to_module_device(context, self.k_proj, cast=True)
        return self.split_heads(self.k_proj(context)), self.split_heads(self.v_proj(context))

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        key_value_states: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """
        Args:
            hidden_states (`torch.Tensor` of shape `(batch, q_len, d_model)`): New positions (the queries).
            position_embeddings (`tuple` of two `torch.Tensor` of shape `(1, 1, q_len, head_dim)`, *optional*):
                `cos` and `signed_sin` from [`KronosRotaryEmbedding`]; `None` rotates nothing.
            attention_mask (`torch.Tensor` of shape `(batch, k_len)`, *optional*): 1 = real, 0 = padding.
            cache (`Cache`, *optional*): Self-attention: past keys and values, updated. Cross-attention: the
                context's keys and values, read (see [`KronosDependencyAwareLayer.cache_context`]).
            key_value_states (`torch.Tensor` of shape `(batch, k_len, d_model)`, *optional*): Cross-attention
                without a cache: the context.

        Returns:
            `(output (batch, q_len, d_model), attention weights (batch, heads, q_len, k_len) or None)`.
        """
        batch, q_len, _ = hidden_states.shape
        query = self.split_heads(self.q_proj(to_module_device(hidden_states, self.q_proj, cast=True) if self.is_cross else hidden_states))
        if not self.is_cross:
            key, value = self.split_heads(self.k_proj(hidden_states)), self.split_heads(self.v_proj(hidden_states))
        elif cache is not None:
            key, value = cache.layers[self.layer_idx].read()
        else:
            key, value = self.project_kv(key_value_states)
        if position_embeddings is not None:
            cos, sin = (t.to(device=query.device, dtype=query.dtype) for t in position_embeddings)
            query, key = apply_rotary(query, cos, sin), apply_rotary(key, cos, sin)
        if cache is not None and not self.is_cross:
            key, value = cache.update(key, value, self.layer_idx)
        if key is not None:
            key, value = key.to(query.device), value.to(query.device)
        out, weights = self._attend(query, key, value, attention_mask, cache, output_attentions)
        return self.resid_dropout(self.out_proj(out.reshape(batch, q_len, self.d_model))), weights

    def _attend(self, query, key, value, attention_mask, cache, output_attentions):
        """One attention function over the prepared heads → `(batch, q_len, heads, head_dim)` and the weights."""
        if isinstance(cache, KronosPathCache):  # one query per path over the shared prompt and its own positions
            return shared_prompt_attention(self, query, key, value, None, self.scaling, **cache.prompt(self.layer_idx))
        if attention_mask is not None:
            attention_mask = attention_mask.to(query.device)
        causal = self.training if self.is_cross else True
        mask, is_causal = build_attention_mask(attention_mask, query.shape[-2], key.shape[-2], causal, self.is_cross)
        implementation = self.config._attn_implementation or "sdpa"
        attention: Callable = eager_attention_forward
        if implementation != "eager" and not output_attentions:  # only eager returns the weights
            attention = ALL_ATTENTION_FUNCTIONS[implementation]
        dropout = self.attn_dropout_p if self.training else 0.0
        return attention(self, query, key, value, mask, dropout=dropout, scaling=self.scaling, is_causal=is_causal)


class KronosDependencyAwareLayer(nn.Module):
    """
    Conditions the context on an s1 token: `norm(context + cross_attn(query=emb_s1(s1), key=value=context))`.

    Upstream builds it with its default head count (`config.dependency_heads`) and no dropout, whatever the config
    says; its cache entry is layer `config.n_layers` of a [`KronosCache`].
    """

    def __init__(self, config, layer_idx: int):
        super().__init__()
        self.cross_attn = KronosAttention(config, layer_idx, config.dependency_heads, is_cross=True, dropout=False)
        self.norm = KronosRMSNorm(config.d_model, config.rms_norm_eps)
        self.rotary_emb = KronosRotaryEmbedding(self.cross_attn.head_dim, config.rope_theta)

    def cache_context(self, context: torch.Tensor, cache: Cache) -> None:
        """Append the keys and values of new context positions `(batch, new, d_model)` to `cache`."""
        cache.update(*self.cross_attn.project_kv(context), self.cross_attn.layer_idx)

    def forward(
        self,
        hidden_states: torch.Tensor,
        sibling_embed: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        `hidden_states` `(batch, seq_len, d)` (the residual, and the keys unless `cache` or `context` is given),
        `sibling_embed` `(batch, 1 or seq_len, d)` → `(batch, seq_len, d)`. With several queries the keys are as many
        positions, rotated as the queries.
        """
        q_len = sibling_embed.shape[1]
        position_embeddings = None
        if q_len > 1:
            positions = torch.arange(q_len, device=sibling_embed.device)
            position_embeddings = self.rotary_emb(positions, self.cross_attn.q_proj.weight.dtype)
        key_value_states = hidden_states if context is None else context
        attn, _ = self.cross_attn(sibling_embed, position_embeddings, attention_mask, cache, key_value_states)
        return self.norm(hidden_states + attn.to(hidden_states.device))


class KronosTransformerBlock(GradientCheckpointingLayer):
    """Pre-norm transformer block: RMSNorm → causal RoPE attention → residual → RMSNorm → SwiGLU → residual."""

    def __init__(self, config, layer_idx: int):
        super().__init__()
        self.norm1 = KronosRMSNorm(config.d_model, config.rms_norm_eps)
        self.self_attn = KronosAttention(config, layer_idx)
        self.norm2 = KronosRMSNorm(config.d_model, config.rms_norm_eps)
        self.ffn = KronosFeedForward(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn, weights = self.self_attn(
            self.norm1(hidden_states), position_embeddings, attention_mask, cache, output_attentions=output_attentions
        )
        hidden_states = hidden_states + attn
        return hidden_states + self.ffn(self.norm2(hidden_states)), weights


def run_blocks(
    blocks: nn.ModuleList,
    rotary_emb: KronosRotaryEmbedding,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    cache: Cache | None = None,
    output_attentions: bool = False,
    position_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """
    `hidden_states` `(batch, seq_len, d)` through `blocks`, after `cache`'s positions; returns the attention maps too.
    `position_ids` `(seq_len,)` overrides the rotary positions (by default they follow the cache's): an exported
    step takes them as an input, since a cache rebuilt from key/value tensors cannot count the positions it dropped.
    """
    if position_ids is None:
        past = 0 if cache is None else getattr(cache, "seen_tokens", None)
        if past is None:
            past = cache.get_seq_length()
        position_ids = torch.arange(past, past + hidden_states.shape[1], device=hidden_states.device)
    position_embeddings = rotary_emb(position_ids, hidden_states.dtype)
    attentions = () if output_attentions else None
    for block in blocks:
        hidden_states, weights = block(hidden_states, position_embeddings, attention_mask, cache, output_attentions)
        if output_attentions:
            attentions += (weights,)
    return hidden_states, attentions


# --------------------------------------------------------------------------------------------------------------------
# Embeddings, heads and the quantizer
# --------------------------------------------------------------------------------------------------------------------


class KronosHierarchicalEmbedding(nn.Module):
    """Embeds an (s1, s2) token pair: `fusion_proj([emb_s1(s1) * sqrt(d), emb_s2(s2) * sqrt(d)])`."""

    def __init__(self, s1_bits, s2_bits, d_model):
        super().__init__()
        self.s1_bits = s1_bits
        self.s2_bits = s2_bits
        self.d_model = d_model
        self.emb_s1 = nn.Embedding(2**s1_bits, d_model)
        self.emb_s2 = nn.Embedding(2**s2_bits, d_model)
        self.fusion_proj = nn.Linear(2 * d_model, d_model)

    def split_token(self, token_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split composite ids (`s1 << s2_bits | s2`) into `(s1_ids, s2_ids)`."""
        token_ids = token_ids.long()
        return token_ids >> self.s2_bits, token_ids & ((1 << self.s2_bits) - 1)

    def forward(self, s1_ids: torch.Tensor, s2_ids: torch.Tensor) -> torch.Tensor:
        scale = math.sqrt(self.d_model)
        return self.fusion_proj(torch.cat([self.emb_s1(s1_ids) * scale, self.emb_s2(s2_ids) * scale], dim=-1))


class KronosSinusoidalTable(nn.Embedding):
    """A frozen sinusoidal lookup table; its own class so that `_init_weights` fills it with sinusoids."""

    def __init__(self, num_embeddings, d_model):
        super().__init__(num_embeddings, d_model)
        self.weight.requires_grad_(False)

    @staticmethod
    def sinusoid_table(num_embeddings: int, d_model: int) -> torch.Tensor:
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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

    def forward(self, stamp: torch.Tensor) -> torch.Tensor:
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

    def __init__(self, s1_bits: int, s2_bits: int, d_model: int):
        super().__init__()
        self.vocab_s1 = 2**s1_bits
        self.vocab_s2 = 2**s2_bits
        self.proj_s1 = nn.Linear(d_model, self.vocab_s1)
        self.proj_s2 = nn.Linear(d_model, self.vocab_s2)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.proj_s1(to_module_device(hidden_states, self.proj_s1, cast=True))

    def cond_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.proj_s2(to_module_device(hidden_states, self.proj_s2, cast=True))


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

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        zhat = torch.where(z > 0, torch.ones_like(z), -torch.ones_like(z))
        return z + (zhat - z).detach()

    def forward(self, z: torch.Tensor, collect_metrics: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """`z`: unit-norm codes `(..., embed_dim)` → `(quantized, loss)`; the loss is 0 without metrics."""
        zq = self.quantize(z) * (1.0 / self.embed_dim**0.5)
        if not collect_metrics:
            return zq, zq.new_zeros(())
        persample_entropy, codebook_entropy = self.soft_entropy(z)
        entropy_penalty = self.gamma0 * persample_entropy - self.gamma * codebook_entropy
        commit_loss = self.beta * torch.mean(((zq.detach() - z) ** 2).sum(dim=-1))
        return zq, commit_loss + self.zeta * entropy_penalty

    def soft_entropy(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
    def bits_to_indices(bits: torch.Tensor) -> torch.Tensor:
        """Codes `(..., n)` → ids, bit i (from the left) weighing `2**i`."""
        weights = 2 ** torch.arange(bits.shape[-1], dtype=torch.long, device=bits.device)
        return ((bits >= 0).long() * weights).sum(-1)

    def forward(self, z: torch.Tensor, half: bool = False, collect_metrics: bool = True):
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
# Pretrained base class
# --------------------------------------------------------------------------------------------------------------------


class KronosPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading behaviour shared by the Kronos predictor and tokenizer."""

    config_class = KronosConfig
    main_input_name = "s1_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True
    _no_split_modules = [
        "KronosTransformerBlock",
        "KronosDependencyAwareLayer",
        "KronosDualHead",
        "KronosHierarchicalEmbedding",
        "KronosTemporalEmbedding",
        "KronosBSQuantizer",
    ]
    # a cache passed as `cache=` must not be moved by accelerate's hooks: each layer's entry lives on its device
    _skip_keys_device_placement = ["cache", "past_key_values"]
    # upstream checkpoints persist the rotary frequencies; they are rebuilt in float32 here instead
    _keys_to_ignore_on_load_unexpected = [r"rotary\.inv_freq"]

    def post_init(self) -> None:
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

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *model_args, **kwargs):
        """
        Load a converted checkpoint, or an upstream (`PyTorchModelHubMixin`) checkpoint as it is: a `config.json`
        without `model_type` is read as upstream's `__init__` arguments. The model is returned in eval mode.
        """
        return load_pretrained(cls, super().from_pretrained, pretrained_model_name_or_path, model_args, kwargs)


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

    def __init__(self, config: KronosConfig):
        super().__init__(config)
        self.s1_bits, self.s2_bits = config.s1_bits, config.s2_bits
        self.s1_vocab_size, self.s2_vocab_size = 2**config.s1_bits, 2**config.s2_bits
        self.d_model = config.d_model
        self.token_drop = nn.Dropout(config.token_dropout_p)
        self.embedding = KronosHierarchicalEmbedding(config.s1_bits, config.s2_bits, config.d_model)
        self.time_emb = KronosTemporalEmbedding(config.d_model, config.learn_te)
        self.rotary_emb = KronosRotaryEmbedding(config.d_model // config.n_heads, config.rope_theta)
        self.transformer = nn.ModuleList([KronosTransformerBlock(config, i) for i in range(config.n_layers)])
        self.norm = KronosRMSNorm(config.d_model, config.rms_norm_eps)
        self.dep_layer = KronosDependencyAwareLayer(config, layer_idx=config.n_layers)
        self.head = KronosDualHead(config.s1_bits, config.s2_bits, config.d_model)
        self.post_init()

    # ------------------------------------------------------------------ backbone

    def backbone(
        self,
        s1_ids: torch.Tensor,
        s2_ids: torch.Tensor,
        stamp: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Embeddings → transformer blocks (after `cache`'s positions) → final norm: the context `(batch, seq_len, d)`.
        `position_ids` `(seq_len,)`: rotary positions, when they do not follow the cache's (see [`run_blocks`]).
        """
        return self._run_backbone(s1_ids, s2_ids, stamp, attention_mask, cache, position_ids=position_ids)[0]

    def _run_backbone(self, s1_ids, s2_ids, stamp, attention_mask, cache, output_attentions=False, position_ids=None):
        hidden_states = self.embedding(s1_ids, s2_ids)
        if stamp is not None:
            hidden_states = hidden_states + self.time_emb(stamp.to(hidden_states.device)).to(hidden_states.dtype)
        hidden_states, attentions = run_blocks(
            self.transformer, self.rotary_emb, self.token_drop(hidden_states), attention_mask, cache, output_attentions,
            position_ids,
        )
        return self.norm(hidden_states), attentions

    def _validate(self, s1_ids, s2_ids, stamp, attention_mask, past_length=0):
        if is_tracing():
            return  # these checks read tensor values
        check_ids("s1_ids", s1_ids, self.s1_vocab_size)
        check_ids("s2_ids", s2_ids, self.s2_vocab_size)
        check_same_shape(s1_ids=s1_ids, s2_ids=s2_ids)
        check_stamp(stamp, s1_ids.shape[0], s1_ids.shape[1])
        check_mask(attention_mask, s1_ids.shape[0], past_length + s1_ids.shape[1])

    # ------------------------------------------------------------------ upstream API

    def decode_s1(self, s1_ids, s2_ids, stamp=None, attention_mask=None, validate: bool = True):
        """
        Run the backbone and the s1 head over every position (upstream's decoding step).

        Args:
            s1_ids, s2_ids (`torch.LongTensor` of shape `(batch, seq_len)`): Coarse and fine tokens.
            stamp (`torch.Tensor` of shape `(batch, seq_len, 5)`, *optional*): Calendar features.
            attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): 1 = real, 0 = padding.
            validate (`bool`): Check ids, stamp and mask first.

        Returns:
            `(s1_logits, context)` of shapes `(batch, seq_len, 2**s1_bits)` and `(batch, seq_len, d_model)`.
        """
        if validate:
            self._validate(s1_ids, s2_ids, stamp, attention_mask)
        context = self.backbone(s1_ids, s2_ids, stamp, attention_mask)
        return self.head(context), context

    def decode_s2(self, context, s1_ids, attention_mask=None, validate: bool = True) -> torch.Tensor:
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
        if validate and not is_tracing():
            check_context(context, s1_ids, self.s1_vocab_size)
            check_mask(attention_mask, context.shape[0], context.shape[1])
        sibling = self.embedding.emb_s1(to_module_device(s1_ids, self.embedding.emb_s1))
        return self.head.cond_forward(self.dep_layer(context, sibling, attention_mask))

    def forward(
        self,
        s1_ids: torch.Tensor,
        s2_ids: torch.Tensor,
        stamp: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        use_teacher_forcing: bool = False,
        s1_targets: torch.Tensor | None = None,
        s1_labels: torch.Tensor | None = None,
        s2_labels: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> "KronosOutput | tuple":
        """
        Full forward pass, for training and scoring, or a step after `cache`'s positions.

        Args:
            s1_ids, s2_ids (`torch.LongTensor` of shape `(batch, seq_len)`): Input tokens.
            stamp (`torch.Tensor` of shape `(batch, seq_len, 5)`, *optional*): Calendar features of the inputs.
            attention_mask (`torch.Tensor` of shape `(batch, past + seq_len)`, *optional*): 1 = real, 0 = padding.
            use_teacher_forcing (`bool`): Condition s2 on `s1_targets` (upstream's switch).
            s1_targets (`torch.LongTensor` of shape `(batch, seq_len)`, *optional*): Teacher-forcing s1 tokens.
            s1_labels, s2_labels (`torch.LongTensor` of shape `(batch, seq_len)`, *optional*): The next tokens,
                aligned with the inputs; -100 is ignored. Both together give `loss = (ce_s1 + ce_s2) / 2`, with s2
                conditioned as `config.s2_conditioning` says (the labels, or a sample of the model's s1).
            cache ([`KronosCache`], *optional*): Keys and values of past positions, updated in place. A prompt pass
                then one-position steps give the full pass's `s1_logits` and `context`; a step's `s2_logits` attend
                to every held position, as in decoding.
            use_cache (`bool`, *optional*): Return a cache (a new [`KronosCache`] when `cache` is `None`).
            output_attentions (`bool`, *optional*): Return each block's attention map `(batch, heads, seq, past+seq)`.

        Without labels and without teacher forcing, s2 is conditioned on an s1 sampled from the model, as upstream.

        Returns:
            [`KronosOutput`] (or a tuple without the `None` fields when `return_dict=False`).
        """
        self._check_forward(s1_ids, s2_ids, stamp, attention_mask, use_teacher_forcing, s1_targets, s1_labels, s2_labels, cache)
        if use_cache and cache is None:
            cache = KronosCache(self.config.n_layers + 1)
        context, attentions = self._run_backbone(s1_ids, s2_ids, stamp, attention_mask, cache, bool(output_attentions))
        s1_logits = self.head(context)
        condition = self._s2_condition(s1_logits, use_teacher_forcing, s1_targets, s1_labels)
        sibling = self.embedding.emb_s1(to_module_device(condition, self.embedding.emb_s1))
        if cache is not None:
            self.dep_layer.cache_context(context, cache)
        s2_logits = self.head.cond_forward(self.dep_layer(context, sibling, attention_mask, cache=cache))
        loss = s1_loss = s2_loss = None
        if s1_labels is not None:
            s1_loss = F.cross_entropy(s1_logits.flatten(0, 1).float(), s1_labels.flatten().to(s1_logits.device))
            s2_loss = F.cross_entropy(s2_logits.flatten(0, 1).float(), s2_labels.flatten().to(s2_logits.device))
            loss = (s1_loss + s2_loss.to(s1_loss.device)) / 2
        output = KronosOutput(
            loss=loss, s1_logits=s1_logits, s2_logits=s2_logits, s1_loss=s1_loss, s2_loss=s2_loss, context=context,
            cache=cache if (use_cache or use_cache is None) else None, attentions=attentions,
        )  # fmt: skip
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return output if return_dict else output.to_tuple()

    def _check_forward(self, s1_ids, s2_ids, stamp, attention_mask, use_teacher_forcing, s1_targets, s1_labels, s2_labels, cache):
        if (s1_labels is None) != (s2_labels is None):
            raise ValueError("pass both `s1_labels` and `s2_labels`, or neither")
        if use_teacher_forcing and s1_targets is None and s1_labels is None:
            raise ValueError("`use_teacher_forcing=True` needs `s1_targets` (or `s1_labels`)")
        past = 0 if cache is None else cache.get_seq_length()
        self._validate(s1_ids, s2_ids, stamp, attention_mask, past_length=past)
        if is_tracing():
            return
        if past and s1_ids.shape[1] > 1:
            raise ValueError(
                f"after {past} cached positions, feed one position per step (got {s1_ids.shape[1]}): the dependency "
                "layer's rotary table covers the new positions only"
            )
        check_label_tensors(s1_ids, self.s1_vocab_size, self.s2_vocab_size, s1_labels, s2_labels, s1_targets)

    def _s2_condition(self, s1_logits, use_teacher_forcing, s1_targets, s1_labels):
        """The s1 tokens `(batch, seq_len)` that the s2 head is conditioned on."""
        if use_teacher_forcing:
            return s1_targets if s1_targets is not None else s1_labels.clamp(min=0)
        if s1_labels is not None and self.config.s2_conditioning == "teacher_forcing":
            return s1_labels.clamp(min=0)  # ignored positions (-100) are conditioned on token 0
        probs = torch.softmax(s1_logits.detach().float(), dim=-1)
        return torch.multinomial(probs.view(-1, self.s1_vocab_size), 1).view(s1_logits.shape[:2])

    # ------------------------------------------------------------------ decoding

    @torch.no_grad()
    def generate_tokens(
        self,
        s1_ids: torch.Tensor,
        s2_ids: torch.Tensor,
        stamp: torch.Tensor,
        future_stamp: torch.Tensor,
        pred_len: int,
        attention_mask: torch.Tensor | None = None,
        max_context: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = 0,
        top_p: float | None = 1.0,
        sample_count: int = 1,
        sliding: str = "exact",
        generator: torch.Generator | None = None,
        progress: Callable[[int], None] | None = None,
        steps: type | None = None,
        return_dict_in_generate: bool = False,
    ) -> "tuple | KronosGenerationOutput":
        """
        Autoregressively sample `pred_len` (s1, s2) pairs after a prompt, with a key/value cache (the loop is
        [`generation_kronos.generate`]). Past `max_context` tokens, `sliding="exact"` re-encodes the last window every
        step (upstream renumbers its positions from 0) and `sliding="rolling"` drops the cache's oldest position
        instead: much faster, but approximate (docs/forecasting.md). Random draws happen in upstream's order (one
        `multinomial` over all paths for s1, then one for s2, per step), so seeded paths follow upstream's.

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
                so its tokens do not depend on the other series in the batch, or one per path (series-major).
            progress (`callable`, *optional*): Called with the step index after every step (for progress bars).
            steps (`type`, *optional*): What computes a step, built as `steps(model, stamps)`:
                [`KronosModuleSteps`] by default (the forecaster passes `fast_decoding.KronosFastSteps` on CPU).
            return_dict_in_generate (`bool`): Return a [`KronosGenerationOutput`] instead of a tuple.

        Returns:
            `(s1, s2, attention_mask)`: the generated tokens, each `(batch * sample_count, pred_len)`, and the mask of
            the prompt repeated per path (or `None`).
        """
        plan = make_plan(self, s1_ids, pred_len, sample_count, max_context, sliding)
        sampling = dict(zip(("temperature", "top_k", "top_p"), check_sampling(temperature, top_k, top_p)))
        generator = check_generator(generator, plan.batch, plan.sample_count)
        attention_mask = check_prompt(self, s1_ids, s2_ids, stamp, future_stamp, attention_mask, plan.pred_len)
        # inference mode skips autograd's bookkeeping on every operation (~20% of a one-row step on CPU); the tokens
        # are cloned outside it, so callers get ordinary tensors
        with torch.inference_mode():
            out = generate(
                self, s1_ids, s2_ids, stamp, future_stamp, plan, attention_mask, {**sampling, "generator": generator},
                steps or KronosModuleSteps, progress,
            )  # fmt: skip
        prompt_mask = attention_mask.repeat_interleave(plan.sample_count, dim=0) if attention_mask is not None else None
        out = KronosGenerationOutput(s1_ids=out.s1_ids.clone(), s2_ids=out.s2_ids.clone(), attention_mask=prompt_mask)
        return out if return_dict_in_generate else (out.s1_ids, out.s2_ids, out.attention_mask)


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

    def __init__(self, config: KronosTokenizerConfig):
        super().__init__(config)
        self.d_in = config.d_in
        self.s1_bits = config.s1_bits
        self.s2_bits = config.s2_bits
        self.codebook_dim = config.s1_bits + config.s2_bits
        self.embed = nn.Linear(config.d_in, config.d_model)
        self.head = nn.Linear(config.d_model, config.d_in)
        self.rotary_emb = KronosRotaryEmbedding(config.d_model // config.n_heads, config.rope_theta)
        self.encoder = nn.ModuleList([KronosTransformerBlock(config, i) for i in range(config.n_enc_layers - 1)])
        self.decoder = nn.ModuleList([KronosTransformerBlock(config, i) for i in range(config.n_dec_layers - 1)])
        self.quant_embed = nn.Linear(config.d_model, self.codebook_dim)
        self.post_quant_embed_pre = nn.Linear(config.s1_bits, config.d_model)
        self.post_quant_embed = nn.Linear(self.codebook_dim, config.d_model)
        self.tokenizer = KronosBSQuantizer(
            config.s1_bits, config.s2_bits, config.beta, config.gamma0, config.gamma, config.zeta, config.group_size
        )
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, nn.Embedding):
            return  # the tokenizer has no embeddings (and its config no d_model-based std for them)
        super()._init_weights(module)

    def _encode_latent(self, x, attention_mask=None):
        x = x.to(self.embed.weight.dtype)
        hidden_states, _ = run_blocks(self.encoder, self.rotary_emb, self.embed(x), attention_mask)
        return self.quant_embed(to_module_device(hidden_states, self.quant_embed, cast=True))

    def _decode_latent(self, quantized, attention_mask=None, coarse=False):
        proj = self.post_quant_embed_pre if coarse else self.post_quant_embed
        hidden_states, _ = run_blocks(self.decoder, self.rotary_emb, proj(quantized.to(proj.weight.dtype)), attention_mask)
        return self.head(hidden_states)

    def encode(self, x: torch.Tensor, half: bool = False, attention_mask: torch.Tensor | None = None):
        """
        Candles to token ids.

        Args:
            x (`torch.Tensor` of shape `(batch, seq_len, d_in)`): Normalised candles.
            half (`bool`): Return `[s1_ids, s2_ids]` (each `(batch, seq_len)`) instead of full ids.
            attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): 1 = real, 0 = padding.
        """
        if not is_tracing():
            check_candles(x, self.d_in, attention_mask)
        _, _, indices = self.tokenizer(self._encode_latent(x, attention_mask), half=half, collect_metrics=False)
        return indices

    def indices_to_bits(self, indices, half: bool = False) -> torch.Tensor:
        """Token ids to codes `±1/sqrt(codebook_dim)` of shape `(batch, seq_len, codebook_dim)`."""
        if half:
            s1_ids, s2_ids = indices
            s1_bits = (s1_ids.unsqueeze(-1) & (2 ** torch.arange(self.s1_bits, device=s1_ids.device))) != 0
            s2_bits = (s2_ids.unsqueeze(-1) & (2 ** torch.arange(self.s2_bits, device=s2_ids.device))) != 0
            bits = torch.cat([s1_bits, s2_bits], dim=-1)
        else:
            bits = (indices.unsqueeze(-1) & (2 ** torch.arange(self.codebook_dim, device=indices.device))) != 0
        return (bits.float() * 2 - 1) * (1.0 / self.codebook_dim**0.5)

    def decode(self, indices, half: bool = False, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """
        Token ids to candles `(batch, seq_len, d_in)`.

        Args:
            indices: full ids `(batch, seq_len)`, or `[s1_ids, s2_ids]` with `half=True`.
            attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): 1 = real, 0 = padding.

        Upstream splits half ids at `codebook_dim // 2` bits, which is only right when `s1_bits == s2_bits` (true of
        every published tokenizer); here each half uses its own width.
        """
        if not is_tracing():
            check_tokenizer_ids(indices, half, self.s1_bits, self.s2_bits, attention_mask)
        return self._decode_latent(self.indices_to_bits(indices, half), attention_mask)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs):
        """
        Encode, quantise and decode, with upstream's tokenizer training loss.

        Args:
            x (`torch.Tensor` of shape `(batch, seq_len, d_in)`): Normalised candles.
            attention_mask (`torch.Tensor` of shape `(batch, seq_len)`, *optional*): 1 = real, 0 = padding; padded
                positions are left out of the reconstruction losses.

        Returns:
            [`KronosTokenizerOutput`].
        """
        if not is_tracing():
            check_candles(x, self.d_in, attention_mask)
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
            loss=loss, reconstruction=full, coarse_reconstruction=coarse, bsq_loss=bsq_loss, quantized=quantized,
            indices=indices,
        )  # fmt: skip
        return output if return_dict else output.to_tuple()


__all__ = [
    "KronosCache",
    "KronosForTokenPrediction",
    "KronosOutput",
    "KronosPathCache",
    "KronosPreTrainedModel",
    "KronosTokenizerModel",
    "KronosTokenizerOutput",
    "config_from_upstream",
    "filter_logits",
    "sample_tokens",
]
