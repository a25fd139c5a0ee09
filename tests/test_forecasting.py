"""KronosForecaster: parity with upstream's KronosPredictor, batches, sample paths, quantiles and input checks."""

import datetime as dt
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from conftest import TINY_MODEL_CONFIGS, TINY_TOKENIZER_CONFIGS, random_klines

from transformers_kronos import (
    KronosConfig,
    KronosForecaster,
    KronosForTokenPrediction,
    KronosTokenizerConfig,
    KronosTokenizerModel,
    calendar_features,
    filter_logits,
    infer_future_timestamps,
)
from transformers_kronos import forecasting
from transformers_kronos.demo import load_demo
from transformers_kronos.forecasting import FEATURE_COLUMNS, quantile_column
from transformers_kronos.fast_decoding import KronosFastSteps
from transformers_kronos.generation_kronos import KronosStaticSteps
from transformers_kronos.modeling_kronos import KronosHierarchicalEmbedding, sample_tokens

MODEL_CONFIG = TINY_MODEL_CONFIGS["tiny"]
TOKENIZER_CONFIG = TINY_TOKENIZER_CONFIGS["tiny"]


def make_klines(n, seed=0, freq="5min", start="2024-01-02 09:30", volume=True, amount=False):
    """`random_klines` split as upstream's predictor takes it: the frame, and its timestamps as a Series."""
    frame = random_klines(n, seed, start=start, freq=freq, volume=volume, amount=amount)
    return frame.drop(columns="timestamps"), frame["timestamps"]


@pytest.fixture
def checkpoints(upstream_checkpoint):
    """Upstream-written checkpoints of a tiny predictor and tokenizer, and fresh upstream modules (eval mode)."""
    model_path, up_model = upstream_checkpoint("model", MODEL_CONFIG, seed=1)
    tok_path, up_tok = upstream_checkpoint("tokenizer", TOKENIZER_CONFIG, seed=2)
    return model_path, tok_path, up_model, up_tok


@pytest.fixture
def forecaster(checkpoints):
    """A fresh forecaster per test: tests change its settings (max_context) and patch its models."""
    model_path, tok_path, _, _ = checkpoints
    return KronosForecaster.from_pretrained(model_path, tok_path, device="cpu")


def upstream_predictor(upstream, checkpoints, max_context):
    _, _, up_model, up_tok = checkpoints
    return upstream.KronosPredictor(up_model, up_tok, device="cpu", max_context=max_context, clip=5)


def split(df, timestamps, lookback, pred_len):
    return (
        df.iloc[:lookback],
        timestamps.iloc[:lookback].reset_index(drop=True),
        timestamps.iloc[lookback : lookback + pred_len].reset_index(drop=True),
    )


# ------------------------------------------------------------------------------------------------ parity with upstream

# (lookback, pred_len, max_context): in the window; context already longer than the window; window fills mid-forecast
PARITY_CASES = [(40, 8, 64), (40, 12, 32), (24, 16, 32)]


@pytest.mark.parametrize("lookback,pred_len,max_context", PARITY_CASES)
def test_greedy_matches_upstream(upstream, checkpoints, forecaster, lookback, pred_len, max_context):
    df, ts = make_klines(lookback + pred_len, seed=lookback + pred_len)
    x, x_ts, y_ts = split(df, ts, lookback, pred_len)
    expected = upstream_predictor(upstream, checkpoints, max_context).predict(x, x_ts, y_ts, pred_len, top_k=1, verbose=False)
    forecaster.max_context = max_context
    ours = forecaster.predict(x, x_ts, y_ts, pred_len, top_k=1, verbose=False)
    assert list(ours.columns) == list(expected.columns)
    assert (ours.index == pd.DatetimeIndex(expected.index)).all()
    np.testing.assert_allclose(ours.to_numpy(), expected.to_numpy(), rtol=1e-5, atol=0)


@pytest.mark.parametrize("lookback,pred_len,max_context", PARITY_CASES)
def test_seeded_sampling_matches_upstream(upstream, checkpoints, forecaster, lookback, pred_len, max_context):
    """Same seed, same random draws: the averaged sample paths equal upstream's (sample_count=3, nucleus)."""
    df, ts = make_klines(lookback + pred_len, seed=7)
    x, x_ts, y_ts = split(df, ts, lookback, pred_len)
    predictor = upstream_predictor(upstream, checkpoints, max_context)
    torch.manual_seed(123)
    expected = predictor.predict(x, x_ts, y_ts, pred_len, T=1.0, top_p=0.9, sample_count=3, verbose=False)
    forecaster.max_context = max_context
    torch.manual_seed(123)
    ours = forecaster.predict(x, x_ts, y_ts, pred_len, T=1.0, top_p=0.9, sample_count=3, verbose=False)
    np.testing.assert_allclose(ours.to_numpy(), expected.to_numpy(), rtol=1e-5, atol=0)


@pytest.mark.parametrize("max_context", [512, 32])  # in the window; the window slides for the last 4 steps
def test_predict_batch_matches_upstream(upstream, checkpoints, forecaster, max_context):
    lookback, pred_len = 30, 6
    frames = [make_klines(lookback + pred_len, seed=s) for s in range(3)]
    xs, x_tss, y_tss = zip(*(split(df, ts, lookback, pred_len) for df, ts in frames))
    predictor = upstream_predictor(upstream, checkpoints, max_context)
    forecaster.max_context = max_context
    expected = predictor.predict_batch(list(xs), list(x_tss), list(y_tss), pred_len, top_k=1, verbose=False)
    ours = forecaster.predict_batch(list(xs), list(x_tss), list(y_tss), pred_len, top_k=1, verbose=False)
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-5, atol=0)
    sampling = dict(T=1.0, top_p=0.9, sample_count=3, verbose=False)
    torch.manual_seed(5)
    expected = predictor.predict_batch(list(xs), list(x_tss), list(y_tss), pred_len, **sampling)
    torch.manual_seed(5)
    ours = forecaster.predict_batch(list(xs), list(x_tss), list(y_tss), pred_len, **sampling)
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-5, atol=0)


def test_missing_volume_and_amount_filled_as_upstream(upstream, checkpoints, forecaster):
    pred_len = 5
    for volume in (False, True):
        df, ts = make_klines(35, seed=11, volume=volume)
        x, x_ts, y_ts = split(df, ts, 30, pred_len)
        expected = upstream_predictor(upstream, checkpoints, 512).predict(x, x_ts, y_ts, pred_len, top_k=1, verbose=False)
        ours = forecaster.predict(x, x_ts, y_ts, pred_len, top_k=1, verbose=False)
        np.testing.assert_allclose(ours.to_numpy(), expected.to_numpy(), rtol=1e-5, atol=0)


# ------------------------------------------------------------------------------------------------ batches

