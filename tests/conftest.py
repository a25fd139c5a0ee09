"""Shared fixtures: checkpoints written by the upstream reference implementation itself.

Parity tests compare against upstream (`pip install --no-deps kronos-model-arch einops`, imported as `model`).
`upstream` skips a test when the reference is missing, unless KRONOS_REQUIRE_UPSTREAM=1 (set by CI), where a
missing reference is an error: a parity test that skips in CI is a failed parity test.
"""

import importlib
import os

import numpy as np
import pandas as pd
import pytest
import torch

# Published sizes (upstream config.json values) and odd shapes that exercise every code path.
PUBLISHED_MODEL_CONFIGS = {
    "mini": dict(s1_bits=10, s2_bits=10, n_layers=4, d_model=256, n_heads=4, ff_dim=512, ffn_dropout_p=0.2,
                 attn_dropout_p=0.0, resid_dropout_p=0.2, token_dropout_p=0.0, learn_te=True),
    "small": dict(s1_bits=10, s2_bits=10, n_layers=8, d_model=512, n_heads=8, ff_dim=1024, ffn_dropout_p=0.25,
                  attn_dropout_p=0.1, resid_dropout_p=0.25, token_dropout_p=0.1, learn_te=True),
    "base": dict(s1_bits=10, s2_bits=10, n_layers=12, d_model=832, n_heads=16, ff_dim=2048, ffn_dropout_p=0.2,
                 attn_dropout_p=0.0, resid_dropout_p=0.2, token_dropout_p=0.0, learn_te=True),
}
PUBLISHED_TOKENIZER_CONFIGS = {
    "base": dict(d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4, n_dec_layers=4, ffn_dropout_p=0.0,
                 attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=10, s2_bits=10, beta=0.05, gamma0=1.0, gamma=1.1,
                 zeta=0.05, group_size=4),
}
TINY_MODEL_CONFIGS = {
    "tiny": dict(s1_bits=4, s2_bits=4, n_layers=2, d_model=32, n_heads=2, ff_dim=64, ffn_dropout_p=0.0,
                 attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True),
    "odd_bits_fixed_te": dict(s1_bits=5, s2_bits=3, n_layers=3, d_model=48, n_heads=3, ff_dim=40, ffn_dropout_p=0.1,
                              attn_dropout_p=0.0, resid_dropout_p=0.1, token_dropout_p=0.1, learn_te=False),
    "six_heads": dict(s1_bits=6, s2_bits=7, n_layers=1, d_model=72, n_heads=6, ff_dim=96, ffn_dropout_p=0.0,
                      attn_dropout_p=0.0, resid_dropout_p=0.0, token_dropout_p=0.0, learn_te=True),
}
TINY_TOKENIZER_CONFIGS = {
    "tiny": dict(d_in=6, d_model=32, n_heads=2, ff_dim=64, n_enc_layers=2, n_dec_layers=2, ffn_dropout_p=0.0,
                 attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=4, s2_bits=4, beta=0.05, gamma0=1.0, gamma=1.1,
                 zeta=0.05, group_size=4),
    "odd_bits": dict(d_in=5, d_model=24, n_heads=3, ff_dim=40, n_enc_layers=3, n_dec_layers=2, ffn_dropout_p=0.1,
                     attn_dropout_p=0.0, resid_dropout_p=0.1, s1_bits=5, s2_bits=3, beta=0.05, gamma0=1.0, gamma=1.1,
                     zeta=0.05, group_size=2),
}


def with_dropout(config, p=0.0):
    """The same config with every dropout probability set to `p` (parity in train mode needs p = 0)."""
    return {k: (p if k.endswith("dropout_p") else v) for k, v in config.items()}


def load_upstream():
    """The upstream reference module `model`, or a skip (an error under KRONOS_REQUIRE_UPSTREAM=1)."""
    try:
        return importlib.import_module("model")
    except ImportError as err:
        if os.environ.get("KRONOS_REQUIRE_UPSTREAM") == "1":
            raise RuntimeError(
                "the upstream reference is required (KRONOS_REQUIRE_UPSTREAM=1) but `import model` failed: "
                "pip install --no-deps kronos-model-arch einops"
            ) from err
        pytest.skip("upstream reference not installed (pip install --no-deps kronos-model-arch einops)")


@pytest.fixture(scope="session")
def upstream():
    return load_upstream()


@pytest.fixture(scope="session")
def upstream_checkpoint(tmp_path_factory, upstream):
    """
    `upstream_checkpoint(kind, config, seed=0)` → `(path, upstream_module)`: a checkpoint that upstream writes
    with its own `save_pretrained` from a seeded random init, cached per (kind, config, seed) for the session.
    The returned upstream module is in eval mode.
    """
    made = {}

    def build(kind, config, seed=0):
        key = (kind, tuple(sorted(config.items())), seed)
        if key not in made:
            torch.manual_seed(seed)
            cls = upstream.KronosTokenizer if kind == "tokenizer" else upstream.Kronos
            module = cls(**config)
            if kind == "tokenizer":
                # upstream leaves the tokenizer at PyTorch's default init; perturb the (zero) biases so that
                # every parameter matters in the comparisons
                with torch.no_grad():
                    for p in module.parameters():
                        if p.dim() == 1:
                            p.add_(0.1 * torch.randn_like(p))
            path = tmp_path_factory.mktemp(f"upstream-{kind}")
            module.save_pretrained(str(path))
            made[key] = (path, module.eval())
        return made[key]

    return build


def copy_with_config(checkpoint, destination, **changes):
    """A copy of the checkpoint folder `checkpoint` at `destination`, its `config.json` updated with `changes`."""
    import json
    import shutil

    shutil.copytree(checkpoint, destination)
    config = json.loads((destination / "config.json").read_text())
    (destination / "config.json").write_text(json.dumps({**config, **changes}))
    return destination


def random_stamp(batch, length, generator=None):
    """Valid calendar features `(batch, length, 5)`: minute, hour, weekday, day, month (float, as upstream feeds)."""
    sizes = (60, 24, 7, 32, 13)
    cols = [torch.randint(0, n, (batch, length), generator=generator) for n in sizes]
    return torch.stack(cols, dim=-1).float()


def random_tokens(config, batch, length, generator=None):
    s1 = torch.randint(0, 2 ** config["s1_bits"], (batch, length), generator=generator)
    s2 = torch.randint(0, 2 ** config["s2_bits"], (batch, length), generator=generator)
    return s1, s2


def random_klines(n, seed=0, start="2024-01-02 09:30", freq="5min", volume=True, amount=False):
    """
    A seeded random-walk K-line frame: `timestamps` (regular, `freq` apart from `start`), open, high, low, close and,
    as asked, volume and amount. Small and fast, for the tests; `transformers_kronos.synthetic` makes realistic ones.
    """
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * (1 + rng.normal(0, 0.003, n))
    frame = pd.DataFrame(
        {
            "timestamps": pd.date_range(start, periods=n, freq=freq),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + rng.uniform(0, 0.005, n)),
            "low": np.minimum(open_, close) * (1 - rng.uniform(0, 0.005, n)),
            "close": close,
        }
    )
    if volume:
        frame["volume"] = rng.uniform(1e3, 5e3, n)
    if amount:
        frame["amount"] = frame["volume"] * close if volume else rng.uniform(1e5, 5e5, n)
    return frame
