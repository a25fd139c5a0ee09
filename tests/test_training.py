"""Fine-tuning with the transformers Trainer: upstream loss parity, accumulation, precision, checkpoints, DDP, scripts."""

import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import PUBLISHED_MODEL_CONFIGS, TINY_MODEL_CONFIGS, TINY_TOKENIZER_CONFIGS, random_klines
from transformers import AutoModel, TrainerCallback, TrainingArguments

from transformers_kronos import KronosConfig, KronosForTokenPrediction, KronosTokenizerConfig, KronosTokenizerModel
from transformers_kronos.data import KronosWindowDataset
from transformers_kronos.training import (
    KronosTokenizerTrainer,
    KronosTrainer,
    KronosWindowCollator,
    check_tokenizer_compatible,
    tokenize_windows,
)

ROOT = Path(__file__).resolve().parents[1]
MODEL_CONFIG = TINY_MODEL_CONFIGS["tiny"]
TOKENIZER_CONFIG = TINY_TOKENIZER_CONFIGS["tiny"]
LOOKBACK, PRED_WINDOW = 12, 3


def kline_frame(n=60, seed=0):
    return random_klines(n, seed, start="2024-05-06 09:30", freq="15min")


def windows(count, seed=0):
    """A dataset of exactly `count` windows."""
    return KronosWindowDataset(kline_frame(LOOKBACK + PRED_WINDOW + count, seed), LOOKBACK, PRED_WINDOW)


def args(tmp_path, **kwargs):
    defaults = dict(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
        save_strategy="no",
        logging_steps=1,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        learning_rate=1e-3,
        seed=0,
        dataloader_num_workers=0,
    )
    defaults.update(kwargs)
    return TrainingArguments(**defaults)


@pytest.fixture
def checkpoints(upstream_checkpoint):
    """Upstream-format predictor and tokenizer directories (written by upstream itself) and fresh upstream modules."""
    model_path, up_model = upstream_checkpoint("model", MODEL_CONFIG, seed=3)
    tok_path, up_tok = upstream_checkpoint("tokenizer", TOKENIZER_CONFIG, seed=4)
    return model_path, tok_path, up_model, up_tok


def load(checkpoints, **config):
    model_path, tok_path = checkpoints[:2]
    model = KronosForTokenPrediction.from_pretrained(model_path)
    for key, value in config.items():
        setattr(model.config, key, value)
    return model, KronosTokenizerModel.from_pretrained(tok_path)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(a, b, **tol):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=lambda m, key=key: f"{key}: {m}", **tol)


# ---------------------------------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("mode", ["teacher_forcing", "sampled"])
def test_first_step_loss_equals_upstream(checkpoints, upstream_checkpoint, tmp_path, mode):
    """The Trainer's loss on its first batch equals upstream's fine-tuning loss for the same batch and weights, with
    Kronos-small's dropout rates (every kind of dropout on) and the same seed on both sides.

    "sampled" is what upstream's fine-tuning scripts do (s2 conditioned on an s1 drawn from the model, same seed on
    both sides); "teacher_forcing" is upstream's `use_teacher_forcing=True, s1_targets=...` switch.
    """
    rates = {k: v for k, v in PUBLISHED_MODEL_CONFIGS["small"].items() if k.endswith("dropout_p")}
    model_path, up_model = upstream_checkpoint("model", {**MODEL_CONFIG, **rates}, seed=3)
    _, tok_path, _, up_tok = checkpoints
    model, tokenizer = load((model_path, tok_path), s2_conditioning=mode)
    trainer = KronosTrainer(model=model, args=args(tmp_path), train_dataset=windows(8), kronos_tokenizer=tokenizer)
    batch = next(iter(trainer.get_train_dataloader()))
    model.train()
    torch.manual_seed(11)
    loss = trainer.compute_loss(model, batch)

    up_model.train()
    with torch.no_grad():
        s1, s2 = up_tok.encode(batch["x"], half=True)
    torch.manual_seed(11)
    s1_logits, s2_logits = up_model(
        s1[:, :-1],
        s2[:, :-1],
        batch["stamp"][:, :-1],
        use_teacher_forcing=mode == "teacher_forcing",
        s1_targets=s1[:, 1:],
    )
    expected = up_model.head.compute_loss(s1_logits, s2_logits, s1[:, 1:], s2[:, 1:])[0]
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)


