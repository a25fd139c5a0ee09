"""ONNX export (transformers_kronos.onnx_export, conversion_scripts/export_onnx.py): the graphs in ONNX Runtime against
the PyTorch model, the cached step against the full pass, the published sizes against upstream, and bad input."""

import copy
import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from conftest import PUBLISHED_MODEL_CONFIGS, PUBLISHED_TOKENIZER_CONFIGS, load_export_script, random_stamp, random_tokens
from transformers_kronos import KronosForTokenPrediction, KronosTokenizerModel
from transformers_kronos.onnx import METADATA_NAME, read_metadata
from transformers_kronos.onnx_export import export_predictor, export_tokenizer, verify_export


def session(folder, graph):
    return ort.InferenceSession(str(Path(folder) / f"{graph}.onnx"), providers=["CPUExecutionProvider"])


def test_export_writes_the_graphs_config_and_their_description(onnx_tiny):
    model_meta, tokenizer_meta = read_metadata(onnx_tiny["onnx_model"]), read_metadata(onnx_tiny["onnx_tokenizer"])
    assert set(model_meta["graphs"]) == {"decode_s1", "decode_s2", "decode_s1_cached", "decode_s2_cached"}
    assert set(tokenizer_meta["graphs"]) == {"encode", "decode"}
    for folder, metadata in ((onnx_tiny["onnx_model"], model_meta), (onnx_tiny["onnx_tokenizer"], tokenizer_meta)):
        assert json.loads((Path(folder) / "config.json").read_text())["s1_bits"] == 4
        assert sorted(os.listdir(folder)) == sorted(["config.json", METADATA_NAME, *(g["file"] for g in metadata["graphs"].values())])
        for graph in metadata["graphs"].values():  # every name and dynamic axis as the graph itself holds them
            onnx_inputs = session(folder, graph["file"][:-5]).get_inputs()
            assert [i["name"] for i in graph["inputs"]] == [i.name for i in onnx_inputs]
    decode_s1 = model_meta["graphs"]["decode_s1"]
    assert [(i["name"], i["dtype"], i["shape"]) for i in decode_s1["inputs"]] == [
        ("s1_ids", "int64", ["batch", "seq"]), ("s2_ids", "int64", ["batch", "seq"]),
        ("stamp", "int64", ["batch", "seq", 5]), ("attention_mask", "int64", ["batch", "seq"]),
    ]  # fmt: skip
    assert [(o["name"], o["shape"]) for o in decode_s1["outputs"]] == [("s1_logits", ["batch", "seq", 16]), ("context", ["batch", "seq", 32])]
    cached = model_meta["graphs"]["decode_s1_cached"]
    names = [i["name"] for i in cached["inputs"]]
    # 2 blocks and the dependency layer
    assert names == ["s1_ids", "s2_ids", "stamp", "attention_mask", "position_ids"] + [
        f"past_{kind}_{i}" for i in range(3) for kind in ("key", "value")
    ]
    assert cached["inputs"][3]["shape"] == ["batch", "past + seq"]
    assert [o["name"] for o in cached["outputs"]][-2:] == ["present_key_2", "present_value_2"]
    assert model_meta["sizes"]["cache_layers"] == [{"heads": 2, "head_dim": 16}] * 2 + [{"heads": 4, "head_dim": 8}]


def test_graphs_match_pytorch_at_two_shapes(onnx_tiny):
    model = KronosForTokenPrediction.from_pretrained(onnx_tiny["model"])
    tokenizer = KronosTokenizerModel.from_pretrained(onnx_tiny["tokenizer"])
    shapes = ((2, 7, 4), (4, 21, 13))  # (batch, seq, held by the cached step)
    errors = verify_export(model, onnx_tiny["onnx_model"], shapes=shapes)
    errors.update(verify_export(tokenizer, onnx_tiny["onnx_tokenizer"], shapes=shapes))
    # measured: 1.2e-6 at most (decode 1.4e-6), encode's ids equal
    assert set(errors) == {"decode_s1", "decode_s2", "decode_s1_cached", "decode_s2_cached", "encode", "decode"}
    assert max(errors.values()) < 1e-5, errors


