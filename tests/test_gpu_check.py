"""benchmarks/gpu_check.py on CPU: the GPU sessions that run it are short and rare, so its rows must not fail there."""

import argparse
from pathlib import Path

import pytest
from conftest import load_script

GPU_CHECK = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture
def gpu_check():
    return load_script(GPU_CHECK)


def _number(result: str) -> float:
    return float(result.split()[0])


def test_accuracy_rows_on_cpu(gpu_check, tmp_path):
    paths = gpu_check.write_checkpoints(str(tmp_path), quick=True)
    rows = dict(gpu_check.accuracy_rows(paths, "cpu", quick=True))
    assert _number(rows["fp32 cpu vs fp32 cpu (max rel. diff)"]) == 0.0  # the same forecaster twice
    # half precision: the tiny random model's greedy forecasts move, but stay finite
    for dtype in ("bfloat16", "float16"):
        assert 0.0 <= _number(rows[f"{dtype} vs fp32 on cpu (max rel. diff)"]) < 10.0
    assert rows['device_map="auto"'] == "skipped: no GPU visible"


def test_onnx_rows_on_cpu(gpu_check, onnx_tiny):
    provider, why_not = gpu_check.onnx_provider("cpu")
    assert provider == "CPUExecutionProvider", why_not
    paths, exported = (onnx_tiny["model"], onnx_tiny["tokenizer"]), (onnx_tiny["onnx_model"], onnx_tiny["onnx_tokenizer"])
    rows = list(gpu_check.onnx_rows(paths, exported, "cpu", provider, quick=True))
    parity = dict(rows)["ONNX Runtime (CPUExecutionProvider) vs ours fp32 on cpu (max rel. diff)"]
    assert _number(parity) < 2e-6  # greedy forecasts of the same weights (measured 2.8e-7)
    speeds = [result for name, result in rows if name.endswith(", ONNX Runtime")]
    assert len(speeds) == len(gpu_check.QUICK_CASES)
    assert all(result.endswith(" s") and _number(result) > 0 for result in speeds)


def test_market_rows_on_cpu(gpu_check, tmp_path):
    paths = gpu_check.write_checkpoints(str(tmp_path), quick=True)
    (name, result), = gpu_check.universe_rows(paths, "cpu", quick=True)
    count, samples, lookback, pred_len, _ = gpu_check.QUICK_UNIVERSE_CASES[0]
    assert name == f"market: {count} series x {samples} paths, lookback {lookback}, {pred_len} ahead"
    seconds = _number(result)
    share = float(result.split(" = ")[1].split("%")[0])
    assert seconds > 0 and 0 < share < 100, result


def test_a_failing_section_keeps_the_rows_before_it_and_the_run_goes_on(gpu_check, tmp_path, capsys):
    def rows():
        yield "first", "1.0 s"
        raise RuntimeError("CUDA error: out of memory\nmore")

    table = tmp_path / "table.md"
    report = gpu_check.Report("cpu", str(table))
    report.section("speed", rows())
    report.section("market", iter([("after", "2.0 s")]))
    lines = table.read_text().splitlines()
    assert lines[2:] == ["| first | 1.0 s |", "| speed | failed: RuntimeError: CUDA error: out of memory more |",
                         "| after | 2.0 s |"]
    assert capsys.readouterr().out.splitlines()[2:] == lines[2:]  # printed as they came


def test_sections_flag_refuses_unknown_names(gpu_check):
    assert gpu_check.sections_flag("speed, market") == ("speed", "market")
    for text in ("speed,gpu", ","):
        with pytest.raises(argparse.ArgumentTypeError, match="choose from accuracy, speed, market, onnx"):
            gpu_check.sections_flag(text)
