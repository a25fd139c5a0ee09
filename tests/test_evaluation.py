"""Backtests (`transformers_kronos.evaluation`) and `kronos-evaluate`.

Every metric is checked against an independent computation: hand-computed values on small tables, properscoring
(and the energy formula) for the CRPS, numpy's corrcoef and pandas' ranks for IC/RankIC; and the metrics of a real
run are recomputed from the files it wrote and the raw data, by the definitions in docs/evaluation.md.
"""

import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import properscoring
import pytest

from transformers_kronos import KronosForecaster
from transformers_kronos.demo import load_demo
from transformers_kronos.evaluation import (
    BASELINES,
    METRICS,
    backtest,
    baseline_forecasts,
    compute_metrics,
    ensemble_crps,
    newey_west_t,
    normal_crps,
    origin_positions,
    t_statistic,
    window_seed,
    write_atomically,
)
from transformers_kronos.evaluation_cli import main

Z90 = 1.2815515655446004  # the standard normal's 0.9 quantile


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def forecaster():
    model, tokenizer = load_demo()
    return KronosForecaster(model, tokenizer, device="cpu")


def _ohlcv(frame, name=None, end=None):
    frame = frame.rename(columns=str.lower)[["open", "high", "low", "close", "volume"]].astype(float)
    if end is not None:
        frame = frame.loc[:end]
    frame = frame.rename_axis("timestamps").reset_index()
    return frame if name is None else frame.assign(symbol=name)


@pytest.fixture(scope="module")
def daily():
    """S&P 500, NASDAQ (arch) and GOOG (backtesting) daily candles, all ending 2013-03-01 (GOOG's last day)."""
    import arch.data.nasdaq
    import arch.data.sp500
    from backtesting.test import GOOG

    end = "2013-03-01"
    frames = [_ohlcv(arch.data.sp500.load(), "SPX", end), _ohlcv(arch.data.nasdaq.load(), "NDX", end),
              _ohlcv(GOOG, "GOOG", end)]
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------------------------
# windows, seeds, baselines
# ---------------------------------------------------------------------------------------------------------------


def test_origin_positions_count_back_from_the_end():
    # 20 candles, lookback 5, 3 ahead: the last origin is row 16 (rows 17, 18, 19 follow), then 14 and 12
    assert origin_positions(20, 5, 3, 3, 2) == [12, 14, 16]
    assert origin_positions(8, 5, 3, 1, 3) == [4]  # rows 0..4 of history, 5..7 ahead: exactly one window
    with pytest.raises(ValueError, match="hold 1 window"):
        origin_positions(8, 5, 3, 2, 3)
    with pytest.raises(ValueError, match="hold 0 window"):
        origin_positions(7, 5, 3, 1, 3)



def test_unordered_timestamps_name_the_row_and_a_long_table_without_its_id(daily, forecaster):
    """A long table passed without `id_column` repeats timestamps across series: the error says so and names the
    fix (it said only "timestamps are not strictly increasing"); a decreasing timestamp is named with its row."""
    kwargs = dict(lookback=30, pred_len=3, windows=1, samples=1, verbose=False)
    two = daily[daily["symbol"].isin(["SPX", "GOOG"])].groupby("symbol").tail(40).drop(columns="symbol")
    with pytest.raises(ValueError, match=r"\(row 2\) is repeated; a long table of several series needs `id_column`"):
        backtest(forecaster, two.sort_values("timestamps", kind="stable"), **kwargs)
    goog = daily[daily["symbol"] == "GOOG"].tail(40).drop(columns="symbol").reset_index(drop=True)
    swapped = goog.iloc[[0, 1, 3, 2, *range(4, 40)]]
    with pytest.raises(ValueError, match=r"2013-01-07 00:00:00 \(row 4\) comes before the row before it$"):
        backtest(forecaster, swapped, **kwargs)
    with pytest.raises(ValueError, match="series 'GOOG': .* is repeated$"):  # no hint: the id column is given
        backtest(forecaster, pd.concat([goog, goog.tail(1)]).assign(symbol="GOOG"), id_column="symbol", **kwargs)