def test_cached_step_reproduces_the_full_pass(onnx_tiny):
    """A prompt through the cached step, then one position at a time, gives decode_s1's logits and context over the
    whole sequence, and decode_s2_cached gives decode_s2's last position (left padding in the second row)."""
    model = KronosForTokenPrediction.from_pretrained(onnx_tiny["model"])
    config = model.config.to_dict()
    generator = torch.Generator().manual_seed(3)
    s1, s2 = random_tokens(config, 2, 9, generator)
    stamp = random_stamp(2, 9, generator).long()
    mask = torch.ones(2, 9, dtype=torch.int64)
    mask[1, :3] = 0
    s1_next = torch.tensor([[5], [11]])
    with torch.no_grad():
        want_logits, want_context = model.decode_s1(s1, s2, stamp, mask)
        want_s2 = model.decode_s2(want_context, s1_next, mask)[:, -1]

    step = session(onnx_tiny["onnx_model"], "decode_s1_cached")
    layers = [(2, 16)] * 2 + [(4, 8)]
    past = [np.zeros((2, h, 0, d), np.float32) for h, d in layers for _ in range(2)]
    names = [f"past_{kind}_{i}" for i in range(3) for kind in ("key", "value")]
    logits, contexts = [], []
    for begin, end in ((0, 5), (5, 6), (6, 7), (7, 8), (8, 9)):
        out = step.run(None, {
            "s1_ids": s1[:, begin:end].numpy(), "s2_ids": s2[:, begin:end].numpy(), "stamp": stamp[:, begin:end].numpy(),
            "attention_mask": mask[:, :end].numpy(), "position_ids": np.arange(begin, end), **dict(zip(names, past)),
        })  # fmt: skip
        logits.append(out[0])
        contexts.append(out[1])
        past = out[2:]
    assert past[0].shape == (2, 2, 9, 16)
    # measured: 9.5e-7 (logits), 4.8e-7 (context)
    np.testing.assert_allclose(np.concatenate(logits, axis=1), want_logits.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.concatenate(contexts, axis=1), want_context.numpy(), rtol=0, atol=1e-5)

    (got_s2,) = session(onnx_tiny["onnx_model"], "decode_s2_cached").run(None, {
        "context": contexts[-1], "s1_ids": s1_next.numpy(), "attention_mask": mask.numpy(),
        "dep_key": past[-2], "dep_value": past[-1],
    })  # fmt: skip
    np.testing.assert_allclose(got_s2[:, -1], want_s2.numpy(), rtol=0, atol=1e-5)  # measured 4.8e-7