def test_loss_goes_down_on_a_fixed_batch(checkpoints, tmp_path):
    model, tokenizer = load(checkpoints)
    data = windows(8)
    trainer = KronosTrainer(
        model=model,
        args=args(tmp_path, max_steps=8, per_device_train_batch_size=8, learning_rate=2e-2),
        train_dataset=data,
        kronos_tokenizer=tokenizer,
    )
    batch = KronosWindowCollator()([data[i] for i in range(8)])
    model.eval()
    with torch.no_grad():
        before = float(trainer.compute_loss(model, batch))
    trainer.train()
    model.eval()
    with torch.no_grad():
        after = float(trainer.compute_loss(model, batch))
    assert after < 0.7 * before, (before, after)
    # the frozen tokenizer did not move and never collected gradients
    assert all(p.grad is None and not p.requires_grad for p in tokenizer.parameters())
    assert_same_state(state(tokenizer), state(KronosTokenizerModel.from_pretrained(checkpoints[1])), rtol=0, atol=0)


def test_gradient_accumulation_equals_bigger_batch(checkpoints, tmp_path):
    results = []
    for batch_size, accumulation in ((4, 1), (2, 2), (1, 4)):
        model, tokenizer = load(checkpoints)
        trainer = KronosTrainer(
            model=model,
            args=args(
                tmp_path / f"{batch_size}x{accumulation}",
                max_steps=1,
                per_device_train_batch_size=batch_size,
                gradient_accumulation_steps=accumulation,
                optim="sgd",
                learning_rate=0.5,
                max_grad_norm=0.0,  # no clipping: compare raw gradients
            ),
            train_dataset=windows(4),
            kronos_tokenizer=tokenizer,
        )
        out = trainer.train()
        results.append((out.training_loss, state(model)))
    (loss, reference), *others = results
    initial = state(load(checkpoints)[0])
    assert any(not torch.equal(reference[k], initial[k]) for k in reference)
    for other_loss, other in others:
        assert other_loss == pytest.approx(loss, rel=1e-5)
        assert_same_state(other, reference, rtol=1e-5, atol=1e-6)


def test_gradient_checkpointing_gives_the_same_step(checkpoints, tmp_path):
    # transformers 5.x renamed the flag to `activation_checkpointing` (after 5.17, which has only the old name); the
    # package declares transformers>=5.0, so the test takes the name this install has
    fields = {field.name for field in dataclasses.fields(TrainingArguments)}
    flag = "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    results = []
    for checkpointing in (False, True):
        model, tokenizer = load(checkpoints)
        trainer = KronosTrainer(
            model=model,
            args=args(tmp_path / str(checkpointing), max_steps=2, **{flag: checkpointing}),
            train_dataset=windows(8),
            kronos_tokenizer=tokenizer,
        )
        trainer.train()
        assert getattr(model, f"is_{flag}") == checkpointing
        results.append(state(model))
    assert_same_state(results[0], results[1], rtol=1e-5, atol=1e-6)


def test_bf16_autocast_on_cpu(checkpoints, tmp_path):
    runs = {}
    for bf16 in (False, True):
        model, tokenizer = load(checkpoints)
        trainer = KronosTrainer(
            model=model, args=args(tmp_path / str(bf16), max_steps=2, bf16=bf16), train_dataset=windows(8),
            kronos_tokenizer=tokenizer,
        )
        trainer.train()
        runs[bf16] = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(runs[True]) == 2
    # bfloat16 matmuls under autocast: measured relative difference from float32's losses 1.2e-4 and 1.4e-4 (and
    # not 0: autocast did run)
    assert runs[True] == pytest.approx(runs[False], rel=1e-3) and runs[True] != runs[False]
    # autocast, not a cast: the master weights stay float32, and tokenization ran outside autocast
    assert all(p.dtype == torch.float32 for p in model.parameters())
    batch = KronosWindowCollator()([windows(8)[i] for i in range(4)])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tokens = trainer.tokenize(batch)
    reference = tokenizer.encode(batch["x"], half=True)
    assert torch.equal(tokens["s1_ids"], reference[0][:, :-1]) and torch.equal(tokens["s2_labels"], reference[1][:, 1:])


