"""The CPU fast path: few-row products and KronosFastSteps against the modules' own decoding step."""

import pytest
import torch
from conftest import TINY_MODEL_CONFIGS, random_stamp, random_tokens

from transformers_kronos import KronosConfig, KronosForTokenPrediction, generation_kronos
from transformers_kronos.fast_decoding import (
    MAX_FAST_ROWS,
    KronosFastPrompt,
    KronosFastSteps,
    few_row_linear,
    few_row_views,
    stacked_parameters,
)
from transformers_kronos.generation_kronos import KronosCache, KronosModuleSteps, module_prompt_pass


def inputs_for(config, batch, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    s1, s2 = random_tokens(config, batch, length, g)
    return s1, s2, random_stamp(batch, length, g)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 48), (1, 1, 48), (3, 48), (2, 2, 48)])
def test_few_row_linear_matches_f_linear(bias, shape, monkeypatch):
    torch.manual_seed(0)
    layer = torch.nn.Linear(48, 64, bias=bias)
    x = torch.randn(*shape)
    expected = torch.nn.functional.linear(x, layer.weight, layer.bias)
    batched = []
    for name in ("bmm", "baddbmm"):
        original = getattr(torch, name)
        monkeypatch.setattr(torch, name, lambda *a, _f=original, **k: batched.append(1) or _f(*a, **k))
    with torch.no_grad():
        views = few_row_views(layer.weight, layer.bias)
        got = few_row_linear(x, *views)
    assert batched == [1]  # one batched product over the row blocks
    assert got.shape == expected.shape
    # every output is one dot product over all inputs: float32 rounding apart at most (measured 3.6e-7)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 48), (1, 1, 48)])
def test_few_row_linear_adds_a_residual_in_the_product(shape, monkeypatch):
    torch.manual_seed(0)
    weight, x, residual = torch.randn(64, 48), torch.randn(*shape), torch.randn(*shape[:-1], 64)
    expected = residual + x @ weight.t()
    calls = []
    original = torch.baddbmm
    monkeypatch.setattr(torch, "baddbmm", lambda *a, **k: calls.append(1) or original(*a, **k))
    weight_blocks, _ = few_row_views(weight, None)
    got = few_row_linear(x, weight_blocks, residual.view(*weight_blocks.shape[:2], 1))
    assert calls == [1] and got.shape == expected.shape  # the add is the product's own
    # float32 rounding apart at most: outputs up to about 20 in size, measured 1.9e-6 apart
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=4e-6)


def test_few_row_views_only_where_the_split_applies():
    torch.manual_seed(0)
    assert few_row_views(torch.nn.Linear(16, 7).weight, None) is None  # 7 outputs: no blocks
    assert few_row_views(torch.nn.Linear(16, 8).weight.double(), None) is None  # float32 only
    assert few_row_views(torch.nn.Linear(16, 8).weight.t(), None) is None  # contiguous only
    weight_blocks, bias_blocks = few_row_views(torch.nn.Linear(16, 8).weight, torch.zeros(8))
    assert weight_blocks.shape[0] * weight_blocks.shape[1] == 8 and bias_blocks.shape[-1] == 1


def _recorded_generation(model, monkeypatch, steps, **kwargs):
    """Tokens of a seeded `generate_tokens` call with `steps`, and every logits tensor it sampled from."""
    logits = []
    sample = generation_kronos.sample_tokens
    monkeypatch.setattr(generation_kronos, "sample_tokens", lambda x, *a, **k: logits.append(x.clone()) or sample(x, *a, **k))
    torch.manual_seed(7)
    s1, s2, _ = model.generate_tokens(steps=steps, **kwargs)
    monkeypatch.setattr(generation_kronos, "sample_tokens", sample)
    return s1, s2, logits


