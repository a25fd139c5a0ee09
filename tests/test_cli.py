"""`kronos-forecast`: the happy path (CSV + PNG, columns, calendar), the bundled demo model, and every kind of bad
input (one line on stderr, non-zero exit, no traceback, no output files left behind)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from transformers_kronos import KronosConfig, KronosForTokenPrediction, KronosTokenizerConfig, KronosTokenizerModel
from transformers_kronos import infer_future_timestamps
from transformers_kronos.cli import build_parser, main
from transformers_kronos.reading import check_series, read_klines
from transformers_kronos.synthetic import generate_klines

from conftest import TINY_MODEL_CONFIGS, TINY_TOKENIZER_CONFIGS

REPO = Path(__file__).resolve().parent.parent
FEATURES = ["open", "high", "low", "close", "volume", "amount"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def history_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "history.csv"
    # 100 five-minute candles: the last one closes a Friday session at 15:00
    generate_klines(100, start="2024-01-16 09:30", seed=4).to_csv(path, index=False)
    return path


def run_cli(argv, capsys):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def files_in(folder):
    return sorted(p.name for p in Path(folder).iterdir())


# ----------------------------------------------------------------------------------------------------------------
# happy path
# ----------------------------------------------------------------------------------------------------------------


def test_forecast_csv_and_plot(tiny_checkpoints, history_csv, tmp_path, capsys):
    model, tokenizer = tiny_checkpoints
    out_csv, out_png = tmp_path / "sub" / "forecast.csv", tmp_path / "sub" / "forecast.png"
    status, out, err = run_cli(
        ["--csv", history_csv, "--model", model, "--tokenizer", tokenizer, "--pred-len", 12, "--samples", 5,
         "--quantiles", "0.9,0.1,0.5", "--output", out_csv, "--plot", out_png, "--seed", 3, "--device", "cpu"],
        capsys,
    )
    assert status == 0, err
    assert "DEMO" not in err
    assert f"wrote {out_csv}" in out and f"wrote {out_png}" in out
    assert files_in(tmp_path / "sub") == ["forecast.csv", "forecast.png"]  # no temporary files left

    forecast = pd.read_csv(out_csv, parse_dates=["timestamps"])
    quantile_columns = [f"{c}_q{q}" for c in FEATURES for q in ("0.1", "0.5", "0.9")]
    assert list(forecast.columns) == ["timestamps", *FEATURES, *quantile_columns]
    assert len(forecast) == 12
    assert np.isfinite(forecast.drop(columns="timestamps").to_numpy()).all()
    # the numbers are the forecaster's: the mean and quantiles of the same 5 seeded paths
    from transformers_kronos import KronosForecaster

    frame, stamps = check_series(read_klines(history_csv))
    forecaster = KronosForecaster.from_pretrained(model, tokenizer, device="cpu")
    lookback = min(len(frame), forecaster.max_context)
    torch.manual_seed(3)
    _, paths = forecaster.predict(frame.iloc[-lookback:].reset_index(drop=True),
                                  stamps.iloc[-lookback:].reset_index(drop=True),
                                  infer_future_timestamps(stamps, 12), 12, top_p=0.9, sample_count=5,
                                  return_samples=True, verbose=False)
    for j, c in enumerate(FEATURES):
        np.testing.assert_allclose(forecast[c], paths[:, :, j].astype(float).mean(axis=0), rtol=1e-6)
        for q in (0.1, 0.5, 0.9):
            np.testing.assert_allclose(forecast[f"{c}_q{q}"], np.quantile(paths[:, :, j].astype(float), q, axis=0),
                                       rtol=1e-6)
        assert (forecast[f"{c}_q0.1"] <= forecast[f"{c}_q0.9"]).all()
    # the history ends on Tuesday 2024-01-17 at 15:00... wherever it ends, the forecast continues the calendar
    history = pd.read_csv(history_csv, parse_dates=["timestamps"])
    expected = infer_future_timestamps(history["timestamps"], 12)
    assert list(forecast["timestamps"]) == list(expected)
    assert forecast["timestamps"].iloc[0] > history["timestamps"].iloc[-1]

    png = out_png.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    image = matplotlib.image.imread(out_png)
    assert image.shape[0] > 500 and image.shape[1] > 1000
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_seed_makes_runs_reproducible(tiny_checkpoints, history_csv, tmp_path, capsys):
    model, tokenizer = tiny_checkpoints
    frames = []
    for name, seed in (("a.csv", 7), ("b.csv", 7), ("c.csv", 8)):
        status, _, err = run_cli(["--csv", history_csv, "--model", model, "--tokenizer", tokenizer, "--pred-len", 6,
                                  "--samples", 3, "--seed", seed, "--output", tmp_path / name], capsys)
        assert status == 0, err
        frames.append(pd.read_csv(tmp_path / name))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert not np.allclose(frames[0]["close"], frames[2]["close"])


def test_batch_size_bounds_the_paths_decoded_together(tiny_checkpoints, history_csv, tmp_path, monkeypatch, capsys):
    """`--batch-size` reaches the forecaster; greedy paths, and so the CSV, do not depend on it."""
    from transformers_kronos import KronosForecaster

    model, tokenizer = tiny_checkpoints
    seen, predict = [], KronosForecaster.predict

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("batch_size"))
        return predict(self, *args, **kwargs)

    monkeypatch.setattr(KronosForecaster, "predict", spy)
    frames = []
    for name, extra in (("all.csv", []), ("passes.csv", ["--batch-size", 2])):
        status, _, err = run_cli(["--csv", history_csv, "--model", model, "--tokenizer", tokenizer, "--pred-len", 5,
                                  "--samples", 5, "--top-k", 1, "--output", tmp_path / name, *extra], capsys)
        assert status == 0, err
        frames.append(pd.read_csv(tmp_path / name))
    assert seen == [None, 2]
    pd.testing.assert_frame_equal(frames[0], frames[1], rtol=1e-5)


def test_prices_only_csv_and_no_quantiles(tiny_checkpoints, tmp_path, capsys):
    model, tokenizer = tiny_checkpoints
    data = generate_klines(40, seed=1)[["timestamps", "open", "high", "low", "close"]]
    data.columns = ["Timestamps", "Open", "High", "Low", "Close"]  # names are matched case-insensitively
    data.to_csv(tmp_path / "prices.csv", index=False)
    status, _, err = run_cli(["--csv", tmp_path / "prices.csv", "--model", model, "--tokenizer", tokenizer,
                              "--pred-len", 4, "--samples", 2, "--quantiles", "0.5", "--output", tmp_path / "f.csv",
                              "--plot", tmp_path / "f.png"], capsys)
    assert status == 0, err
    forecast = pd.read_csv(tmp_path / "f.csv")
    assert list(forecast.columns) == ["timestamps", "open", "high", "low", "close",
                                      "open_q0.5", "high_q0.5", "low_q0.5", "close_q0.5"]
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_forecaster_warnings_are_one_line_each(tiny_checkpoints, tmp_path, capsys):
    """An amount without volume is dropped (as upstream): the command says so in one line and still forecasts."""
    model, tokenizer = tiny_checkpoints
    csv = tmp_path / "in.csv"
    generate_klines(40, seed=3).drop(columns="volume").to_csv(csv, index=False)
    status, out, err = run_cli(["--csv", csv, "--model", model, "--tokenizer", tokenizer, "--pred-len", 2,
                                "--samples", 2, "--output", tmp_path / "f.csv"], capsys)
    assert status == 0 and "wrote" in out
    warned = [line for line in err.splitlines() if line.startswith("kronos-forecast: warning:")]
    assert len(warned) == 1 and "'amount' column but no 'volume'" in warned[0], err
    assert "UserWarning" not in err


def test_lookback_longer_than_context_is_noted(tiny_checkpoints, history_csv, tmp_path, capsys):
    model, tokenizer = tiny_checkpoints  # max_context 64
    status, _, err = run_cli(["--csv", history_csv, "--model", model, "--tokenizer", tokenizer, "--lookback", 100,
                              "--pred-len", 3, "--samples", 1, "--output", tmp_path / "f.csv"], capsys)
    assert status == 0, err
    assert "last 64 candles" in err


@pytest.mark.slow  # a subprocess: a fresh interpreter imports torch and transformers
def test_demo_model_end_to_end_as_module(tmp_path):
    """`python -m transformers_kronos` with no --model: the bundled demo, announced as such, on the bundled sample."""
    sample = REPO / "examples" / "data" / "sample_kline.csv"
    result = subprocess.run(
        [sys.executable, "-m", "transformers_kronos", "--csv", str(sample), "--pred-len", "8", "--samples", "4",
         "--output", str(tmp_path / "demo.csv"), "--plot", str(tmp_path / "demo.png")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TQDM_DISABLE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "DEMO model" in result.stderr and "NOT a pretrained Kronos" in result.stderr
    forecast = pd.read_csv(tmp_path / "demo.csv", parse_dates=["timestamps"])
    assert len(forecast) == 8
    # a model trained on this kind of data forecasts prices on the sample's scale
    last_close = pd.read_csv(sample)["close"].iloc[-1]
    assert np.all(np.abs(forecast["close"] / last_close - 1.0) < 0.2)
    assert files_in(tmp_path) == ["demo.csv", "demo.png"]


# ----------------------------------------------------------------------------------------------------------------
# the bundled demo model
# ----------------------------------------------------------------------------------------------------------------


def test_demo_model_loads_from_package_data(capfd):
    from transformers.utils import logging as hf_logging

    from transformers_kronos.demo import demo_path, load_demo

    capfd.readouterr()
    model, tokenizer = load_demo()
    assert "Loading" not in capfd.readouterr().err, "load_demo draws no loading bars"
    assert hf_logging.is_progress_bar_enabled(), "and it leaves transformers' bars as they were"
    assert isinstance(model, KronosForTokenPrediction) and isinstance(tokenizer, KronosTokenizerModel)
    assert not model.training and not tokenizer.training
    assert model.config.s1_bits == tokenizer.config.s1_bits and model.config.s2_bits == tokenizer.config.s2_bits
    assert model.config.max_context >= 256
    total = 0
    for part in ("predictor", "tokenizer"):
        folder = demo_path(part)
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
            "config.json", "model.safetensors"]
        total += sum(p.stat().st_size for p in folder.iterdir())
    assert total < 10 * 2**20  # "a few MB"
    # trained weights, not an initialisation: the demo tokenizer reconstructs synthetic candles well
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 64, 6)).astype(np.float32))
    from transformers_kronos.data import KronosWindowDataset

    window = KronosWindowDataset(generate_klines(200, seed=99), lookback=90, pred_window=10)[0]["x"][None]
    with torch.no_grad():
        error = torch.mean((tokenizer(window).reconstruction - window) ** 2).item()
        noise_error = torch.mean((tokenizer(x).reconstruction - x) ** 2).item()
    assert error < 0.25 * window.var().item()
    assert noise_error > error
    with pytest.raises(ValueError, match="part"):
        demo_path("weights")


def test_package_data_is_declared():
    text = (REPO / "pyproject.toml").read_text()
    assert 'kronos-forecast = "transformers_kronos.cli:main"' in text
    assert '"transformers_kronos.demo" = ["predictor/*.json", "predictor/*.safetensors"' in text


# ----------------------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------------------


def _rows(n=40, **edits):
    """CSV text of `n` good candles with some cells replaced: `edits` maps `column` to `{row: new_text}`."""
    frame = generate_klines(n, seed=2).astype({"timestamps": str}).astype(object)
    for column, cells in edits.items():
        for row, value in cells.items():
            frame.loc[row, column] = value
    return frame.to_csv(index=False)


BAD_CSVS = {
    "missing": (None, "no such file"),
    "empty": ("", "empty"),
    "header_only": ("timestamps,open,high,low,close\n", "no rows"),
    "missing_column": ("timestamps,open,high,close\n2024-01-02 09:35,1,2,1\n", "missing column(s) low"),
    "no_timestamps": ("when,open,high,low,close\n2024-01-02 09:35,1,2,0.5,1\n", "no timestamp column"),
    "bad_timestamp": (_rows(timestamps={3: "yesterday-ish"}), "unparsable timestamp 'yesterday-ish' in data row 4"),
    "non_numeric": (_rows(close={5: "abc"}), "column 'close' is not a number ('abc') in data row 6"),
    "infinite": (_rows(open={1: "inf"}), "column 'open' is not finite (inf) at 2024-01-02 09:40:00 (candle 2)"),
    "overflowing": ("timestamps,open,high,low,close\n" + "".join(
        f"2024-01-02 10:{m:02d},1,2,0.5,{'1e400' if m == 10 else 1}\n" for m in range(0, 60, 2)),
        "column 'close' is not finite (inf) at 2024-01-02 10:10:00 (candle 6)"),
    "missing_value": (_rows(volume={2: None, 7: None}), "column 'volume' is missing at 2024-01-02 09:45:00 (candle 3) (and 1 more)"),
    "bad_candle": (_rows(high={9: "0.5"}), "the candle at 2024-01-02 10:20:00 (candle 10) has a high below its open or close"),
    "decreasing": ("timestamps,open,high,low,close\n" + "".join(
        f"2024-01-02 10:{m:02d},1,2,0.5,1\n" for m in [0, 5, 10, 10] + list(range(15, 60, 5))), "strictly increasing"),
    "too_short": ("timestamps,open,high,low,close\n" + "".join(
        f"2024-01-02 10:{m:02d},1,2,0.5,1\n" for m in range(0, 50, 5)), "at least 16 are needed"),
    "mixed_offsets": ("timestamps,open,high,low,close\n" + "".join(
        f"2024-03-0{1 + i // 20} 10:{i % 20 * 2:02d}:00{'-05:00' if i < 20 else '-04:00'},1,2,0.5,1\n"
        for i in range(40)), "the timestamps mix UTC offsets"),
    "repeated_column": ("timestamps,open,high,low,close,Close\n" + "".join(
        f"2024-01-02 10:{m:02d},1,2,0.5,1,1\n" for m in range(0, 60, 2)), "several columns could be 'close' ('close', 'Close'); pass --columns close=NAME"),
    "small_numbers": ("timestamps,open,high,low,close\n" + "".join(f"{i},1,2,0.5,1\n" for i in range(40)),
                      "the time column 'timestamps' holds numbers that are none of YYYYMMDD dates, seconds since 1970"),
    "mixed_epochs": ("timestamps,open,high,low,close\n" + "".join(
        f"{1725281700 + 300 * i if i < 20 else (1725281700 + 300 * i) * 1000},1,2,0.5,1\n" for i in range(40)),
        "the time column 'timestamps' holds numbers"),
    "irregular": ("timestamps,open,high,low,close\n" + "".join(
        f"2024-01-02 {h:02d}:{m:02d},1,2,0.5,1\n" for h, m in
        [(9, 1), (9, 3), (9, 7), (9, 14), (9, 15), (9, 31), (9, 40), (9, 44), (9, 50), (10, 2), (10, 9), (10, 11),
         (10, 29), (10, 30), (10, 47), (10, 55), (11, 6), (11, 24)]), "irregular"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_bad_csv(case, tiny_checkpoints, tmp_path, capsys):
    text, message = BAD_CSVS[case]
    csv = tmp_path / "in.csv"
    if text is not None:
        csv.write_text(text)
    model, tokenizer = tiny_checkpoints
    status, out, err = run_cli(["--csv", csv, "--model", model, "--tokenizer", tokenizer,
                                "--output", tmp_path / "out.csv", "--plot", tmp_path / "out.png"], capsys)
    assert status == 2
    assert err.startswith("kronos-forecast: error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err and out == ""
    assert files_in(tmp_path) == (["in.csv"] if text is not None else [])


BAD_FLAGS = [
    (["--pred-len", "0"], "--pred-len: must be at least 1"),
    (["--pred-len", "ten"], "--pred-len: must be an integer"),
    (["--samples", "0"], "--samples: must be at least 1"),
    (["--lookback", "4"], "--lookback: must be at least 16"),
    (["--lookback", "2.5"], "--lookback: must be an integer"),
    (["--lookback", "500"], "fewer than --lookback 500"),
    (["--quantiles", "0.1,1.5"], "strictly between 0 and 1"),
    (["--quantiles", "0.1,,0.9"], "numbers separated by commas"),
    (["--quantiles", "0.5,0.5"], "repeated"),
    (["--temperature", "0"], "--temperature: must be a positive number"),
    (["--temperature", "nan"], "--temperature: must be a positive number"),
    (["--top-p", "1.5"], "--top-p: must be at most 1.0"),
    (["--top-k", "-1"], "--top-k: must be at least 0"),
    (["--seed", "-3"], "--seed: must be at least 0"),
    (["--seed", str(2**64)], "--seed: must be at most 18446744073709551615"),
    # the flag's own words, not the Python argument's (`T`, top_k=1)
    (["--temperature", "1e-40"], "--temperature: must be at least 1e-06 (for greedy decoding, use --top-k 1), got '1e-40'"),
    (["--batch-size", "0"], "--batch-size: must be at least 1"),
    (["--device", "tpu"], "invalid choice"),
    (["--dtype", "float8"], "invalid choice"),
    (["--plot", "chart.txt"], "--plot chart.txt: use a .png"),
    (["--plot", "out.png", "--output", "out.png"], "name the same file"),
    (["--unknown-flag"], "unrecognized arguments"),
]


@pytest.mark.parametrize("flags, message", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flags(flags, message, tiny_checkpoints, history_csv, tmp_path, monkeypatch, capsys):
    model, tokenizer = tiny_checkpoints
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli(["--csv", history_csv, "--model", model, "--tokenizer", tokenizer,
                                "--output", "out.csv", *flags], capsys)
    assert status == 2
    assert err.startswith("kronos-forecast: error: ") and err.count("\n") == 1, err
    assert message in err
    assert files_in(tmp_path) == []


def test_model_and_tokenizer_problems(tiny_checkpoints, history_csv, tmp_path, capsys):
    model, tokenizer = tiny_checkpoints
    other_bits = tmp_path / "tokenizer-5-3-bits"
    KronosTokenizerModel(KronosTokenizerConfig(**{**TINY_TOKENIZER_CONFIGS["odd_bits"], "d_in": 6})).save_pretrained(
        other_bits)
    partial = tmp_path / "partial-model"  # a predictor checkpoint that lost a weight
    KronosForTokenPrediction(KronosConfig(**TINY_MODEL_CONFIGS["tiny"], max_context=64)).save_pretrained(partial)
    from safetensors.torch import load_file, save_file

    weights = load_file(partial / "model.safetensors")
    save_file({k: v for k, v in weights.items() if k != "head.proj_s1.weight"}, partial / "model.safetensors",
              metadata={"format": "pt"})
    capsys.readouterr()  # drop the saving progress bar
    out = tmp_path / "out.csv"
    cases = [
        (["--model", model, "--tokenizer", other_bits], "do not work together: the tokenizer does not match"),
        (["--model", model], "--model needs --tokenizer"),
        (["--tokenizer", tokenizer], "--tokenizer needs --model"),
        (["--model", str(tmp_path / "nope"), "--tokenizer", tokenizer], "no such directory"),
        (["--model", "./relative/typo", "--tokenizer", tokenizer], "no such directory"),
        (["--model", tokenizer, "--tokenizer", tokenizer], "is a 'kronos_tokenizer' checkpoint, not a 'kronos' one"),
        (["--model", model, "--tokenizer", model], "is a 'kronos' checkpoint, not a 'kronos_tokenizer' one"),
        (["--model", partial, "--tokenizer", tokenizer], "is not a Kronos predictor checkpoint: 1 of its weights are "
                                                          "missing (e.g. head.proj_s1.weight)"),
        (["--model", str(tmp_path), "--tokenizer", tokenizer], "could not load"),  # a folder without a checkpoint
    ]
    for flags, message in cases:
        status, _, err = run_cli(["--csv", history_csv, "--output", out, *flags], capsys)
        assert status == 2, (flags, err)
        assert message in err and err.count("\n") == 1, (flags, err)
    assert not out.exists()


def test_output_must_not_overwrite_the_input(tmp_path, capsys):
    csv = tmp_path / "in.csv"
    generate_klines(40, seed=0).to_csv(csv, index=False)
    before = csv.read_bytes()
    status, _, err = run_cli(["--csv", csv, "--output", csv], capsys)
    assert status == 2 and "would overwrite the input" in err
    assert csv.read_bytes() == before and files_in(tmp_path) == ["in.csv"]


def test_output_targets_are_checked_before_forecasting(tiny_checkpoints, history_csv, tmp_path, monkeypatch, capsys):
    """Special files are refused, links are written through, and a bad folder fails before the forecast runs."""
    import transformers_kronos.cli as cli

    model, tokenizer = tiny_checkpoints
    base = ["--csv", history_csv, "--model", model, "--tokenizer", tokenizer, "--pred-len", 2, "--samples", 1]
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "afile").write_text("a file, not a folder")

    def never(*args, **kwargs):
        raise AssertionError("the forecast ran although its output could not be written")

    with monkeypatch.context() as patch:
        patch.setattr(cli, "_sample_paths", never)
        for flags, message in (
            (["--output", tmp_path / "pipe"], "exists and is not a regular file"),
            (["--output", tmp_path / "afile" / "x.csv"], "afile is not a directory"),
            (["--output", tmp_path / "o.csv", "--plot", tmp_path / "afile" / "d" / "x.png"], "afile is not a directory"),
            (["--output", tmp_path], "is a directory"),
        ):
            status, _, err = run_cli(base + flags, capsys)
            assert status == 2 and message in err and err.count("\n") == 1, (flags, err)
    assert files_in(tmp_path) == ["afile", "pipe"] and (tmp_path / "pipe").is_fifo()

    # a link is followed: its target gets the forecast and the link stays a link
    (tmp_path / "real.csv").write_text("old\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
    status, _, _ = run_cli(base + ["--output", tmp_path / "link.csv"], capsys)
    assert status == 0 and (tmp_path / "link.csv").is_symlink()
    assert pd.read_csv(tmp_path / "real.csv").shape[0] == 2


def test_failed_write_removes_the_folders_it_made(tiny_checkpoints, history_csv, tmp_path, monkeypatch, capsys):

    def full_disk(frame, path, **kwargs):
        Path(path).write_text("half a fi")
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    model, tokenizer = tiny_checkpoints
    status, _, err = run_cli(["--csv", history_csv, "--model", model, "--tokenizer", tokenizer, "--pred-len", 2,
                              "--samples", 1, "--output", tmp_path / "new" / "deeper" / "f.csv"], capsys)
    assert status == 2 and f"could not write {tmp_path / 'new' / 'deeper' / 'f.csv'}: No space left on device" in err
    assert ".f." not in err, "the temporary file's name leaked into the message"
    assert files_in(tmp_path) == []


def test_accelerator_requested_without_one(tiny_checkpoints, history_csv, tmp_path, capsys):
    model, tokenizer = tiny_checkpoints
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    missing = [(d, f"--device: '{d}' is not available on this machine") for d, present in
               (("cuda", torch.cuda.is_available()), ("mps", mps)) if not present]
    if not missing:
        pytest.skip("CUDA and MPS are both present")
    for device, message in missing:
        status, _, err = run_cli(["--csv", history_csv, "--model", model, "--tokenizer", tokenizer, "--device", device,
                                  "--output", tmp_path / "o.csv"], capsys)
        assert status == 2 and message in err
    assert files_in(tmp_path) == []


def test_sliding_mode_reaches_the_forecaster(tiny_checkpoints, history_csv, tmp_path, monkeypatch, capsys):
    """The tiny model's context is 64 candles: with 64 of history every forecast step slides the window."""
    from transformers_kronos.forecasting import KronosForecaster

    seen = []
    predict = KronosForecaster.predict

    def spy(self, *args, **kwargs):
        seen.append(kwargs["sliding"])
        sampling.append((kwargs["T"], kwargs["top_k"], kwargs["top_p"], kwargs["sample_count"]))
        return predict(self, *args, **kwargs)

    sampling = []

    monkeypatch.setattr(KronosForecaster, "predict", spy)
    model, tokenizer = tiny_checkpoints
    outputs = {}
    for mode in ("exact", "rolling"):
        status, _, _ = run_cli(["--csv", history_csv, "--model", model, "--tokenizer", tokenizer, "--lookback", 64,
                                "--pred-len", 4, "--samples", 1, "--top-k", 1, "--sliding", mode,
                                "--output", tmp_path / f"{mode}.csv"], capsys)
        assert status == 0
        outputs[mode] = pd.read_csv(tmp_path / f"{mode}.csv")
    assert seen == ["exact", "rolling"]
    assert outputs["exact"].shape == outputs["rolling"].shape == (4, 1 + 6 + 18)
    assert build_parser().parse_args(["--csv", "x.csv"]).sliding == "exact"
    # and the sampling flags reach it too
    sampling.clear()
    status, _, _ = run_cli(["--csv", history_csv, "--model", model, "--tokenizer", tokenizer, "--pred-len", 2,
                            "--samples", 3, "--temperature", 0.7, "--top-k", 5, "--top-p", 0.8,
                            "--output", tmp_path / "t.csv"], capsys)
    assert status == 0 and sampling == [(0.7, 5, 0.8, 3)]


