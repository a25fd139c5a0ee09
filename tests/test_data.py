"""Sliding-window K-line datasets: sources, normalisation without leakage, calendar features, splits, bad input."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import random_klines

from transformers_kronos.data import (
    FEATURE_COLUMNS,
    KronosWindowDataset,
    calendar_features,
    chronological_split,
    load_kline_table,
    prepare_kline_frame,
)


def kline_frame(n=120, seed=0, start="2024-03-01 09:30", freq="5min", volume=True, amount=True):
    return random_klines(n, seed, start=start, freq=freq, volume=volume, amount=amount)


def test_window_shapes_count_and_normalisation():
    frame = kline_frame(120)
    ds = KronosWindowDataset(frame, lookback=30, pred_window=9)
    assert ds.window == 40
    assert len(ds) == 120 - 40 + 1 and ds.num_features == 6
    item = ds[5]
    assert item["x"].shape == (40, 6) and item["x"].dtype == torch.float32
    assert item["stamp"].shape == (40, 5) and item["stamp"].dtype == torch.float32

    raw = frame[list(FEATURE_COLUMNS)].to_numpy(np.float32)[5:45].astype(np.float64)
    mean, std = raw[:30].mean(0), raw[:30].std(0)
    expected = np.clip((raw - mean) / (std + 1e-5), -5, 5)
    np.testing.assert_allclose(item["x"].numpy(), expected, rtol=1e-6, atol=1e-6)
    # the lookback part is standardised by its own statistics
    np.testing.assert_allclose(item["x"][:30].mean(0).numpy(), 0, atol=1e-4)


def test_normalisation_uses_lookback_only():
    """Changing the candles to be predicted must not change the normalised lookback (no leakage)."""
    frame = kline_frame(60)
    changed = frame.copy()
    changed.loc[40:, ["open", "high", "low", "close", "volume", "amount"]] *= 7.0
    a = KronosWindowDataset(frame, lookback=40, pred_window=10)[0]["x"]
    b = KronosWindowDataset(changed, lookback=40, pred_window=10)[0]["x"]
    torch.testing.assert_close(a[:40], b[:40], rtol=0, atol=0)
    assert not torch.equal(a[40:], b[40:])


def test_clip():
    frame = kline_frame(50)
    frame.loc[45, "high"] = 1e6  # an outlier after the lookback
    ds = KronosWindowDataset(frame, lookback=40, pred_window=9, clip=3.0)
    x = ds[0]["x"]
    assert float(x.abs().max()) == pytest.approx(3.0)
    assert float(x[45, 1]) == pytest.approx(3.0)
    frame.loc[46, "low"] = -1e6  # and one below: clipped on both sides
    x = KronosWindowDataset(frame, lookback=40, pred_window=9, clip=3.0)[0]["x"]
    assert float(x[46, 2]) == pytest.approx(-3.0) and float(x.min()) == pytest.approx(-3.0)


def test_calendar_features():
    ts = pd.Series(pd.to_datetime(["2024-03-04 09:35", "2024-12-31 23:59"]))
    np.testing.assert_array_equal(calendar_features(ts), [[35, 9, 0, 4, 3], [59, 23, 1, 31, 12]])
    frame = kline_frame(20, start="2024-03-04 09:30")
    stamp = KronosWindowDataset(frame, lookback=5, pred_window=2)[1]["stamp"]
    assert stamp[0].tolist() == [35.0, 9.0, 0.0, 4.0, 3.0]


def test_volume_and_amount_filled_as_upstream():
    no_amount = prepare_kline_frame(kline_frame(10, amount=False))[None][0]
    np.testing.assert_allclose(no_amount[:, 5], no_amount[:, 4] * no_amount[:, :4].mean(1), rtol=1e-6)
    no_volume = prepare_kline_frame(kline_frame(10, volume=False, amount=False))[None][0]
    assert (no_volume[:, 4:] == 0).all()


def test_sources_csv_parquet_datasets(tmp_path):
    frame = kline_frame(50)
    csv, parquet = tmp_path / "k.csv", tmp_path / "k.parquet"
    frame.to_csv(csv, index=False)
    frame.to_parquet(parquet)
    import datasets

    reference = KronosWindowDataset(frame, 20, 4)
    for source in (str(csv), parquet, datasets.Dataset.from_pandas(frame)):
        ds = KronosWindowDataset(source, 20, 4)
        assert len(ds) == len(reference)
        torch.testing.assert_close(ds[3]["x"], reference[3]["x"])
        torch.testing.assert_close(ds[3]["stamp"], reference[3]["stamp"])


def test_many_series_never_mix():
    a, b = kline_frame(30, seed=1), kline_frame(25, seed=2)
    a["symbol"], b["symbol"] = "AAA", "BBB"
    b["close"] += 1000  # very different level: a window mixing the two would show it
    frame = pd.concat([a, b]).sort_values("timestamps", kind="stable")  # interleaved rows
    ds = KronosWindowDataset(frame, lookback=10, pred_window=4, series_column="symbol")
    assert len(ds) == (30 - 15 + 1) + (25 - 15 + 1)
    assert ds.series_ids == ["AAA", "BBB"]
    only_b = KronosWindowDataset(b.drop(columns="symbol"), lookback=10, pred_window=4)
    torch.testing.assert_close(ds[30 - 15 + 1]["x"], only_b[0]["x"])


def test_short_series_skipped_but_not_all(caplog):
    a, b = kline_frame(30, seed=1), kline_frame(8, seed=2)
    a["s"], b["s"] = "long", "short"
    ds = KronosWindowDataset(pd.concat([a, b]), lookback=10, pred_window=4, series_column="s")
    assert ds.series_ids == ["long"]
    assert "short" in caplog.text


def test_stride():
    assert len(KronosWindowDataset(kline_frame(40), 10, 4, stride=5)) == len(range(0, 40 - 15 + 1, 5))


def test_chronological_split_per_series():
    a, b = kline_frame(100, seed=1), kline_frame(50, seed=2, start="2025-01-01")
    a["s"], b["s"] = "a", "b"
    series = prepare_kline_frame(pd.concat([a, b]), series_column="s")
    train, validation = chronological_split(series, 0.2)
    assert [len(v) for v, _ in train.values()] == [80, 40]
    assert [len(v) for v, _ in validation.values()] == [20, 10]
    train_ds, val_ds = KronosWindowDataset.from_splits(pd.concat([a, b]), 5, 2, 0.2, series_column="s")
    # the first validation window of series a starts right after its last training candle
    raw = a[list(FEATURE_COLUMNS)].to_numpy(np.float32).astype(np.float64)
    window = raw[80:88]
    expected = np.clip((window - window[:5].mean(0)) / (window[:5].std(0) + 1e-5), -5, 5)
    np.testing.assert_allclose(val_ds[0]["x"].numpy(), expected, rtol=1e-6, atol=1e-6)
    assert len(train_ds) == (80 - 7) + (40 - 7) and len(val_ds) == (20 - 7) + (10 - 7)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda f: f.drop(columns=["close"]), r"lacks the column\(s\) \['close'\]"),
        (lambda f: f.drop(columns=["timestamps"]), r"lacks the column\(s\) \['timestamps'\]"),
        (lambda f: f.assign(open=f["open"].astype(object).where(f.index != 7, "n/a")), r"'open' has non-numeric values at row 7$"),
        (lambda f: f.assign(volume=f["volume"].where(~f.index.isin([3, 11]))), r"'volume' has NaN or infinite values at rows 3, 11"),
        (lambda f: f.assign(high=f["high"].where(f.index != 4, np.inf)), r"'high' has NaN or infinite values at row 4"),
        (lambda f: f.assign(timestamps=f["timestamps"].astype(str).where(f.index != 2, "yesterday")), r"unparsable timestamps at row 2"),
        (lambda f: f.iloc[[0, 2, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11]], r"strictly increasing; they are not at row 2"),
        (lambda f: f.iloc[:0], r"empty"),
        (lambda f: f.assign(low=f["low"] + 0j), r"'low' holds complex numbers"),
    ],
)
def test_bad_tables_name_the_problem(mutate, message):
    frame = mutate(kline_frame(12))
    with pytest.raises(ValueError, match=message):
        KronosWindowDataset(frame, lookback=3, pred_window=2)


def test_too_short_and_bad_lengths():
    with pytest.raises(ValueError, match=r"lookback \+ pred_window \+ 1 = 16 .*candles per series: 12"):
        KronosWindowDataset(kline_frame(12), lookback=10, pred_window=5)
    for kwargs in (dict(lookback=0, pred_window=2), dict(lookback=3, pred_window=0), dict(lookback=3, pred_window=-1)):
        with pytest.raises(ValueError, match="must be an integer of at least 1"):
            KronosWindowDataset(kline_frame(12), **kwargs)
    with pytest.raises(ValueError, match="`clip` must be a positive"):
        KronosWindowDataset(kline_frame(12), 3, 2, clip=0)


def test_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such data file"):
        load_kline_table(tmp_path / "missing.csv")
    (tmp_path / "k.txt").write_text("x")
    with pytest.raises(ValueError, match=r"expected a \.csv, \.parquet"):
        load_kline_table(tmp_path / "k.txt")
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        load_kline_table([1, 2, 3])
    frame = kline_frame(12)
    frame["s"] = None
    with pytest.raises(ValueError, match="missing series ids at rows 0, 1"):
        KronosWindowDataset(frame, 3, 2, series_column="s")


def test_prepare_kline_frame_refuses_numeric_timestamps():
    frame = random_klines(20, seed=0)
    frame["timestamps"] = np.arange(20) * 60 + 1725281700
    with pytest.raises(TypeError, match="column 'timestamps' holds numbers, not timestamps"):
        prepare_kline_frame(frame)


def test_prepare_kline_frame_refuses_values_beyond_float32_statistics():
    frame = random_klines(20, seed=0)
    frame.loc[3, "volume"] = 1e39
    with pytest.raises(ValueError, match=r"column\(s\) \['volume', 'amount'\] are too large for float32"):
        prepare_kline_frame(frame)
    frame = pd.concat([random_klines(20, seed=0).assign(symbol="A"), random_klines(20, seed=1).assign(symbol="B")])
    frame.loc[frame["symbol"] == "B", "close"] *= 1e20
    with pytest.raises(ValueError, match=r"series 'B': column\(s\) \['close'"):
        prepare_kline_frame(frame, series_column="symbol")


def test_bad_series_dicts_and_split_arguments():
    good = prepare_kline_frame(kline_frame(30))
    values, stamps = good[None]
    cases = [
        ({"a": 1}, TypeError, "series 'a' must be a pair"),
        ({"a": (values, stamps[:10])}, ValueError, "series 'a' has 30 candles but 10 stamps"),
        ({"a": (values[:, :3], stamps)}, ValueError, r"values must be floats of shape \(n, 6\)"),
        ({"a": (values, stamps[:, :4])}, ValueError, r"stamps must be numbers of shape \(n, 5\)"),
        ({"a": (np.where(np.arange(30)[:, None] == 3, np.nan, values), stamps)}, ValueError, "NaN or infinite"),
    ]
    for data, error, message in cases:
        with pytest.raises(error, match=message):
            KronosWindowDataset(data, lookback=3, pred_window=2)
        with pytest.raises(error, match=message):
            chronological_split(data, 0.2)
    with pytest.raises(TypeError, match="`validation_fraction` must be a number"):
        chronological_split(good, "0.2")
    with pytest.raises(TypeError, match="must be the dict that prepare_kline_frame returns"):
        chronological_split([1], 0.2)
    # a numpy scalar is a number; a zero validation fraction gives no validation set
    train, validation = KronosWindowDataset.from_splits(kline_frame(30), 3, 2, 0.0, clip=np.float32(4))
    assert validation is None and len(train) == 30 - 6 + 1 and train.clip == 4.0


def test_bad_files_and_columns(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty.csv' is empty"):
        load_kline_table(tmp_path / "empty.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="cannot read .*bad.parquet' as Parquet"):
        load_kline_table(tmp_path / "bad.parquet")
    frame = kline_frame(12)
    with pytest.raises(ValueError, match=r"the column\(s\) \['close'\] more than once"):
        prepare_kline_frame(pd.concat([frame, frame[["close"]]], axis=1))
    frame["s"] = [[1]] * 12
    with pytest.raises(TypeError, match="column 's' must hold hashable series ids"):
        prepare_kline_frame(frame, series_column="s")