@pytest.mark.parametrize(
    "name, batch, sample_count, max_context, sliding, padded",
    [
        ("tiny", 1, 1, 64, "exact", False),  # one row: the batched few-row products
        ("odd_bits_fixed_te", 1, 3, 64, "exact", False),  # three paths (shared prompt); fixed calendar tables, 3 heads
        ("tiny", 2, 3, 64, "exact", True),  # six rows (plain products) with left padding
        ("tiny", 1, 2, 12, "exact", False),  # the window fills: re-encoded every step
        ("six_heads", 2, 1, 12, "rolling", True),  # the window fills: rolling cache
    ],
)
@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_fast_steps_equal_module_steps(monkeypatch, name, batch, sample_count, max_context, sliding, padded, implementation):
    torch.manual_seed(0)
    config = TINY_MODEL_CONFIGS[name]
    model = KronosForTokenPrediction(KronosConfig(**config, attn_implementation=implementation)).eval()
    s1, s2, stamp = inputs_for(config, batch, 9)
    mask = None
    if padded:
        mask = torch.ones(batch, 9, dtype=torch.long)
        mask[0, :4] = 0
    future = inputs_for(config, batch, 6, seed=1)[2]
    kwargs = dict(s1_ids=s1, s2_ids=s2, stamp=stamp, future_stamp=future, pred_len=6, attention_mask=mask,
                  max_context=max_context, sample_count=sample_count, sliding=sliding, top_k=1)  # fmt: skip
    assert KronosFastSteps.supports(model)
    fast = _recorded_generation(model, monkeypatch, KronosFastSteps, **kwargs)
    through_modules = _recorded_generation(model, monkeypatch, None, **kwargs)
    assert len(fast[2]) == len(through_modules[2]) == 12
    # without the few-row products (more than MAX_FAST_ROWS rows) the steps' arithmetic is the modules' own: bitwise
    # the same logits after the modules' prompt pass
    steps_after_module_prompt = None
    if batch * sample_count > MAX_FAST_ROWS:
        module_prompt = type("ModulePromptFastSteps", (KronosFastSteps,), {"prompt_pass": KronosModuleSteps.prompt_pass})
        steps_after_module_prompt = _recorded_generation(model, monkeypatch, module_prompt, **kwargs)[2]
    for i, (a, b) in enumerate(zip(fast[2], through_modules[2])):
        if steps_after_module_prompt is not None:
            assert torch.equal(steps_after_module_prompt[i], b)
        # the few-row products and the fast prompt pass sum in other orders than the modules (measured up to 1.1e-6)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert torch.equal(fast[0], through_modules[0]) and torch.equal(fast[1], through_modules[1])
    assert not fast[0].is_inference()  # decoded under inference mode, returned as ordinary tensors


def test_fast_steps_only_for_plain_float32_cpu_models():
    model = KronosForTokenPrediction(KronosConfig(**TINY_MODEL_CONFIGS["tiny"])).eval()
    assert KronosFastSteps.supports(model)
    assert not KronosFastSteps.supports(model.train())
    model.eval()
    model.head.half()  # mixed dtypes
    assert not KronosFastSteps.supports(model)
    model.float()
    hook = model.dep_layer.register_forward_pre_hook(lambda *args: None)  # any hook: decode through the modules
    assert not KronosFastSteps.supports(model)
    hook.remove()
    model.head.proj_s1 = torch.nn.Identity()  # not one of the modelling file's modules (nor is an adapter)
    assert not KronosFastSteps.supports(model)


