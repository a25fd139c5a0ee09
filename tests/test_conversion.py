"""Conversion of upstream checkpoints: the converter and its CLI, direct loading of upstream folders and repo ids."""

import json
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pytest
import torch
from conftest import (
    PUBLISHED_MODEL_CONFIGS,
    TINY_MODEL_CONFIGS,
    TINY_TOKENIZER_CONFIGS,
    copy_with_config,
    load_script,
    random_stamp,
    random_tokens,
)
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModel
from transformers.dynamic_module_utils import get_relative_import_files

from transformers_kronos import (
    KronosConfig,
    KronosForTokenPrediction,
    KronosTokenizerConfig,
    KronosTokenizerModel,
    convert_checkpoint,
)
from transformers_kronos import modeling_kronos
from transformers_kronos.conversion import ConversionNote

ATOL = 1e-5
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "conversion_scripts" / "convert_kronos_original_to_hf.py"
# the remote code is modeling_kronos.py and every sibling it imports (configuration_kronos.py), copied flat
REMOTE_CODE = {os.path.basename(p) for p in get_relative_import_files(modeling_kronos.__file__)} | {"modeling_kronos.py"}
EXPECTED_FILES = {"config.json", "model.safetensors", "README.md"} | REMOTE_CODE

CASES = [("model", name) for name in TINY_MODEL_CONFIGS] + [("tokenizer", name) for name in TINY_TOKENIZER_CONFIGS]


def config_of(kind, name):
    return (TINY_TOKENIZER_CONFIGS if kind == "tokenizer" else TINY_MODEL_CONFIGS)[name]


def load_cli():
    return load_script(SCRIPT)


@pytest.fixture(scope="module")
def cli():
    return load_cli()


def max_diff(a, b):
    return (a.float() - b.float()).abs().max().item()


def assert_verified_exactly(verification):
    """`--verify`'s report: every output identical to upstream's (docs/conversion.md says largest difference 0.0)."""
    assert verification.pop("token ids") == "identical"
    assert verification and all(diff == 0.0 for diff in verification.values()), verification


@torch.no_grad()
def assert_same_as_upstream(kind, config, ours, ref, seed=0):
    """Outputs of `ours` (float32) equal to upstream's within 1e-5, token ids identical."""
    g = torch.Generator().manual_seed(seed)
    if kind == "tokenizer":
        x = torch.randn(2, 19, config["d_in"], generator=g)
        ids = ours.encode(x)
        assert torch.equal(ids, ref.encode(x))
        for a, b in zip(ours.encode(x, half=True), ref.encode(x, half=True)):
            assert torch.equal(a, b)
        assert max_diff(ours.decode(ids), ref.decode(ids)) <= ATOL
        (ref_coarse, ref_full), _, _, ref_ids = ref(x)
        out = ours(x)
        assert torch.equal(out.indices, ref_ids)
        assert max_diff(out.reconstruction, ref_full) <= ATOL
        assert max_diff(out.coarse_reconstruction, ref_coarse) <= ATOL
        return
    s1, s2 = random_tokens(config, 2, 19, g)
    stamp = random_stamp(2, 19, g)
    targets = torch.randint(0, 2 ** config["s1_bits"], s1.shape, generator=g)
    logits, ctx = ours.decode_s1(s1, s2, stamp)
    ref_logits, ref_ctx = ref.decode_s1(s1, s2, stamp)
    assert max_diff(logits, ref_logits) <= ATOL
    assert max_diff(ctx, ref_ctx) <= ATOL
    assert torch.equal(logits.argmax(-1), ref_logits.argmax(-1))
    s2_logits = ours.decode_s2(ctx, targets)
    ref_s2_logits = ref.decode_s2(ref_ctx, targets)
    assert max_diff(s2_logits, ref_s2_logits) <= ATOL
    assert torch.equal(s2_logits.argmax(-1), ref_s2_logits.argmax(-1))
    out = ours(s1, s2, stamp, use_teacher_forcing=True, s1_targets=targets)
    _, ref_s2 = ref(s1, s2, stamp, use_teacher_forcing=True, s1_targets=targets)
    assert max_diff(out.s2_logits, ref_s2) <= ATOL


