"""Converted checkpoints as remote code: loaded where `transformers_kronos` cannot be imported, same numbers."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import TINY_MODEL_CONFIGS, TINY_TOKENIZER_CONFIGS, random_stamp, random_tokens
from transformers import AutoModel

from transformers_kronos import KronosForTokenPrediction, KronosTokenizerModel, convert_checkpoint

ATOL = 1e-5

# Runs in a fresh interpreter: `transformers_kronos` is made unimportable before anything else is imported, so the
# converted folders can only load through the code they ship (copied under HF_MODULES_CACHE by transformers).
CHILD = textwrap.dedent(
    """
    import json, sys
    sys.modules["transformers_kronos"] = None  # `import transformers_kronos` now raises ImportError
    import torch
    from transformers import AutoModel

    try:
        import transformers_kronos  # noqa: F401
        raise SystemExit("transformers_kronos must not be importable here")
    except ImportError:
        pass

    data = torch.load(sys.argv[1], weights_only=True)
    report = {}
    with torch.no_grad():
        model = AutoModel.from_pretrained(sys.argv[2], trust_remote_code=True)
        report["model_class"] = f"{type(model).__module__}.{type(model).__name__}"
        report["model_training"] = model.training
        logits, context = model.decode_s1(data["s1"], data["s2"], data["stamp"])
        s2_logits = model.decode_s2(context, data["targets"])
        report["s1_logits"] = (logits - data["s1_logits"]).abs().max().item()
        report["s2_logits"] = (s2_logits - data["s2_logits"]).abs().max().item()
        report["s1_argmax_equal"] = torch.equal(logits.argmax(-1), data["s1_logits"].argmax(-1))

        tokenizer = AutoModel.from_pretrained(sys.argv[3], trust_remote_code=True)
        report["tokenizer_class"] = f"{type(tokenizer).__module__}.{type(tokenizer).__name__}"
        ids = tokenizer.encode(data["x"])
        report["ids_equal"] = torch.equal(ids, data["ids"])
        report["decoded"] = (tokenizer.decode(ids) - data["decoded"]).abs().max().item()
    report["kronos_modules"] = sorted(m for m in sys.modules if m.startswith("transformers_kronos") and sys.modules[m])
    print(json.dumps(report))
    """
)


@pytest.mark.slow  # a subprocess: a fresh interpreter imports torch and transformers
def test_remote_code_without_the_package(upstream_checkpoint, tmp_path):
    model_config = TINY_MODEL_CONFIGS["odd_bits_fixed_te"]
    tok_config = TINY_TOKENIZER_CONFIGS["odd_bits"]
    model_src, model_ref = upstream_checkpoint("model", model_config, seed=7)
    tok_src, tok_ref = upstream_checkpoint("tokenizer", tok_config, seed=7)
    model_dst, tok_dst = tmp_path / "Kronos-converted", tmp_path / "Kronos-Tokenizer-converted"
    convert_checkpoint(model_src, model_dst)
    convert_checkpoint(tok_src, tok_dst)

    # the expected numbers come from upstream, in this process
    g = torch.Generator().manual_seed(0)
    s1, s2 = random_tokens(model_config, 2, 21, g)
    stamp = random_stamp(2, 21, g)
    targets = torch.randint(0, 2 ** model_config["s1_bits"], s1.shape, generator=g)
    x = torch.randn(2, 21, tok_config["d_in"], generator=g)
    with torch.no_grad():
        s1_logits, context = model_ref.decode_s1(s1, s2, stamp)
        ids = tok_ref.encode(x)
        data = dict(
            s1=s1, s2=s2, stamp=stamp, targets=targets, x=x, ids=ids, decoded=tok_ref.decode(ids),
            s1_logits=s1_logits, s2_logits=model_ref.decode_s2(context, targets),
        )
    torch.save(data, tmp_path / "expected.pt")

    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "expected.pt"), str(model_dst), str(tok_dst)],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["kronos_modules"] == []
    # the classes come from the code copied next to the weights, through transformers' dynamic modules
    assert report["model_class"].startswith("transformers_modules.") and report["model_class"].endswith(
        "modeling_kronos.KronosForTokenPrediction"
    )
    assert report["tokenizer_class"].startswith("transformers_modules.") and report["tokenizer_class"].endswith(
        "modeling_kronos.KronosTokenizerModel"
    )
    assert report["model_training"] is False
    assert report["s1_logits"] <= ATOL and report["s2_logits"] <= ATOL and report["decoded"] <= ATOL, report
    assert report["s1_argmax_equal"] and report["ids_equal"], report
    assert (tmp_path / "modules" / "transformers_modules").is_dir()

    # with the package imported, the same folders load as our classes without trust_remote_code
    assert type(AutoModel.from_pretrained(model_dst)) is KronosForTokenPrediction
    assert type(AutoModel.from_pretrained(tok_dst)) is KronosTokenizerModel


def test_saved_auto_map_is_loadable(tmp_path):
    """`save_pretrained` of either model writes `auto_map` entries the Auto classes can resolve (plain strings)."""
    from transformers_kronos import KronosConfig, KronosTokenizerConfig

    for name, model in (
        ("model", KronosForTokenPrediction(KronosConfig(**TINY_MODEL_CONFIGS["tiny"]))),
        ("tokenizer", KronosTokenizerModel(KronosTokenizerConfig(**TINY_TOKENIZER_CONFIGS["tiny"]))),
    ):
        model.save_pretrained(tmp_path / name)
        auto_map = json.loads((tmp_path / name / "config.json").read_text())["auto_map"]
        assert set(auto_map) == {"AutoConfig", "AutoModel"}
        assert all(isinstance(ref, str) for ref in auto_map.values()), auto_map
        assert auto_map["AutoModel"] == f"modeling_kronos.{type(model).__name__}"
        assert {"configuration_kronos.py", "modeling_kronos.py"} <= set(os.listdir(tmp_path / name))