def test_a_constant_series_reports_without_an_infinite_skill(daily, forecaster):
    """On a constant series the naive forecast is exact (error 0), so skill against it is undefined: the report
    draws no bar for it. It divided by zero, and matplotlib printed RuntimeWarnings over the command's output."""
    flat = daily[daily["symbol"] == "GOOG"].tail(40).drop(columns="symbol").assign(open=5.0, high=5.0, low=5.0,
                                                                                    close=5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = backtest(forecaster, flat, lookback=30, pred_len=3, windows=2, samples=2, verbose=False)
        result.figure.canvas.draw()
    naive = result.metrics.set_index("model").loc["naive"]
    assert naive["mae"] == 0 and naive["crps"] == 0
    skill_axis = next(ax for ax in result.figure.axes if ax.get_title().startswith("Skill"))
    heights = [bar.get_height() for bar in skill_axis.patches]
    assert heights and all(np.isnan(h) for h in heights)

def test_window_seed_is_stable_across_processes():
    code = ("from transformers_kronos.evaluation import window_seed; "
            "print(window_seed(7, 'SPX', '2013-01-02'), window_seed(7, 3, '2013-01-02 10:00'))")
    outputs = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        outputs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   check=True).stdout)
    assert len(outputs) == 1
    here = f"{window_seed(7, 'SPX', '2013-01-02')} {window_seed(7, 3, '2013-01-02 10:00')}\n"
    assert outputs == {here}
    seeds = {window_seed(s, i, o) for s in (0, 1) for i in ("A", "B") for o in ("2020-01-01", "2020-01-02")}
    assert len(seeds) == 8
    assert all(0 <= s < 2**63 for s in seeds)


def test_baselines_by_hand():
    # lookback 1, 2, 4, 7: changes 1, 2, 3 (mean 2, sample std 1, mean square 14/3); values mean 3.5, sample var 7
    out = baseline_forecasts(np.array([1.0, 2.0, 4.0, 7.0]), 2)
    np.testing.assert_allclose(out["naive"][0], [7, 7])
    np.testing.assert_allclose(out["naive"][1], [np.sqrt(14 / 3), np.sqrt(14 / 3 * 2)])
    np.testing.assert_allclose(out["drift"][0], [9, 11])
    np.testing.assert_allclose(out["drift"][1], [np.sqrt(1 * (1 + 1 / 3)), np.sqrt(2 * (1 + 2 / 3))])
    np.testing.assert_allclose(out["mean"][0], [3.5, 3.5])
    np.testing.assert_allclose(out["mean"][1], [np.sqrt(7 * 1.25)] * 2)


# ---------------------------------------------------------------------------------------------------------------
# metrics against independent computations
# ---------------------------------------------------------------------------------------------------------------


def test_ensemble_crps_matches_properscoring_and_the_energy_formula():
    rng = np.random.default_rng(0)
    actual, paths = rng.normal(size=7), rng.normal(size=(7, 13))
    ours = ensemble_crps(actual, paths)
    np.testing.assert_allclose(ours, properscoring.crps_ensemble(actual, paths), rtol=1e-12)
    energy = np.abs(paths - actual[:, None]).mean(1) - 0.5 * np.abs(paths[:, :, None] - paths[:, None, :]).mean((1, 2))
    np.testing.assert_allclose(ours, energy, rtol=1e-12)
    # one member: the absolute error
    np.testing.assert_allclose(ensemble_crps(np.array([1.0]), np.array([[3.5]])), [2.5])


def test_normal_crps_matches_properscoring():
    actual, mean, std = np.array([0.3, -1.0, 2.0, 5.0]), np.array([0.0, 0.5, 2.0, 4.0]), np.array([1.0, 2.0, 0.5, 0.0])
    ours = normal_crps(actual, mean, std)
    np.testing.assert_allclose(ours[:3], properscoring.crps_gaussian(actual[:3], mean[:3], std[:3]), rtol=1e-12)
    assert ours[3] == 1.0  # zero spread: a point forecast, scored by its absolute error