# --------------------------------------------------------------------------------------------------------------------
# Conversion: files, keys, parity, Auto classes
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind,name", CASES)
def test_conversion_parity_and_layout(upstream_checkpoint, tmp_path, kind, name):
    config = config_of(kind, name)
    src, ref = upstream_checkpoint(kind, config, seed=3)
    dst = tmp_path / "converted"
    result = convert_checkpoint(src, dst, verify=True)
    assert result["kind"] == kind and result["dtype"] == "float32" and result["source"] == "model.safetensors"
    assert_verified_exactly(result["verification"])
    assert set(os.listdir(dst)) == EXPECTED_FILES
    assert {"configuration_kronos.py", "modeling_kronos.py"} <= REMOTE_CODE
    for name in REMOTE_CODE:
        assert (dst / name).read_bytes() == (Path(modeling_kronos.__file__).parent / name).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted"], "no temporary directory may be left behind"

    written = json.loads((dst / "config.json").read_text())
    model_cls = KronosTokenizerModel if kind == "tokenizer" else KronosForTokenPrediction
    config_cls = KronosTokenizerConfig if kind == "tokenizer" else KronosConfig
    assert written["model_type"] == config_cls.model_type
    assert written["architectures"] == [model_cls.__name__]
    assert written["auto_map"] == {
        "AutoConfig": f"configuration_kronos.{config_cls.__name__}",
        "AutoModel": f"modeling_kronos.{model_cls.__name__}",
    }
    assert written["dtype"] == "float32"
    for key, value in config.items():
        assert written[key] == value, key

    # our key names are upstream's: the stored keys are exactly the model's state dict, rotary frequencies excluded
    model = AutoModel.from_pretrained(dst)  # no trust_remote_code: the registered classes are used
    assert type(model) is model_cls and not model.training
    with safe_open(dst / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert keys == set(model.state_dict())
    assert not any("inv_freq" in k for k in keys)
    with safe_open(src / "model.safetensors", "pt") as f:
        upstream_keys = set(f.keys())
    assert keys == {k for k in upstream_keys if not k.endswith("rotary.inv_freq")}

    assert isinstance(AutoConfig.from_pretrained(dst), config_cls)
    assert_same_as_upstream(kind, config, model, ref)

    # the upstream folder loads directly, with the very same numbers
    direct = model_cls.from_pretrained(src)
    assert not direct.training
    converted_state, direct_state = model.state_dict(), direct.state_dict()
    assert converted_state.keys() == direct_state.keys()
    assert all(torch.equal(converted_state[k], direct_state[k]) for k in converted_state)

    card = (dst / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\nlicense: mit\n")
    assert "- kronos" in card and "shiyu-coder/Kronos" in card and "MIT" in card
    assert "trust_remote_code=True" in card and "AutoModel.from_pretrained" in card


def test_direct_loading_wrong_kind_and_foreign_config(upstream_checkpoint, tmp_path):
    model_src, _ = upstream_checkpoint("model", TINY_MODEL_CONFIGS["tiny"])
    tok_src, _ = upstream_checkpoint("tokenizer", TINY_TOKENIZER_CONFIGS["tiny"])
    with pytest.raises(ValueError, match="holds a KronosTokenizer.*load it with KronosTokenizerModel"):
        KronosForTokenPrediction.from_pretrained(tok_src)
    with pytest.raises(ValueError, match="holds a Kronos but KronosTokenizer.*KronosForTokenPrediction"):
        KronosTokenizerModel.from_pretrained(model_src)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"hidden_size": 8, "vocab_size": 3}))
    with pytest.raises(ValueError, match="neither a Kronos predictor nor a Kronos tokenizer"):
        KronosForTokenPrediction.from_pretrained(foreign)
    # the converter says the same, and `kind` must agree with the checkpoint
    with pytest.raises(ValueError, match="holds a KronosTokenizer"):
        convert_checkpoint(tok_src, tmp_path / "out", kind="model")
    with pytest.raises(ValueError, match="max_context` applies to the predictor only"):
        convert_checkpoint(tok_src, tmp_path / "out", max_context=1024)
    assert not (tmp_path / "out").exists()