def test_ragged_batch_equals_each_series_alone(forecaster):
    """Different context lengths (one longer than the window): left padding gives each series' own forecast."""
    pred_len = 10
    forecaster.max_context = 32
    series = [split(*make_klines(n + pred_len, seed=n), n, pred_len) for n in (12, 25, 45)]
    batch = forecaster.predict_batch(
        [s[0] for s in series], [s[1] for s in series], [s[2] for s in series], pred_len, top_k=1, verbose=False
    )
    for (x, x_ts, y_ts), got in zip(series, batch):
        alone = forecaster.predict(x, x_ts, y_ts, pred_len, top_k=1, verbose=False)
        np.testing.assert_allclose(got.to_numpy(), alone.to_numpy(), rtol=1e-6, atol=1e-6)
        assert (got.index == alone.index).all()


def test_tokenizer_encodes_a_few_series_at_a_time(forecaster, monkeypatch):
    """Encoding in passes of a few series (ENCODE_POSITIONS_PER_PASS, on CPU) gives the tokens of one pass."""
    pred_len = 4
    series = [split(*make_klines(n + pred_len, seed=n), n, pred_len) for n in (12, 25, 30)]  # left-padded in the batch
    args = ([s[0] for s in series], [s[1] for s in series], [s[2] for s in series], pred_len)
    tokens, passes = [], []
    encode = forecaster.tokenizer.encode
    monkeypatch.setattr(
        forecaster.tokenizer, "encode", lambda x, **k: passes.append(len(x)) or tokens.append(encode(x, **k)) or tokens[-1]
    )
    whole = forecaster.predict_batch(*args, top_k=1, verbose=False)
    assert passes == [3]
    monkeypatch.setattr(forecasting, "ENCODE_POSITIONS_PER_PASS", 60)  # two series of 30 positions per pass
    split_up = forecaster.predict_batch(*args, top_k=1, verbose=False)
    assert passes == [3, 2, 1]
    assert torch.equal(torch.cat([t[0] for t in tokens[1:]]), tokens[0][0])
    assert torch.equal(torch.cat([t[1] for t in tokens[1:]]), tokens[0][1])
    for a, b in zip(split_up, whole):
        pd.testing.assert_frame_equal(a, b)


def test_batch_size_splits_the_batch(forecaster, capsys):
    """Passes of `batch_size` series give the forecasts of one pass, in the input's order, with one progress bar."""
    pred_len = 6
    series = [split(*make_klines(n + pred_len, seed=n), n, pred_len) for n in (14, 30, 22, 9, 26)]
    xs, x_tss, y_tss = ([s[i] for s in series] for i in range(3))
    whole = forecaster.predict_batch(xs, x_tss, y_tss, pred_len, top_k=1, verbose=False)
    for batch_size in (1, 2, 5, 8):
        parts = forecaster.predict_batch(xs, x_tss, y_tss, pred_len, top_k=1, verbose=batch_size == 2, batch_size=batch_size)
        assert len(parts) == len(series)
        for got, expected in zip(parts, whole):
            # the passes pad to different lengths, so the masked kernels differ (as a batch and a series alone do)
            np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-6, atol=1e-6)
            assert (got.index == expected.index).all()
    assert "18/18" in capsys.readouterr().err  # three passes of 6 steps

    def sampled(batch_size):
        return forecaster.predict_batch(
            xs, x_tss, y_tss, pred_len, sample_count=3, verbose=False, return_samples=True, batch_size=batch_size,
            generator=torch.Generator().manual_seed(3),
        )[1]

    first, again = sampled(2), sampled(2)
    assert [p.shape for p in first] == [(3, pred_len, 6)] * len(series)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    tables = forecaster.predict_quantiles_batch(xs, x_tss, y_tss, pred_len, sample_count=3, verbose=False, batch_size=3)
    assert [t.shape for t in tables] == [(pred_len, 6 + 18)] * len(series)


def generated_rows(forecaster, monkeypatch):
    """Record the rows (paths) of every `generate_tokens` call the forecaster makes."""
    rows, generate = [], forecaster.model.generate_tokens

    def spy(s1_ids, *args, sample_count=1, **kwargs):
        rows.append((s1_ids.shape[0], sample_count))
        return generate(s1_ids, *args, sample_count=sample_count, **kwargs)

    monkeypatch.setattr(forecaster.model, "generate_tokens", spy)
    return rows


