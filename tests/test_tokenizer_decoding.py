"""decode_paths: the shared prompt decoded once per series gives upstream's decode of every full sequence."""

import pytest
import torch

from transformers_kronos import KronosTokenizerModel
from transformers_kronos import tokenizer_decoding
from transformers_kronos.tokenizer_decoding import decode_paths

from conftest import PUBLISHED_TOKENIZER_CONFIGS, TINY_TOKENIZER_CONFIGS


def _ids(config, rows, length, generator):
    return (torch.randint(0, 2 ** config["s1_bits"], (rows, length), generator=generator),
            torch.randint(0, 2 ** config["s2_bits"], (rows, length), generator=generator))


def _full(prompt, new, paths):
    return [torch.cat([p.repeat_interleave(paths, dim=0), n], dim=1) for p, n in zip(prompt, new)]


@pytest.mark.parametrize(
    "name, series, paths, prompt_len, new_len",
    [("tiny", 3, 4, 30, 5), ("tiny", 1, 1, 1, 7), ("base", 2, 3, 100, 12), ("base", 2, 2, 400, 20)],
)
def test_equals_upstreams_decode_of_every_path(upstream_checkpoint, name, series, paths, prompt_len, new_len):
    config = {**TINY_TOKENIZER_CONFIGS, **PUBLISHED_TOKENIZER_CONFIGS}[name]
    path, ref = upstream_checkpoint("tokenizer", config)
    ours = KronosTokenizerModel.from_pretrained(path)
    generator = torch.Generator().manual_seed(5)
    prompt, new = _ids(config, series, prompt_len, generator), _ids(config, series * paths, new_len, generator)
    with torch.inference_mode():
        expected = ref.decode(_full(prompt, new, paths), half=True)[:, -new_len:]
        got = decode_paths(ours, prompt, new, paths)
    assert got.shape == (series * paths, new_len, config["d_in"])
    # measured at most 3.6e-7 (the prompt and the paths' own positions are attended apart, then merged)
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-6)


def test_left_padded_prompts_and_several_passes(upstream_checkpoint, monkeypatch):
    """Against our own full decode, which takes the padding mask (upstream's has none) and is held to upstream's."""
    config = TINY_TOKENIZER_CONFIGS["tiny"]
    ours = KronosTokenizerModel.from_pretrained(upstream_checkpoint("tokenizer", config)[0])
    series, paths, prompt_len, new_len = 4, 3, 12, 4
    generator = torch.Generator().manual_seed(1)
    prompt, new = _ids(config, series, prompt_len, generator), _ids(config, series * paths, new_len, generator)
    mask = torch.ones(series, prompt_len, dtype=torch.long)
    mask[1, :5] = 0
    mask[3, :11] = 0
    full_mask = torch.cat([mask, torch.ones(series, new_len, dtype=torch.long)], dim=1).repeat_interleave(paths, dim=0)
    with torch.inference_mode():
        expected = ours.decode(_full(prompt, new, paths), half=True, attention_mask=full_mask)[:, -new_len:]
        whole = decode_paths(ours, prompt, new, paths, mask)
        # one series per pass: the prompt cache is built and repeated series by series
        monkeypatch.setattr(tokenizer_decoding, "PROMPT_POSITIONS_PER_PASS", paths * (prompt_len + new_len))
        split = decode_paths(ours, prompt, new, paths, mask)
    torch.testing.assert_close(whole, expected, rtol=0, atol=2e-6)
    # a series' candles do not depend on the series decoded beside it
    assert torch.equal(split, whole)


def test_prompt_keys_values_of_the_last_block_alone_change_nothing(upstream_checkpoint, monkeypatch):
    """The prompt pass stops its last block after the keys and values: the same candles as the whole block, bitwise."""
    config = TINY_TOKENIZER_CONFIGS["tiny"]
    ours = KronosTokenizerModel.from_pretrained(upstream_checkpoint("tokenizer", config)[0])
    calls = []
    keys_values = tokenizer_decoding._cache_keys_values
    monkeypatch.setattr(tokenizer_decoding, "_cache_keys_values", lambda *a: calls.append(1) or keys_values(*a))
    generator = torch.Generator().manual_seed(2)
    prompt, new = _ids(config, 3, 16, generator), _ids(config, 6, 5, generator)
    mask = torch.ones(3, 16, dtype=torch.long)
    mask[2, :7] = 0
    with torch.inference_mode():
        short = decode_paths(ours, prompt, new, 2, mask)
        monkeypatch.setattr(tokenizer_decoding, "_cache_keys_values", lambda *a: False)  # the whole block
        whole = decode_paths(ours, prompt, new, 2, mask)
    assert calls and torch.equal(short, whole)


def test_a_hooked_last_block_runs_whole(upstream_checkpoint):
    """A forward hook on the last decoder block (accelerate's dispatch, a user's) sees the prompt pass go through it."""
    config = TINY_TOKENIZER_CONFIGS["tiny"]
    ours = KronosTokenizerModel.from_pretrained(upstream_checkpoint("tokenizer", config)[0])
    seen = []
    ours.decoder[-1].register_forward_hook(lambda module, args, output: seen.append(args[0].shape[1]))
    generator = torch.Generator().manual_seed(3)
    prompt, new = _ids(config, 2, 9, generator), _ids(config, 4, 3, generator)
    with torch.inference_mode():
        got = decode_paths(ours, prompt, new, 2)
        expected = ours.decode(_full(prompt, new, 2), half=True)[:, -3:]
    assert seen == [9, 3, 12]  # the prompt, the paths' new positions, then the full decode
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-6)  # as above