def test_sampled_conditioning_trains(checkpoints, tmp_path):
    model, tokenizer = load(checkpoints, s2_conditioning="sampled")
    before = state(model)
    KronosTrainer(
        model=model, args=args(tmp_path, max_steps=2), train_dataset=windows(8), kronos_tokenizer=tokenizer
    ).train()
    changed = [k for k in before if not torch.equal(before[k], model.state_dict()[k])]
    assert any(k.startswith("head.proj_s2") for k in changed) and any(k.startswith("transformer.") for k in changed)


# ---------------------------------------------------------------------------------------------------------- evaluation


def test_eval_loss_is_reported(checkpoints, tmp_path):
    model, tokenizer = load(checkpoints)
    validation = windows(6, seed=5)
    trainer = KronosTrainer(
        model=model, args=args(tmp_path), train_dataset=windows(4), eval_dataset=validation, kronos_tokenizer=tokenizer
    )
    metrics = trainer.evaluate()
    collate = KronosWindowCollator()
    model.eval()
    with torch.no_grad():
        first = trainer.compute_loss(model, collate([validation[i] for i in range(4)]))
        second = trainer.compute_loss(model, collate([validation[i] for i in range(4, 6)]))
    # the Trainer averages per-batch losses weighted by batch size
    assert metrics["eval_loss"] == pytest.approx(float(first * 4 + second * 2) / 6, rel=1e-5)


def test_compute_metrics_gets_logits_and_labels(checkpoints, tmp_path):
    """With `compute_metrics`, evaluation hands it the s1/s2 logits and the next-token labels of every window."""
    model, tokenizer = load(checkpoints)
    validation = windows(6, seed=5)
    seen = {}

    def metrics(prediction):
        (s1_logits, s2_logits), (s1_labels, s2_labels) = prediction.predictions, prediction.label_ids
        seen.update(s1=s1_logits.shape, s2=s2_logits.shape, labels=(s1_labels.shape, s2_labels.shape))
        return {"s1_accuracy": float((s1_logits.argmax(-1) == s1_labels).mean())}

    trainer = KronosTrainer(model=model, args=args(tmp_path), train_dataset=windows(4), eval_dataset=validation,
                            kronos_tokenizer=tokenizer, compute_metrics=metrics)
    result = trainer.evaluate()
    steps = LOOKBACK + PRED_WINDOW  # a window of lookback + pred_window + 1 candles gives that many next tokens
    assert seen["s1"] == (6, steps, 2 ** MODEL_CONFIG["s1_bits"]) and seen["s2"] == (6, steps, 2 ** MODEL_CONFIG["s2_bits"])
    assert seen["labels"] == ((6, steps), (6, steps))
    assert 0 <= result["eval_s1_accuracy"] <= 1 and "eval_loss" in result

    tokenizer.requires_grad_(True)
    tokenizer_trainer = KronosTokenizerTrainer(
        model=tokenizer, args=args(tmp_path / "tok"), train_dataset=validation, eval_dataset=validation,
        compute_metrics=lambda p: {"mse": float(((p.predictions - p.label_ids) ** 2).mean())},
    )
    assert tokenizer_trainer.evaluate()["eval_mse"] > 0


def test_tokenizer_training_and_eval(checkpoints, tmp_path):
    _, tokenizer = load(checkpoints)
    tokenizer.requires_grad_(True)
    data = windows(8)
    trainer = KronosTokenizerTrainer(
        model=tokenizer,
        # one evaluation batch of all 8 windows: the BSQ entropy terms are batch statistics
        args=args(tmp_path, max_steps=10, per_device_train_batch_size=8, per_device_eval_batch_size=8, learning_rate=5e-3),
        train_dataset=data,
        eval_dataset=data,
    )
    x = KronosWindowCollator()([data[i] for i in range(8)])["x"]
    tokenizer.eval()
    with torch.no_grad():
        before = float(tokenizer(x).loss)
    assert trainer.evaluate()["eval_loss"] == pytest.approx(before, rel=1e-5)
    trainer.train()
    tokenizer.eval()
    with torch.no_grad():
        after = float(tokenizer(x).loss)
    assert after < 0.9 * before, (before, after)
    assert trainer.evaluate()["eval_loss"] == pytest.approx(after, rel=1e-5)