@pytest.mark.parametrize(
    "series,sample_count,batch_size,passes",
    [
        (5, 3, None, [(5, 3)]),  # everything at once (upstream's way)
        (5, 3, 7, [(2, 3), (2, 3), (1, 3)]),  # whole series, as many as fit
        (5, 1, 2, [(2, 1), (2, 1), (1, 1)]),
        (2, 5, 2, [(1, 2), (1, 2), (1, 1)] * 2),  # more paths than fit: each series alone, its paths split
        (1, 4, 4, [(1, 4)]),
    ],
)
def test_batch_size_counts_paths(forecaster, monkeypatch, series, sample_count, batch_size, passes):
    """`batch_size` bounds the paths decoded together; every series still gets `sample_count` paths, in order."""
    pred_len = 4
    data = [split(*make_klines(n + pred_len, seed=n), n, pred_len) for n in (14, 30, 22, 9, 26)[:series]]
    xs, x_tss, y_tss = ([s[i] for s in data] for i in range(3))
    rows = generated_rows(forecaster, monkeypatch)
    forecasts, samples = forecaster.predict_batch(
        xs, x_tss, y_tss, pred_len, top_k=1, sample_count=sample_count, verbose=False, return_samples=True,
        batch_size=batch_size,
    )
    assert rows == passes
    assert [p.shape for p in samples] == [(sample_count, pred_len, 6)] * series
    for (x, x_ts, y_ts), forecast, paths in zip(data, forecasts, samples):
        # greedy: every path, whichever pass decoded it, is the series' own forecast
        alone = forecaster.predict(x, x_ts, y_ts, pred_len, top_k=1, verbose=False)
        for path in paths:
            np.testing.assert_allclose(path, alone.to_numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(forecast.to_numpy(), alone.to_numpy(), rtol=1e-6, atol=1e-6)


def test_batch_size_splits_the_paths_of_one_series(forecaster, monkeypatch, capsys):
    """`predict` and `predict_quantiles` take `batch_size` too: many paths of one series in bounded passes."""
    x, x_ts, y_ts = split(*make_klines(40, seed=31), 33, 7)
    rows = generated_rows(forecaster, monkeypatch)

    def sampled(batch_size, verbose=False):
        return forecaster.predict(
            x, x_ts, y_ts, 7, sample_count=10, verbose=verbose, return_samples=True, batch_size=batch_size,
            generator=torch.Generator().manual_seed(5),
        )

    (forecast, paths), (_, again) = sampled(4, verbose=True), sampled(4)
    assert rows == [(1, 4), (1, 4), (1, 2)] * 2
    assert "21/21" in capsys.readouterr().err  # one bar over the three passes of 7 steps
    assert paths.shape == (10, 7, 6)
    np.testing.assert_array_equal(paths, again)  # seeded: reproducible
    np.testing.assert_allclose(forecast.to_numpy(), paths.mean(axis=0), rtol=1e-6)
    # the passes draw their own numbers: distinct paths, not one pass's paths repeated
    assert len({path.tobytes() for path in paths}) == 10
    table = forecaster.predict_quantiles(x, x_ts, y_ts, 7, sample_count=10, verbose=False, batch_size=3)
    assert rows[-4:] == [(1, 3), (1, 3), (1, 3), (1, 1)]
    assert table.shape == (7, 6 + 18)


def test_split_paths_do_not_depend_on_batch_size(forecaster):
    """Below `sample_count`, every path draws from its own generator: the same paths for every `batch_size`."""
    data = [split(*make_klines(n + 6, seed=n), n, 6) for n in (30, 30)]
    xs, x_tss, y_tss = ([s[i] for s in data] for i in range(3))

    def one(batch_size, seed=5):
        return forecaster.predict(xs[0], x_tss[0], y_tss[0], 6, sample_count=6, verbose=False, return_samples=True,
                                  batch_size=batch_size, generator=torch.Generator().manual_seed(seed))[1]

    def listed(batch_size):
        generators = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
        return forecaster.predict_batch(xs, x_tss, y_tss, 6, sample_count=6, verbose=False, return_samples=True,
                                        batch_size=batch_size, generator=generators)[1]

    def global_rng(batch_size):
        torch.manual_seed(7)
        return forecaster.predict(xs[0], x_tss[0], y_tss[0], 6, sample_count=6, verbose=False, return_samples=True,
                                  batch_size=batch_size)[1]

    for sampled in (one, listed, global_rng):
        first = np.asarray(sampled(1))
        for batch_size in (2, 4, 5):
            # the same tokens; the candles only to float rounding (measured 1.1e-7 relative), as BLAS rounds the
            # rows of products with fewer than 12 rows differently (another sampled token would differ by far more)
            np.testing.assert_allclose(np.asarray(sampled(batch_size)), first, rtol=1e-6, atol=0)
    paths = one(4)
    assert len({path.tobytes() for path in paths}) == 6  # distinct paths
    assert not np.array_equal(paths, one(4, seed=6))  # and drawn from the generator
    # a series' paths do not depend on the series beside it
    alone = forecaster.predict_batch(xs[:1], x_tss[:1], y_tss[:1], 6, sample_count=6, verbose=False,
                                     return_samples=True, batch_size=3, generator=[torch.Generator().manual_seed(1)])
    np.testing.assert_array_equal(listed(3)[0], alone[1][0])


@pytest.mark.parametrize("batch_size,error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_batch_size(forecaster, batch_size, error):
    x, x_ts, y_ts = split(*make_klines(30, seed=23), 24, 6)
    with pytest.raises(error, match="batch_size"):
        forecaster.predict_batch([x, x], [x_ts, x_ts], [y_ts, y_ts], verbose=False, batch_size=batch_size)
    with pytest.raises(error, match="batch_size"):
        forecaster.predict(x, x_ts, y_ts, verbose=False, batch_size=batch_size)
    with pytest.raises(error, match="batch_size"):
        forecaster.predict_quantiles(x, x_ts, y_ts, verbose=False, batch_size=batch_size)


def test_batch_rejects_different_forecast_lengths(forecaster):
    (x1, t1, y1), (x2, t2, y2) = split(*make_klines(30, seed=1), 25, 5), split(*make_klines(30, seed=2), 24, 6)
    with pytest.raises(ValueError, match="same number of candles"):
        forecaster.predict_batch([x1, x2], [t1, t2], [y1, y2], verbose=False)


# ------------------------------------------------------------------------------------------------ distributions

def test_samples_and_quantiles(forecaster):
    x, x_ts, y_ts = split(*make_klines(40, seed=3), 32, 8)
    torch.manual_seed(0)
    mean, samples = forecaster.predict(x, x_ts, y_ts, sample_count=6, verbose=False, return_samples=True)
    assert samples.shape == (6, 8, 6)
    assert np.isfinite(samples).all()
    assert not np.allclose(samples[0], samples[1])  # distinct paths
    np.testing.assert_allclose(mean.to_numpy(), samples.mean(axis=0), rtol=1e-6, atol=1e-6)

    torch.manual_seed(0)
    table = forecaster.predict_quantiles(x, x_ts, y_ts, quantile_levels=(0.1, 0.5, 0.9), sample_count=6, verbose=False)
    levels = (0.1, 0.5, 0.9)
    assert list(table.columns[:6]) == list(FEATURE_COLUMNS)
    assert [c for c in table.columns[6:]] == [quantile_column(c, q) for c in FEATURE_COLUMNS for q in levels]
    np.testing.assert_allclose(table[list(FEATURE_COLUMNS)].to_numpy(), mean.to_numpy(), rtol=1e-6)
    for j, column in enumerate(FEATURE_COLUMNS):
        for q in levels:
            np.testing.assert_allclose(table[quantile_column(column, q)].to_numpy(), np.quantile(samples[:, :, j], q, axis=0), rtol=1e-6)
        assert (table[quantile_column(column, 0.1)] <= table[quantile_column(column, 0.5)] + 1e-9).all()
        assert (table[quantile_column(column, 0.5)] <= table[quantile_column(column, 0.9)] + 1e-9).all()
    assert (table["close_q0.9"] - table["close_q0.1"]).max() > 0


def test_quantiles_batch(forecaster):
    """Each series' table is its own: greedy paths make every quantile the series' forecast alone."""
    series = [split(*make_klines(n + 4, seed=n), n, 4) for n in (20, 28)]
    tables = forecaster.predict_quantiles_batch(
        [s[0] for s in series], [s[1] for s in series], [s[2] for s in series], quantile_levels=(0.25, 0.75),
        sample_count=4, top_k=1, verbose=False,
    )
    assert len(tables) == 2 and all(t.shape == (4, 6 + 12) for t in tables)
    for (x, x_ts, y_ts), table in zip(series, tables):
        alone = forecaster.predict(x, x_ts, y_ts, top_k=1, verbose=False).to_numpy()
        for level in (None, 0.25, 0.75):
            columns = list(FEATURE_COLUMNS) if level is None else [quantile_column(c, level) for c in FEATURE_COLUMNS]
            np.testing.assert_allclose(table[columns].to_numpy(), alone, rtol=1e-6, atol=1e-6)


def test_seeded_runs_are_reproducible(forecaster):
    x, x_ts, y_ts = split(*make_klines(40, seed=4), 32, 8)
    runs = []
    for _ in range(2):
        generator = torch.Generator().manual_seed(42)
        runs.append(forecaster.predict(x, x_ts, y_ts, sample_count=3, verbose=False, return_samples=True, generator=generator)[1])
    np.testing.assert_array_equal(runs[0], runs[1])
    other = forecaster.predict(
        x, x_ts, y_ts, sample_count=3, verbose=False, return_samples=True, generator=torch.Generator().manual_seed(43)
    )[1]
    assert not np.array_equal(runs[0], other)
    torch.manual_seed(9)
    a = forecaster.predict(x, x_ts, y_ts, sample_count=2, verbose=False)
    torch.manual_seed(9)
    b = forecaster.predict(x, x_ts, y_ts, sample_count=2, verbose=False)
    pd.testing.assert_frame_equal(a, b)


def test_one_generator_per_series(forecaster):
    """
    With a list of generators, a series' sampled paths come from its own generator alone: the same whatever shares
    its batch, in which position, or split into passes, and a one-element list draws as the bare generator does.
    """
    a, b, c = (split(*make_klines(36, seed=s), 32, 4) for s in (11, 12, 13))

    def paths(series, seeds, **kwargs):
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        return forecaster.predict_batch(
            [s[0] for s in series], [s[1] for s in series], [s[2] for s in series], sample_count=3, verbose=False,
            return_samples=True, generator=generators, **kwargs,
        )[1]

    alone = forecaster.predict(*a, sample_count=3, verbose=False, return_samples=True,
                               generator=torch.Generator().manual_seed(1))[1]  # fmt: skip
    np.testing.assert_array_equal(paths([a], [1])[0], alone)
    # equal lengths, so no padding: the arithmetic of each row is the same and the equality exact
    for series, seeds, index in (([a, b], [1, 2], 0), ([c, a], [3, 1], 1), ([b, c, a], [2, 3, 1], 2)):
        np.testing.assert_array_equal(paths(series, seeds)[index], alone)
    np.testing.assert_array_equal(paths([b, a, c], [2, 1, 3], batch_size=3)[1], alone)
    # a single generator for the whole batch draws the series' paths together: another stream than the list's
    shared = forecaster.predict_batch([a[0], b[0]], [a[1], b[1]], [a[2], b[2]], sample_count=3, verbose=False,
                                      return_samples=True, generator=torch.Generator().manual_seed(1))[1]  # fmt: skip
    assert not np.array_equal(shared[1], paths([a, b], [1, 1])[1])


@pytest.mark.parametrize(
    "generator,error,match",
    [
        ([torch.Generator()], ValueError, "holds 1 generators but there are 2 series"),
        ([torch.Generator(), 7], TypeError, "a list holding int"),
        ({"a": 1}, TypeError, "got dict"),
    ],
)
def test_bad_generator_lists(forecaster, generator, error, match):
    a, b = (split(*make_klines(20, seed=s), 16, 4) for s in (1, 2))
    with pytest.raises(error, match=match):
        forecaster.predict_batch([a[0], b[0]], [a[1], b[1]], [a[2], b[2]], verbose=False, generator=generator)


def test_temperature_divides_the_logits():
    """Sampling at temperature T draws from softmax(logits / T), with the generator's numbers in upstream's order."""
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0], [0.0, 3.0, 1.0, 2.0]])
    for temperature in (0.3, 1.0, 2.5):
        want = torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=torch.Generator().manual_seed(3))
        got = sample_tokens(logits, temperature, generator=torch.Generator().manual_seed(3))
        assert torch.equal(got, want)
    counts = torch.zeros(4)
    generator = torch.Generator().manual_seed(0)
    for _ in range(400):
        counts[sample_tokens(logits[:1], 0.05, generator=generator)[0, 0]] += 1
    assert counts[0] == 400  # a cold temperature concentrates on the most likely token


