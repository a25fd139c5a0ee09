"""Configuration tests: upstream config.json compatibility, standard attribute names, validation."""

import json

import pytest
from conftest import (
    PUBLISHED_MODEL_CONFIGS,
    PUBLISHED_TOKENIZER_CONFIGS,
    REFERENCE_CONFIGS_PATH,
    SHARED_REFERENCE_CONFIGS_PATH,
)

from transformers_kronos import KronosConfig, KronosTokenizerConfig, config_from_upstream


def test_published_configs_are_the_shared_ones():
    """The committed copy the fixtures read equals the project's shared file wherever that exists beside the clone."""
    committed = json.loads(REFERENCE_CONFIGS_PATH.read_text())
    assert set(PUBLISHED_MODEL_CONFIGS) == {"mini", "small", "base"} and "base" in PUBLISHED_TOKENIZER_CONFIGS
    assert PUBLISHED_MODEL_CONFIGS["small"] == {k: v for k, v in committed["Kronos-small"].items() if k[0] != "_"}
    if not SHARED_REFERENCE_CONFIGS_PATH.exists():
        pytest.skip(f"no shared copy at {SHARED_REFERENCE_CONFIGS_PATH} (a user's clone)")
    assert committed == json.loads(SHARED_REFERENCE_CONFIGS_PATH.read_text())


@pytest.mark.parametrize("name", list(PUBLISHED_MODEL_CONFIGS))
def test_upstream_model_config_loads_as_is(name):
    raw = PUBLISHED_MODEL_CONFIGS[name]
    config = config_from_upstream(json.loads(json.dumps(raw)))
    assert isinstance(config, KronosConfig)
    for key, value in raw.items():
        assert getattr(config, key) == value
    assert config.hidden_size == raw["d_model"]
    assert config.num_hidden_layers == raw["n_layers"]
    assert config.num_attention_heads == raw["n_heads"]
    assert config.intermediate_size == raw["ff_dim"]
    assert config.max_context == 512 and config.dependency_heads == 4
    assert config.s1_vocab_size == 1024


def test_upstream_tokenizer_config_loads_as_is():
    raw = PUBLISHED_TOKENIZER_CONFIGS["base"]
    config = config_from_upstream(dict(raw))
    assert isinstance(config, KronosTokenizerConfig)
    assert config.hidden_size == 256 and config.codebook_dim == 20


def test_round_trip_through_dict():
    config = KronosConfig(n_layers=3, d_model=96, n_heads=6, ff_dim=128, max_context=2048, s2_conditioning="sampled")
    again = KronosConfig.from_dict(config.to_dict())
    assert again.to_dict() == config.to_dict()
    assert again.model_type == "kronos"
    assert KronosTokenizerConfig.from_dict(KronosTokenizerConfig().to_dict()).model_type == "kronos_tokenizer"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(d_model=100, n_heads=3), "divisible"),
        (dict(d_model=36, n_heads=4), "must be even"),
        (dict(n_layers=0), "n_layers"),
        (dict(s1_bits=2.5), "s1_bits"),
        (dict(ffn_dropout_p=1.0), "ffn_dropout_p"),
        (dict(s2_conditioning="greedy"), "s2_conditioning"),
        (dict(max_context=-1), "max_context"),
        (dict(s1_bits=30), "too large"),
    ],
)
def test_invalid_model_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KronosConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(group_size=3), "group_size"),
        (dict(d_in=0), "d_in"),
        (dict(n_heads=5), "divisible"),
        (dict(attn_dropout_p=-0.1), "attn_dropout_p"),
    ],
)
def test_invalid_tokenizer_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KronosTokenizerConfig(**kwargs)


def test_config_of_neither_kind():
    with pytest.raises(ValueError, match="neither"):
        config_from_upstream({"d_model": 64, "hidden": 3})
    with pytest.raises(ValueError, match="KronosTokenizerModel"):
        config_from_upstream(dict(PUBLISHED_TOKENIZER_CONFIGS["base"]), expected=KronosConfig)