def _hand_table():
    """Three series, one origin, two steps; last values 10, 20, 40; Kronos paths given, baselines' columns too."""
    ids = ["A", "A", "B", "B", "C", "C"]
    frame = pd.DataFrame({
        "symbol": ids,
        "origin": pd.Timestamp("2024-01-05"),
        "timestamps": pd.to_datetime(["2024-01-08", "2024-01-09"] * 3),
        "step": [1, 2] * 3,
        "close": [11.0, 12.0, 19.0, 21.0, 44.0, 40.0],
        "close_actual": [12.0, 9.0, 19.0, 22.0, 42.0, 40.0],
        "close_q0.1": [10.0, 10.0, 18.0, 19.0, 41.0, 38.0],
        "close_q0.9": [12.0, 13.0, 20.0, 21.0, 43.0, 42.0],
    })
    for name, value in (("naive", [10.0] * 2 + [20.0] * 2 + [40.0] * 2),
                        ("drift", [10.5, 11.0, 19.0, 18.0, 41.0, 42.0]),
                        ("mean", [9.0, 9.0, 21.0, 21.0, 39.0, 39.0])):
        frame[f"close_{name}"] = value
        frame[f"close_{name}_std"] = [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]
    paths = {"close": np.array([[10.0, 12.0], [11.0, 13.0], [19.0, 19.0], [20.0, 22.0], [44.0, 44.0],
                                [39.0, 41.0]])}
    scales = {"close": np.array([2.0, 2.0, 1.0, 1.0, 4.0, 4.0])}
    return frame, paths, scales


def test_metrics_by_hand():
    frame, paths, scales = _hand_table()
    metrics, ic = compute_metrics(frame, paths, scales, ("close",), "symbol")
    kronos = metrics.set_index("model").loc["kronos"]
    # errors: -1, 3, 0, -1, 2, 0
    assert kronos["mae"] == pytest.approx(7 / 6, rel=1e-12)
    assert kronos["rmse"] == pytest.approx(np.sqrt(15 / 6), rel=1e-12)
    assert kronos["mase"] == pytest.approx((0.5 + 1.5 + 0 + 1 + 0.5 + 0) / 6, rel=1e-12)
    # inside [q0.1, q0.9]: 12 in [10, 12] yes, 9 no, 19 yes, 22 no, 42 yes, 40 yes
    assert kronos["coverage_80"] == pytest.approx(4 / 6)
    # moved rows: all but C step 2 (actual = last); signs: (+,+) (+,-) (-,-) (+,+) (+,+) -> 4 of 5
    assert kronos["direction_accuracy"] == pytest.approx(4 / 5)
    # CRPS of two-member ensembles: |x1-y|/2 + |x2-y|/2 - |x1-x2|/4
    crps = [(a + b) / 2 - abs(p[0] - p[1]) / 4 for (a, b), p in zip(
        [(abs(10 - 12), abs(12 - 12)), (abs(11 - 9), abs(13 - 9)), (0, 0), (2, 0), (2, 2), (1, 1)], paths["close"])]
    assert kronos["crps"] == pytest.approx(np.mean(crps), rel=1e-12)
    assert kronos["n"] == 6
    # IC: per step, predicted returns vs realised returns across A, B, C
    pred = {1: [0.1, -0.05, 0.1], 2: [0.2, 0.05, 0.0]}
    real = {1: [0.2, -0.05, 0.05], 2: [-0.1, 0.1, 0.0]}
    ics = [np.corrcoef(pred[s], real[s])[0, 1] for s in (1, 2)]
    assert kronos["ic"] == pytest.approx(np.mean(ics), rel=1e-12)
    # ranks: step 1 predicted (2.5, 1, 2.5) vs realised (3, 1, 2); step 2 (3, 2, 1) vs (1, 3, 2)
    rank_ics = [np.corrcoef([2.5, 1, 2.5], [3, 1, 2])[0, 1], np.corrcoef([3, 2, 1], [1, 3, 2])[0, 1]]
    assert kronos["rank_ic"] == pytest.approx(np.mean(rank_ics), rel=1e-12)
    assert ic.set_index("model").loc["kronos", "groups"] == 2