def test_top_k_larger_than_the_vocabulary_keeps_everything():
    logits = torch.tensor([[4.0, 3.0, 2.0]])
    assert torch.isfinite(filter_logits(logits.clone(), top_k=10)).all()


def test_top_k_none_and_both_filters():
    # upstream crashes on top_k=None and ignores top_p when top_k > 0; here both filters apply
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0]])
    kept = torch.isfinite(filter_logits(logits.clone(), top_k=4, top_p=0.5))
    assert kept.tolist() == [[True, False, False, False, False]]
    kept = torch.isfinite(filter_logits(logits.clone(), top_k=None, top_p=1.0))
    assert kept.all()
    kept = torch.isfinite(filter_logits(logits.clone(), top_k=2, top_p=1.0))
    assert kept.tolist() == [[True, True, False, False, False]]


def test_top_k_none_accepted(forecaster):
    """`top_k=None` (which crashes upstream) is `top_k=0`: the same draws."""
    x, x_ts, y_ts = split(*make_klines(30, seed=5), 26, 4)
    torch.manual_seed(4)
    out = forecaster.predict(x, x_ts, y_ts, top_k=None, top_p=0.8, sample_count=2, verbose=False)
    torch.manual_seed(4)
    pd.testing.assert_frame_equal(out, forecaster.predict(x, x_ts, y_ts, top_k=0, top_p=0.8, sample_count=2, verbose=False))


# ------------------------------------------------------------------------------------------------ modes and options

def test_rolling_mode(forecaster, monkeypatch):
    """
    Rolling equals exact while the window never fills. Once it slides, exact re-encodes the window every step and
    rolling never does (with several sample paths too, whose rolling cache is one copy per path).
    """
    x, x_ts, y_ts = split(*make_klines(40, seed=6), 30, 10)
    exact = forecaster.predict(x, x_ts, y_ts, top_k=1, verbose=False)
    rolling = forecaster.predict(x, x_ts, y_ts, top_k=1, verbose=False, sliding="rolling")
    pd.testing.assert_frame_equal(exact, rolling)

    passes = []
    # every pass of several positions embeds its tokens through the module, whether it runs the backbone's modules
    # or the fast prompt pass (the fast decoding steps look the embeddings up themselves)
    embed = KronosHierarchicalEmbedding.forward

    def spy(self, s1_ids, *args, **kwargs):
        passes.append(s1_ids.shape[1])
        return embed(self, s1_ids, *args, **kwargs)

    monkeypatch.setattr(KronosHierarchicalEmbedding, "forward", spy)
    forecaster.max_context = 32
    # 30 candles of context, 10 forecast: the steps that feed positions 33 to 39 find the window full
    for sample_count in (1, 2):
        passes.clear()
        forecaster.predict(x, x_ts, y_ts, top_k=1, verbose=False, sample_count=sample_count)
        assert passes == [30] + [32] * 7, "exact: the prompt, then one window per sliding step"
        passes.clear()
        rolling = forecaster.predict(x, x_ts, y_ts, top_k=1, verbose=False, sliding="rolling",
                                     sample_count=sample_count)
        assert passes == [30], "rolling: the prompt only, the cache drops its oldest position instead"
        assert rolling.shape == (10, 6) and np.isfinite(rolling.to_numpy()).all()
    with pytest.raises(ValueError, match="sliding"):
        forecaster.predict(x, x_ts, y_ts, verbose=False, sliding="approximate")


SAMPLE_KLINE = Path(__file__).resolve().parents[1] / "examples" / "data" / "sample_kline.csv"


def test_rolling_mode_deviation_is_bounded_on_a_real_series():
    """
    How far `sliding="rolling"` strays from exact once the window slides, with a trained model on a real series:
    the bundled demo model on the bundled 5-minute sample (examples/data/sample_kline.csv), greedy, 120 candles
    forecast with a 128-candle window, so that every step slides. The bound documented in docs/forecasting.md.
    Measured largest |rolling - exact| / exact over the four prices, per context length: 300: 0.8%, 400: 5.0%
    (600: 0.0%, identical tokens). A greedy path that flips one token follows another trajectory, hence the margin.
    """
    model, tokenizer = load_demo()
    forecaster = KronosForecaster(model, tokenizer, max_context=128)
    frame = pd.read_csv(SAMPLE_KLINE, parse_dates=["timestamps"])
    prices = ["open", "high", "low", "close"]
    deviations = []
    for lookback in (300, 400):
        x, x_ts, y_ts = split(frame.drop(columns="timestamps"), frame["timestamps"], lookback, 120)
        exact = forecaster.predict(x, x_ts, y_ts, top_k=1, verbose=False)
        rolling = forecaster.predict(x, x_ts, y_ts, top_k=1, verbose=False, sliding="rolling")
        deviations.append(float(((rolling[prices] - exact[prices]).abs() / exact[prices].abs()).max().max()))
    assert max(deviations) <= 0.10, deviations


