"""The static cache and the compiled decoding step (generation_kronos) against the modules' own decoding."""

import pytest
import torch
from conftest import TINY_MODEL_CONFIGS, random_stamp, random_tokens

from transformers_kronos import KronosConfig, KronosForTokenPrediction, generation_kronos
from transformers_kronos.generation_kronos import KronosStaticCache, KronosStaticSteps, compiled_steps


def _generation(model, monkeypatch, steps, length, batch=2, padded=False, **kwargs):
    """Tokens of a seeded greedy `generate_tokens` call with `steps`, and every logits tensor it sampled from."""
    g = torch.Generator().manual_seed(length)
    s1, s2 = random_tokens(TINY_MODEL_CONFIGS["tiny"], batch, length, g)
    stamp, future = random_stamp(batch, length, g), random_stamp(batch, 6, g)
    mask = None
    if padded:
        mask = torch.ones(batch, length, dtype=torch.long)
        mask[0, :3] = 0
    logits = []
    sample = generation_kronos.sample_tokens
    monkeypatch.setattr(generation_kronos, "sample_tokens", lambda x, *a, **k: logits.append(x.clone()) or sample(x, *a, **k))
    torch.manual_seed(7)
    s1, s2, _ = model.generate_tokens(s1, s2, stamp, future, 6, attention_mask=mask, steps=steps, top_k=1, **kwargs)
    monkeypatch.setattr(generation_kronos, "sample_tokens", sample)
    return s1, s2, logits


@pytest.mark.parametrize(
    "length, sample_count, max_context, sliding, padded",
    [
        (9, 1, 32, "exact", False),
        (9, 3, 32, "exact", True),  # paths: the prompt repeated per path (a static cache does not share it)
        (30, 1, 32, "exact", False),  # the window fills: re-encoded every step
        (29, 1, 32, "rolling", True),  # the window fills: the full cache shifts before the step writes its slot
    ],
)
def test_static_steps_equal_module_steps(monkeypatch, length, sample_count, max_context, sliding, padded):
    torch.manual_seed(0)
    model = KronosForTokenPrediction(KronosConfig(**TINY_MODEL_CONFIGS["tiny"])).eval()
    kwargs = dict(sample_count=sample_count, max_context=max_context, sliding=sliding, padded=padded)
    static = _generation(model, monkeypatch, KronosStaticSteps, length, **kwargs)
    modules = _generation(model, monkeypatch, None, length, **kwargs)
    assert len(static[2]) == len(modules[2]) == 12
    for a, b in zip(static[2], modules[2]):
        # attention over every slot, the empty ones masked, sums in another order (measured up to 9.5e-7)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=5e-6)
    assert torch.equal(static[0], modules[0]) and torch.equal(static[1], modules[1])


def test_static_cache_writes_at_the_index_and_zeroes_the_empty_slots():
    cache = generation_kronos.KronosCache(2, max_length=5)
    for layer in range(2):
        cache.update(torch.ones(1, 2, 3, 4), torch.ones(1, 2, 3, 4), layer)
    cache.layers[0].keys[..., 3:, :] = float("nan")  # what uninitialised memory may hold
    static = KronosStaticCache(cache)
    assert not static.layers[0].keys.isnan().any()
    static.write_index.fill_(3)
    keys, values = static.update(torch.full((1, 2, 1, 4), 2.0), torch.full((1, 2, 1, 4), 3.0), 0)
    assert keys.shape == (1, 2, 5, 4) and keys is cache.layers[0].keys  # the prompt cache's own buffers
    assert keys[0, 0, :, 0].tolist() == [1.0, 1.0, 1.0, 2.0, 0.0] and values[0, 0, 3, 0] == 3.0


def test_compiled_static_step_is_built_once_for_every_prompt_length(monkeypatch):
    """One graph (fullgraph) serves prompts of different lengths and every step; the tokens are the modules'."""
    torch.manual_seed(0)
    model = KronosForTokenPrediction(KronosConfig(**TINY_MODEL_CONFIGS["tiny"])).eval()
    torch._dynamo.reset()
    graphs = []

    def counting_backend(graph_module, example_inputs):  # runs the captured graph as it is: no code generation
        graphs.append(graph_module)
        return graph_module.forward

    steps = compiled_steps(backend=counting_backend, fullgraph=True)
    assert issubclass(steps, KronosStaticSteps)
    for length in (9, 14, 20):
        compiled = _generation(model, monkeypatch, steps, length, max_context=32)
        modules = _generation(model, monkeypatch, None, length, max_context=32)
        assert torch.equal(compiled[0], modules[0]) and torch.equal(compiled[1], modules[1])
    assert len(graphs) == 1


def _logits_cases():
    """Rows of logits as sampling meets them: flat and peaked, with ties, with `-inf` (after top-k), with NaN."""
    generator = torch.Generator().manual_seed(0)
    cases = [torch.randn(64, 1024, generator=generator) * scale for scale in (0.1, 1.0, 2.0, 8.0)]
    cases.append((torch.randn(64, 256, generator=generator) * 4).round())  # many ties, some straddle a cut
    tied = torch.randn(64, 256, generator=generator)
    tied[:, 128:] = tied[:, :128]  # every value twice
    cases.append(tied)
    hidden = torch.randn(16, 300, generator=generator)
    hidden[hidden < 0.5] = float("-inf")
    cases.append(hidden)
    nan = torch.randn(4, 50, generator=generator)
    nan[1, 7] = float("nan")
    cases.append(nan)
    return cases


@pytest.mark.parametrize("top_p", [0.05, 0.5, 0.9, 0.99, 0.999999])
def test_nucleus_keeps_upstreams_set_exactly(upstream, monkeypatch, top_p):
    """The CPU nucleus cut (values sorted by numpy, applied as a threshold) keeps upstream's tokens, every row."""
    fast = []
    threshold = generation_kronos._nucleus_threshold
    monkeypatch.setattr(generation_kronos, "_nucleus_threshold", lambda *a: fast.append(threshold(*a)) or fast[-1])
    for logits in _logits_cases():
        expected = upstream.kronos.top_k_top_p_filtering(logits.clone(), top_k=0, top_p=top_p)
        got = generation_kronos.filter_logits(logits, top_k=0, top_p=top_p)
        assert torch.equal(torch.isinf(got), torch.isinf(expected))
        torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)
    # the threshold served the untied cases; ties across the cut and NaN went through the sort
    assert sum(t is not None for t in fast) >= 4 and any(t is None for t in fast)


def test_nucleus_threshold_on_sorted_values_matches_torch_sort():
    """numpy's sort gives the descending values torch.sort gives (ties are equal values, -inf and ±0 included)."""
    for logits in _logits_cases()[:-1]:  # the NaN case is refused, see above
        logits = torch.cat([logits, torch.zeros(len(logits), 3), -torch.zeros(len(logits), 2)], dim=1)
        got = generation_kronos._sorted_descending(logits)
        assert torch.equal(got, torch.sort(logits, descending=True, dim=-1).values)
    assert generation_kronos._sorted_descending(_logits_cases()[-1]) is None