def test_baseline_metrics_by_hand():
    frame, paths, scales = _hand_table()
    metrics = compute_metrics(frame, paths, scales, ("close",), "symbol")[0].set_index("model")
    naive, mean = metrics.loc["naive"], metrics.loc["mean"]
    # naive errors: 2, -1, 1, 2, 2, 0 (forecast - actual: 10-12, 10-9, 20-19, 20-22, 40-42, 40-40)
    assert naive["mae"] == pytest.approx(8 / 6)
    assert np.isnan(naive["direction_accuracy"]) and np.isnan(naive["ic"])  # constant predicted returns
    # coverage of mean +- 1.2816 std: |actual - forecast| <= 1.2816 (step 1) or 2.5631 (step 2)
    inside = [abs(12 - 10) <= Z90, abs(9 - 10) <= 2 * Z90, abs(19 - 20) <= Z90, abs(22 - 20) <= 2 * Z90,
              abs(42 - 40) <= Z90, abs(40 - 40) <= 2 * Z90]
    assert naive["coverage_80"] == pytest.approx(np.mean(inside))
    crps = properscoring.crps_gaussian(frame["close_actual"], frame["close_naive"], frame["close_naive_std"])
    assert naive["crps"] == pytest.approx(crps.mean(), rel=1e-12)
    # mean: forecasts 9, 9, 21, 21, 39, 39; moved rows as for Kronos; signs: (-,+) (-,-) (+,-) (+,+) (-,+)
    assert mean["direction_accuracy"] == pytest.approx(2 / 5)


def test_t_statistics_by_hand():
    assert t_statistic([1.0, 2.0, 3.0]) == pytest.approx(2 / (1 / np.sqrt(3)))
    assert np.isnan(t_statistic([1.0]))
    # 1, 2, 3, 6: mean 3, deviations -2, -1, 0, 3; variance 14/4; lag-1 autocovariance 2/4, Bartlett weight 1/2
    assert newey_west_t([1.0, 2.0, 3.0, 6.0], lags=1) == pytest.approx(3 / np.sqrt((3.5 + 2 * 0.5 * 0.5) / 4))
    assert newey_west_t([1.0, 2.0, 3.0, 6.0], lags=0) == pytest.approx(3 / np.sqrt(3.5 / 4))
    assert np.isnan(newey_west_t([1.0], lags=3))


# ---------------------------------------------------------------------------------------------------------------
# backtests with the demo model on real candles
# ---------------------------------------------------------------------------------------------------------------


def _recompute(forecasts, paths, raw, lookback, target="close"):
    """Every metric of metrics.csv, from forecasts.csv, paths.npz and the raw data, by docs/evaluation.md."""
    out = {}
    actual = forecasts[f"{target}_actual"].to_numpy()
    lasts, scales = [], []
    for (symbol, origin), rows in forecasts.groupby(["symbol", "origin"], sort=False):
        series = raw[raw["symbol"] == symbol].reset_index(drop=True)
        at = int(np.flatnonzero(series["timestamps"] == pd.Timestamp(origin))[0])
        history = series[target].to_numpy()[at - lookback + 1 : at + 1]
        lasts += [history[-1]] * len(rows)
        scales += [np.abs(np.diff(history)).mean()] * len(rows)
    last, scale = np.array(lasts), np.array(scales)
    for model in ("kronos", *BASELINES):
        column = target if model == "kronos" else f"{target}_{model}"
        forecast = forecasts[column].to_numpy()
        error = forecast - actual
        if model == "kronos":
            low, high = forecasts[f"{target}_q0.1"], forecasts[f"{target}_q0.9"]
            crps = properscoring.crps_ensemble(actual, paths[target].astype(np.float64)).mean()
        else:
            std = forecasts[f"{target}_{model}_std"].to_numpy()
            low, high = forecast - Z90 * std, forecast + Z90 * std
            crps = properscoring.crps_gaussian(actual, forecast, std).mean()
        moved = actual != last
        groups = pd.DataFrame({"key": list(zip(forecasts["origin"], forecasts["step"])),
                               "p": forecast / last - 1, "r": actual / last - 1})
        ics, rank_ics = [], []
        for _, g in groups.groupby("key"):
            if len(g) >= 3 and g["p"].nunique() > 1 and g["r"].nunique() > 1:
                ics.append(np.corrcoef(g["p"], g["r"])[0, 1])
                rank_ics.append(np.corrcoef(g["p"].rank(), g["r"].rank())[0, 1])
        out[model] = {
            "mae": np.abs(error).mean(), "rmse": np.sqrt((error**2).mean()), "mase": (np.abs(error) / scale).mean(),
            "crps": crps, "coverage_80": ((actual >= low) & (actual <= high)).mean(),
            "direction_accuracy": np.nan if model == "naive" else
            (np.sign(forecast - last)[moved] == np.sign(actual - last)[moved]).mean(),
            "ic": np.mean(ics) if ics else np.nan, "rank_ic": np.mean(rank_ics) if rank_ics else np.nan,
            "n": len(forecasts),
        }
    return out


