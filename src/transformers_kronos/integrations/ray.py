# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Forecasting a universe on Ray Data: a callable class that loads the forecaster once per actor.

    import ray
    from transformers_kronos.integrations.ray import KronosRayForecaster

    ds = ray.data.read_parquet("universe.parquet")
    out = ds.groupby("ticker").map_groups(
        KronosRayForecaster,
        fn_constructor_kwargs={"model": "NeoQuasar/Kronos-small", "tokenizer": "NeoQuasar/Kronos-Tokenizer-base",
                               "id_column": "ticker", "settings": {"pred_len": 20, "samples": 10}},
        batch_format="pandas", concurrency=4, num_gpus=1,
    )

Each call receives whole series (a group of `map_groups`, or a batch of `map_batches` that holds whole series) in
any layout [`read_klines`] reads, and returns the universe layout of `kronos-forecast --output-dir` (see
`transformers_kronos.universe`) plus a `reason` column: empty on forecast rows, the one-line reason on the single row
of a series that could not be forecast. Each series is seeded from the settings' seed and its id, so the numbers are
those of `kronos-forecast` whatever the grouping, the batching or the number of actors.
"""

from typing import Optional, Union

import numpy as np
import pandas as pd

from ..reading import read_klines
from ..universe import ERROR_COLUMN, ForecastSettings, empty_rows, forecast_chunk


def split_results(frame: pd.DataFrame, id_column: str):
    """`(forecasts, errors)` of [`KronosRayForecaster`]'s output: the forecast rows, and `[id_column, reason]`."""
    # Ray hands back Arrow-backed columns (large_string ids, microsecond timestamps): the plain pandas ones instead
    frame = pd.DataFrame({c: (frame[c].to_numpy(dtype=object) if isinstance(frame[c].dtype, pd.ArrowDtype)
                              else frame[c]) for c in frame.columns})
    frame["timestamps"] = frame["timestamps"].astype("datetime64[ns]")
    values = [c for c in frame.columns if c not in (id_column, "timestamps", "step", ERROR_COLUMN)]
    frame[values] = frame[values].astype(np.float64)  # a column of NaN only comes back as Arrow nulls
    failed = frame[ERROR_COLUMN].notna() & (frame[ERROR_COLUMN].astype(str) != "")
    forecasts = frame[~failed].drop(columns=ERROR_COLUMN).reset_index(drop=True)
    errors = frame.loc[failed, [id_column, ERROR_COLUMN]].reset_index(drop=True)
    return forecasts.astype({"step": np.int64}), errors


class KronosRayForecaster:
    """
    Forecasts the series of a pandas batch; for `ray.data.Dataset.map_groups` / `map_batches` with `concurrency`
    (and `num_gpus` for an accelerator per actor).

    Args:
        model, tokenizer (`str`, *optional*): Predictor and tokenizer checkpoints (local folders or Hub ids); both
            `None` for the bundled demo model.
        id_column (`str`): The column naming each row's series.
        settings ([`ForecastSettings`] or `dict`): What to forecast (pred_len, samples, quantiles, seed, ...).
        device (`str`, *optional*): Where to run (default: the accelerator Ray gave the actor, else the CPU).
        dtype (`str`): `"float32"` or `"bfloat16"`.
        timestamp_column (`str`, *optional*), columns (`dict`, *optional*): As in [`read_klines`].
    """

    def __init__(self, model: Optional[str] = None, tokenizer: Optional[str] = None, *, id_column: str,
                 settings: Union[ForecastSettings, dict, None] = None, device: Optional[str] = None,
                 dtype: str = "float32", timestamp_column: Optional[str] = None, columns: Optional[dict] = None):
        from ..cli import load_forecaster

        if isinstance(settings, dict):
            settings = ForecastSettings(**{**settings, "quantiles": tuple(settings.get("quantiles", (0.1, 0.5, 0.9)))})
        self.settings = settings or ForecastSettings()
        self.id_column = id_column
        self.read_kwargs = {"timestamp_column": timestamp_column, "columns": columns}
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.forecaster, _ = load_forecaster(model, tokenizer, device, dtype)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            klines = read_klines(batch, id_column=self.id_column, **self.read_kwargs)
        series = dict(tuple(klines.groupby(self.id_column, sort=False)))
        rows, errors = forecast_chunk(self.forecaster, series, self.settings, self.id_column)
        rows[ERROR_COLUMN] = None
        if len(errors):
            failed = empty_rows(self.id_column, self.settings.quantiles).reindex(range(len(errors)))
            failed[self.id_column] = errors[self.id_column].to_numpy()
            failed[ERROR_COLUMN] = errors[ERROR_COLUMN].to_numpy()
            failed["step"] = 0
            rows = pd.concat([rows, failed], ignore_index=True) if len(rows) else failed
        return rows.astype({ERROR_COLUMN: object})


__all__ = ["KronosRayForecaster", "split_results"]
