"""Big-model loading: `device_map` through accelerate (auto, cpu, cpu+disk dicts, max_memory offload, multi-device
plans), `dtype` handling with float32-kept modules, eager/SDPA agreement, lean meta-device loading, and bad input.

No GPU is available here: device maps span "cpu" and "disk", and plans for 2 and 4 GPUs are computed by accelerate
for fake devices and then mapped onto cpu/disk to run. Every dispatched model must give the plain float32 load's
numbers within 1e-5 (tokens: exactly).
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch
import transformers
from accelerate import infer_auto_device_map
from accelerate.utils import compute_module_sizes
from conftest import TINY_MODEL_CONFIGS, TINY_TOKENIZER_CONFIGS, random_stamp, random_tokens
from transformers import AutoModel

from transformers_kronos import KronosConfig, KronosForTokenPrediction, KronosTokenizerConfig, KronosTokenizerModel
from transformers_kronos.utils import execution_device as _execution_device

ATOL = 1e-5
# a few blocks, so that there is something to split across devices
PREDICTOR_CONFIG = dict(TINY_MODEL_CONFIGS["tiny"], n_layers=4)
TOKENIZER_CONFIG = dict(TINY_TOKENIZER_CONFIGS["tiny"], n_enc_layers=3, n_dec_layers=3)
CLASSES = {"predictor": KronosForTokenPrediction, "tokenizer": KronosTokenizerModel}
CONFIGS = {"predictor": (KronosConfig, PREDICTOR_CONFIG), "tokenizer": (KronosTokenizerConfig, TOKENIZER_CONFIG)}

# explicit maps spanning cpu and disk; the predictor's embedding sits on disk, so the decoding loop must find the
# device it runs on from accelerate's hook (its weights are on the meta device)
SPLIT_MAPS = {
    "predictor": {
        "token_drop": "cpu",
        "embedding": "disk",
        "time_emb": "cpu",
        "transformer.0": "cpu",
        "transformer.1": "disk",
        "transformer.2": "cpu",
        "transformer.3": "disk",
        "norm": "cpu",
        "dep_layer": "disk",
        "head": "disk",
    },
    "tokenizer": {
        "embed": "disk",
        "head": "cpu",
        "encoder.0": "cpu",
        "encoder.1": "disk",
        "decoder": "disk",
        "quant_embed": "cpu",
        "post_quant_embed_pre": "disk",
        "post_quant_embed": "cpu",
        "tokenizer": "cpu",
    },
}


@pytest.fixture(autouse=True, scope="module")
def quiet():
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    yield
    transformers.utils.logging.enable_progress_bar()
    transformers.logging.set_verbosity(verbosity)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, upstream_checkpoint):
    """`{(kind, fmt): path}`: our `save_pretrained` (auto_map + code files) and upstream's own format."""
    paths = {}
    for kind, (config_cls, config) in CONFIGS.items():
        torch.manual_seed(1)
        model = CLASSES[kind](config_cls(**config))
        with torch.no_grad():  # move norm weights and biases off their constant init, so that each one matters
            for param in model.parameters():
                if param.dim() == 1:
                    param.add_(0.1 * torch.randn_like(param))
        path = tmp_path_factory.mktemp(f"converted-{kind}")
        model.save_pretrained(path)
        paths[kind, "converted"] = path
        paths[kind, "upstream"] = upstream_checkpoint("tokenizer" if kind == "tokenizer" else "model", config, seed=3)[0]
    return paths


def inputs(kind, seed=0):
    g = torch.Generator().manual_seed(seed)
    if kind == "tokenizer":
        x = torch.randn(2, 9, TOKENIZER_CONFIG["d_in"], generator=g)
        mask = torch.ones(2, 9, dtype=torch.long)
        mask[1, :3] = 0
        return {"x": x, "mask": mask}
    s1, s2 = random_tokens(PREDICTOR_CONFIG, 2, 9, g)
    stamp = random_stamp(2, 9, g)  # float32, as upstream feeds it
    future = random_stamp(2, 4, g)
    targets = torch.randint(0, 2 ** PREDICTOR_CONFIG["s1_bits"], s1.shape, generator=g)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, :3] = 0
    return {"s1": s1, "s2": s2, "stamp": stamp, "future": future, "targets": targets, "mask": mask}