@pytest.mark.slow
def test_cli_on_real_daily_data_recomputes_exactly(forecaster, daily, tmp_path, capsys):
    data = tmp_path / "daily.csv"
    daily.to_csv(data, index=False)
    out = tmp_path / "out"
    status = main(["--data", str(data), "--id-column", "symbol", "--lookback", "48", "--pred-len", "4",
                   "--windows", "3", "--samples", "6", "--output-dir", str(out)])
    assert status == 0, capsys.readouterr().err
    assert {"forecasts.csv", "metrics.csv", "report.png", "report.html"} <= set(os.listdir(out))
    assert "<img src='report.png'" in (out / "report.html").read_text()
    assert list(pd.read_csv(out / "ic.csv").columns) == ["model", "target", "groups", "ic", "ic_t", "ic_t_nw",
                                                        "rank_ic", "rank_ic_t", "rank_ic_t_nw"]
    forecasts = pd.read_csv(out / "forecasts.csv", parse_dates=["origin", "timestamps"])
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns) == ["model", "target", *METRICS]
    assert len(forecasts) == 3 * 3 * 4 and sorted(forecasts["step"].unique()) == [1, 2, 3, 4]
    paths = dict(np.load(out / "paths.npz"))
    np.testing.assert_allclose(paths["close"].astype(np.float64).mean(1), forecasts["close"], rtol=1e-12)

    # the actuals are the data at their timestamps, the h-th candles after the origin
    merged = forecasts.merge(daily, on=["symbol", "timestamps"], suffixes=("", "_raw"), validate="one_to_one")
    assert len(merged) == len(forecasts)
    np.testing.assert_array_equal(merged["close_actual"], merged["close_raw"])
    for (symbol, origin), rows in forecasts.groupby(["symbol", "origin"]):
        stamps = daily.loc[daily["symbol"] == symbol, "timestamps"].reset_index(drop=True)
        at = int(np.flatnonzero(stamps == origin)[0])
        assert list(rows["timestamps"]) == list(stamps.iloc[at + 1 : at + 5])

    expected = _recompute(forecasts, paths, daily, lookback=48)
    for row in metrics.itertuples(index=False):
        for name in METRICS:
            # measured: at most 4.2e-16 relative (summation order); the files hold every digit
            np.testing.assert_allclose(getattr(row, name), expected[row.model][name], rtol=1e-14, equal_nan=True,
                                       err_msg=f"{row.model} {name}")
    # the three series share their trading days, so every (origin, step) is a cross-section of 3
    assert np.isfinite(metrics.set_index("model").loc["kronos", "ic"])


def _sp500_slice():
    import arch.data.sp500

    return _ohlcv(arch.data.sp500.load()).iloc[-300:].reset_index(drop=True)


