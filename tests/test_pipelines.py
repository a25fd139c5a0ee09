"""The "kline-forecasting" pipeline gives KronosForecaster's forecasts through transformers.pipeline."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_MODEL_CONFIGS, TINY_TOKENIZER_CONFIGS, random_klines
from transformers import pipeline

from transformers_kronos import (
    KlineForecastingPipeline,
    KronosConfig,
    KronosForecaster,
    KronosForTokenPrediction,
    KronosTokenizerConfig,
    KronosTokenizerModel,
)


@pytest.fixture
def models():
    torch.manual_seed(0)
    model = KronosForTokenPrediction(KronosConfig(**TINY_MODEL_CONFIGS["tiny"])).eval()
    tokenizer = KronosTokenizerModel(KronosTokenizerConfig(**TINY_TOKENIZER_CONFIGS["tiny"])).eval()
    return model, tokenizer


def klines(n, seed=0):
    """A frame indexed by its (hourly) timestamps, the pipeline's plainest input."""
    return random_klines(n, seed, start="2024-01-01", freq="h").set_index("timestamps")


def test_pipeline_equals_forecaster(models):
    model, tokenizer = models
    forecast = pipeline("kline-forecasting", model=model, tokenizer=tokenizer, device="cpu")
    assert isinstance(forecast, KlineForecastingPipeline)
    df = klines(40)
    expected = KronosForecaster(model, tokenizer, device="cpu").predict(df, pred_len=6, top_k=1, verbose=False)
    got = forecast(df, pred_len=6, top_k=1)
    pd.testing.assert_frame_equal(got, expected)
    # a dict input with explicit timestamps, and a list of inputs
    y = pd.date_range(df.index[-1] + pd.Timedelta("1h"), periods=6, freq="h")
    as_dict = forecast({"df": df.reset_index(drop=True), "x_timestamp": df.index, "y_timestamp": y}, top_k=1)
    np.testing.assert_array_equal(as_dict.to_numpy(), expected.to_numpy())
    both = forecast([df, klines(30, seed=1)], pred_len=6, top_k=1)
    assert len(both) == 2 and all(f.shape == (6, 6) for f in both)


def test_pipeline_quantiles_and_seed(models):
    model, tokenizer = models
    forecast = pipeline("kline-forecasting", model=model, tokenizer=tokenizer, device="cpu")
    df = klines(40, seed=2)
    out = forecast(df, pred_len=4, quantile_levels=(0.1, 0.9), sample_count=5, generator=torch.Generator().manual_seed(1))
    again = forecast(df, pred_len=4, quantile_levels=(0.1, 0.9), sample_count=5, generator=torch.Generator().manual_seed(1))
    pd.testing.assert_frame_equal(out, again)
    assert {"close", "close_q0.1", "close_q0.9", "volume_q0.1"} <= set(out.columns)
    assert (out["close_q0.1"] <= out["close_q0.9"]).all()


def test_pipeline_batch_size_forecasts_series_together(models, monkeypatch):
    """`batch_size` (per call or at construction) sends that many series at a time through `predict_batch`."""
    model, tokenizer = models
    frames = [klines(n, seed=n) for n in (40, 28, 33)]
    alone = KronosForecaster(model, tokenizer, device="cpu")
    expected = [alone.predict(df, pred_len=5, top_k=1, verbose=False) for df in frames]
    passes, predict_batch = [], KronosForecaster.predict_batch

    def spy(self, df_list, *args, **kwargs):
        passes.append(len(df_list))
        return predict_batch(self, df_list, *args, **kwargs)

    monkeypatch.setattr(KronosForecaster, "predict_batch", spy)
    per_call = pipeline("kline-forecasting", model=model, tokenizer=tokenizer, device="cpu")
    built = pipeline("kline-forecasting", model=model, tokenizer=tokenizer, device="cpu", batch_size=3)
    runs = ((lambda: per_call(frames, pred_len=5, top_k=1, batch_size=2), [2, 1]),
            (lambda: built(frames, pred_len=5, top_k=1), [3]))
    for run, sizes in runs:
        got = run()
        assert passes == sizes
        passes.clear()
        assert len(got) == 3
        for forecast, want in zip(got, expected):
            # ragged series are padded and masked together: equal to each alone up to float rounding
            np.testing.assert_allclose(forecast.to_numpy(), want.to_numpy(), rtol=1e-6, atol=1e-6)
            assert (forecast.index == want.index).all()
    tables = per_call(frames[:2], pred_len=5, quantile_levels=(0.5,), sample_count=3, top_k=1, batch_size=2)
    assert passes == [2] and [t.shape for t in tables] == [(5, 12)] * 2
    for table, want in zip(tables, expected):  # greedy paths: each median is the series' own forecast
        np.testing.assert_allclose(table.iloc[:, 6:].to_numpy(), want.to_numpy(), rtol=1e-6, atol=1e-6)
    single = built(frames[0], pred_len=5, top_k=1)  # one input: one frame, as without batch_size
    pd.testing.assert_frame_equal(single, expected[0])
    for bad, error in ((0, ValueError), (1.5, TypeError)):
        with pytest.raises(error, match="batch_size"):
            per_call(frames, pred_len=5, batch_size=bad)


