"""Charts of forecasts (`transformers_kronos.plotting`): what is drawn, where it is written, and bad input."""

import numpy as np
import pandas as pd
import pytest

from transformers_kronos.forecasting import quantile_column
from transformers_kronos.plotting import plot_forecast, quantile_levels_in
from transformers_kronos.synthetic import generate_klines


def test_plot_forecast_checks_its_input(tmp_path):
    history = generate_klines(50, seed=0)
    forecast = generate_klines(60, seed=0).iloc[50:]
    figure = plot_forecast(history, forecast, history_candles=30, title="t", path=tmp_path / "new" / "f.svg")
    assert len(figure.axes) == 2  # prices and volume
    assert (tmp_path / "new" / "f.svg").read_text().lstrip().startswith("<?xml")  # its folder was made
    assert len(plot_forecast(history.drop(columns="volume"), forecast).axes) == 1  # no volume panel
    with pytest.raises(TypeError, match="history"):
        plot_forecast(history.to_numpy(), forecast)
    with pytest.raises(ValueError, match="lacks the columns"):
        plot_forecast(history, forecast.drop(columns="low"))
    with pytest.raises(ValueError, match="empty"):
        plot_forecast(history, forecast.iloc[:0])
    with pytest.raises(ValueError, match="samples"):
        plot_forecast(history, forecast, samples=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="history_candles"):
        plot_forecast(history, forecast, history_candles=0)


def test_quantile_levels_in_reads_back_the_column_names():
    levels = [0.9, 0.1, 0.1000001, 0.5]
    frame = pd.DataFrame({quantile_column(c, q): [1.0] for c in ("close", "volume") for q in levels})
    frame["close_qnot-a-level"] = 0.0
    assert quantile_levels_in(frame) == sorted(levels)
    assert quantile_levels_in(frame, "volume") == sorted(levels)
    assert quantile_levels_in(frame, "amount") == []
    assert np.isfinite(quantile_levels_in(frame)).all()
