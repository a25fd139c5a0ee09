"""Shared fixtures: checkpoints written by the upstream reference implementation itself.

Parity tests compare against upstream (`pip install --no-deps kronos-model-arch einops`, imported as `model`).
`upstream` skips a test when the reference is missing, unless KRONOS_REQUIRE_UPSTREAM=1 (set by CI), where a
missing reference is an error: a parity test that skips in CI is a failed parity test.
"""

import copy
import importlib
import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

# The published sizes live in ONE place: tests/fixtures/kronos_reference_configs.json, a committed copy of the
# project's shared/kronos_reference_configs.json (upstream config.json values). A user's clone has no shared/
# folder, so the tests read the committed copy; where ../shared exists (CI, the team's machines),
# test_configuration_kronos.py checks that the two are equal, so the copy cannot drift.
REFERENCE_CONFIGS_PATH = Path(__file__).parent / "fixtures" / "kronos_reference_configs.json"
SHARED_REFERENCE_CONFIGS_PATH = Path(__file__).resolve().parents[1].parent / "shared" / REFERENCE_CONFIGS_PATH.name


def published_configs(prefix):
    """`{short name: upstream kwargs}` of every released entry named `prefix` + name (keys starting "_" dropped)."""
    entries = json.loads(REFERENCE_CONFIGS_PATH.read_text())
    return {
        name[len(prefix):]: {k: v for k, v in entry.items() if not k.startswith("_")}
        for name, entry in entries.items()
        if name.startswith(prefix) and isinstance(entry, dict) and "s1_bits" in entry
    }


PUBLISHED_TOKENIZER_CONFIGS = published_configs("Kronos-Tokenizer-")  # {"base": ...} (and "2k" once listed)
PUBLISHED_MODEL_CONFIGS = {
    name: config for name, config in published_configs("Kronos-").items() if not name.startswith("Tokenizer-")
}  # {"mini", "small", "base"}; Kronos-large was never released and has no config
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
    The folder is shared (tests only read it); the module is a fresh copy in eval mode on every call, so that a test
    that trains it, switches its mode or edits its weights cannot leak that into another test.
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
        path, module = made[key]
        return path, copy.deepcopy(module).eval()

    return build


def copy_with_config(checkpoint, destination, **changes):
    """A copy of the checkpoint folder `checkpoint` at `destination`, its `config.json` updated with `changes`."""
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


@pytest.fixture
def one_thread(monkeypatch):
    """
    One torch thread, for tests of tiny models (they gain nothing from threads, and contending threads on a busy
    2-core machine cost a lot), and OMP_NUM_THREADS=1 for the subprocesses they start.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """`(predictor dir, tokenizer dir)`: a random tiny pair in transformers format (fast to run), made per module."""
    from transformers_kronos import KronosConfig, KronosForTokenPrediction, KronosTokenizerConfig, KronosTokenizerModel

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny-kronos")
    KronosForTokenPrediction(KronosConfig(**TINY_MODEL_CONFIGS["tiny"], max_context=64)).save_pretrained(root / "model")
    KronosTokenizerModel(KronosTokenizerConfig(**TINY_TOKENIZER_CONFIGS["tiny"])).save_pretrained(root / "tokenizer")
    return str(root / "model"), str(root / "tokenizer")


EXPORT_SCRIPT = Path(__file__).resolve().parents[1] / "conversion_scripts" / "export_onnx.py"


def load_script(path: Path):
    """A script under conversion_scripts/ (not a package) as a module, named after its file."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_export_script():
    """conversion_scripts/export_onnx.py as a module (its `main(argv)` returns the exit status)."""
    return load_script(EXPORT_SCRIPT)


@pytest.fixture(scope="session")
def onnx_tiny(tmp_path_factory):
    """
    `{"model", "tokenizer", "onnx_model", "onnx_tokenizer"}`: folders of a random tiny predictor (max_context 32, so
    that short contexts reach the sliding window) and tokenizer, and their ONNX exports, written by
    conversion_scripts/export_onnx.py with --verify. Made once per session (exporting takes ~30 s); tests only read it.
    """
    from transformers_kronos import KronosConfig, KronosForTokenPrediction, KronosTokenizerConfig, KronosTokenizerModel

    torch.manual_seed(1)
    root = tmp_path_factory.mktemp("onnx-tiny")
    KronosForTokenPrediction(KronosConfig(**TINY_MODEL_CONFIGS["tiny"], max_context=32)).save_pretrained(root / "model")
    KronosTokenizerModel(KronosTokenizerConfig(**TINY_TOKENIZER_CONFIGS["tiny"])).save_pretrained(root / "tokenizer")
    script = load_export_script()
    for name in ("model", "tokenizer"):
        status = script.main(["--checkpoint", str(root / name), "--output", str(root / f"onnx_{name}"), "--verify"])
        assert status == 0, f"exporting the tiny {name} failed with exit status {status}"
    return {name: str(root / name) for name in ("model", "tokenizer", "onnx_model", "onnx_tokenizer")}