def test_pipeline_from_paths(models, tmp_path):
    model, tokenizer = models
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    forecast = pipeline("kline-forecasting", model=str(tmp_path / "model"), tokenizer=str(tmp_path / "tokenizer"), device="cpu")
    df = klines(30, seed=3)
    expected = KronosForecaster(model, tokenizer, device="cpu").predict(df, pred_len=3, top_k=1, verbose=False)
    pd.testing.assert_frame_equal(forecast(df, pred_len=3, top_k=1), expected)
    # swapped paths are refused, instead of loading each network with random weights
    with pytest.raises(ValueError, match="is a 'kronos_tokenizer' checkpoint"):
        pipeline("kline-forecasting", model=str(tmp_path / "tokenizer"), tokenizer=str(tmp_path / "model"), device="cpu")
    with pytest.raises(ValueError, match="is a 'kronos' checkpoint"):
        pipeline("kline-forecasting", model=model, tokenizer=str(tmp_path / "model"), device="cpu")


def test_pipeline_bad_input(models):
    model, tokenizer = models
    with pytest.raises(ValueError, match="needs the Kronos tokenizer"):
        pipeline("kline-forecasting", model=model, device="cpu")
    forecast = pipeline("kline-forecasting", model=model, tokenizer=tokenizer, device="cpu")
    with pytest.raises(TypeError, match="unexpected argument"):
        forecast(klines(20), pred_len=3, temperature=0.5)
    with pytest.raises(TypeError, match="DataFrames"):
        forecast("not a frame", pred_len=3)
    with pytest.raises(ValueError, match="'df'"):
        forecast({"frame": klines(20)}, pred_len=3)
    with pytest.raises(ValueError, match="price column"):
        forecast(klines(20).drop(columns=["close"]), pred_len=3)


def test_pipeline_positional_arguments_and_empty_lists(models):
    model, tokenizer = models
    forecast = pipeline("kline-forecasting", model=model, tokenizer=tokenizer, device="cpu")
    with pytest.raises(TypeError, match="only positional argument; pass the rest by name, e.g. pred_len=24"):
        forecast(klines(20), 3)
    assert forecast([], pred_len=3) == [] and forecast([], pred_len=3, batch_size=2) == []


def test_pipeline_max_context_and_clip_reach_the_forecaster(models):
    model, tokenizer = models
    forecast = pipeline("kline-forecasting", model=model, tokenizer=tokenizer, device="cpu", max_context=16, clip=3)
    assert forecast.forecaster.max_context == 16 and forecast.forecaster.clip == 3
    df = klines(40, seed=5)
    expected = KronosForecaster(model, tokenizer, device="cpu", max_context=16, clip=3).predict(
        df, pred_len=4, top_k=1, verbose=False)
    pd.testing.assert_frame_equal(forecast(df, pred_len=4, top_k=1), expected)
    full_window = KronosForecaster(model, tokenizer, device="cpu").predict(df, pred_len=4, top_k=1, verbose=False)
    assert not np.allclose(expected.to_numpy(), full_window.to_numpy())