def test_verify_reports_a_graph_that_differs(onnx_tiny):
    model = KronosForTokenPrediction.from_pretrained(onnx_tiny["model"])
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.head.proj_s1.bias.add_(1e-3)  # the graphs now differ from this model by 1e-3 in the s1 logits
    with pytest.raises(ValueError, match=r"decode_s1: ONNX Runtime differs from PyTorch by 1\.0\de-03 \(above 0\.0001\)"):
        verify_export(other, onnx_tiny["onnx_model"])


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "is neither an existing directory nor a Hub repo id"),
        ("exists", "already exists; pass --force"),
        ("opset", "unsupported ONNX opset 12"),
        ("not_an_export", "refusing to replace"),
        ("no_config", "has no config.json"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(onnx_tiny, tmp_path, capsys, case, message):
    script = load_export_script()
    output = tmp_path / "out" / "export"
    args = {"checkpoint": onnx_tiny["model"], "output": str(output)}
    extra = []
    if case == "missing":
        args["checkpoint"] = str(tmp_path / "nowhere")
    elif case == "exists":
        output.mkdir(parents=True)
    elif case == "opset":
        extra = ["--opset", "12"]
    elif case == "not_an_export":
        output.mkdir(parents=True)
        (output / "notes.txt").write_text("keep me")
        extra = ["--force"]
    elif case == "no_config":
        (tmp_path / "empty").mkdir()
        args["checkpoint"] = str(tmp_path / "empty")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    status = script.main(["--checkpoint", args["checkpoint"], "--output", args["output"], *extra])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("export_onnx.py: error: ") and message in err, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_force_replaces_an_earlier_export(onnx_tiny, tmp_path, capsys):
    output = tmp_path / "tokenizer"
    script = load_export_script()
    assert script.main(["--checkpoint", onnx_tiny["tokenizer"], "--output", str(output)]) == 0
    (output / "encode.onnx").write_bytes(b"stale")
    assert script.main(["--checkpoint", onnx_tiny["tokenizer"], "--output", str(output), "--force"]) == 0
    assert "exported tokenizer (opset 18)" in capsys.readouterr().out
    assert (output / "encode.onnx").read_bytes() == (Path(onnx_tiny["onnx_tokenizer"]) / "encode.onnx").read_bytes()


# --------------------------------------------------------------------------------------------------------------------
# The published sizes against upstream
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.slow  # exporting Kronos-small and Tokenizer-base takes about a minute
def test_published_sizes_match_upstream_in_onnx_runtime(upstream_checkpoint, tmp_path):
    """Kronos-small and Tokenizer-base checkpoints that upstream writes: the four graphs in ONNX Runtime against
    upstream's decode_s1, decode_s2, encode(half=True) and decode(half=True), at two shapes (no padding: upstream's
    calls take none)."""
    model_path, upstream_model = upstream_checkpoint("model", PUBLISHED_MODEL_CONFIGS["small"])
    tokenizer_path, upstream_tokenizer = upstream_checkpoint("tokenizer", PUBLISHED_TOKENIZER_CONFIGS["base"])
    export_predictor(KronosForTokenPrediction.from_pretrained(model_path), tmp_path)
    export_tokenizer(KronosTokenizerModel.from_pretrained(tokenizer_path), tmp_path)
    graphs = {name: session(tmp_path, name) for name in ("decode_s1", "decode_s2", "encode", "decode")}
    config = PUBLISHED_MODEL_CONFIGS["small"]
    worst = {}
    for batch, seq in ((1, 16), (3, 61)):
        generator = torch.Generator().manual_seed(seq)
        s1, s2 = random_tokens(config, batch, seq, generator)
        stamp = random_stamp(batch, seq, generator)
        x = torch.randn(batch, seq, 6, generator=generator)
        s1_next = torch.randint(0, 2 ** config["s1_bits"], (batch, 1), generator=generator)
        ones = np.ones((batch, seq), np.int64)
        with torch.no_grad():
            want_logits, want_context = upstream_model.decode_s1(s1, s2, stamp)
            want_s2 = upstream_model.decode_s2(want_context, s1_next)
            want_ids = upstream_tokenizer.encode(x, half=True)
            want_x = upstream_tokenizer.decode([s1, s2], half=True)
        got_logits, got_context = graphs["decode_s1"].run(
            None, {"s1_ids": s1.numpy(), "s2_ids": s2.numpy(), "stamp": stamp.long().numpy(), "attention_mask": ones}
        )
        (got_s2,) = graphs["decode_s2"].run(
            None, {"context": want_context.numpy(), "s1_ids": s1_next.numpy(), "attention_mask": ones}
        )
        got_ids = graphs["encode"].run(None, {"x": x.numpy(), "attention_mask": ones})
        (got_x,) = graphs["decode"].run(None, {"s1_ids": s1.numpy(), "s2_ids": s2.numpy(), "attention_mask": ones})
        for name, got, want in (("s1_logits", got_logits, want_logits), ("context", got_context, want_context),
                                ("s2_logits", got_s2, want_s2), ("x", got_x, want_x)):  # fmt: skip
            worst[name] = max(worst.get(name, 0.0), float(np.abs(got - want.numpy()).max()))
        for got, want in zip(got_ids, want_ids):
            np.testing.assert_array_equal(got, want.numpy())
    print("largest |ONNX Runtime - upstream|:", worst)
    # the bound; measured: s1_logits 5.7e-6, context 3.8e-6, s2_logits 4.8e-6, x 1.4e-6
    assert max(worst.values()) < 1e-4, worst