def test_timestamps_inferred(forecaster):
    x, x_ts, y_ts = split(*make_klines(40, seed=8), 32, 8)
    given = forecaster.predict(x, x_ts, y_ts, top_k=1, verbose=False)
    inferred = forecaster.predict(x, x_ts, pred_len=8, top_k=1, verbose=False)
    pd.testing.assert_frame_equal(given, inferred, check_names=False)
    assert (inferred.index == pd.DatetimeIndex(y_ts)).all()
    # a DatetimeIndex on the frame stands in for x_timestamp
    indexed = forecaster.predict(x.set_index(pd.DatetimeIndex(x_ts)), pred_len=8, top_k=1, verbose=False)
    np.testing.assert_array_equal(indexed.to_numpy(), given.to_numpy())


def test_infer_future_timestamps():
    days = pd.bdate_range("2024-01-01", periods=10)  # Monday to Friday: steps of 1 and 3 days
    assert list(infer_future_timestamps(days, 3)) == list(pd.bdate_range("2024-01-15", periods=3))
    minutes = pd.Series(pd.date_range("2024-01-01 09:30", periods=5, freq="15min"))
    assert list(infer_future_timestamps(minutes, 2)) == [pd.Timestamp("2024-01-01 10:45"), pd.Timestamp("2024-01-01 11:00")]
    # one-second bars 09:30-10:00 on weekdays, ending on a Friday: the future starts on Monday's open
    sessions = [pd.date_range(d + pd.Timedelta("9h30min"), periods=1800, freq="s") for d in days[:5]]
    seconds = infer_future_timestamps(sessions[0].append(sessions[1:]), 50)
    assert list(seconds) == list(pd.date_range("2024-01-08 09:30", periods=50, freq="s"))
    irregular = pd.to_datetime(["2024-01-01 09:30", "2024-01-01 09:35", "2024-01-01 11:00", "2024-01-01 11:02"])
    with pytest.raises(ValueError, match="y_timestamp"):
        infer_future_timestamps(irregular, 2)
    with pytest.raises(ValueError, match="fewer than 2"):
        infer_future_timestamps(pd.to_datetime(["2024-01-01"]), 2)


def walk_calendar(history: pd.DatetimeIndex, step: pd.Timedelta, pred_len: int) -> list:
    """The calendar rule read literally: step on from the last bar one `step` at a time and keep the times that fall
    on a weekday (and, for intraday bars, a time of day) of the history; 14 days without one is an error."""
    weekdays = set(history.day_of_week)
    if history[-1] - history[0] < pd.Timedelta(days=7):
        weekdays = set(range(5)) if weekdays <= set(range(5)) else set(range(7))
    times = {t - t.normalize() for t in history} if step < pd.Timedelta(days=1) else None
    future, t, since = [], history[-1], 0
    while len(future) < pred_len:
        t, since = t + step, since + 1
        if since > pd.Timedelta(days=14) / step:
            raise ValueError("no bar within two weeks")
        if t.day_of_week in weekdays and (times is None or t - t.normalize() in times):
            future.append(t)
            since = 0
    return future