def test_failure_while_plotting_leaves_nothing(tiny_checkpoints, history_csv, tmp_path, monkeypatch, capsys):
    """The CSV is complete before the chart is drawn; a failing chart must still leave no CSV behind, and an
    existing output file must keep its old content."""
    import transformers_kronos.plotting as plotting

    def broken(*args, **kwargs):
        raise RuntimeError("the renderer broke")

    monkeypatch.setattr(plotting, "plot_forecast", broken)
    model, tokenizer = tiny_checkpoints
    (tmp_path / "old.csv").write_text("previous content\n")
    status, _, err = run_cli(["--csv", history_csv, "--model", model, "--tokenizer", tokenizer, "--pred-len", 2,
                              "--samples", 1, "--output", tmp_path / "old.csv", "--plot", tmp_path / "new.png"], capsys)
    assert status == 1
    # the progress bar ran before the failure; the report itself is one line
    assert err.endswith("\n") and err.count("kronos-forecast: error:") == 1 and "Traceback" not in err
    assert err.rstrip("\n").split("\n")[-1].startswith("kronos-forecast: error: RuntimeError: the renderer broke")
    assert files_in(tmp_path) == ["old.csv"]
    assert (tmp_path / "old.csv").read_text() == "previous content\n"


@pytest.mark.slow  # a subprocess: a fresh interpreter imports torch and transformers
def test_console_script_reports_without_traceback(tmp_path):
    """The installed entry point (a real process): bad input gives one line and status 2."""
    script = Path(sys.executable).parent / "kronos-forecast"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "transformers_kronos"]
    result = subprocess.run([*command, "--csv", str(tmp_path / "missing.csv")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"kronos-forecast: error: {tmp_path / 'missing.csv'}: no such file or directory"]


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------


def test_future_timestamps_follow_the_trading_calendar():
    history = generate_klines(48 * 6, start="2024-01-02", seed=0)["timestamps"]  # ends Tuesday 2024-01-09 15:00
    assert str(history.iloc[-1]) == "2024-01-09 15:00:00"
    future = infer_future_timestamps(history, 26)
    assert str(future[0]) == "2024-01-10 09:35:00"
    assert str(future[23]) == "2024-01-10 11:30:00"
    assert str(future[24]) == "2024-01-10 13:05:00"  # the lunch break is skipped
    friday = generate_klines(48 * 4, start="2024-01-08", seed=0)["timestamps"]  # ends Friday 2024-01-11 15:00
    assert str(infer_future_timestamps(friday, 1)[0]) == "2024-01-12 09:35:00"
    week = generate_klines(48 * 5, start="2024-01-08", seed=0)["timestamps"]  # ends Friday 2024-01-12 15:00
    assert str(infer_future_timestamps(week, 1)[0]) == "2024-01-15 09:35:00"  # the weekend is skipped


def test_future_timestamps_regular_and_pandas_frequencies():
    hourly = pd.date_range("2024-03-01", periods=50, freq="h")
    assert list(infer_future_timestamps(hourly, 3)) == list(pd.date_range("2024-03-03 02:00", periods=3, freq="h"))
    business = pd.bdate_range("2024-03-01", periods=30)
    future = infer_future_timestamps(business, 3)
    assert list(future) == list(pd.bdate_range(business[-1], periods=4)[1:])
    assert all(d.day_of_week < 5 for d in future)
    holidays = business.delete([5, 17])  # business days with two holidays: no pandas frequency, a calendar
    assert all(d.day_of_week < 5 for d in infer_future_timestamps(holidays, 7))
    monthly = pd.date_range("2020-01-31", periods=24, freq="ME")
    assert str(infer_future_timestamps(monthly, 2)[1]) == "2022-02-28 00:00:00"


def test_parser_defaults():
    args = build_parser().parse_args(["--csv", "x.csv"])
    assert (args.pred_len, args.samples, args.quantiles, args.device, args.dtype, args.seed) == (
        48, 20, (0.1, 0.5, 0.9), "auto", "float32", 0)
    assert args.model is None and args.tokenizer is None and args.plot is None and args.batch_size is None


def test_upstream_format_checkpoints(upstream_checkpoint, history_csv, tmp_path, capsys):
    """Checkpoints written by upstream's own `save_pretrained` (config.json without model_type) load as they are."""
    model_dir, _ = upstream_checkpoint("model", TINY_MODEL_CONFIGS["tiny"])
    tokenizer_dir, _ = upstream_checkpoint("tokenizer", TINY_TOKENIZER_CONFIGS["tiny"])
    status, _, err = run_cli(["--csv", history_csv, "--model", model_dir, "--tokenizer", tokenizer_dir,
                              "--pred-len", 3, "--samples", 2, "--output", tmp_path / "f.csv"], capsys)
    assert status == 0, err
    assert len(pd.read_csv(tmp_path / "f.csv")) == 3


@pytest.mark.slow  # a subprocess: a fresh interpreter imports torch and transformers
def test_unreachable_hub_id_is_one_line(tmp_path):
    """A Hub id that is neither cached nor reachable (offline): one line, status 2, nothing written."""
    sample = REPO / "examples" / "data" / "sample_kline.csv"
    result = subprocess.run(
        [sys.executable, "-m", "transformers_kronos", "--csv", str(sample), "--model", "no-such-org/no-such-kronos",
         "--tokenizer", "no-such-org/no-such-tokenizer", "--output", str(tmp_path / "f.csv")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kronos-forecast: error: could not load --model no-such-org/no-such-kronos")
    assert files_in(tmp_path) == []


# ----------------------------------------------------------------------------------------------------------------
# real file shapes (see test_reading.py), with no flag
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["pandas_index", "pandas_range_index", "arch", "yfinance", "tushare", "akshare",
                                   "ccxt", "epoch", "parquet"])
def test_real_file_shapes_forecast_with_no_flag(shape, tiny_checkpoints, tmp_path, capsys):
    from test_reading import SHAPES

    path, history, notes = SHAPES[shape](tmp_path)
    model, tokenizer = tiny_checkpoints
    out = tmp_path / "forecast.csv"
    status, stdout, err = run_cli(["--data", path, "--model", model, "--tokenizer", tokenizer, "--pred-len", 3,
                                   "--samples", 2, "--quantiles", "0.5", "--output", out], capsys)
    assert status == 0, err
    assert [line for line in err.splitlines() if "note:" in line] == [
        line for line in err.splitlines() if line.startswith("kronos-forecast: note: ")]
    for note in notes:
        assert f"kronos-forecast: note: {path}: " in err and note in err
    forecast = pd.read_csv(out, parse_dates=["timestamps"])
    assert len(forecast) == 3 and np.isfinite(forecast.drop(columns="timestamps").to_numpy()).all()
    assert list(forecast["timestamps"]) == list(infer_future_timestamps(history["timestamps"], 3))
    assert forecast["timestamps"].iloc[0] > history["timestamps"].iloc[-1]


def test_csv_and_data_read_alike(tiny_checkpoints, history_csv, tmp_path, capsys):
    model, tokenizer = tiny_checkpoints
    for flag in ("--csv", "--data"):
        status, _, err = run_cli([flag, history_csv, "--model", model, "--tokenizer", tokenizer, "--pred-len", 4,
                                  "--samples", 2, "--output", tmp_path / f"{flag[2:]}.csv"], capsys)
        assert status == 0, err
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "csv.csv"), pd.read_csv(tmp_path / "data.csv"))


def test_column_flags_resolve_ambiguity(tiny_checkpoints, tmp_path, capsys):
    data = generate_klines(40, seed=3)
    frame = data.assign(time=data["timestamps"].dt.strftime("%H:%M"), last=data["close"])
    frame.to_csv(tmp_path / "in.csv", index=False)
    model, tokenizer = tiny_checkpoints
    base = ["--data", tmp_path / "in.csv", "--model", model, "--tokenizer", tokenizer, "--pred-len", 2, "--samples", 1,
            "--output", tmp_path / "out.csv"]
    status, _, err = run_cli(base, capsys)
    assert status == 2 and "several columns could be the timestamps ('timestamps', 'time')" in err
    assert err.count("\n") == 1 and not (tmp_path / "out.csv").exists()
    status, _, err = run_cli(base + ["--timestamp-column", "timestamps", "--columns", "close=last"], capsys)
    assert status == 0, err
    status, _, err = run_cli(base + ["--columns", "close"], capsys)
    assert status == 2 and "--columns: must be FIELD=NAME pairs" in err