def fake_hub_cache(cache, repo_id, files, commit="0123456789abcdef0123456789abcdef01234567"):
    """A huggingface_hub cache holding `files` (name -> source path) as the `main` revision of `repo_id`."""
    repo_dir = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    for name, path in files.items():
        (snapshot / name).write_bytes(Path(path).read_bytes())
    return cache


def test_hub_repo_ids_offline(upstream_checkpoint, tmp_path, monkeypatch):
    """Repo ids go through the Hub cache: found there offline, and a clear error when absent."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    config = TINY_MODEL_CONFIGS["six_heads"]
    src, ref = upstream_checkpoint("model", config, seed=5)
    cache = fake_hub_cache(
        tmp_path / "hub", "someone/Kronos-test", {n: src / n for n in ("config.json", "model.safetensors")}
    )
    model = KronosForTokenPrediction.from_pretrained("someone/Kronos-test", cache_dir=cache)
    assert_same_as_upstream("model", config, model, ref)
    model = KronosForTokenPrediction.from_pretrained("someone/Kronos-test", cache_dir=cache, local_files_only=True)
    assert_same_as_upstream("model", config, model, ref)

    result = convert_checkpoint("someone/Kronos-test", tmp_path / "converted", cache_dir=cache)
    assert "base_model: someone/Kronos-test" in (tmp_path / "converted" / "README.md").read_text()
    assert_same_as_upstream("model", config, KronosForTokenPrediction.from_pretrained(result["path"]), ref)

    for missing in ("nobody/no-such-kronos", str(tmp_path / "typo" / "Kronos-small")):
        with pytest.raises(OSError, match=f"cannot load '{missing}': it is not a local directory, and as a Hub repo"):
            KronosForTokenPrediction.from_pretrained(missing, cache_dir=cache)
    with pytest.raises(OSError, match="cannot load 'nobody/no-such-kronos'"):
        KronosTokenizerModel.from_pretrained("nobody/no-such-kronos", local_files_only=True)
    with pytest.raises(ValueError, match="'nobody/no-such-kronos' is not a local directory.*could not be fetched"):
        convert_checkpoint("nobody/no-such-kronos", tmp_path / "never", cache_dir=cache)
    with pytest.raises(ValueError, match="cannot push to the Hub with HF_HUB_OFFLINE"):
        convert_checkpoint(src, tmp_path / "never", push_to_hub="someone/kronos-converted")
    assert not (tmp_path / "never").exists()


# --------------------------------------------------------------------------------------------------------------------
# Options: dtype, force, max_context, pickles
# --------------------------------------------------------------------------------------------------------------------


def test_bfloat16_conversion_with_verify(upstream_checkpoint, tmp_path):
    config = TINY_MODEL_CONFIGS["odd_bits_fixed_te"]
    src, ref = upstream_checkpoint("model", config, seed=1)
    dst = tmp_path / "bf16"
    result = convert_checkpoint(src, dst, dtype="bfloat16", verify=True)
    assert result["dtype"] == "bfloat16"
    assert result["verification"]["token ids"] == "identical"
    assert all(v <= ATOL for k, v in result["verification"].items() if k != "token ids")
    assert json.loads((dst / "config.json").read_text())["dtype"] == "bfloat16"
    with safe_open(dst / "model.safetensors", "pt") as f:
        stored = {k: f.get_tensor(k).dtype for k in f.keys()}
    # the file holds what transformers holds in memory for a bfloat16 load (modules the model keeps in float32
    # at half precision, if any, stay float32), and loads back as such
    in_memory = KronosForTokenPrediction.from_pretrained(src, dtype=torch.bfloat16).state_dict()
    assert stored == {k: v.dtype for k, v in in_memory.items()}
    assert sum(v == torch.bfloat16 for v in stored.values()) > len(stored) // 2
    assert "rounded from float32 to bfloat16" in (dst / "README.md").read_text()
    model = KronosForTokenPrediction.from_pretrained(dst)
    assert model.dtype == torch.bfloat16
    assert {k: v.dtype for k, v in model.state_dict().items()} == stored

    # computed in float32, the converted weights are upstream's weights rounded as stored, nothing else
    rounded = {k: v.to(stored[k]).float() if "inv_freq" not in k else v for k, v in ref.state_dict().items()}
    ref_rounded = type(ref)(**config)
    ref_rounded.load_state_dict(rounded)
    assert_same_as_upstream("model", config, KronosForTokenPrediction.from_pretrained(dst, dtype=torch.float32), ref_rounded.eval())


def test_force_reconversion_is_idempotent(upstream_checkpoint, tmp_path):
    config = TINY_TOKENIZER_CONFIGS["odd_bits"]
    src, ref = upstream_checkpoint("tokenizer", config, seed=2)
    dst = tmp_path / "tok"
    convert_checkpoint(src, dst, verify=True)
    first = {name: (dst / name).read_bytes() for name in EXPECTED_FILES}
    with pytest.raises(ValueError, match="already exists; pass --force"):
        convert_checkpoint(src, dst)
    assert {name: (dst / name).read_bytes() for name in EXPECTED_FILES} == first
    (dst / "stale.txt").write_text("left over from an earlier conversion")
    convert_checkpoint(src, dst, force=True)
    assert set(os.listdir(dst)) == EXPECTED_FILES, "--force replaces the directory, it does not merge into it"
    assert {name: (dst / name).read_bytes() for name in EXPECTED_FILES} == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]
    # a converted checkpoint converts again (here: to float16), keeping its numbers
    convert_checkpoint(dst, tmp_path / "tok16", dtype="float16")
    assert KronosTokenizerModel.from_pretrained(tmp_path / "tok16").dtype == torch.float16
    assert_same_as_upstream("tokenizer", config, KronosTokenizerModel.from_pretrained(dst), ref)


def test_max_context_and_published_mini(upstream_checkpoint, tmp_path, cli, capsys):
    src, _ = upstream_checkpoint("model", PUBLISHED_MODEL_CONFIGS["mini"])
    with pytest.warns(ConversionNote, match="Kronos-mini was trained with a 2048-candle context"):
        assert_verified_exactly(convert_checkpoint(src, tmp_path / "mini-512", verify=True)["verification"])
    card = (tmp_path / "mini-512" / "README.md").read_text()
    assert "# Kronos-mini (transformers format)" in card and "NeoQuasar/Kronos-Tokenizer-2k" in card
    assert json.loads((tmp_path / "mini-512" / "config.json").read_text())["max_context"] == 512

    capsys.readouterr()
    code = cli.main(["--checkpoint", str(src), "--output", str(tmp_path / "mini"), "--max-context", "2048"])
    captured = capsys.readouterr()
    assert code == 0 and captured.err == "", captured.err
    assert "converted predictor (float32, from model.safetensors)" in captured.out
    assert KronosForTokenPrediction.from_pretrained(tmp_path / "mini").config.max_context == 2048
    assert "trained with a context of 2048 candles" in (tmp_path / "mini" / "README.md").read_text()
    # loading the upstream folder directly takes the same override
    assert KronosForTokenPrediction.from_pretrained(src, max_context=2048).config.max_context == 2048


def test_pickle_checkpoints(upstream_checkpoint, tmp_path):
    config = TINY_MODEL_CONFIGS["tiny"]
    src, ref = upstream_checkpoint("model", config, seed=4)
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "config.json").write_bytes((src / "config.json").read_bytes())
    torch.save(ref.state_dict(), legacy / "pytorch_model.bin")
    with pytest.raises(ValueError, match="holds only a pickled pytorch_model.bin.*--allow-pickle"):
        convert_checkpoint(legacy, tmp_path / "out")
    result = convert_checkpoint(legacy, tmp_path / "out", allow_pickle=True, verify=True)
    assert result["source"] == "pytorch_model.bin"
    assert_same_as_upstream("model", config, KronosForTokenPrediction.from_pretrained(tmp_path / "out"), ref)
    # a pickle that needs arbitrary code is refused even when pickles are allowed
    torch.save({"weights": ref.state_dict(), "hook": ConversionNote}, legacy / "pytorch_model.bin")
    with pytest.raises(ValueError, match="could not be read safely"):
        convert_checkpoint(legacy, tmp_path / "other", allow_pickle=True)
    assert not (tmp_path / "other").exists()


# --------------------------------------------------------------------------------------------------------------------
# Bad input through the command line
# --------------------------------------------------------------------------------------------------------------------


def _broken_checkpoints(base, src):
    """name -> (extra CLI arguments, checkpoint directory) for every kind of bad input."""
    config = json.loads((src / "config.json").read_text())
    weights = (src / "model.safetensors").read_bytes()

    def make(name, config_text=None, weights_bytes=weights):
        path = base / name
        path.mkdir()
        if config_text is not None:
            (path / "config.json").write_text(config_text)
        if weights_bytes is not None:
            (path / "model.safetensors").write_bytes(weights_bytes)
        return path

    wrong_shape = dict(config, ff_dim=config["ff_dim"] + 8)
    with safe_open(src / "model.safetensors", "pt") as f:
        fewer = {k: f.get_tensor(k) for k in f.keys() if not k.startswith("head.")}
    make("missing-weights", json.dumps(config), None)
    save_file(fewer, base / "missing-weights" / "model.safetensors")
    with safe_open(src / "model.safetensors", "pt") as f:
        nan = {k: f.get_tensor(k) for k in f.keys()}
    nan["head.proj_s1.weight"][0, 0] = float("nan")
    make("nan-weights", json.dumps(config), None)
    save_file(nan, base / "nan-weights" / "model.safetensors")
    pickled = make("pickle-only", json.dumps(config), None)
    torch.save({"x": torch.zeros(1)}, pickled / "pytorch_model.bin")
    return {
        "missing source": ([], base / "does-not-exist"),
        "missing repo id": ([], "nobody/no-such-kronos"),
        "no config": ([], make("no-config")),
        "invalid json": ([], make("invalid-json", "{not json")),
        "neither kind": ([], make("neither", json.dumps({"hidden_size": 8, "num_layers": 2}))),
        "foreign model_type": ([], make("llama", json.dumps({"model_type": "llama", "hidden_size": 8}))),
        "wrong kind": (["--kind", "tokenizer"], src),
        "no weights": ([], make("no-weights", json.dumps(config), None)),
        "truncated weights": ([], make("truncated", json.dumps(config), weights[: len(weights) // 2])),
        "corrupt weights": ([], make("corrupt", json.dumps(config), b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")),
        "shapes contradict config": ([], make("wrong-shape", json.dumps(wrong_shape))),
        "weights missing": ([], base / "missing-weights"),
        "nan weights": ([], base / "nan-weights"),
        "pickle only": ([], pickled),
        "bad max context": (["--max-context", "0"], src),
        "bad dtype": (["--dtype", "int8"], src),
        "bad push target": (["--push-to-hub", "owner/not a repo"], src),
        "push while offline": (["--push-to-hub", "someone/kronos"], src),
        "revision of a local dir": (["--revision", "main"], src),
    }


EXPECTED_ERRORS = {
    "missing source": "neither an existing directory nor a Hub repo id",
    "missing repo id": "could not be fetched",
    "no config": "has no config.json",
    "invalid json": "is not valid JSON",
    "neither kind": "neither a Kronos predictor nor a Kronos tokenizer",
    "foreign model_type": "model_type 'llama': not a Kronos checkpoint",
    "wrong kind": "holds a Kronos but KronosTokenizer was asked for",
    "no weights": "has no model.safetensors",
    "truncated weights": "truncated or corrupt",
    "corrupt weights": "truncated or corrupt",
    "shapes contradict config": "contradict config.json: .*ffn.w[13].weight has shape",
    "weights missing": "lacks weights the config implies: head.",
    "nan weights": "holds NaN or infinite weights in head.proj_s1.weight: a broken checkpoint",
    "pickle only": "holds only a pickled pytorch_model.bin",
    "bad max context": "max_context` must be a positive integer",
    "bad dtype": "invalid choice: 'int8'",
    "bad push target": "not a valid repo id",
    "push while offline": "cannot push to the Hub with HF_HUB_OFFLINE",
    "revision of a local dir": "only applies to Hub repo ids",
}


def test_cli_bad_input(upstream_checkpoint, tmp_path, cli, capsys, monkeypatch):
    """Every bad input: non-zero exit, one line on stderr, no traceback, nothing written."""
    import re

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    src, _ = upstream_checkpoint("model", TINY_MODEL_CONFIGS["tiny"])
    broken = tmp_path / "broken"
    broken.mkdir()
    cases = _broken_checkpoints(broken, src)
    assert set(cases) == set(EXPECTED_ERRORS)
    out_root = tmp_path / "out"
    out_root.mkdir()
    for name, (extra, checkpoint) in cases.items():
        dst = out_root / "nested" / name.replace(" ", "-")
        try:
            code = cli.main(["--checkpoint", str(checkpoint), "--output", str(dst), *extra])
        except SystemExit as exit_:  # argparse
            code = exit_.code
        captured = capsys.readouterr()
        assert code not in (0, None), name
        lines = captured.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, captured.err)
        assert "Traceback" not in captured.err
        assert re.search(EXPECTED_ERRORS[name], lines[0]), (name, lines[0])
        assert captured.out == "", name
        assert not dst.exists() and not (out_root / "nested").exists(), name
    assert list(out_root.iterdir()) == []

    # an existing output is refused and left alone
    existing = out_root / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    assert cli.main(["--checkpoint", str(src), "--output", str(existing)]) != 0
    assert capsys.readouterr().err.startswith("error: the output")
    assert os.listdir(existing) == ["keep.txt"]


def test_cli_verify_without_upstream(upstream_checkpoint, tmp_path, cli, capsys, monkeypatch):
    src, _ = upstream_checkpoint("tokenizer", TINY_TOKENIZER_CONFIGS["tiny"])
    monkeypatch.setitem(sys.modules, "model", None)  # the upstream reference is not importable
    code = cli.main(["--checkpoint", str(src), "--output", str(tmp_path / "out"), "--verify"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "verification needs the upstream reference implementation" in err and "kronos-model-arch" in err
    assert list(tmp_path.iterdir()) == []


def test_failed_verification_leaves_nothing(upstream_checkpoint, tmp_path, monkeypatch):
    """A failure after the checkpoint was written to the temporary folder removes it and the parents made for it."""
    from transformers_kronos import conversion

    src, _ = upstream_checkpoint("model", TINY_MODEL_CONFIGS["tiny"])
    monkeypatch.setattr(conversion, "_VERIFY_TOLERANCE", -1.0)  # no difference passes, not even 0.0
    with pytest.raises(ValueError, match="verification failed: s1 logits differ from upstream by 0"):
        convert_checkpoint(src, tmp_path / "a" / "b" / "out", verify=True)
    assert list(tmp_path.iterdir()) == []
    convert_checkpoint(src, tmp_path / "out")  # an earlier conversion, which a failed one must leave as it was
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    with pytest.raises(ValueError, match="verification failed"):
        convert_checkpoint(src, tmp_path / "out", verify=True, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before


def test_force_replaces_only_checkpoints(upstream_checkpoint, tmp_path, monkeypatch):
    """`--force` replaces an earlier checkpoint or an empty directory, never a mistyped path's unrelated files."""
    src, _ = upstream_checkpoint("model", TINY_MODEL_CONFIGS["tiny"])
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("not a checkpoint")
    monkeypatch.chdir(work)
    for output in ("", "   ", None, 3):
        with pytest.raises(ValueError, match="must be a directory path"):
            convert_checkpoint(src, output, force=True)
    for output in (".", work):
        with pytest.raises(ValueError, match="refusing to replace .*not a Kronos checkpoint directory"):
            convert_checkpoint(src, output, force=True)
    (work / "file.bin").write_bytes(b"data")
    (work / "link").symlink_to(tmp_path / "elsewhere")
    for output in ("file.bin", "link"):
        with pytest.raises(ValueError, match="exists and is not a directory"):
            convert_checkpoint(src, output, force=True)
    assert sorted(os.listdir(work)) == ["file.bin", "link", "notes.txt"]
    assert (work / "notes.txt").read_text() == "not a checkpoint" and (work / "file.bin").read_bytes() == b"data"
    (work / "empty").mkdir()
    convert_checkpoint(src, "empty", force=True)
    assert set(os.listdir(work / "empty")) == EXPECTED_FILES