def test_prices_after_an_origin_do_not_move_its_forecast(forecaster):
    data = _sp500_slice()
    kwargs = dict(lookback=40, pred_len=5, windows=3, samples=4, plot=False, verbose=False)
    before = backtest(forecaster, data, **kwargs)
    assert set(before.forecasts["series_id"]) == {"series"}
    origins = sorted(before.forecasts["origin"].unique())
    changed = data.copy()
    after_origin = changed["timestamps"] > origins[1]
    rng = np.random.default_rng(0)
    for column in ("open", "high", "low", "close", "volume"):
        changed.loc[after_origin, column] *= rng.uniform(0.5, 1.5, after_origin.sum())
    after = backtest(forecaster, changed, **kwargs)
    for origin in origins[:2]:  # the first two origins saw nothing that changed
        rows = (before.forecasts["origin"] == origin).to_numpy()
        pd.testing.assert_frame_equal(
            before.forecasts.loc[rows].drop(columns=["close_actual"]),
            after.forecasts.loc[rows].drop(columns=["close_actual"]),
        )
        np.testing.assert_array_equal(before.paths["close"][rows], after.paths["close"][rows])
    last = (before.forecasts["origin"] == origins[2]).to_numpy()
    assert not np.allclose(before.forecasts.loc[last, "close"], after.forecasts.loc[last, "close"])


def test_forecasts_depend_neither_on_batching_nor_on_other_series(forecaster, daily):
    kwargs = dict(lookback=32, pred_len=3, windows=2, samples=4, seed=5, plot=False, verbose=False)
    together = backtest(forecaster, daily, id_column="symbol", **kwargs)
    one_by_one = backtest(forecaster, daily, id_column="symbol", batch_size=4, **kwargs)
    alone = backtest(forecaster, daily[daily["symbol"] == "NDX"], id_column="symbol", **kwargs)
    np.testing.assert_allclose(together.paths["close"], one_by_one.paths["close"], rtol=1e-5)
    ndx = (together.forecasts["symbol"] == "NDX").to_numpy()
    np.testing.assert_allclose(together.paths["close"][ndx], alone.paths["close"], rtol=1e-5)
    other_seed = backtest(forecaster, daily, id_column="symbol", **{**kwargs, "seed": 6})
    assert not np.allclose(together.paths["close"], other_seed.paths["close"])


def test_saving_over_an_earlier_report_leaves_none_of_its_files(forecaster, daily, tmp_path):
    # the first report has a figure; the second, without one, must not sit beside the first one's picture
    kwargs = dict(id_column="symbol", lookback=32, pred_len=2, windows=1, samples=2, verbose=False)
    backtest(forecaster, daily, plot=True, **kwargs).save(tmp_path)
    assert {"report.png", "report.html"} <= set(os.listdir(tmp_path))
    second = backtest(forecaster, daily, plot=False, seed=1, **kwargs)
    written = second.save(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in written)
    assert "report.png" not in os.listdir(tmp_path)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "metrics.csv"), second.metrics, check_dtype=False)


def test_hourly_eurusd_and_two_targets(forecaster):
    from backtesting.test import EURUSD

    data = _ohlcv(EURUSD)
    result = backtest(forecaster, data, lookback=48, pred_len=6, windows=2, samples=3, targets=("close", "volume"),
                      plot=False, verbose=False)
    assert list(result.metrics["target"]) == ["close"] * 4 + ["volume"] * 4
    # the last window's last forecast row is the data's last candle
    assert result.forecasts["timestamps"].iloc[-1] == data["timestamps"].iloc[-1]
    assert result.metrics["ic"].isna().all()  # one series: no cross-section