# ---------------------------------------------------------------------------------------------------------- checkpoints


def test_saved_checkpoint_has_the_trained_weights(checkpoints, tmp_path):
    model, tokenizer = load(checkpoints)
    trainer = KronosTrainer(
        model=model, args=args(tmp_path, max_steps=2), train_dataset=windows(8), kronos_tokenizer=tokenizer
    )
    trainer.train()
    trainer.save_model(str(tmp_path / "saved"))
    loaded = AutoModel.from_pretrained(tmp_path / "saved")
    assert isinstance(loaded, KronosForTokenPrediction)
    trained = state(model)
    assert_same_state(state(loaded), trained, rtol=0, atol=0)
    initial = state(load(checkpoints)[0])
    assert any(not torch.equal(trained[k], initial[k]) for k in trained)


def test_resume_continues_from_the_same_step(checkpoints, tmp_path):
    class StepRecorder(TrainerCallback):
        def __init__(self):
            self.steps = []

        def on_step_end(self, args, state, control, **kwargs):
            self.steps.append(state.global_step)

    def run(resume=None, output="full"):
        model, tokenizer = load(checkpoints)
        recorder = StepRecorder()
        trainer = KronosTrainer(
            model=model,
            args=args(tmp_path, output_dir=str(tmp_path / output), max_steps=4, per_device_train_batch_size=2,
                      save_strategy="steps", save_steps=2),
            train_dataset=windows(16),
            kronos_tokenizer=tokenizer,
            callbacks=[recorder],
        )
        trainer.train(resume_from_checkpoint=resume)
        losses = {e["step"]: e["loss"] for e in trainer.state.log_history if "loss" in e}
        return recorder.steps, losses, state(model)

    full_steps, full_losses, full_state = run()
    checkpoint = tmp_path / "full" / "checkpoint-2"
    assert (checkpoint / "trainer_state.json").is_file()
    steps, losses, resumed_state = run(resume=str(checkpoint), output="resumed")
    assert full_steps == [1, 2, 3, 4] and steps == [3, 4]  # continued from step 2, not restarted
    assert losses == full_losses  # steps 3 and 4 saw the same batches with the same weights
    assert_same_state(resumed_state, full_state, rtol=1e-6, atol=1e-7)


def test_shuffling_is_reproducible_from_the_seed(checkpoints, tmp_path):
    def first_batches(seed):
        model, tokenizer = load(checkpoints)
        trainer = KronosTrainer(
            model=model, args=args(tmp_path, seed=seed), train_dataset=windows(32), kronos_tokenizer=tokenizer
        )
        return [b["x"] for _, b in zip(range(3), trainer.get_train_dataloader())]

    a, b, c = first_batches(7), first_batches(7), first_batches(8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    ordered = KronosWindowCollator()([windows(32)[i] for i in range(4)])["x"]
    assert not torch.equal(a[0], ordered)  # windows are drawn at random, not in order


# ---------------------------------------------------------------------------------------------------------- peft


def test_lora_with_peft(checkpoints, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load(checkpoints)
    base = state(model)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "w1", "w3"]))
    KronosTrainer(
        model=lora, args=args(tmp_path, max_steps=3, learning_rate=1e-2), train_dataset=windows(8),
        kronos_tokenizer=tokenizer,
    ).train()
    trained = {k: v for k, v in lora.state_dict().items() if "lora_B" in k}
    assert trained and all(float(v.abs().max()) > 0 for v in trained.values())  # lora_B starts at zero
    merged = lora.merge_and_unload()
    changed = [k for k, v in merged.state_dict().items() if not torch.equal(v, base[k])]
    assert changed and all(k.endswith(("q_proj.weight", "v_proj.weight", "w1.weight", "w3.weight")) for k in changed)


# ---------------------------------------------------------------------------------------------------------- errors


