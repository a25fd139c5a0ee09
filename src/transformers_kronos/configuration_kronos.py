# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Configurations of the two Kronos networks: the K-line tokenizer and the autoregressive predictor.

The argument names are upstream's (shiyu-coder/Kronos), so a `config.json` written by upstream's
`PyTorchModelHubMixin` (bare `__init__` arguments, no `model_type`) is a valid set of keyword arguments here.
Standard transformers names (`hidden_size`, `num_hidden_layers`, ...) are aliases through `attribute_map`.

This file imports only `transformers`, so it can be shipped as remote code.
"""

import inspect
import warnings

from transformers import PretrainedConfig

# Upstream `__init__` arguments of each network. A config.json whose keys cover one of these sets (and that has
# no `model_type`) is an upstream checkpoint of that kind.
UPSTREAM_MODEL_KEYS = (
    "s1_bits",
    "s2_bits",
    "n_layers",
    "d_model",
    "n_heads",
    "ff_dim",
    "ffn_dropout_p",
    "attn_dropout_p",
    "resid_dropout_p",
    "token_dropout_p",
    "learn_te",
)
UPSTREAM_TOKENIZER_KEYS = (
    "d_in",
    "d_model",
    "n_heads",
    "ff_dim",
    "n_enc_layers",
    "n_dec_layers",
    "ffn_dropout_p",
    "attn_dropout_p",
    "resid_dropout_p",
    "s1_bits",
    "s2_bits",
    "beta",
    "gamma0",
    "gamma",
    "zeta",
    "group_size",
)

S2_CONDITIONING_MODES = ("teacher_forcing", "sampled")


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}")


def _check_probability(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"`{name}` must be a dropout probability in [0, 1), got {value!r}")


def _check_heads(d_model, n_heads, what="n_heads"):
    if d_model % n_heads != 0:
        raise ValueError(f"`d_model` ({d_model}) must be divisible by `{what}` ({n_heads})")
    if (d_model // n_heads) % 2 != 0:
        raise ValueError(
            f"the head dimension d_model / {what} = {d_model // n_heads} must be even for rotary embeddings"
        )


class KronosConfig(PretrainedConfig):
    r"""
    Configuration of [`KronosForTokenPrediction`], the decoder-only Kronos predictor.

    Defaults are those of Kronos-small. All argument names are upstream's.

    Args:
        s1_bits (`int`, defaults to 10):
            Bits of the coarse token; the s1 vocabulary has `2**s1_bits` entries.
        s2_bits (`int`, defaults to 10):
            Bits of the fine token; the s2 vocabulary has `2**s2_bits` entries.
        n_layers (`int`, defaults to 8):
            Number of transformer blocks (`num_hidden_layers`).
        d_model (`int`, defaults to 512):
            Hidden size (`hidden_size`).
        n_heads (`int`, defaults to 8):
            Attention heads of the transformer blocks (`num_attention_heads`). The s1 -> s2 dependency layer always
            uses `dependency_heads` heads, whatever this value (upstream builds it with its default of 4).
        ff_dim (`int`, defaults to 1024):
            Inner size of the SwiGLU feed-forward blocks (`intermediate_size`).
        ffn_dropout_p (`float`, defaults to 0.0): Dropout after the feed-forward blocks.
        attn_dropout_p (`float`, defaults to 0.0): Dropout on attention probabilities.
        resid_dropout_p (`float`, defaults to 0.0): Dropout on the attention output projection.
        token_dropout_p (`float`, defaults to 0.0): Dropout on the summed input embeddings.
        learn_te (`bool`, defaults to `True`):
            Learned temporal (calendar) embeddings; `False` uses fixed sinusoidal tables.
        max_context (`int`, defaults to 512):
            Longest window the predictor attends to; forecasting slides a window of this length.
        dependency_heads (`int`, defaults to 4):
            Heads of the dependency-aware cross-attention layer. Upstream hard-codes 4; keep it for its weights.
        s2_conditioning (`str`, defaults to `"teacher_forcing"`):
            What the s2 head is conditioned on when `forward` computes a loss from `s1_labels` / `s2_labels`:
            `"teacher_forcing"` uses the true next s1 token (the objective of the paper and of upstream's
            `head.compute_loss` with teacher forcing); `"sampled"` uses an s1 token sampled from the model's own s1
            distribution, which is what upstream's fine-tuning scripts do.
        rms_norm_eps (`float`, defaults to 1e-5): Epsilon of the RMS norms.
        rope_theta (`float`, defaults to 10000.0): Base of the rotary embeddings.
        initializer_range (`float`, defaults to 0.02): Unused by Kronos' own initialisation; kept for tooling.

    Example:

    ```python
    >>> from transformers_kronos import KronosConfig, KronosForTokenPrediction
    >>> config = KronosConfig(n_layers=2, d_model=64, n_heads=4, ff_dim=128)
    >>> model = KronosForTokenPrediction(config)
    >>> config.hidden_size, config.num_hidden_layers
    (64, 2)
    ```
    """

    model_type = "kronos"
    attribute_map = {
        "hidden_size": "d_model",
        "num_hidden_layers": "n_layers",
        "num_attention_heads": "n_heads",
        "intermediate_size": "ff_dim",
    }

    def __init__(
        self,
        s1_bits=10,
        s2_bits=10,
        n_layers=8,
        d_model=512,
        n_heads=8,
        ff_dim=1024,
        ffn_dropout_p=0.0,
        attn_dropout_p=0.0,
        resid_dropout_p=0.0,
        token_dropout_p=0.0,
        learn_te=True,
        max_context=512,
        dependency_heads=4,
        s2_conditioning="teacher_forcing",
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        initializer_range=0.02,
        **kwargs,
    ):
        for name, value in (
            ("s1_bits", s1_bits),
            ("s2_bits", s2_bits),
            ("n_layers", n_layers),
            ("d_model", d_model),
            ("n_heads", n_heads),
            ("ff_dim", ff_dim),
            ("max_context", max_context),
            ("dependency_heads", dependency_heads),
        ):
            _check_positive_int(name, value)
        for name, value in (
            ("ffn_dropout_p", ffn_dropout_p),
            ("attn_dropout_p", attn_dropout_p),
            ("resid_dropout_p", resid_dropout_p),
            ("token_dropout_p", token_dropout_p),
        ):
            _check_probability(name, value)
        if s1_bits > 24 or s2_bits > 24:
            raise ValueError(f"`s1_bits`/`s2_bits` above 24 give vocabularies too large to embed ({s1_bits}, {s2_bits})")
        _check_heads(d_model, n_heads)
        _check_heads(d_model, dependency_heads, "dependency_heads")
        if s2_conditioning not in S2_CONDITIONING_MODES:
            raise ValueError(f"`s2_conditioning` must be one of {S2_CONDITIONING_MODES}, got {s2_conditioning!r}")

        self.s1_bits = s1_bits
        self.s2_bits = s2_bits
        self.n_layers = n_layers
        self.d_model = d_model
        self.n_heads = n_heads
        self.ff_dim = ff_dim
        self.ffn_dropout_p = float(ffn_dropout_p)
        self.attn_dropout_p = float(attn_dropout_p)
        self.resid_dropout_p = float(resid_dropout_p)
        self.token_dropout_p = float(token_dropout_p)
        self.learn_te = bool(learn_te)
        self.max_context = max_context
        self.dependency_heads = dependency_heads
        self.s2_conditioning = s2_conditioning
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.initializer_range = initializer_range
        super().__init__(**kwargs)

    @property
    def s1_vocab_size(self) -> int:
        return 2**self.s1_bits

    @property
    def s2_vocab_size(self) -> int:
        return 2**self.s2_bits


class KronosTokenizerConfig(PretrainedConfig):
    r"""
    Configuration of [`KronosTokenizerModel`], the K-line tokenizer (transformer encoder and decoder around a
    Binary Spherical Quantizer). Defaults are those of Kronos-Tokenizer-base.

    Args:
        d_in (`int`, defaults to 6): Features per candle (open, high, low, close, volume, amount).
        d_model (`int`, defaults to 256): Hidden size (`hidden_size`).
        n_heads (`int`, defaults to 4): Attention heads (`num_attention_heads`).
        ff_dim (`int`, defaults to 512): Feed-forward inner size (`intermediate_size`).
        n_enc_layers (`int`, defaults to 4):
            Encoder depth as upstream counts it: upstream builds `n_enc_layers - 1` encoder blocks, and so do we, so
            the published weights load.
        n_dec_layers (`int`, defaults to 4): Decoder depth, likewise `n_dec_layers - 1` blocks.
        ffn_dropout_p, attn_dropout_p, resid_dropout_p (`float`, defaults to 0.0): Dropout probabilities.
        s1_bits (`int`, defaults to 10): Bits of the coarse token.
        s2_bits (`int`, defaults to 10): Bits of the fine token.
        beta (`float`, defaults to 0.05): Weight of the BSQ commitment loss.
        gamma0 (`float`, defaults to 1.0): Weight of the per-sample entropy term.
        gamma (`float`, defaults to 1.1): Weight of the codebook entropy term.
        zeta (`float`, defaults to 0.05): Weight of the whole entropy penalty.
        group_size (`int`, defaults to 4): Sub-code size of the grouped entropy estimate; divides `s1_bits + s2_bits`.
        rms_norm_eps (`float`, defaults to 1e-5): Epsilon of the RMS norms.
        rope_theta (`float`, defaults to 10000.0): Base of the rotary embeddings.
    """

    model_type = "kronos_tokenizer"
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "n_heads",
        "intermediate_size": "ff_dim",
    }

    def __init__(
        self,
        d_in=6,
        d_model=256,
        n_heads=4,
        ff_dim=512,
        n_enc_layers=4,
        n_dec_layers=4,
        ffn_dropout_p=0.0,
        attn_dropout_p=0.0,
        resid_dropout_p=0.0,
        s1_bits=10,
        s2_bits=10,
        beta=0.05,
        gamma0=1.0,
        gamma=1.1,
        zeta=0.05,
        group_size=4,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        initializer_range=0.02,
        **kwargs,
    ):
        for name, value in (
            ("d_in", d_in),
            ("d_model", d_model),
            ("n_heads", n_heads),
            ("ff_dim", ff_dim),
            ("n_enc_layers", n_enc_layers),
            ("n_dec_layers", n_dec_layers),
            ("s1_bits", s1_bits),
            ("s2_bits", s2_bits),
            ("group_size", group_size),
        ):
            _check_positive_int(name, value)
        for name, value in (
            ("ffn_dropout_p", ffn_dropout_p),
            ("attn_dropout_p", attn_dropout_p),
            ("resid_dropout_p", resid_dropout_p),
        ):
            _check_probability(name, value)
        _check_heads(d_model, n_heads)
        if (s1_bits + s2_bits) % group_size != 0:
            raise ValueError(f"`group_size` ({group_size}) must divide s1_bits + s2_bits ({s1_bits + s2_bits})")
        if s1_bits + s2_bits > 62:
            raise ValueError("s1_bits + s2_bits must be at most 62 so that full token ids fit in int64")

        self.d_in = d_in
        self.d_model = d_model
        self.n_heads = n_heads
        self.ff_dim = ff_dim
        self.n_enc_layers = n_enc_layers
        self.n_dec_layers = n_dec_layers
        self.ffn_dropout_p = float(ffn_dropout_p)
        self.attn_dropout_p = float(attn_dropout_p)
        self.resid_dropout_p = float(resid_dropout_p)
        self.s1_bits = s1_bits
        self.s2_bits = s2_bits
        self.beta = beta
        self.gamma0 = gamma0
        self.gamma = gamma
        self.zeta = zeta
        self.group_size = group_size
        self.rms_norm_eps = rms_norm_eps
        self.rope_theta = rope_theta
        self.initializer_range = initializer_range
        super().__init__(**kwargs)

    def to_dict(self) -> dict:
        output = super().to_dict()
        # `save_pretrained` takes any class whose name contains "Tokenizer" for a text tokenizer and records it in
        # `auto_map` as a (slow, fast) pair, which AutoConfig / AutoModel cannot resolve as remote code: keep the
        # plain "module.Class" reference they expect
        auto_map = output.get("auto_map")
        if isinstance(auto_map, dict):
            output["auto_map"] = {
                name: ref[0] if isinstance(ref, (list, tuple)) and name != "AutoTokenizer" else ref
                for name, ref in auto_map.items()
            }
        return output

    @property
    def codebook_dim(self) -> int:
        return self.s1_bits + self.s2_bits

    @property
    def num_hidden_layers(self) -> int:
        """Transformer blocks actually built (encoder plus decoder), as upstream builds them."""
        return (self.n_enc_layers - 1) + (self.n_dec_layers - 1)


# --------------------------------------------------------------------------------------------------------------------
# Reading upstream config.json files (one place: the models' from_pretrained and the conversion both use it)
# --------------------------------------------------------------------------------------------------------------------

CONFIG_KINDS = ("auto", "model", "tokenizer")


def config_from_upstream(raw: dict, expected: type | None = None) -> PretrainedConfig:
    """
    Build a [`KronosConfig`] or [`KronosTokenizerConfig`] from an upstream `config.json` dictionary (upstream's
    `__init__` arguments, no `model_type`).

    Raises `ValueError` when the keys match neither network, or match the other one than `expected`.
    """
    keys = set(raw)
    if set(UPSTREAM_TOKENIZER_KEYS) <= keys:
        config_cls = KronosTokenizerConfig
    elif set(UPSTREAM_MODEL_KEYS) <= keys:
        config_cls = KronosConfig
    else:
        raise ValueError(
            "config.json is neither a Kronos predictor nor a Kronos tokenizer config "
            f"(predictor keys missing: {sorted(set(UPSTREAM_MODEL_KEYS) - keys)}; tokenizer keys missing: "
            f"{sorted(set(UPSTREAM_TOKENIZER_KEYS) - keys)})"
        )
    if expected is not None and config_cls is not expected:
        raise ValueError(
            f"this checkpoint holds a {config_cls.__name__[:-6]} but {expected.__name__[:-6]} was asked for; "
            f"load it with {'KronosTokenizerModel' if config_cls is KronosTokenizerConfig else 'KronosForTokenPrediction'}"
        )
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


def detect_config(raw: dict, kind: str = "auto") -> tuple[str, PretrainedConfig]:
    """
    Build our config from a `config.json` dictionary, upstream format or already converted.

    Args:
        raw (`dict`): The parsed `config.json`.
        kind (`str`): `"auto"` (from the keys), `"model"` (the predictor) or `"tokenizer"`.

    Returns:
        `(kind, config)` with `kind` in `("model", "tokenizer")` and `config` a [`KronosConfig`] or
        [`KronosTokenizerConfig`].
    """
    if kind not in CONFIG_KINDS:
        raise ValueError(f"`kind` must be one of {CONFIG_KINDS}, got {kind!r}")
    expected = {"model": KronosConfig, "tokenizer": KronosTokenizerConfig}.get(kind)
    model_type = raw.get("model_type")
    if model_type is None:
        config = config_from_upstream(raw, expected=expected)
    elif model_type in (KronosConfig.model_type, KronosTokenizerConfig.model_type):
        config_cls = KronosConfig if model_type == KronosConfig.model_type else KronosTokenizerConfig
        if expected is not None and config_cls is not expected:
            raise ValueError(f"config.json describes a {model_type!r} checkpoint, not the {kind} that was asked for")
        config = config_cls.from_dict(raw)
    else:
        raise ValueError(f"config.json has model_type {model_type!r}: not a Kronos checkpoint")
    return ("tokenizer" if isinstance(config, KronosTokenizerConfig) else "model"), config


def check_kronos_kind(config_class: type, model_type: str, name_or_path: object) -> None:
    """
    Raise when a converted checkpoint holds the other Kronos network (a tokenizer loaded as the predictor or the
    reverse): transformers would load it with every weight missing, that is, randomly initialised.
    """
    kinds = {KronosConfig.model_type: "KronosForTokenPrediction", KronosTokenizerConfig.model_type: "KronosTokenizerModel"}
    expected = getattr(config_class, "model_type", None)
    if model_type in kinds and expected in kinds and model_type != expected:
        raise ValueError(
            f"{str(name_or_path)!r} is a {model_type!r} checkpoint, not a {expected!r} one: load it with "
            f"{kinds[model_type]}.from_pretrained (or AutoModel)"
        )


__all__ = [
    "CONFIG_KINDS",
    "KronosConfig",
    "KronosTokenizerConfig",
    "check_kronos_kind",
    "config_from_upstream",
    "detect_config",
]
