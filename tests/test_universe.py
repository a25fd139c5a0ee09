"""Many series: `kronos-forecast --data FILE --id-column C --output-dir DIR` on about 20 real series, two of them
broken. The forecasts are the same whatever the chunk size, the subset of series, an interruption (`kill -9`) and
`--resume`, or the number of processes (accelerate)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from transformers_kronos.cli import main
from transformers_kronos.universe import series_seed

REPO = Path(__file__).resolve().parent.parent
BROKEN = {"NDX3": "column 'close' is missing at", "GOOG1": "is repeated"}
FLAGS = ["--pred-len", "4", "--samples", "3", "--quantiles", "0.1,0.9"]


pytestmark = pytest.mark.usefixtures("one_thread")


def real_universe():
    """20 series cut from arch's S&P 500 and NASDAQ, backtesting's GOOG and EURUSD, of different lengths and
    calendars; NDX3 has a missing close and GOOG1 a repeated timestamp."""
    from arch.data import nasdaq, sp500
    from backtesting.test import EURUSD, GOOG

    frames = []
    for name, data, count in (("SPX", sp500.load(), 6), ("NDX", nasdaq.load(), 6), ("GOOG", GOOG, 4),
                              ("EURUSD", EURUSD, 4)):
        for k in range(count):
            window = data.iloc[k * 300 : k * 300 + 60 + 10 * k]
            frames.append(pd.DataFrame({"ticker": f"{name}{k}", "timestamps": window.index, **{
                c.lower(): window[c].to_numpy(float) for c in ("Open", "High", "Low", "Close", "Volume")}}))
    table = pd.concat(frames, ignore_index=True)
    table.loc[table.index[table.ticker == "NDX3"][5], "close"] = np.nan
    repeated = table.index[table.ticker == "GOOG1"][7]
    table.loc[repeated, "timestamps"] = table.loc[repeated - 1, "timestamps"]
    return table


@pytest.fixture(scope="module")
def universe_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("universe") / "universe.parquet"
    real_universe().to_parquet(path)
    return path


def forecast(universe, out, checkpoints, *extra, capsys=None):
    model, tokenizer = checkpoints
    status = main([str(a) for a in ["--data", universe, "--id-column", "ticker", "--output-dir", out, "--model", model,
                                    "--tokenizer", tokenizer, *FLAGS, *extra]])
    if capsys is not None:
        capsys.readouterr()
    return status


def read_forecasts(out):
    return pd.read_parquet(Path(out) / "forecasts").sort_values(["ticker", "step"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(universe_file, tiny_checkpoints, tmp_path_factory):
    """The uninterrupted run, in chunks of 7 series."""
    out = tmp_path_factory.mktemp("reference") / "out"
    assert forecast(universe_file, out, tiny_checkpoints, "--series-per-chunk", 7) == 3
    return out


def test_forecasts_and_errors(reference, universe_file):
    forecasts = read_forecasts(reference)
    table = pd.read_parquet(universe_file)
    assert sorted(forecasts.ticker.unique()) == sorted(set(table.ticker) - set(BROKEN))
    assert len(forecasts) == 18 * 4 and not forecasts.duplicated(["ticker", "step"]).any()
    assert list(forecasts.columns[:3]) == ["ticker", "timestamps", "step"]
    assert {"close", "close_q0.1", "close_q0.9", "volume_q0.9"} <= set(forecasts.columns)
    assert forecasts["amount"].isna().all()  # the file has no amount
    assert np.isfinite(forecasts[["open", "high", "low", "close", "volume", "close_q0.1"]].to_numpy()).all()
    for ticker, rows in forecasts.groupby("ticker"):
        assert rows["timestamps"].min() > table[table.ticker == ticker]["timestamps"].max()
    assert (forecasts["close_q0.1"] <= forecasts["close_q0.9"]).all()
    errors = pd.read_csv(reference / "errors.csv")
    assert sorted(errors["ticker"]) == sorted(BROKEN)
    for ticker, reason in zip(errors["ticker"], errors["reason"]):
        assert BROKEN[ticker] in reason and "\n" not in reason
    assert len(list((reference / "forecasts").iterdir())) == 3  # 20 series in chunks of 7


def test_same_values_with_other_chunks_and_subsets(reference, universe_file, tiny_checkpoints, tmp_path, capsys):
    expected = read_forecasts(reference)
    assert forecast(universe_file, tmp_path / "one", tiny_checkpoints, "--series-per-chunk", 1, capsys=capsys) == 3
    pd.testing.assert_frame_equal(read_forecasts(tmp_path / "one"), expected, check_exact=True)
    # a subset, in another order: the same numbers for the series it keeps
    table = pd.read_parquet(universe_file)
    subset = table[table.ticker.isin(["EURUSD2", "SPX0", "GOOG3", "NDX5"])].iloc[::-1]
    subset.to_parquet(tmp_path / "subset.parquet")
    assert forecast(tmp_path / "subset.parquet", tmp_path / "sub", tiny_checkpoints, capsys=capsys) == 0
    pd.testing.assert_frame_equal(read_forecasts(tmp_path / "sub"),
                                  expected[expected.ticker.isin(subset.ticker)].reset_index(drop=True), check_exact=True)
    assert pd.read_csv(tmp_path / "sub" / "errors.csv").empty
    # another seed gives other paths
    assert forecast(tmp_path / "subset.parquet", tmp_path / "seed", tiny_checkpoints, "--seed", 1, capsys=capsys) == 0
    assert not np.allclose(read_forecasts(tmp_path / "seed")["close"], read_forecasts(tmp_path / "sub")["close"])


def test_folder_of_files(reference, universe_file, tiny_checkpoints, tmp_path, capsys):
    folder = tmp_path / "files"
    folder.mkdir()
    for ticker, rows in pd.read_parquet(universe_file).groupby("ticker"):
        rows.drop(columns="ticker").to_csv(folder / f"{ticker}.csv", index=False)
    model, tokenizer = tiny_checkpoints
    status = main([str(a) for a in ["--data", folder, "--output-dir", tmp_path / "out", "--model", model,
                                    "--tokenizer", tokenizer, *FLAGS]])
    assert status == 3
    forecasts = pd.read_parquet(tmp_path / "out" / "forecasts").rename(columns={"series_id": "ticker"})
    expected = read_forecasts(reference)
    pd.testing.assert_frame_equal(forecasts.sort_values(["ticker", "step"]).reset_index(drop=True),
                                  expected.astype({"ticker": forecasts["ticker"].dtype}), check_exact=True)


BAD_RUNS = [
    (["--id-column", "ticker"], "--id-column needs --output-dir DIR"),
    (["--id-column", "symbol", "--output-dir", "{tmp}/o"], "--id-column 'symbol' is not a column"),
    (["--output-dir", "{tmp}/o"], "--output-dir needs --id-column NAME"),
    (["--id-column", "ticker", "--output-dir", "{tmp}/o", "--output", "x.csv"], "--output writes one series"),
    (["--id-column", "ticker", "--output-dir", "{tmp}/full"], "is not empty; pass --resume"),
    (["--id-column", "ticker", "--output-dir", "{tmp}/full", "--resume"], "has no run.json"),
    (["--resume"], "--resume needs --output-dir"),
    (["--series-per-chunk", "0", "--id-column", "ticker", "--output-dir", "{tmp}/o"], "must be at least 1"),
]


@pytest.mark.parametrize("flags, message", BAD_RUNS, ids=[" ".join(f) for f, _ in BAD_RUNS])
def test_bad_runs_write_nothing(flags, message, universe_file, tiny_checkpoints, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    model, tokenizer = tiny_checkpoints
    argv = ["--data", universe_file, "--model", model, "--tokenizer", tokenizer, *FLAGS,
            *(f.format(tmp=tmp_path) for f in flags)]
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert status == 2 and message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]


def test_resume_with_other_settings_is_refused(reference, universe_file, tiny_checkpoints, tmp_path, capsys):
    import shutil

    shutil.copytree(reference, tmp_path / "copy")
    status = forecast(universe_file, tmp_path / "copy", tiny_checkpoints, "--series-per-chunk", 7, "--seed", 5,
                      "--resume")
    assert status == 2 and "written with other settings (settings differ)" in capsys.readouterr().err


def test_series_seed_is_stable():
    # BLAKE2b of "0\x1fSPX0": fixed across processes and Python versions (Python's hash() is salted per process)
    assert series_seed(0, "SPX0") == series_seed(0, "SPX0") != series_seed(1, "SPX0") != series_seed(0, "SPX1")
    assert series_seed(0, "SPX0") == int.from_bytes(
        __import__("hashlib").blake2b(b"0\x1fSPX0", digest_size=8).digest(), "little") >> 1
    assert 0 <= series_seed(2**64 - 1, "x") < 2**63


def _command(universe, out, checkpoints, *extra):
    model, tokenizer = checkpoints
    return [sys.executable, "-m", "transformers_kronos", "--data", str(universe), "--id-column", "ticker",
            "--output-dir", str(out), "--model", model, "--tokenizer", tokenizer, *FLAGS, *map(str, extra)]


@pytest.mark.slow
def test_kill_and_resume(reference, universe_file, tiny_checkpoints, tmp_path):
    """A real `kill -9` in the middle of a run, then `--resume`: the output equals an uninterrupted run."""
    out = tmp_path / "out"
    process = subprocess.Popen(_command(universe_file, out, tiny_checkpoints, "--series-per-chunk", 1, "--samples", 8),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = out / "forecasts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if parts.is_dir() and len(list(parts.glob("part-*.parquet"))) >= 3:
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    written = len(list(parts.glob("part-*.parquet")))
    assert process.returncode == -signal.SIGKILL and 3 <= written < 20, written
    assert not (out / "errors.csv").exists()
    result = subprocess.run(_command(universe_file, out, tiny_checkpoints, "--series-per-chunk", 1, "--samples", 8,
                                     "--resume"), capture_output=True, text=True, timeout=300)
    assert result.returncode == 3, result.stderr
    # the uninterrupted run, with the same flags
    whole = tmp_path / "whole"
    result = subprocess.run(_command(universe_file, whole, tiny_checkpoints, "--series-per-chunk", 1, "--samples", 8),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 3, result.stderr
    resumed = read_forecasts(out)
    assert not resumed.duplicated(["ticker", "step"]).any() and len(resumed) == 18 * 4
    pd.testing.assert_frame_equal(resumed, read_forecasts(whole), check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(out / "errors.csv").sort_values("ticker").reset_index(drop=True),
                                  pd.read_csv(whole / "errors.csv").sort_values("ticker").reset_index(drop=True))
    assert not [p for p in out.rglob(".*")]  # no temporary file left behind


def _launch(universe_file, tiny_checkpoints, out, *launch_flags):
    """`accelerate launch` of two processes (with `launch_flags`) over the universe; returns the completed run."""
    model, tokenizer = tiny_checkpoints
    launcher = Path(sys.executable).parent / "accelerate"
    command = [str(launcher), "launch", *launch_flags, "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "transformers_kronos", "--data",
               str(universe_file), "--id-column", "ticker", "--output-dir", str(out), "--model", model, "--tokenizer",
               tokenizer, *FLAGS, "--series-per-chunk", "7"]
    # the venv's bin first: accelerate finds the MPI launcher (the `mpich` test dependency) on the PATH
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


def _check_split_run(result, out, reference):
    assert "process 1 of 2: chunks 0, 1 (2 to do)" in result.stderr, result.stderr[-3000:]
    assert "process 2 of 2: chunks 2 (1 to do)" in result.stderr
    pd.testing.assert_frame_equal(read_forecasts(out), read_forecasts(reference), check_exact=True)
    assert sorted(pd.read_csv(out / "errors.csv")["ticker"]) == sorted(BROKEN)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="MPICH ships no Windows wheels")
def test_accelerate_two_cpu_processes(reference, universe_file, tiny_checkpoints, tmp_path):
    """
    `accelerate launch --cpu --num_processes 2 --mpirun_hostfile FILE`: accelerate starts CPU processes through MPI
    (`mpirun`, here MPICH from PyPI; without a hostfile `--cpu` starts one process). The series are split between the
    two; the output is the one-process run's. mpirun returns 3 (two series skipped), which accelerate reports as a
    failure of its own (exit status 1, naming the 3).
    """
    if shutil.which("mpirun", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("mpirun is missing: install the test extras (`pip install -e .[test]` installs mpich)")
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("localhost\n")
    out = tmp_path / "out"
    result = _launch(universe_file, tiny_checkpoints, out, "--cpu", "--mpirun_hostfile", str(hostfile))
    assert result.returncode != 0, result.stderr[-3000:]
    assert "returned non-zero exit status 3." in result.stderr, result.stderr[-3000:]
    _check_split_run(result, out, reference)


@pytest.mark.slow
def test_accelerate_two_processes_without_mpi(reference, universe_file, tiny_checkpoints, tmp_path):
    """
    Without MPI: `accelerate launch --multi_gpu --num_processes 2` on a machine without GPUs starts two CPU processes
    through torchrun, over gloo. The main process exits 3 (two series skipped), which torchrun reports as a failure.
    """
    out = tmp_path / "out"
    result = _launch(universe_file, tiny_checkpoints, out, "--multi_gpu")
    assert result.returncode != 0, result.stderr[-3000:]
    assert "rank      : 0 (local_rank: 0)\n  exitcode  : 3" in result.stderr, result.stderr[-3000:]
    _check_split_run(result, out, reference)


def test_ray_callable_without_ray(reference, universe_file, tiny_checkpoints):
    """The Ray Data callable on plain pandas batches (one series, then several): kronos-forecast's numbers."""
    from transformers_kronos.integrations.ray import KronosRayForecaster, split_results

    model, tokenizer = tiny_checkpoints
    actor = KronosRayForecaster(model, tokenizer, id_column="ticker", device="cpu",
                                settings={"pred_len": 4, "samples": 3, "quantiles": (0.1, 0.9)})
    table = pd.read_parquet(universe_file)
    expected = read_forecasts(reference)
    batches = [actor(rows) for _, rows in table.groupby("ticker", sort=False)]
    batches.append(actor(table[table.ticker.isin(["NDX3", "SPX1", "SPX2"])]))
    forecasts, errors = split_results(pd.concat(batches[:-1], ignore_index=True), "ticker")
    pd.testing.assert_frame_equal(forecasts.sort_values(["ticker", "step"]).reset_index(drop=True), expected,
                                  check_exact=True)
    assert sorted(errors["ticker"]) == sorted(BROKEN)
    forecasts, errors = split_results(batches[-1], "ticker")
    assert list(errors["ticker"]) == ["NDX3"] and sorted(forecasts.ticker.unique()) == ["SPX1", "SPX2"]
    pd.testing.assert_frame_equal(forecasts, expected[expected.ticker.isin(["SPX1", "SPX2"])].reset_index(drop=True),
                                  check_exact=True)