def test_tokenizer_bits_must_match_the_model():
    model = KronosForTokenPrediction(KronosConfig(**MODEL_CONFIG))
    tokenizer = KronosTokenizerModel(KronosTokenizerConfig(**{**TOKENIZER_CONFIG, "s1_bits": 6, "s2_bits": 2}))
    with pytest.raises(ValueError, match="s1_bits=6, s2_bits=2 but the model reads s1_bits=4, s2_bits=4"):
        check_tokenizer_compatible(model, tokenizer)
    with pytest.raises(ValueError, match="s1_bits=6"):
        KronosTrainer(model=model, args=TrainingArguments("unused", use_cpu=True), kronos_tokenizer=tokenizer)
    with pytest.raises(ValueError, match="needs `kronos_tokenizer`"):
        KronosTrainer(model=model, args=TrainingArguments("unused", use_cpu=True))
    with pytest.raises(ValueError, match="7 features per candle but the tokenizer reads d_in=6"):
        check_tokenizer_compatible(model, KronosTokenizerModel(KronosTokenizerConfig(**TOKENIZER_CONFIG)), 7)
    assert not os.path.exists("unused")


def test_collator_and_tokenize_windows_check_their_input():
    collate = KronosWindowCollator()
    with pytest.raises(TypeError, match="windows must be dicts with 'x' and 'stamp'"):
        collate([torch.zeros(3)])
    with pytest.raises(ValueError, match="every window must have a 'stamp' entry"):
        collate([{"x": torch.zeros(8, 6), "stamp": torch.zeros(8, 5)}, {"x": torch.zeros(8, 6)}])
    with pytest.raises(ValueError, match="cannot collate an empty list"):
        collate([])
    tokenizer = KronosTokenizerModel(KronosTokenizerConfig(**TOKENIZER_CONFIG)).eval()
    with pytest.raises(TypeError, match="`x` must be a torch.Tensor, got ndarray"):
        tokenize_windows(tokenizer, np.zeros((2, 5, 6)), torch.zeros(2, 5, 5))
    with pytest.raises(ValueError, match="`stamp` must have the batch and window of `x`"):
        tokenize_windows(tokenizer, torch.zeros(2, 5, 6), torch.zeros(2, 4, 5))
    batch = tokenize_windows(tokenizer, torch.randn(2, 5, 6), torch.zeros(2, 5, 5))
    assert batch["s1_ids"].shape == (2, 4) and torch.equal(batch["s1_ids"][:, 1:], batch["s1_labels"][:, :-1])


# ---------------------------------------------------------------------------------------------------------- scripts


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COMMON = ["--use_cpu", "--report_to", "none", "--disable_tqdm", "true", "--lookback", str(LOOKBACK),
          "--pred_window", str(PRED_WINDOW), "--per_device_train_batch_size", "4"]


def test_scripts_end_to_end(checkpoints, tmp_path):
    """Tokenizer, then predictor, from upstream-format checkpoints; the outputs load in transformers and the forecaster."""
    model_path, tok_path = checkpoints[:2]
    data = tmp_path / "train.parquet"
    kline_frame(80).to_parquet(data)
    tok_out, model_out = tmp_path / "tok", tmp_path / "model"
    assert load_script("finetune_kronos_tokenizer").main(
        ["--tokenizer_name_or_path", str(tok_path), "--train_file", str(data), "--output_dir", str(tok_out),
         "--max_steps", "2", "--validation_split_percentage", "25", *COMMON]
    ) == 0
    assert json.loads((tok_out / "eval_results.json").read_text())["eval_loss"] > 0
    assert load_script("finetune_kronos").main(
        ["--model_name_or_path", str(model_path), "--tokenizer_name_or_path", str(tok_out), "--train_file", str(data),
         "--output_dir", str(model_out), "--max_steps", "2", "--validation_split_percentage", "25", *COMMON]
    ) == 0
    assert json.loads((model_out / "eval_results.json").read_text())["eval_loss"] > 0
    model = AutoModel.from_pretrained(model_out)
    tokenizer = AutoModel.from_pretrained(model_out / "tokenizer")
    assert isinstance(model, KronosForTokenPrediction) and isinstance(tokenizer, KronosTokenizerModel)
    assert_same_state(state(tokenizer), state(AutoModel.from_pretrained(tok_out)), rtol=0, atol=0)

    from transformers_kronos import KronosForecaster

    forecaster = KronosForecaster.from_pretrained(str(model_out), str(model_out / "tokenizer"), device="cpu")
    frame = kline_frame(40)
    future = pd.Series(pd.date_range(frame["timestamps"].iloc[-1], periods=4, freq="15min")[1:])
    forecast = forecaster.predict(frame, frame["timestamps"], future, pred_len=3, verbose=False)
    assert forecast.shape == (3, 6) and np.isfinite(forecast.to_numpy()).all()