@torch.no_grad()
def outputs(model, kind):
    """Every public inference path of the model, as a dict of tensors."""
    data = inputs(kind)
    if kind == "tokenizer":
        x, mask = data["x"], data["mask"]
        ids = model.encode(x)
        s1, s2 = model.encode(x, half=True)
        out = model(x, attention_mask=mask)
        return {
            "ids": ids,
            "s1": s1,
            "s2": s2,
            "decoded": model.decode(ids),
            "decoded_half": model.decode([s1, s2], half=True, attention_mask=mask),
            "reconstruction": out.reconstruction,
            "loss": out.loss,
        }
    s1, s2, stamp, mask = data["s1"], data["s2"], data["stamp"], data["mask"]
    s1_logits, context = model.decode_s1(s1, s2, stamp)
    out = model(s1, s2, stamp, attention_mask=mask, use_teacher_forcing=True, s1_targets=data["targets"])
    gen_s1, gen_s2, _ = model.generate_tokens(
        s1, s2, stamp, data["future"][:, :3], pred_len=3, sample_count=2, generator=torch.Generator().manual_seed(0)
    )
    padded_s1, padded_s2, _ = model.generate_tokens(
        s1, s2, stamp, data["future"][:, :2], pred_len=2, attention_mask=mask, max_context=6, top_k=5,
        generator=torch.Generator().manual_seed(1),
    )
    return {
        "s1_logits": s1_logits,
        "context": context,
        "s2_logits_one": model.decode_s2(context, data["targets"][:, -1:]),
        "s2_logits_teacher": model.decode_s2(context, data["targets"]),
        "forward_s1": out.s1_logits,
        "forward_s2": out.s2_logits,
        "gen_s1": gen_s1,
        "gen_s2": gen_s2,
        "padded_s1": padded_s1,
        "padded_s2": padded_s2,
    }


def assert_same(actual, expected, atol=ATOL):
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        got = actual[name].cpu()
        if value.is_floating_point():
            assert got.dtype == value.dtype, name
            torch.testing.assert_close(got, value, atol=atol, rtol=0, msg=lambda m: f"{name}: {m}")
        else:
            assert torch.equal(got, value), name


@pytest.fixture(scope="module")
def references(checkpoints):
    """Outputs of the plain float32 load of each checkpoint (no device_map)."""
    return {key: outputs(CLASSES[key[0]].from_pretrained(path), key[0]) for key, path in checkpoints.items()}


def parameter_devices(model):
    return {name: param.device.type for name, param in model.named_parameters()}


# ---------------------------------------------------------------------------------------------------------- device_map