def test_output_around_the_source_is_refused(upstream_checkpoint, tmp_path):
    src, _ = upstream_checkpoint("model", TINY_MODEL_CONFIGS["tiny"])
    with pytest.raises(ValueError, match="must differ from the checkpoint directory"):
        convert_checkpoint(src, src, force=True)
    with pytest.raises(ValueError, match="must not contain the checkpoint directory"):
        convert_checkpoint(src, src.parent, force=True)
    assert (src / "model.safetensors").is_file()


@pytest.mark.slow  # a subprocess: a fresh interpreter imports torch and transformers
def test_cli_subprocess(upstream_checkpoint, tmp_path):
    """The script as a process: a Hub id from the cache (offline), bfloat16 with --verify; then a failure."""
    config = TINY_TOKENIZER_CONFIGS["tiny"]
    src, ref = upstream_checkpoint("tokenizer", config, seed=6)
    cache = fake_hub_cache(
        tmp_path / "hub", "NeoQuasar/Kronos-Tokenizer-base", {n: src / n for n in ("config.json", "model.safetensors")}
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), PYTHONWARNINGS="ignore")
    dst = tmp_path / "out" / "Kronos-Tokenizer-base"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--checkpoint", "NeoQuasar/Kronos-Tokenizer-base", "--output", str(dst),
         "--dtype", "bfloat16", "--verify"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"converted tokenizer (bfloat16, from model.safetensors) -> {dst}" in done.stdout
    assert "verified against upstream" in done.stdout and "token ids identical" in done.stdout
    card = (dst / "README.md").read_text()
    assert "base_model: NeoQuasar/Kronos-Tokenizer-base" in card
    assert "It is the tokenizer of **NeoQuasar/Kronos-small and NeoQuasar/Kronos-base**" in card
    assert KronosTokenizerModel.from_pretrained(dst).dtype == torch.bfloat16

    # a truncated safetensors file, in a real process: exit 1, one line, no traceback, no output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_bytes((src / "config.json").read_bytes())
    (broken / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes()[:-100])
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--checkpoint", str(broken), "--output", str(tmp_path / "never")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and "truncated or corrupt" in done.stderr
    assert not (tmp_path / "never").exists()