def test_script_trains_a_new_model_from_overrides(checkpoints, tmp_path):
    """Also `--bf16` without `--use_cpu`, as the README writes it: on a machine without a GPU that is the CPU."""
    data = tmp_path / "train.csv"
    kline_frame(40).to_csv(data, index=False)
    overrides = ",".join(f"{k}={v}" for k, v in MODEL_CONFIG.items() if k in ("n_layers", "d_model", "n_heads", "ff_dim", "s1_bits", "s2_bits"))
    flags = [flag for flag in COMMON if flag != "--use_cpu"]
    assert load_script("finetune_kronos").main(
        ["--config_overrides", overrides, "--tokenizer_name_or_path", str(checkpoints[1]), "--train_file", str(data),
         "--output_dir", str(tmp_path / "new"), "--max_steps", "1", "--s2_conditioning", "sampled", "--bf16", *flags]
    ) == 0
    config = json.loads((tmp_path / "new" / "config.json").read_text())
    assert config["model_type"] == "kronos" and config["s2_conditioning"] == "sampled" and config["d_model"] == 32


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_column", r"lacks the column\(s\) \['close'\]"),
        ("nan", r"'close' has NaN or infinite values at rows 5, 9"),
        ("text", r"'open' has non-numeric values at row 3"),
        ("too_short", r"no series has enough candles for one window of lookback \+ pred_window \+ 1 = 16"),
        ("lookback", r"`lookback` must be an integer of at least 1, got 0"),
        ("pred_window", r"`pred_window` must be an integer of at least 1, got 0"),
        ("bits", r"the tokenizer makes tokens of s1_bits=5, s2_bits=3 but the model reads s1_bits=4, s2_bits=4"),
        ("missing_file", r"no such data file"),
        ("max_context", r"lookback \+ pred_window = 515 exceeds the model's max_context \(512\)"),
        ("both_validations", r"either --validation_file or --validation_split_percentage"),
    ],
)
def test_script_bad_input(checkpoints, tmp_path, capsys, case, message, upstream_checkpoint):
    model_path, tok_path = checkpoints[:2]
    frame = kline_frame(40)
    if case == "missing_column":
        frame = frame.drop(columns="close")
    elif case == "nan":
        frame.loc[[5, 9], "close"] = np.nan
    elif case == "text":
        frame["open"] = frame["open"].astype(object)
        frame.loc[3, "open"] = "oops"
    elif case == "too_short":
        frame = frame.iloc[:15]
    data = tmp_path / "train.csv"
    frame.to_csv(data, index=False)
    argv = ["--model_name_or_path", str(model_path), "--tokenizer_name_or_path", str(tok_path),
            "--train_file", str(data if case != "missing_file" else tmp_path / "nope.csv"),
            "--output_dir", str(tmp_path / "out"), "--max_steps", "1", *COMMON]
    if case in ("lookback", "pred_window"):
        argv += [f"--{case}", "0"]
    if case == "max_context":
        kline_frame(520).to_csv(data, index=False)
        argv += ["--lookback", "512"]
    if case == "both_validations":
        argv += ["--validation_file", str(data), "--validation_split_percentage", "10"]
    if case == "bits":
        odd = {**TINY_TOKENIZER_CONFIGS["odd_bits"], "d_in": 6}
        argv[3] = str(upstream_checkpoint("tokenizer", odd)[0])
    assert load_script("finetune_kronos").main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("finetune_kronos.py: error:")
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_tokenizer_script_bad_input(checkpoints, tmp_path, capsys):
    data = tmp_path / "train.csv"
    kline_frame(40).drop(columns="open").to_csv(data, index=False)
    argv = ["--tokenizer_name_or_path", str(checkpoints[1]), "--train_file", str(data),
            "--output_dir", str(tmp_path / "out"), "--max_steps", "1", *COMMON]
    assert load_script("finetune_kronos_tokenizer").main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "finetune_kronos_tokenizer.py: error: the K-line table lacks the column(s) ['open']; it has "
        "['timestamps', 'high', 'low', 'close', 'volume'] (required: ['timestamps', 'open', 'high', 'low', 'close'], "
        "optional: ['volume', 'amount'])"
    )
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------------- DDP