@pytest.mark.parametrize("fmt", ["converted", "upstream"])
@pytest.mark.parametrize("kind", ["predictor", "tokenizer"])
@pytest.mark.parametrize("placement", ["auto", "cpu", "cpu+disk dict", "max_memory+offload"])
def test_device_map_matches_plain_load(checkpoints, references, tmp_path, kind, fmt, placement):
    path = checkpoints[kind, fmt]
    kwargs = {"offload_folder": str(tmp_path / "offload")}
    if placement in ("auto", "cpu"):
        kwargs = {"device_map": placement}
    elif placement == "cpu+disk dict":
        kwargs["device_map"] = SPLIT_MAPS[kind]
    else:  # room on the CPU for about half the weights: accelerate offloads the rest to disk
        with torch.device("meta"):
            total = compute_module_sizes(CLASSES[kind](CONFIGS[kind][0](**CONFIGS[kind][1])))[""]
        kwargs.update(device_map="auto", max_memory={"cpu": total // 2})
    model = CLASSES[kind].from_pretrained(path, **kwargs)
    assert not model.training

    devices = set(parameter_devices(model).values())
    if placement in ("auto", "cpu"):
        assert devices == {"cpu"}
    else:
        assert "disk" in model.hf_device_map.values()
        assert "meta" in devices  # offloaded weights stay on disk until their module runs
        if placement == "cpu+disk dict":
            assert model.hf_device_map == SPLIT_MAPS[kind]
        else:
            assert "cpu" in model.hf_device_map.values()
    assert_same(outputs(model, kind), references[kind, fmt])


def test_offloaded_embedding_runs_where_its_hook_says(checkpoints, tmp_path):
    model = KronosForTokenPrediction.from_pretrained(
        checkpoints["predictor", "converted"], device_map=SPLIT_MAPS["predictor"], offload_folder=str(tmp_path)
    )
    assert model.embedding.emb_s1.weight.device.type == "meta"
    assert _execution_device(model.embedding) == torch.device("cpu")
    assert _execution_device(model.head) == torch.device("cpu")


@pytest.mark.parametrize("kind", ["predictor", "tokenizer"])
@pytest.mark.parametrize("devices", [2, 4])
def test_multi_device_plan_keeps_blocks_whole_and_runs(checkpoints, references, tmp_path, kind, devices):
    path = checkpoints[kind, "converted"]
    model = CLASSES[kind].from_pretrained(path)
    sizes = compute_module_sizes(model)
    largest_block = max(
        sizes[name] for name, module in model.named_modules() if type(module).__name__ in model._no_split_modules
    )
    # each fake GPU gets a share of the weights plus the one block's headroom that accelerate reserves
    budget = sizes[""] // devices + largest_block
    max_memory = {i: budget for i in range(devices)}
    max_memory["cpu"] = 10 * sizes[""]
    plan = infer_auto_device_map(model, max_memory=max_memory, no_split_module_classes=model._no_split_modules)
    used = {device for device in plan.values() if isinstance(device, int)}
    assert used == set(range(devices)), plan  # the budget forces a split over every device

    def device_of(name):
        key = max((k for k in plan if k == "" or name == k or name.startswith(k + ".")), key=len)
        return plan[key]

    blocks = [name for name, m in model.named_modules() if type(m).__name__ in model._no_split_modules]
    assert blocks
    for block in blocks:
        names = [f"{block}.{n}" for n, _ in model.get_submodule(block).named_parameters()]
        names += [f"{block}.{n}" for n, _ in model.get_submodule(block).named_buffers()]
        assert len({str(device_of(n)) for n in names}) == 1, f"{block} is split: {plan}"

    # run the plan with the fake GPUs mapped onto real places: even ones to cpu, odd ones to disk
    on_host = {device: ("cpu" if device == "cpu" or device % 2 == 0 else "disk") for device in set(plan.values())}
    device_map = {name: on_host[device] for name, device in plan.items()}
    assert set(device_map.values()) == {"cpu", "disk"}
    dispatched = CLASSES[kind].from_pretrained(path, device_map=device_map, offload_folder=str(tmp_path))
    assert_same(outputs(dispatched, kind), references[kind, "converted"])


def test_no_split_modules_name_real_classes():
    """A misspelt entry would silently split nothing."""
    names = set()
    for kind, (config_cls, config) in CONFIGS.items():
        names |= {type(m).__name__ for m in CLASSES[kind](config_cls(**config)).modules()}
    for cls in CLASSES.values():
        assert set(cls._no_split_modules) <= names, set(cls._no_split_modules) - names
    assert {"KronosTransformerBlock", "KronosDependencyAwareLayer", "KronosDualHead", "KronosBSQuantizer"} <= set(
        KronosForTokenPrediction._no_split_modules
    )


@pytest.mark.slow  # a subprocess: a fresh interpreter imports torch and transformers
def test_remote_code_with_device_map_and_dtype(checkpoints, references, tmp_path):
    """The saved folder loads as remote code (the package made unimportable) with a cpu+disk map and bfloat16."""
    child = textwrap.dedent(
        """
        import json, sys
        sys.modules["transformers_kronos"] = None
        import torch, transformers
        from transformers import AutoModel
        transformers.logging.set_verbosity_error()
        data = torch.load(sys.argv[1], weights_only=True)
        model = AutoModel.from_pretrained(sys.argv[2], trust_remote_code=True, device_map=json.loads(sys.argv[3]),
                                          offload_folder=sys.argv[4])
        report = {"class": type(model).__module__, "map": model.hf_device_map}
        with torch.no_grad():
            logits, context = model.decode_s1(data["s1"], data["s2"], data["stamp"])
            report["s1_logits"] = (logits - data["s1_logits"]).abs().max().item()
            gen, _, _ = model.generate_tokens(data["s1"], data["s2"], data["stamp"], data["future"][:, :3], pred_len=3,
                                              sample_count=2, generator=torch.Generator().manual_seed(0))
            report["gen_equal"] = torch.equal(gen, data["gen_s1"])
        half = AutoModel.from_pretrained(sys.argv[2], trust_remote_code=True, dtype=torch.bfloat16)
        report["dtypes"] = {n: str(p.dtype) for n, p in half.named_parameters()}
        try:
            AutoModel.from_pretrained(sys.argv[2], trust_remote_code=True, device_map={"nope": "cpu", "": "cpu"})
            report["error"] = None
        except ValueError as err:
            report["error"] = str(err)
        print(json.dumps(report))
        """
    )
    expected = references["predictor", "converted"]
    data = dict(inputs("predictor"), s1_logits=expected["s1_logits"], gen_s1=expected["gen_s1"])
    torch.save(data, tmp_path / "data.pt")
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    done = subprocess.run(
        [sys.executable, "-c", child, str(tmp_path / "data.pt"), str(checkpoints["predictor", "converted"]),
         json.dumps(SPLIT_MAPS["predictor"]), str(tmp_path / "offload")],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["class"].startswith("transformers_modules"), report["class"]
    assert report["map"] == SPLIT_MAPS["predictor"]
    assert report["s1_logits"] <= ATOL
    assert report["gen_equal"]
    kept = re.compile("|".join(KronosForTokenPrediction._keep_in_fp32_modules_strict))
    for name, dtype in report["dtypes"].items():
        assert dtype == ("torch.float32" if kept.search(name) else "torch.bfloat16"), name
    assert report["error"] is not None and "nope" in report["error"]


# --------------------------------------------------------------------------------------------------------------- dtype


@pytest.mark.parametrize("kind", ["predictor", "tokenizer"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_load(checkpoints, references, kind, dtype):
    model = CLASSES[kind].from_pretrained(checkpoints[kind, "upstream"], dtype=dtype)
    kept = re.compile("|".join(model._keep_in_fp32_modules_strict))
    dtypes = {name: param.dtype for name, param in model.named_parameters()}
    assert any(kept.search(name) for name in dtypes) and not all(kept.search(name) for name in dtypes)
    for name, param_dtype in dtypes.items():
        assert param_dtype == (torch.float32 if kept.search(name) else dtype), name
    for name, buffer in model.named_buffers():
        if name.endswith("inv_freq"):
            assert buffer.dtype == torch.float32, name  # rotary frequencies are never rounded

    # every path takes the float32 inputs (stamps, candles) as they are and tracks the float32 numbers
    got, expected = outputs(model, kind), references[kind, "upstream"]
    if kind == "predictor":
        for name in ("s1_logits", "s2_logits_one", "s2_logits_teacher", "forward_s1", "forward_s2"):
            assert got[name].dtype == torch.float32, name  # the head is kept in float32
            cos = torch.nn.functional.cosine_similarity(got[name], expected[name], dim=-1)
            assert cos.min() > 0.9995, (name, cos.min())  # measured: 0.99985 in bfloat16
        assert got["context"].dtype == dtype
        assert got["gen_s1"].shape == expected["gen_s1"].shape
        # greedy tokens follow float32's (all equal here; a near-tie could flip one)
        assert (got["gen_s1"] == expected["gen_s1"]).float().mean() >= 0.9
    else:
        assert got["decoded"].dtype == dtype  # candles in the model's dtype
        assert (got["ids"] == expected["ids"]).float().mean() >= 0.95  # measured: all equal
        rel = (got["decoded"].float() - expected["decoded"]).norm() / expected["decoded"].norm()
        assert rel < 0.02  # measured: 0.0049 in bfloat16, 0.00066 in float16


@pytest.mark.parametrize("kind", ["predictor", "tokenizer"])
@pytest.mark.parametrize("fmt", ["converted", "upstream"])
def test_lean_half_precision_load_equals_transformers_path(checkpoints, kind, fmt, monkeypatch):
    """A plain `dtype=` load reads the file tensor by tensor (low peak memory); the weights are those of the mmap path."""
    from transformers_kronos import loading_kronos

    taken = []
    original = loading_kronos.open_for_half_precision

    def spy(*args):
        result = original(*args)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(loading_kronos, "open_for_half_precision", spy)
    path = checkpoints[kind, fmt]
    lean = CLASSES[kind].from_pretrained(path, dtype=torch.bfloat16)
    assert taken == [True]
    on_cpu = CLASSES[kind].from_pretrained(path, dtype=torch.bfloat16, device_map="cpu")
    assert taken == [True, True]
    # transformers' own path (a memory budget takes it there)
    mapped = CLASSES[kind].from_pretrained(path, dtype=torch.bfloat16, device_map="auto", max_memory={"cpu": "8GiB"})
    assert taken == [True, True, False]
    assert all(torch.equal(a, b) for a, b in zip(on_cpu.state_dict().values(), lean.state_dict().values()))
    assert not lean.training and lean.name_or_path == str(path)
    lean_state, mapped_state = lean.state_dict(), mapped.state_dict()
    assert lean_state.keys() == mapped_state.keys()
    for name, tensor in lean_state.items():
        assert tensor.dtype == mapped_state[name].dtype and torch.equal(tensor, mapped_state[name]), name


def test_keep_in_fp32_patterns_match_what_they_mean():
    predictor = KronosForTokenPrediction(KronosConfig(**PREDICTOR_CONFIG))
    tokenizer = KronosTokenizerModel(KronosTokenizerConfig(**TOKENIZER_CONFIG))
    for model, expected in (
        (predictor, {"norm", "head"}),
        (tokenizer, {"norm", "quant_embed"}),
    ):
        kept = re.compile("|".join(model._keep_in_fp32_modules_strict))
        roots = set()
        for name, module in model.named_modules():
            direct = [n for n, _ in module.named_parameters(recurse=False)]
            if direct and all(kept.search(f"{name}.{n}") for n in direct):
                roots.add("norm" if "Norm" in type(module).__name__ else name.split(".")[0])
        assert roots == expected


def test_dtype_auto_uses_the_checkpoint_dtype(tmp_path):
    torch.manual_seed(0)
    model = KronosForTokenPrediction(KronosConfig(**PREDICTOR_CONFIG)).to(torch.bfloat16)
    model.save_pretrained(tmp_path)
    loaded = KronosForTokenPrediction.from_pretrained(tmp_path, dtype="auto")
    assert {p.dtype for n, p in loaded.named_parameters() if not re.search("norm|head", n)} == {torch.bfloat16}
    full = KronosForTokenPrediction.from_pretrained(tmp_path, dtype=torch.float32)
    assert {p.dtype for p in full.parameters()} == {torch.float32}


@pytest.mark.parametrize("kind", ["predictor", "tokenizer"])
def test_half_precision_with_offload_keeps_fp32_modules(checkpoints, references, tmp_path, kind):
    """Float32-kept weights offloaded to disk come back in float32 (transformers takes the dtype of offloaded
    weights from the model as built, which is why the kept ones are built in float32)."""
    model = CLASSES[kind].from_pretrained(
        checkpoints[kind, "converted"], dtype=torch.bfloat16, device_map=SPLIT_MAPS[kind], offload_folder=str(tmp_path)
    )
    kept = re.compile("|".join(model._keep_in_fp32_modules_strict))
    offloaded = [name for name, param in model.named_parameters() if param.device.type == "meta"]
    assert any(kept.search(name) for name in offloaded)
    for name in offloaded:
        module_name, _, attr = name.rpartition(".")
        hook = model.get_submodule(module_name)._hf_hook
        assert hook.weights_map[attr].dtype == (torch.float32 if kept.search(name) else torch.bfloat16), name
    got, expected = outputs(model, kind), references[kind, "converted"]
    if kind == "predictor":
        assert got["s1_logits"].dtype == torch.float32  # from the offloaded, float32-kept head
        assert torch.nn.functional.cosine_similarity(got["s1_logits"], expected["s1_logits"], dim=-1).min() > 0.9995
    else:
        assert (got["ids"] == expected["ids"]).float().mean() >= 0.95


# ------------------------------------------------------------------------------------------------ attention, training


@pytest.mark.parametrize("kind", ["predictor", "tokenizer"])
def test_eager_and_sdpa_give_the_same_numbers(checkpoints, kind):
    """The fused kernel against the hand-written attention (itself held to upstream's in test_modeling_kronos.py)."""
    path = checkpoints[kind, "converted"]
    eager = CLASSES[kind].from_pretrained(path, attn_implementation="eager")
    sdpa = CLASSES[kind].from_pretrained(path, attn_implementation="sdpa")
    assert eager.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
    assert_same(outputs(eager, kind), outputs(sdpa, kind))
    assert CLASSES[kind].from_pretrained(path).config._attn_implementation == "sdpa"
    # train mode (no dropout in these configs) takes other masks: the tokenizer attends causally there
    data = inputs(kind)
    with torch.no_grad():
        if kind == "tokenizer":
            got = [m.train()(data["x"], attention_mask=data["mask"]).reconstruction for m in (eager, sdpa)]
        else:
            args = (data["s1"], data["s2"], data["stamp"])
            got = [m.train()(*args, attention_mask=data["mask"]).s1_logits for m in (eager, sdpa)]
    torch.testing.assert_close(got[1], got[0], atol=ATOL, rtol=0)


def test_loading_builds_the_model_on_the_meta_device(checkpoints, monkeypatch):
    """from_pretrained allocates no weights before reading the checkpoint (no float32 copy on the way to bf16)."""
    seen = []
    original = KronosForTokenPrediction.post_init

    def post_init(self):
        seen.append({p.device.type for p in self.parameters()})
        return original(self)

    monkeypatch.setattr(KronosForTokenPrediction, "post_init", post_init)
    KronosForTokenPrediction.from_pretrained(checkpoints["predictor", "converted"], dtype=torch.bfloat16)
    assert seen and seen[-1] == {"meta"}


# ------------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"device_map": "gpu7"}, "not a device"),
        ({"device_map": "cuda" if not torch.cuda.is_available() else "cuda:99"}, "cuda"),
        ({"device_map": "cuda:3" if torch.cuda.device_count() < 4 else "cuda:99"}, "cuda:(3|99)' (is not available|does)"),
        ({"device_map": {"": "cuda:3" if torch.cuda.device_count() < 4 else "cuda:99"}}, "cuda:(3|99)"),
        ({"device_map": "auto", "max_memory": {0 if not torch.cuda.is_available() else 99: "1GB", "cpu": "1GB"}},
         "max_memory key (0|99): .* is not a device"),
        ({"attn_implementation": "flash_attention_2"}, "does not support Flash Attention 2"),
        ({"attn_implementation": "nope"}, 'attn_implementation="nope"` is not supported'),
        ({"device_map": {"": "tpu"}}, "not a device"),
        ({"device_map": {"embedding": "cpu", "nope": "cpu", "": "cpu"}}, "does not have: \\['nope'\\]"),
        ({"device_map": {"embedding": "cpu", "transformer": "cpu"}}, "places no device"),
        ({"device_map": "auto", "max_memory": {"gpu0": "1GB", "cpu": "1GB"}}, "not a device"),
        ({"device_map": "auto", "max_memory": {"cpu": -5}}, "must not be negative"),
        ({"dtype": "bfloat17"}, "dtype"),
        ({"dtype": 3}, "dtype"),
    ],
)
def test_bad_placement_or_dtype_is_a_clear_value_error(checkpoints, kwargs, message):
    for fmt in ("converted", "upstream"):
        with pytest.raises(ValueError, match=message):
            KronosForTokenPrediction.from_pretrained(checkpoints["predictor", fmt], **kwargs)


@pytest.mark.parametrize("kind", ["predictor", "tokenizer"])
def test_auto_model_with_device_map(checkpoints, references, tmp_path, kind):
    """AutoModel without remote code (the installed package's registered classes) places the weights the same way."""
    model = AutoModel.from_pretrained(
        checkpoints[kind, "converted"], device_map=SPLIT_MAPS[kind], offload_folder=str(tmp_path)
    )
    assert type(model) is CLASSES[kind] and model.hf_device_map == SPLIT_MAPS[kind]
    assert_same(outputs(model, kind), references[kind, "converted"])


def test_bad_device_map_through_auto_model(checkpoints):
    with pytest.raises(ValueError, match="does not have"):
        AutoModel.from_pretrained(checkpoints["tokenizer", "converted"], device_map={"encoder.7": "cpu", "": "cpu"})


def test_disk_offload_without_a_folder(checkpoints, references, tmp_path):
    """From safetensors, offloaded weights are read in place (transformers' design); from a .bin checkpoint they
    must be re-saved, and without `offload_folder` transformers' own ValueError comes through unchanged."""
    model = KronosForTokenPrediction.from_pretrained(checkpoints["predictor", "converted"], device_map=SPLIT_MAPS["predictor"])
    assert_same(outputs(model, "predictor"), references["predictor", "converted"])

    source = KronosForTokenPrediction.from_pretrained(checkpoints["predictor", "converted"])
    source.config.save_pretrained(tmp_path)
    torch.save(source.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="offload_folder"):
        KronosForTokenPrediction.from_pretrained(tmp_path, device_map=SPLIT_MAPS["predictor"])
    loaded = KronosForTokenPrediction.from_pretrained(
        tmp_path, device_map=SPLIT_MAPS["predictor"], offload_folder=str(tmp_path / "offload")
    )
    assert any(name.endswith(".safetensors") for name in os.listdir(tmp_path / "offload"))
    assert_same(outputs(loaded, "predictor"), references["predictor", "converted"])