@pytest.mark.slow
def test_ray_example_on_a_local_cluster(reference, universe_file, tiny_checkpoints, tmp_path):
    """examples/forecast_universe_ray.py on a local Ray: the same folder layout and numbers as kronos-forecast."""
    model, tokenizer = tiny_checkpoints
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "forecast_universe_ray.py"), "--data", str(universe_file),
         "--id-column", "ticker", "--output-dir", str(out), "--model", model, "--tokenizer", tokenizer, *FLAGS,
         "--device", "cpu"], capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 3, result.stderr[-3000:]
    pd.testing.assert_frame_equal(read_forecasts(out), read_forecasts(reference), check_exact=True)
    assert sorted(pd.read_csv(out / "errors.csv")["ticker"]) == sorted(BROKEN)


def test_universe_source_reads_a_chunk_at_a_time(universe_file, tmp_path, monkeypatch):
    """A long Parquet table: the id column once, then only each chunk's rows (a filtered read)."""
    from transformers_kronos.universe import UniverseSource

    reads = []
    original = pd.read_parquet

    def spy(path, *args, **kwargs):
        frame = original(path, *args, **kwargs)
        reads.append((kwargs.get("columns"), kwargs.get("filters"), len(frame)))
        return frame

    monkeypatch.setattr(pd, "read_parquet", spy)
    universe = UniverseSource(universe_file, "ticker")
    assert universe.ids[:3] == ["SPX0", "SPX1", "SPX2"] and len(universe.ids) == 20
    series, errors = universe.read(["GOOG2", "SPX0"])
    assert sorted(series) == ["GOOG2", "SPX0"] and errors == {}
    assert list(series["GOOG2"].columns) == ["ticker", "timestamps", "open", "high", "low", "close", "volume"]
    assert reads[0] == (["ticker"], None, len(original(universe_file)))
    assert reads[1][1] == [("ticker", "in", ["GOOG2", "SPX0"])] and reads[1][2] == len(series["GOOG2"]) + 60
    # a CSV is read whole, once: the same series
    table = original(universe_file)
    table.to_csv(tmp_path / "universe.csv", index=False)
    whole = UniverseSource(tmp_path / "universe.csv", "ticker")
    pd.testing.assert_frame_equal(whole.read(["GOOG2"])[0]["GOOG2"].reset_index(drop=True),
                                  series["GOOG2"].reset_index(drop=True))