@settings(max_examples=80, deadline=None)
@given(
    step=st.sampled_from(["5min", "30min", "1h", "1D"]),
    opens=st.integers(0, 23),
    hours=st.integers(1, 24),
    lunch=st.booleans(),
    weekdays=st.sets(st.integers(0, 6), min_size=1),
    tz=st.sampled_from([None, "America/New_York", "Asia/Shanghai", "Europe/London"]),
    start=st.datetimes(dt.datetime(2019, 1, 1), dt.datetime(2025, 12, 31)),
    length=st.integers(2, 300),
    pred_len=st.integers(1, 40),
    unit=st.sampled_from(["s", "us", "ns"]),
)
def test_future_timestamps_follow_the_calendar_walk(step, opens, hours, lunch, weekdays, tz, start, length, pred_len,
                                                    unit):
    """Histories on random sessions, lunch breaks, weekdays, time zones (DST included) and units, whose steps neither
    repeat one length nor follow a pandas frequency: the inferred future is the one the step-by-step walk finds, or
    both refuse."""
    step = pd.Timedelta(step)
    grid = pd.date_range(pd.Timestamp(start).floor(step), periods=length * 60, freq=step, tz=tz)
    time_of_day = grid - grid.normalize()
    on = grid.day_of_week.isin(list(weekdays)) & (time_of_day >= pd.Timedelta(hours=opens))
    on &= time_of_day < pd.Timedelta(hours=opens + hours)
    if lunch:
        on &= (time_of_day < pd.Timedelta(hours=opens + hours / 3)) | (time_of_day >= pd.Timedelta(hours=opens + hours / 2))
    history = grid[on][:length].as_unit(unit)
    steps = pd.Series(history[1:] - history[:-1])
    assume(len(history) >= 3 and steps.nunique() > 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assume(pd.infer_freq(history) is None)
    # the rule applies when one step length covers half of the steps; otherwise both parts are refused
    regular = (steps == steps.mode().iloc[0]).mean() >= 0.5
    try:
        expected = walk_calendar(history, steps.mode().iloc[0], pred_len) if regular else None
    except ValueError:
        expected = None
    event("refused" if expected is None else f"continued, tz {tz}")
    if expected is None:
        with pytest.raises(ValueError, match="y_timestamp"):
            infer_future_timestamps(history, pred_len)
    else:
        assert list(infer_future_timestamps(history, pred_len)) == expected


def test_predict_continues_the_trading_calendar(forecaster):
    """Sessions with a lunch break and weekends: omitted `y_timestamp` follows the history's calendar."""
    from transformers_kronos.synthetic import generate_klines

    frame = generate_klines(48 * 5, start="2024-01-08", seed=0)  # five sessions, the last ends Friday 15:00
    stamps = frame.pop("timestamps").dt.tz_localize("Asia/Shanghai").rename("when")
    future = infer_future_timestamps(stamps, 26)
    assert future.name == "when" and str(future.tz) == "Asia/Shanghai"
    assert [str(t)[:19] for t in future[[0, 23, 24]]] == ["2024-01-15 09:35:00", "2024-01-15 11:30:00",
                                                          "2024-01-15 13:05:00"]
    out = forecaster.predict(frame, stamps, pred_len=26, top_k=1, verbose=False)
    assert out.index.equals(future)


def test_calendar_features():
    ts = pd.to_datetime(["2024-03-15 13:45", "2024-12-31 00:01"])
    np.testing.assert_array_equal(calendar_features(ts), [[45, 13, 4, 15, 3], [1, 0, 1, 31, 12]])


def test_progress_bar(forecaster, capsys):
    x, x_ts, y_ts = split(*make_klines(30, seed=9), 26, 4)
    forecaster.predict(x, x_ts, y_ts, top_k=1, verbose=True)
    assert "4/4" in capsys.readouterr().err
    forecaster.predict(x, x_ts, y_ts, top_k=1, verbose=False)
    assert "4/4" not in capsys.readouterr().err


def test_constant_series_has_no_nan(forecaster):
    x, x_ts, y_ts = split(*make_klines(30, seed=10), 24, 6)
    for column in x.columns:
        x[column] = 42.0
    out = forecaster.predict(x, x_ts, y_ts, sample_count=2, verbose=False)
    # a constant normalises to 0 and comes back as the constant, at most clip * 1e-5 away (amount, filled as
    # upstream, is volume times the mean price)
    want = np.array([42.0] * 5 + [42.0 * 42.0])
    assert list(out.columns) == list(FEATURE_COLUMNS)
    np.testing.assert_allclose(out.to_numpy(), np.broadcast_to(want, out.shape), rtol=0, atol=5 * 1e-5 + 1e-4)


def test_values_beyond_float32_statistics_are_refused(forecaster):
    """Upstream's float32 statistics overflow (its variance squares the values): a clear error, not inf and NaN."""
    x, x_ts, y_ts = split(*make_klines(30, seed=10, amount=True), 24, 6)
    for scale, column in ((1e20, "close"), (1e39, "volume")):
        big = x.copy()
        big[column] = big[column] * scale
        with pytest.raises(ValueError, match=rf"\['{column}'\] are too large for float32 statistics.*rescale"):
            forecaster.predict(big, x_ts, y_ts, verbose=False)
    with pytest.raises(ValueError, match=r"series 1: column\(s\) \['amount'\] are too large"):
        forecaster.predict_batch([x, x.assign(amount=x["volume"] * 1e22)], [x_ts, x_ts], [y_ts, y_ts], 6, verbose=False)
    # large but representable values forecast finitely
    out = forecaster.predict(x * 1e12, x_ts, y_ts, verbose=False)
    assert np.isfinite(out.to_numpy()).all()


def test_input_that_upstream_mishandles_is_warned_about(forecaster):
    x, x_ts, y_ts = split(*make_klines(30, seed=10, amount=True), 24, 6)
    with pytest.warns(UserWarning, match="'amount' column but no 'volume': as upstream, both are set to zero"):
        out = forecaster.predict(x.drop(columns="volume"), x_ts, y_ts, verbose=False, top_k=1)
    assert (out["volume"].abs() < 1e-3).all() and (out["amount"].abs() < 1e-3).all()
    # prices that move by less than the normalisation's epsilon: the forecast is unreliable, say so
    tiny = x.drop(columns=["volume", "amount"]) * 1e-7
    with pytest.warns(UserWarning, match=r"\['open', 'high', 'low', 'close'\] vary by less than 0.0001.*unreliable"):
        forecaster.predict(tiny, x_ts, y_ts, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ordinary prices, a constant column and missing volume: no warning
        forecaster.predict(x.drop(columns=["volume", "amount"]).assign(open=5.0), x_ts, y_ts, verbose=False)


def test_models_put_in_eval_mode(checkpoints):
    model_path, tok_path, _, _ = checkpoints
    model = KronosForTokenPrediction.from_pretrained(model_path).train()
    tokenizer = KronosTokenizerModel.from_pretrained(tok_path).train()
    forecaster = KronosForecaster(model, tokenizer, device="cpu")
    assert not model.training and not tokenizer.training
    model.train()
    x, x_ts, y_ts = split(*make_klines(20, seed=12), 16, 4)
    forecaster.predict(x, x_ts, y_ts, top_k=1, verbose=False)
    assert not model.training


def test_plain_cpu_models_decode_with_the_fast_steps(checkpoints, monkeypatch):
    """Plain float32 CPU models decode with KronosFastSteps, others through their modules; both forecast alike."""
    model_path, tok_path, _, _ = checkpoints
    built = []
    init = KronosFastSteps.__init__
    monkeypatch.setattr(KronosFastSteps, "__init__", lambda self, *a, **k: built.append(1) or init(self, *a, **k))
    fast = KronosForecaster.from_pretrained(model_path, tok_path, device="cpu")
    x, x_ts, y_ts = split(*make_klines(30, seed=21), 24, 6)
    results = {}
    for sampling in (dict(top_k=1), dict(sample_count=3, top_k=1)):  # one row, and three paths
        results["fast", len(results)] = fast.predict(x, x_ts, y_ts, verbose=False, **sampling)
    assert len(built) == 2
    monkeypatch.setattr(KronosFastSteps, "supports", classmethod(lambda cls, model: False))
    for sampling in (dict(top_k=1), dict(sample_count=3, top_k=1)):
        results["modules", len(results) - 2] = fast.predict(x, x_ts, y_ts, verbose=False, **sampling)
    assert len(built) == 2
    for i in range(2):
        # the few-row products sum in another order than F.linear: ~1e-6 apart in the logits, the same greedy tokens
        pd.testing.assert_frame_equal(results["fast", i], results["modules", i], rtol=1e-5, atol=1e-4)
    monkeypatch.undo()
    bf16 = KronosForecaster.from_pretrained(model_path, tok_path, device="cpu", dtype=torch.bfloat16)
    assert not KronosFastSteps.supports(bf16.model)


def test_bfloat16(checkpoints):
    model_path, tok_path, _, _ = checkpoints
    bf16 = KronosForecaster.from_pretrained(model_path, tok_path, device="cpu", dtype=torch.bfloat16)
    assert bf16.model.dtype == torch.bfloat16
    x, x_ts, y_ts = split(*make_klines(40, seed=13), 32, 8)
    out = bf16.predict(x, x_ts, y_ts, top_k=1, verbose=False)
    assert out.dtypes.unique().tolist() == [np.float32]
    # bfloat16 rounds every weight to 8 bits of mantissa: the greedy forecast stays near float32's. Each column is
    # held to its own scale (volume, ~3,000, would otherwise swamp prices, ~100). Measured largest error / column
    # maximum: open 5.7e-5, high 6.4e-5, low 1.4e-4, close 7.9e-5, volume 8.7e-4, amount 1.0e-3 (a 0.2% price
    # error fails). Other series can flip a greedy token, which moves a column by ~0.5%: hence one fixed series.
    full = KronosForecaster.from_pretrained(model_path, tok_path, device="cpu").predict(x, x_ts, y_ts, top_k=1, verbose=False)
    bounds = {"open": 1e-3, "high": 1e-3, "low": 1e-3, "close": 1e-3, "volume": 5e-3, "amount": 5e-3}
    for column, bound in bounds.items():
        error = float((out[column] - full[column]).abs().max())
        assert error <= bound * float(full[column].abs().max()), (column, error)
    mean, samples = bf16.predict(x, x_ts, y_ts, sample_count=3, verbose=False, return_samples=True)
    assert samples.dtype == np.float32 and np.isfinite(samples).all()


def test_converted_checkpoint_and_device_map(checkpoints, forecaster, tmp_path):
    model_path, tok_path, _, _ = checkpoints
    forecaster.model.save_pretrained(tmp_path / "model")
    forecaster.tokenizer.save_pretrained(tmp_path / "tokenizer")
    converted = KronosForecaster.from_pretrained(tmp_path / "model", tmp_path / "tokenizer", device_map="cpu")
    assert converted.device == torch.device("cpu")
    x, x_ts, y_ts = split(*make_klines(30, seed=14), 24, 6)
    pd.testing.assert_frame_equal(
        converted.predict(x, x_ts, y_ts, top_k=1, verbose=False), forecaster.predict(x, x_ts, y_ts, top_k=1, verbose=False)
    )


@pytest.mark.parametrize("lookback,pred_len,max_context", [(50, 10, 16), (18, 6, 8)])
def test_context_or_forecast_longer_than_the_window(upstream, checkpoints, forecaster, lookback, pred_len, max_context):
    """Contexts longer than max_context are accepted (the predictor sees the last window), as upstream."""
    x, x_ts, y_ts = split(*make_klines(lookback + pred_len, seed=15), lookback, pred_len)
    expected = upstream_predictor(upstream, checkpoints, max_context).predict(x, x_ts, y_ts, pred_len, top_k=1,
                                                                              verbose=False)
    forecaster.max_context = max_context
    out = forecaster.predict(x, x_ts, y_ts, top_k=1, verbose=False)
    np.testing.assert_allclose(out.to_numpy(), expected.to_numpy(), rtol=1e-5, atol=0)


def test_forecast_longer_than_the_window(forecaster, monkeypatch):
    """More forecast candles than the window holds, which upstream cannot decode: the tokens of the first steps are
    those of a shorter forecast (greedy), and the rest follow."""
    x, x_ts, y_ts = split(*make_klines(30, seed=16), 18, 12)
    tokens, generate = [], forecaster.model.generate_tokens

    def spy(*args, **kwargs):
        out = generate(*args, **kwargs)
        tokens.append(out[0])
        return out

    monkeypatch.setattr(forecaster.model, "generate_tokens", spy)
    forecaster.max_context = 8
    out = forecaster.predict(x, x_ts, y_ts, top_k=1, verbose=False)
    forecaster.predict(x, x_ts, y_ts.iloc[:6], top_k=1, verbose=False)
    assert out.shape == (12, 6) and np.isfinite(out.to_numpy()).all()
    assert tokens[0].shape == (1, 12) and torch.equal(tokens[0][:, :6], tokens[1])


def test_outliers_are_clipped_as_upstream(upstream, checkpoints, forecaster, monkeypatch):
    """A candle about 11 standard deviations out (one in 120 can be no further) is clipped to 5 after normalisation:
    the tokenizer gets upstream's inputs, and the forecast is upstream's."""
    x, x_ts, y_ts = split(*make_klines(126, seed=17), 120, 6)
    x = x.copy()
    x.loc[112, ["open", "high", "close"]] = x["high"].max() * 50
    seen, encode = [], forecaster.tokenizer.encode

    def spy(inputs, *args, **kwargs):
        seen.append(inputs.clone())
        return encode(inputs, *args, **kwargs)

    monkeypatch.setattr(forecaster.tokenizer, "encode", spy)
    ours = forecaster.predict(x, x_ts, y_ts, top_k=1, verbose=False)
    values = x[list(FEATURE_COLUMNS[:5])].assign(amount=x["volume"] * x[["open", "high", "low", "close"]].mean(axis=1))
    values = values.to_numpy(np.float32)
    want = np.clip((values - values.mean(0)) / (values.std(0) + 1e-5), -5, 5)
    np.testing.assert_allclose(seen[0][0].numpy(), want, rtol=0, atol=1e-6)
    assert seen[0][0, 112, 3] == 5.0
    expected = upstream_predictor(upstream, checkpoints, 512).predict(x, x_ts, y_ts, 6, top_k=1, verbose=False)
    np.testing.assert_allclose(ours.to_numpy(), expected.to_numpy(), rtol=1e-5, atol=0)


# ------------------------------------------------------------------------------------------------ bad input

def _bad_cases():
    df, ts = make_klines(30, seed=20)
    x, x_ts, y_ts = split(df, ts, 24, 6)
    nan = x.copy()
    nan.loc[3, "close"] = np.nan
    inf = x.copy()
    inf.loc[5, "volume"] = np.inf
    text = x.copy()
    text["high"] = text["high"].astype(str)
    dup = x_ts.copy()
    dup.iloc[5] = dup.iloc[4]
    backwards = x_ts.iloc[::-1].reset_index(drop=True)
    ok = dict(df=x, x_timestamp=x_ts, y_timestamp=y_ts, pred_len=6, verbose=False)
    return [
        ("missing price", dict(ok, df=x.drop(columns=["low"])), ValueError, "price column"),
        ("not a frame", dict(ok, df=x.to_numpy()), TypeError, "DataFrame"),
        ("empty", dict(ok, df=x.iloc[:0], x_timestamp=x_ts.iloc[:0]), ValueError, "empty"),
        ("nan", dict(ok, df=nan), ValueError, "NaN or inf.*close"),
        ("inf", dict(ok, df=inf), ValueError, "NaN or inf.*volume"),
        ("non-numeric", dict(ok, df=text), TypeError, "'high' must be numeric"),
        ("complex", dict(ok, df=x.assign(open=x["open"] + 1j)), TypeError, r"'open' must be numeric \(real\)"),
        ("timestamp length", dict(ok, x_timestamp=x_ts.iloc[:-1]), ValueError, "23 timestamps but `df` has 24"),
        ("duplicate timestamps", dict(ok, x_timestamp=dup), ValueError, "duplicate"),
        ("decreasing timestamps", dict(ok, x_timestamp=backwards), ValueError, "not increasing"),
        ("decreasing y", dict(ok, y_timestamp=y_ts.iloc[::-1].reset_index(drop=True)), ValueError, "not increasing"),
        ("y before x", dict(ok, y_timestamp=x_ts.iloc[:6]), ValueError, "start after"),
        ("y at the last x", dict(ok, y_timestamp=pd.Series([x_ts.iloc[-1], *y_ts.iloc[1:]])), ValueError, "start after"),
        ("not timestamps", dict(ok, x_timestamp=["a"] * 24), TypeError, "timestamps"),
        ("pred_len 0", dict(ok, y_timestamp=None, pred_len=0), ValueError, "pred_len"),
        ("pred_len mismatch", dict(ok, pred_len=5), ValueError, "pred_len"),
        ("pred_len float", dict(ok, y_timestamp=None, pred_len=2.5), TypeError, "pred_len"),
        ("no pred_len", dict(ok, y_timestamp=None, pred_len=None), ValueError, "pred_len"),
        ("T zero", dict(ok, T=0), ValueError, "temperature"),
        ("T negative", dict(ok, T=-1.0), ValueError, "temperature"),
        ("T tiny", dict(ok, T=1e-40), ValueError, "at least 1e-06"),
        ("repeated column", dict(ok, df=pd.concat([x, x[["close"]]], axis=1)), ValueError,
         r"the column\(s\) \['close'\] more than once"),
        ("T nan", dict(ok, T=float("nan")), ValueError, "finite"),
        ("y empty", dict(ok, y_timestamp=y_ts.iloc[:0], pred_len=None), ValueError, "`y_timestamp` is empty"),
        ("zones differ", dict(ok, x_timestamp=x_ts.dt.tz_localize("UTC"),
                              y_timestamp=y_ts.dt.tz_localize("UTC").dt.tz_convert("America/New_York")),
         ValueError, "same time zone, got UTC and America/New_York"),
        ("zone on one side", dict(ok, y_timestamp=y_ts.dt.tz_localize("UTC")), ValueError,
         "both have a time zone or both have none"),
        ("top_p zero", dict(ok, top_p=0.0), ValueError, "top_p"),
        ("top_p above one", dict(ok, top_p=1.5), ValueError, "top_p"),
        ("top_k negative", dict(ok, top_k=-1), ValueError, "top_k"),
        ("sample_count zero", dict(ok, sample_count=0), ValueError, "sample_count"),
        ("sample_count float", dict(ok, sample_count=2.0), TypeError, "sample_count"),
        ("generator", dict(ok, generator=123), TypeError, "generator"),
    ]


@pytest.mark.parametrize("name,kwargs,error,match", _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_bad_input(forecaster, name, kwargs, error, match):
    with pytest.raises(error, match=match):
        forecaster.predict(**kwargs)


def test_bad_quantile_levels(forecaster):
    x, x_ts, y_ts = split(*make_klines(30, seed=21), 24, 6)
    # levels that differ in the 7th digit keep their own columns
    close = [c for c in forecaster.predict_quantiles(x, x_ts, y_ts, quantile_levels=(0.1, 0.1000001), sample_count=2,
                                                      verbose=False).columns if c.startswith("close")]
    assert close == ["close", "close_q0.1", "close_q0.1000001"]
    for levels, error in (((0.0, 0.5), ValueError), ((0.5, 1.0), ValueError), ((), ValueError), (("a",), TypeError)):
        with pytest.raises(error, match="quantile_levels"):
            forecaster.predict_quantiles(x, x_ts, y_ts, quantile_levels=levels, verbose=False)


def test_bad_batch_input(forecaster):
    x, x_ts, y_ts = split(*make_klines(30, seed=22), 24, 6)
    with pytest.raises(TypeError, match="df_list"):
        forecaster.predict_batch(x, [x_ts], [y_ts], verbose=False)
    with pytest.raises(ValueError, match="x_timestamp_list"):
        forecaster.predict_batch([x, x], [x_ts], [y_ts, y_ts], verbose=False)
    bad = x.drop(columns=["open"])
    with pytest.raises(ValueError, match="series 1: .*price column"):
        forecaster.predict_batch([x, bad], [x_ts, x_ts], [y_ts, y_ts], verbose=False)


def test_mismatched_tokenizer():
    model = KronosForTokenPrediction(KronosConfig(**MODEL_CONFIG))
    other = dict(TINY_TOKENIZER_CONFIGS["odd_bits"], d_in=6)
    tokenizer = KronosTokenizerModel(KronosTokenizerConfig(**other))
    with pytest.raises(ValueError, match="tokenizer does not match the model: tokenizer s1_bits=5, model s1_bits=4"):
        KronosForecaster(model, tokenizer, device="cpu")
    with pytest.raises(TypeError, match="KronosTokenizerModel"):
        KronosForecaster(model, object(), device="cpu")
    with pytest.raises(TypeError, match="KronosForTokenPrediction"):
        KronosForecaster(object(), tokenizer, device="cpu")
    with pytest.raises(ValueError, match="max_context"):
        KronosForecaster(model, KronosTokenizerModel(KronosTokenizerConfig(**TOKENIZER_CONFIG)), device="cpu", max_context=0)


def test_numeric_timestamps_are_refused(forecaster):
    """pandas reads numbers as nanoseconds since 1970, which would give every candle the same calendar features."""
    df = random_klines(30, seed=1)
    x = df.drop(columns=["timestamps"])
    for numbers in (list(range(30)), np.arange(30) * 300 + 1725281700, np.arange(30, dtype=float)):
        with pytest.raises(TypeError, match=r"`x_timestamp` holds numbers, not timestamps.*unit='s'"):
            forecaster.predict(x, numbers, pred_len=2, verbose=False)
    with pytest.raises(TypeError, match="`y_timestamp` holds numbers"):
        forecaster.predict(x, df["timestamps"], list(range(2)), pred_len=2, verbose=False)
    with pytest.raises(TypeError, match="`timestamps` holds numbers"):
        calendar_features([1, 2, 3])


def test_infer_future_timestamps_checks_its_input():
    with pytest.raises(ValueError, match="not increasing"):
        infer_future_timestamps(pd.date_range("2024-01-05", periods=5, freq="-1D"), 2)
    with pytest.raises(ValueError, match="duplicate"):
        infer_future_timestamps(pd.DatetimeIndex(["2024-01-05"] * 3), 2)


def test_device_must_exist(checkpoints):
    model_path, tok_path, _, _ = checkpoints
    model, tokenizer = KronosForTokenPrediction.from_pretrained(model_path), KronosTokenizerModel.from_pretrained(tok_path)
    for device, match in (("bogus", "is not a device"), (1.5, "device name, index or torch.device")):
        with pytest.raises(ValueError, match=match):
            KronosForecaster(model, tokenizer, device=device)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' is not available on this machine"):
            KronosForecaster(model, tokenizer, device="cuda")


def test_compiled_decoding_step_gives_the_same_forecasts(checkpoints, monkeypatch):
    """`compile=True` compiles a fixed-shape step over a static cache: one graph for two prompt lengths, same forecasts."""
    model_path, tok_path, _, _ = checkpoints
    options = []
    compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: options.append(kw) or compile(fn, **kw))
    plain = KronosForecaster.from_pretrained(model_path, tok_path, device="cpu")
    torch._dynamo.reset()
    graphs = []
    aot_eager = torch._dynamo.lookup_backend("aot_eager")

    def backend(graph_module, example_inputs):  # aot_eager traces the whole step without code generation
        graphs.append(graph_module)
        return aot_eager(graph_module, example_inputs)

    compiled = KronosForecaster.from_pretrained(model_path, tok_path, device="cpu", compile={"backend": backend})
    assert options == [{"backend": backend}]
    assert issubclass(compiled._steps, KronosStaticSteps)
    for length, pred_len in ((16, 4), (11, 4)):  # a second prompt length reuses the graph
        x, x_ts, y_ts = split(*make_klines(length + pred_len, seed=21), length, pred_len)
        pd.testing.assert_frame_equal(
            compiled.predict(x, x_ts, y_ts, verbose=False, top_k=1, sample_count=2),
            plain.predict(x, x_ts, y_ts, verbose=False, top_k=1, sample_count=2),
            rtol=1e-5, atol=1e-4,  # plain decodes with the CPU fast path (few-row products, ~1e-6 in the logits)
        )
    assert len(graphs) == 1
    KronosForecaster.from_pretrained(model_path, tok_path, device="cpu", compile=True)
    assert options[-1] == {}  # no CUDA graphs on CPU
