# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Decoding many sample paths of a series with the tokenizer, computing their shared prompt once.

A forecast decodes the last window of tokens for every sample path and keeps the last `pred_len` candles. The
tokenizer's decoder is causal, so the window's prompt part (every position before the first generated one) is the
same in every path of a series and so are its keys and values in every decoder block. [`decode_paths`] runs the
prompt part through the decoder once per series, into a [`KronosCache`], and only the generated positions once per
path, attending to that cache through a [`KronosPathCache`]: the prompt's keys and values are held once per series,
not copied for every path ([`shared_prompt_attention`]). Upstream decodes the whole window per path: at 400 context
and 20 generated candles, 95% of that work is the repeated prompt. Of the prompt's pass through the last decoder
block only the keys and values are ever read, so it stops there: its attention, output projection and feed-forward
over the prompt are skipped (a quarter of the prompt's work at Tokenizer-base size; the candles are bitwise the same).

The new positions see the same keys and values, masks and rotary angles as in the full decode, so their candles are
the same up to float rounding: the attention over the prompt and over a path's own positions are computed apart and
merged (measured at most 3.6e-7 on normalised candles at Tokenizer-base size, 400 context and 20 new positions). The
tokens, and so the sampled paths, do not change. tests/test_tokenizer_decoding.py compares it with upstream's decode
of every full sequence.
"""

import torch

from .generation_kronos import KronosCache, KronosPathCache
from .modeling_kronos import KronosAttention, KronosTokenizerModel, KronosTransformerBlock, apply_rotary
from .utils import runs_forward_hooks

__all__ = ["PROMPT_POSITIONS_PER_PASS", "decode_paths"]

# prompt positions (series x paths x window) decoded together: bounds the activations and the caches
PROMPT_POSITIONS_PER_PASS = 32768


def _cache_keys_values(block, hidden_states, position_embeddings, cache) -> bool:
    """
    Write the keys and values of `block` over `hidden_states` `(rows, len, d)` into `cache`, with the block's own
    modules and arithmetic (what its attention stores before attending), and nothing else: the prompt's outputs of
    the last decoder block are never read, only its keys and values (the new positions attend to them). Returns
    `False`, doing nothing, where the block is not a plain [`KronosTransformerBlock`] without forward hooks on it or
    its attention (accelerate's dispatch, user hooks): the caller runs the whole block then.
    """
    attention = getattr(block, "self_attn", None)
    if type(block) is not KronosTransformerBlock or type(attention) is not KronosAttention:
        return False
    if runs_forward_hooks(block) or runs_forward_hooks(attention):
        return False
    key, value = attention.project_kv(block.norm1(hidden_states))
    cos, sin = (t.to(device=key.device, dtype=key.dtype) for t in position_embeddings)
    cache.update(apply_rotary(key, cos, sin), value, attention.layer_idx)
    return True


def _decoder_pass(
    tokenizer: KronosTokenizerModel, s1_ids, s2_ids, rotary, attention_mask, cache, outputs: bool = True
) -> torch.Tensor | None:
    """
    Token ids `(rows, len)` through the decoder blocks after `cache`'s positions → hidden states `(rows, len, d)`.
    `rotary` holds the angles of every position of the full sequence: sliced rather than computed for the new
    positions alone, because vectorised `cos`/`sin` may round an angle differently in another place of a tensor.
    With `outputs=False` only the keys and values are wanted (a prompt): the last block stops once it has cached
    them ([`_cache_keys_values`]), and `None` is returned.
    """
    bits = tokenizer.indices_to_bits([s1_ids, s2_ids], half=True)
    proj = tokenizer.post_quant_embed
    hidden_states = proj(bits.to(proj.weight.dtype))
    past, length = cache.get_seq_length(), s1_ids.shape[1]
    position_embeddings = tuple(t[:, :, past : past + length] for t in rotary)
    last = len(tokenizer.decoder) - 1
    for index, block in enumerate(tokenizer.decoder):
        if index == last and not outputs and _cache_keys_values(block, hidden_states, position_embeddings, cache):
            return None
        hidden_states, _ = block(hidden_states, position_embeddings, attention_mask, cache)
    return hidden_states if outputs else None


def decode_paths(
    tokenizer: KronosTokenizerModel,
    prompt_ids: tuple[torch.Tensor, torch.Tensor],
    new_ids: tuple[torch.Tensor, torch.Tensor],
    paths: int,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """
    The candles of the new positions of `paths` sequences per series that share their first positions: what
    `tokenizer.decode` of every full sequence gives at those positions, with the shared part decoded once per series.

    Args:
        tokenizer ([`KronosTokenizerModel`]): The tokenizer, in eval mode.
        prompt_ids (`tuple` of two `torch.LongTensor` of shape `(series, prompt_len)`): s1 and s2 ids of the shared
            part, one row per series; `prompt_len >= 1`.
        new_ids (`tuple` of two `torch.LongTensor` of shape `(series * paths, new_len)`): s1 and s2 ids that follow
            it, rows series-major (`b * paths + s`).
        paths (`int`): Sequences per series.
        attention_mask (`torch.Tensor` of shape `(series, prompt_len)`, *optional*): 1 = real, 0 = left padding of
            the shared part (the new positions are never padding).

    Returns:
        `torch.Tensor` of shape `(series * paths, new_len, d_in)`.
    """
    prompt_s1, prompt_s2 = prompt_ids
    new_s1, new_s2 = new_ids
    series, prompt_len = prompt_s1.shape
    new_len = new_s1.shape[1]
    per_pass = max(1, PROMPT_POSITIONS_PER_PASS // (paths * (prompt_len + new_len)))
    positions = torch.arange(prompt_len + new_len, device=prompt_s1.device)
    rotary = tokenizer.rotary_emb(positions, tokenizer.post_quant_embed.weight.dtype)
    out = []
    for first in range(0, series, per_pass):
        rows = slice(first, min(first + per_pass, series))
        path_rows = slice(rows.start * paths, rows.stop * paths)
        mask = None if attention_mask is None else attention_mask[rows]
        prompt = KronosCache(len(tokenizer.decoder), prompt_len)
        _decoder_pass(tokenizer, prompt_s1[rows], prompt_s2[rows], rotary, mask, prompt, outputs=False)
        # the paths attend to the prompt's keys and values held once per series (shared_prompt_attention), which
        # also knows its padding: the new positions themselves are never padding
        cache = KronosPathCache(prompt, paths, new_len, mask)
        hidden_states = _decoder_pass(tokenizer, new_s1[path_rows], new_s2[path_rows], rotary, None, cache)
        out.append(tokenizer.head(hidden_states))
        del prompt, cache, hidden_states
    return torch.cat(out)