def test_csv_universe_and_an_unreadable_file(reference, universe_file, tiny_checkpoints, tmp_path, capsys):
    table = pd.read_parquet(universe_file)
    table.to_csv(tmp_path / "universe.csv", index=False)
    assert forecast(tmp_path / "universe.csv", tmp_path / "csv", tiny_checkpoints, capsys=capsys) == 3
    pd.testing.assert_frame_equal(read_forecasts(tmp_path / "csv"), read_forecasts(reference), check_exact=True)
    # a folder where one file is not K-lines: that series is reported, the others forecast
    folder = tmp_path / "files"
    folder.mkdir()
    for ticker in ("SPX0", "EURUSD1"):
        table[table.ticker == ticker].drop(columns="ticker").to_csv(folder / f"{ticker}.csv", index=False)
    (folder / "BROKEN.csv").write_text("when,price\nyesterday,1\n")
    model, tokenizer = tiny_checkpoints
    status = main([str(a) for a in ["--data", folder, "--output-dir", tmp_path / "out", "--model", model,
                                    "--tokenizer", tokenizer, *FLAGS]])
    assert status == 3
    errors = pd.read_csv(tmp_path / "out" / "errors.csv")
    assert list(errors["series_id"]) == ["BROKEN"] and "no timestamp column" in errors["reason"][0]
    assert sorted(pd.read_parquet(tmp_path / "out" / "forecasts")["series_id"].unique()) == ["EURUSD1", "SPX0"]