def test_stacked_parameters_are_views_and_save_as_before(tmp_path):
    torch.manual_seed(0)
    model = KronosForTokenPrediction(KronosConfig(**TINY_MODEL_CONFIGS["tiny"])).eval()
    attn = model.transformer[0].self_attn
    params = [attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]
    before = {name: t.clone() for name, t in model.state_dict().items()}
    whole = stacked_parameters(params)
    # the same parameter objects, now slices of one tensor, with the same values
    assert [p is q for p, q in zip(params, [attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])] == [True] * 3
    torch.testing.assert_close(whole, torch.cat([before[f"transformer.0.self_attn.{n}_proj.weight"] for n in "qkv"]), rtol=0, atol=0)
    rows = attn.q_proj.weight.shape[0]
    assert attn.k_proj.weight.is_set_to(whole[rows : 2 * rows])
    # laid out already: the second call builds a view of the same memory instead of copying
    again = stacked_parameters(params)
    assert again.is_set_to(whole)
    with torch.no_grad():
        attn.k_proj.weight.mul_(2.0)  # in-place updates (an optimizer step, load_state_dict) reach the stacked view
    assert torch.equal(whole[rows : 2 * rows], 2 * before["transformer.0.self_attn.k_proj.weight"])
    with torch.no_grad():
        attn.k_proj.weight.copy_(before["transformer.0.self_attn.k_proj.weight"])
    # save_pretrained writes every parameter under its own upstream name, and loads back bitwise
    model.save_pretrained(tmp_path)
    loaded = KronosForTokenPrediction.from_pretrained(tmp_path)
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    # a parameter replaced since (here: moved to another dtype and back) is laid out anew
    attn.k_proj.weight.data = attn.k_proj.weight.data.double().float()
    assert not attn.k_proj.weight.is_set_to(whole[rows : 2 * rows])
    renewed = stacked_parameters(params)
    assert not renewed.is_set_to(whole) and attn.k_proj.weight.is_set_to(renewed[rows : 2 * rows])
    torch.testing.assert_close(renewed, whole, rtol=0, atol=0)


def test_forecasting_with_stacked_parameters_leaves_the_model_trainable():
    torch.manual_seed(0)
    config = TINY_MODEL_CONFIGS["tiny"]
    model = KronosForTokenPrediction(KronosConfig(**config)).eval()
    s1, s2, stamp = inputs_for(config, 1, 9)
    model.generate_tokens(s1, s2, stamp, inputs_for(config, 1, 3, seed=1)[2], pred_len=3, steps=KronosFastSteps, top_k=1)
    block = model.transformer[0]
    rows = block.ffn.w1.weight.shape[0]
    # the decoding stacked the gate and up projections (and q/k/v) into one tensor each
    assert block.ffn.w3.weight.is_set_to(stacked_parameters([block.ffn.w1.weight, block.ffn.w3.weight])[rows:])
    model.train()
    out = model(s1, s2, stamp, s1_labels=s1, s2_labels=s2)
    out.loss.backward()
    assert block.ffn.w3.weight.grad is not None and not block.ffn.w3.weight.is_inference()


def _prompt_passes(model, prompt_pass, s1, s2, stamp, mask, caches):
    """The context of `prompt_pass` and of the modules' pass over the same positions, each into its own cache."""
    with torch.inference_mode():
        return prompt_pass(s1, s2, stamp, mask, caches[0]), module_prompt_pass(model, s1, s2, stamp, mask, caches[1])


@pytest.mark.parametrize("name", list(TINY_MODEL_CONFIGS))
@pytest.mark.parametrize("cache_kind", ["preallocated", "grown", "rolling"])
def test_fast_prompt_equals_the_modules_pass(monkeypatch, name, cache_kind):
    torch.manual_seed(0)
    config = TINY_MODEL_CONFIGS[name]
    model = KronosForTokenPrediction(KronosConfig(**config)).eval()
    s1, s2, stamp = inputs_for(config, 3, 11)
    size = {"preallocated": 16, "grown": None, "rolling": 11}[cache_kind]
    caches = [KronosCache(config["n_layers"] + 1, size, rolling=cache_kind == "rolling") for _ in range(2)]
    prompt_pass = KronosFastSteps.prompt_pass(model)
    assert isinstance(prompt_pass, KronosFastPrompt)
    backbone_calls = []
    backbone = model.backbone
    monkeypatch.setattr(model, "backbone", lambda *a, **k: backbone_calls.append(1) or backbone(*a, **k))
    fast, modules = _prompt_passes(model, prompt_pass, s1, s2, stamp, None, caches)
    assert backbone_calls == [1]  # the modules' pass only: the fast one ran its own arithmetic
    # stacked products and the norms' sum of squares round differently: measured at most 1.2e-6 apart on values up
    # to 4.5 (the three configs, five seeds each)
    torch.testing.assert_close(fast, modules, rtol=0, atol=4e-6)
    for fast_layer, module_layer in zip(*(cache.layers for cache in caches)):
        assert (fast_layer.length, fast_layer.cumulative_length) == (module_layer.length, module_layer.cumulative_length) == (11, 11)
        for got, expected in zip(fast_layer.read(), module_layer.read()):
            assert got.shape == expected.shape and got.is_contiguous() == expected.is_contiguous()
            torch.testing.assert_close(got, expected, rtol=0, atol=4e-6)