def test_push_to_hub_uploads_the_converted_folder(upstream_checkpoint, tmp_path, monkeypatch):
    """The upload itself, against a stand-in for the Hub API (no machine here reaches the Hub)."""
    import huggingface_hub

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs, sorted(os.listdir(kwargs["folder_path"]))))

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    src, _ = upstream_checkpoint("tokenizer", TINY_TOKENIZER_CONFIGS["tiny"])
    result = convert_checkpoint(src, tmp_path / "out", push_to_hub="someone/kronos-tok")
    assert calls[1] == ("create_repo", "someone/kronos-tok", {"repo_type": "model", "private": None, "exist_ok": True})
    _, upload, files = calls[2]
    assert upload["repo_id"] == "someone/kronos-tok" and upload["folder_path"] == result["path"]
    assert set(files) == EXPECTED_FILES  # weights, config, remote code and model card, all of it
    assert "someone/kronos-tok" in (tmp_path / "out" / "README.md").read_text()

    class FailingApi(FakeApi):
        def upload_folder(self, **kwargs):
            raise OSError("403 Forbidden: no write access")  # HfHubHTTPError and network errors are OSErrors

    monkeypatch.setattr(huggingface_hub, "HfApi", FailingApi)
    with pytest.raises(ValueError, match=r"written to .*out2' but pushing it to 'someone/kronos-tok' failed: 403"):
        convert_checkpoint(src, tmp_path / "out2", push_to_hub="someone/kronos-tok")
    assert set(os.listdir(tmp_path / "out2")) == EXPECTED_FILES  # the converted folder is kept


def test_cli_notes_unknown_config_keys(upstream_checkpoint, tmp_path, cli, capsys):
    src, _ = upstream_checkpoint("tokenizer", TINY_TOKENIZER_CONFIGS["tiny"])
    typo = copy_with_config(src, tmp_path / "typo", n_enc_layer=2)
    assert cli.main(["--checkpoint", str(typo), "--output", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "note: config.json has key(s) ['n_enc_layer'] that Kronos does not read" in err
    assert err.count("\n") == 1