# ---------------------------------------------------------------------------------------------------------------
# bad input and writing
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory, daily):
    path = tmp_path_factory.mktemp("data") / "two.csv"
    daily[daily["symbol"].isin(["SPX", "GOOG"])].groupby("symbol").tail(80).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--windows", "0"], "--windows: must be at least 1"),
        (["--windows", "40"], "fewer than the 40 asked for"),
        (["--pred-len", "100"], "hold 0 window(s)"),
        (["--target", "close,spread"], "unknown target 'spread'"),
        (["--quantiles", "0.05,0.5,0.95"],
         "coverage_80 needs the quantile levels 0.1 and 0.9, got 0.05, 0.5, 0.95; add them, or leave coverage_80 out"),
        (["--metrics", "mae,sharpe"], "unknown metric(s) ['sharpe']"),
        (["--id-column", "ticker"], "--id-column 'ticker' is not a column"),
        (["--lookback", "2"], "--lookback: must be at least 3"),
        (["--temperature", "1e-9"], "--temperature: must be at least 1e-06 (for greedy decoding, use --top-k 1)"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(flags, message, small_csv, tmp_path, capsys):
    out = tmp_path / "made" / "out"
    argv = ["--data", str(small_csv), "--id-column", "symbol", "--lookback", "30", "--pred-len", "5", "--windows",
            "2", "--samples", "2", "--output-dir", str(out)]
    status = main(argv + flags)
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("kronos-evaluate: error: ") and message in err, err
    assert not (tmp_path / "made").exists()


def test_bad_files_are_refused(small_csv, tmp_path, capsys):
    argv = ["--lookback", "30", "--pred-len", "5", "--windows", "1", "--samples", "2"]
    assert main(argv + ["--data", str(tmp_path / "missing.csv"), "--output-dir", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(argv + ["--data", str(small_csv), "--id-column", "symbol", "--output-dir", str(a_file)]) == 2
    assert "is not a directory" in capsys.readouterr().err
    unordered = tmp_path / "unordered.csv"
    pd.read_csv(small_csv).iloc[::-1].to_csv(unordered, index=False)
    assert main(argv + ["--data", str(unordered), "--output-dir", str(tmp_path / "o")]) == 2
    assert "strictly increasing" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_failed_write_leaves_nothing(tmp_path):
    def fail(path):
        raise OSError("disk full")

    folder = tmp_path / "new" / "out"
    with pytest.raises(OSError, match="disk full"):
        write_atomically(folder, {"a.csv": lambda p: p.write_text("a"), "b.csv": fail})
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "a.csv").write_text("old")
    with pytest.raises(OSError):
        write_atomically(existing, {"a.csv": lambda p: p.write_text("new"), "b.csv": fail})
    assert os.listdir(existing) == ["a.csv"] and (existing / "a.csv").read_text() == "old"


def test_module_entry_point_runs_evaluate(small_csv, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-m", "transformers_kronos", "evaluate", "--data", str(small_csv), "--id-column", "symbol",
         "--lookback", "30", "--pred-len", "3", "--windows", "1", "--samples", "2", "--output-dir", str(out)],
        capture_output=True, text=True, env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "DEMO model" in done.stderr and "kronos" in done.stdout
    assert {"forecasts.csv", "metrics.csv", "report.png"} <= set(os.listdir(out))


# ---------------------------------------------------------------------------------------------------------------
# fine-tuning: --eval_backtest
# ---------------------------------------------------------------------------------------------------------------


def _finetune_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "finetune_kronos.py"
    spec = importlib.util.spec_from_file_location("finetune_kronos", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_finetuning_reports_the_backtest_before_and_after(tmp_path):
    from transformers_kronos.demo import demo_path
    from transformers_kronos.synthetic import generate_klines

    data = tmp_path / "train.csv"
    generate_klines(240, start="2024-01-02 09:30", seed=1).to_csv(data, index=False)
    out = tmp_path / "out"
    status = _finetune_script().main([
        "--model_name_or_path", str(demo_path("predictor")), "--tokenizer_name_or_path", str(demo_path("tokenizer")),
        "--train_file", str(data), "--validation_split_percentage", "25", "--lookback", "24", "--pred_window", "4",
        "--output_dir", str(out), "--max_steps", "3", "--learning_rate", "1e-3", "--per_device_train_batch_size", "4",
        "--use_cpu", "--report_to", "none", "--disable_tqdm", "true",
        "--eval_backtest", "--eval_backtest_windows", "3", "--eval_backtest_samples", "4",
    ])
    assert status == 0
    table = pd.read_csv(out / "eval_backtest.csv")
    assert list(table["stage"]) == ["before", "after", "baseline", "baseline", "baseline"]
    assert list(table["model"]) == ["kronos", "kronos", *BASELINES]
    assert (table["n"] == 3 * 4).all()
    # training moved the weights, so the forecasts moved
    assert table.loc[0, "mae"] != table.loc[1, "mae"]


def test_finetuning_backtest_needs_a_validation_split(tmp_path, capsys):
    from transformers_kronos.demo import demo_path
    from transformers_kronos.synthetic import generate_klines

    data = tmp_path / "train.csv"
    generate_klines(120, seed=1).to_csv(data, index=False)
    status = _finetune_script().main([
        "--model_name_or_path", str(demo_path("predictor")), "--tokenizer_name_or_path", str(demo_path("tokenizer")),
        "--train_file", str(data), "--lookback", "24", "--pred_window", "4", "--output_dir", str(tmp_path / "out"),
        "--use_cpu", "--report_to", "none", "--eval_backtest",
    ])
    assert status == 1
    assert "--eval_backtest needs a validation split" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_single_series_csv_is_named_after_the_file(tmp_path, capsys):
    from pathlib import Path

    sample = Path(__file__).resolve().parent.parent / "examples" / "data" / "sample_kline.csv"
    out = tmp_path / "out"
    status = main(["--data", str(sample), "--lookback", "64", "--pred-len", "6", "--windows", "2", "--stride", "3",
                   "--samples", "2", "--target", "close,volume", "--output-dir", str(out)])
    assert status == 0, capsys.readouterr().err
    forecasts = pd.read_csv(out / "forecasts.csv", parse_dates=["origin", "timestamps"])
    assert set(forecasts["series_id"]) == {"sample_kline"} and len(forecasts) == 2 * 6
    raw = pd.read_csv(sample, parse_dates=["timestamps"])
    # stride 3 < pred-len 6: the two windows overlap, the last ends at the file's last candle
    assert forecasts["origin"].drop_duplicates().tolist() == raw["timestamps"].iloc[[-10, -7]].tolist()
    merged = forecasts.merge(raw, on="timestamps", suffixes=("", "_raw"))
    np.testing.assert_array_equal(merged["volume_actual"], merged["volume_raw"])
    assert list(pd.read_csv(out / "metrics.csv")["target"]) == ["close"] * 4 + ["volume"] * 4


def test_reads_what_kronos_forecast_reads(small_csv, tmp_path, capsys):
    """A folder of per-series files works; what kronos-forecast refuses (a bad candle, a missing price) is refused."""
    raw = pd.read_csv(small_csv)
    folder = tmp_path / "universe"
    folder.mkdir()
    for symbol, frame in raw.groupby("symbol"):
        frame.drop(columns="symbol").to_csv(folder / f"{symbol}.csv", index=False)
    out = tmp_path / "out"
    argv = ["--lookback", "30", "--pred-len", "3", "--windows", "1", "--samples", "2"]
    assert main(argv + ["--data", str(folder), "--output-dir", str(out)]) == 0, capsys.readouterr().err
    assert set(pd.read_csv(out / "forecasts.csv")["series_id"]) == {"GOOG", "SPX"}
    capsys.readouterr()
    assert main(argv + ["--data", str(folder), "--output-dir", str(folder / "out")]) == 2
    assert "inside the input folder" in capsys.readouterr().err and not (folder / "out").exists()

    for edit, message in ((("high", 0.0), "has a high below its open or close"), (("close", np.nan), "is missing")):
        broken = raw.copy()
        broken.loc[broken.index[-3], edit[0]] = edit[1]  # a row of the last series in the file, GOOG
        path = tmp_path / "broken.csv"
        broken.to_csv(path, index=False)
        status = main(argv + ["--data", str(path), "--id-column", "symbol", "--output-dir", str(tmp_path / "no")])
        err = capsys.readouterr().err
        assert status == 2 and err.count("\n") == 1 and "series 'GOOG'" in err and message in err, err
    assert not (tmp_path / "no").exists()