def test_fast_prompt_with_padding_and_held_positions():
    """A padded prompt, a cache holding positions already, a rolling cache the pass overflows: as the modules."""
    torch.manual_seed(0)
    config = TINY_MODEL_CONFIGS["tiny"]
    model = KronosForTokenPrediction(KronosConfig(**config)).eval()
    s1, s2, stamp = inputs_for(config, 2, 9)
    layers = config["n_layers"] + 1
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[0, :3] = 0

    def held(cache):  # 4 positions already (the new queries are the last keys: no longer the kernel's causal case)
        module_prompt_pass(model, s1[:, :4], s2[:, :4], stamp[:, :4], None, cache)
        return cache

    cases = [
        ("padded", (s1, s2, stamp, mask), lambda: KronosCache(layers, 16)),
        ("cache holds positions", (s1[:, 4:], s2[:, 4:], stamp[:, 4:], None), lambda: held(KronosCache(layers, 16))),
        ("padded, cache holds positions", (s1[:, 4:], s2[:, 4:], stamp[:, 4:], mask), lambda: held(KronosCache(layers, 16))),
        ("rolling cache overflows", (s1, s2, stamp, None), lambda: KronosCache(layers, 7, rolling=True)),
    ]
    prompt_pass = KronosFastSteps.prompt_pass(model)
    for label, args, new_cache in cases:
        caches = [new_cache(), new_cache()]
        fast, modules = _prompt_passes(model, prompt_pass, *args, caches)
        # measured at most 1.4e-6 apart on values up to about 4.5 (the three configs, five seeds each)
        torch.testing.assert_close(fast, modules, rtol=0, atol=4e-6, msg=label)
        for a, b in zip(caches[0].layers, caches[1].layers):
            assert (a.length, a.cumulative_length) == (b.length, b.cumulative_length), label
            for x, y in zip(a.read(), b.read()):
                torch.testing.assert_close(x, y, rtol=0, atol=4e-6, msg=label)


def test_fast_prompt_only_for_plain_models_with_sdpa(monkeypatch):
    """Eager attention, a model that is not plain: the modules' own pass, bitwise theirs."""
    torch.manual_seed(0)
    config = TINY_MODEL_CONFIGS["tiny"]
    s1, s2, stamp = inputs_for(config, 2, 9)
    eager = KronosForTokenPrediction(KronosConfig(**config, attn_implementation="eager")).eval()
    prompt_pass = KronosFastSteps.prompt_pass(eager)
    assert not prompt_pass.applies(KronosCache(config["n_layers"] + 1, 16))
    caches = [KronosCache(config["n_layers"] + 1, 16) for _ in range(2)]
    fast, modules = _prompt_passes(eager, prompt_pass, s1, s2, stamp, None, caches)
    assert torch.equal(fast, modules)
    assert all(torch.equal(x, y) for a, b in zip(*(c.layers for c in caches)) for x, y in zip(a.read(), b.read()))
    model = KronosForTokenPrediction(KronosConfig(**config)).eval()
    hook = model.register_forward_hook(lambda *args: None)  # not a plain model: the modules' pass
    assert not isinstance(KronosFastSteps.prompt_pass(model), KronosFastPrompt)
    hook.remove()
    assert isinstance(KronosFastSteps.prompt_pass(model), KronosFastPrompt)