DDP_WORKER = textwrap.dedent(
    """
    import sys, numpy as np, pandas as pd, torch
    import torch.distributed as dist
    from transformers import TrainingArguments
    from transformers_kronos import KronosForTokenPrediction, KronosTokenizerModel
    from transformers_kronos.data import KronosWindowDataset
    from transformers_kronos.training import KronosTrainer

    model_path, tok_path, out, batch = sys.argv[1:5]
    rng = np.random.default_rng(0)
    close = 50 + np.cumsum(rng.normal(0, 1, 64))
    frame = pd.DataFrame({"timestamps": pd.date_range("2024-01-01", periods=64, freq="h"), "open": close,
                          "high": close + 1, "low": close - 1, "close": close, "volume": rng.uniform(1, 9, 64)})
    model = KronosForTokenPrediction.from_pretrained(model_path)
    args = TrainingArguments(out, use_cpu=True, ddp_backend="gloo", max_steps=3, per_device_train_batch_size=int(batch),
                             optim="sgd", learning_rate=0.1, report_to="none", save_strategy="no", disable_tqdm=True,
                             logging_steps=1, seed=1)
    trainer = KronosTrainer(model=model, args=args, train_dataset=KronosWindowDataset(frame, 12, 3),
                            kronos_tokenizer=KronosTokenizerModel.from_pretrained(tok_path))
    trainer.train()
    rank = dist.get_rank()
    torch.save({"world_size": dist.get_world_size(), "state": model.state_dict(),
                "losses": [e["loss"] for e in trainer.state.log_history if "loss" in e]}, f"{out}/rank{rank}.pt")
    """
)


def run_ddp_worker(checkpoints, tmp_path, processes, batch):
    """Train 3 steps in `processes` gloo processes of `batch` windows each; each rank's saved result."""
    model_path, tok_path = checkpoints[:2]
    worker = tmp_path / "worker.py"
    worker.write_text(DDP_WORKER)
    out = tmp_path / f"ddp{processes}"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
               str(worker), str(model_path), str(tok_path), str(out), str(batch)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [torch.load(out / f"rank{r}.pt") for r in range(processes)]


@pytest.mark.slow  # subprocesses: fresh interpreters import torch and transformers
def test_ddp_two_processes_equal_one_process_on_the_same_global_batch(checkpoints, tmp_path):
    """2 gloo processes of 4 windows train the weights that 1 process of 8 windows trains: the same global batches
    (accelerate hands rank r the batches r, r + 2, ... of the same seeded order), gradients averaged over ranks."""
    ranks = run_ddp_worker(checkpoints, tmp_path, processes=2, batch=4)
    (single,) = run_ddp_worker(checkpoints, tmp_path, processes=1, batch=8)
    assert [r["world_size"] for r in ranks] == [2, 2] and single["world_size"] == 1
    assert_same_state(ranks[0]["state"], ranks[1]["state"], rtol=0, atol=0)
    initial = state(KronosForTokenPrediction.from_pretrained(checkpoints[0]))
    assert all(not torch.equal(single["state"][k], initial[k]) for k in initial if k.endswith("weight"))
    # plain SGD, so that the weights move by exactly lr x the averaged gradient (Adam would magnify rounding noise in
    # near-zero gradients); float sums in another order (two halves, then the all-reduce): measured max difference
    # 3.0e-8, with weights moving by up to 0.018
    assert_same_state(ranks[0]["state"], single["state"], rtol=0, atol=2e-7)
    assert ranks[0]["losses"] == pytest.approx(single["losses"], rel=1e-6)  # measured: 1e-7 relative
    assert len(single["losses"]) == 3
