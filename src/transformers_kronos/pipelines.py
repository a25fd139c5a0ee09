# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""The `"kline-forecasting"` transformers pipeline: K-line forecasts from `pipeline(...)`.

Importing `transformers_kronos` registers the task, after which

```python
from transformers import pipeline

forecaster = pipeline("kline-forecasting", model=model, tokenizer=kline_tokenizer)
forecast = forecaster(df, pred_len=24)
```

returns the same forecast as [`KronosForecaster.predict`]. `model` is a [`KronosForTokenPrediction`] (or the path of a
converted checkpoint) and `tokenizer` its [`KronosTokenizerModel`] (or a path/Hub id of one, upstream-format or
converted), since Kronos' "tokenizer" is a network of its own rather than a text tokenizer.
"""

import pandas as pd
from transformers.pipelines import PIPELINE_REGISTRY, Pipeline

from .forecasting import KronosForecaster, check_batch_size
from .modeling_kronos import KronosForTokenPrediction, KronosTokenizerModel

TASK = "kline-forecasting"

_PREPROCESS_KEYS = ("x_timestamp", "y_timestamp", "pred_len")
_FORWARD_KEYS = ("T", "top_k", "top_p", "sample_count", "verbose", "sliding", "generator", "quantile_levels")


class KlineForecastingPipeline(Pipeline):
    """
    Forecast candlesticks with Kronos.

    Inputs (one, or a list of them): a `pd.DataFrame` with columns `open`, `high`, `low`, `close` (optionally
    `volume`, `amount`) and its timestamps as a `DatetimeIndex` or a `timestamps` column, or a dict
    `{"df": ..., "x_timestamp": ..., "y_timestamp": ...}`.

    Call parameters: `pred_len` (or `y_timestamp`), `x_timestamp`, and the sampling controls of
    [`KronosForecaster.predict`] (`T`, `top_k`, `top_p`, `sample_count`, `sliding`, `generator`, `verbose`,
    which defaults to `False` here). With `quantile_levels=(0.1, 0.5, 0.9)` the output also holds quantile columns
    (see [`KronosForecaster.predict_quantiles`]).

    Construction parameters: `tokenizer` (the Kronos tokenizer, required), `max_context` and `clip` (as in
    [`KronosForecaster`]).

    Batching: with a list of inputs and `batch_size=N` (at construction or per call), N series at a time are
    forecast together through [`KronosForecaster.predict_batch`] (they may differ in length; each forecast equals
    the series' own). They must forecast the same number of candles. Each brings its `sample_count` paths.

    Returns:
        A `pd.DataFrame` per input, indexed by the forecast timestamps.
    """

    _load_tokenizer = False  # Kronos' tokenizer is a model; it is loaded here, not by AutoTokenizer
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False

    def __init__(self, model, tokenizer=None, max_context=None, clip=5, **kwargs):
        if tokenizer is None:
            raise ValueError(
                f"the {TASK!r} pipeline needs the Kronos tokenizer: pipeline({TASK!r}, model=..., tokenizer=...)"
            )
        if isinstance(tokenizer, str):
            tokenizer = KronosTokenizerModel.from_pretrained(tokenizer)
        super().__init__(model=model, tokenizer=tokenizer, **kwargs)
        device = None if getattr(self.model, "hf_device_map", None) is not None else self.device
        self.forecaster = KronosForecaster(self.model, tokenizer, device=device, max_context=max_context, clip=clip)

    def __call__(self, inputs, *args, num_workers=None, batch_size=None, **kwargs):
        if args:  # transformers would log "Ignoring args" and go on without them
            raise TypeError(
                f"the {TASK!r} pipeline takes the series as its only positional argument; pass the rest by name, "
                "e.g. pred_len=24"
            )
        if batch_size is None:
            batch_size = self._batch_size
        if batch_size is not None:
            check_batch_size(batch_size)
        if isinstance(inputs, (list, tuple)) and not inputs:
            return []
        if batch_size in (None, 1) or not isinstance(inputs, (list, tuple)):
            return super().__call__(inputs, num_workers=num_workers, batch_size=1, **kwargs)
        # transformers' batching collates tensors with a text tokenizer's padding; series are batched here instead
        preprocess_params, forward_params, _ = self._sanitize_parameters(**kwargs)
        preprocess_params = {**self._preprocess_params, **preprocess_params}
        forward_params = {**self._forward_params, **forward_params}
        prepared = [self.preprocess(item, **preprocess_params) for item in inputs]
        forecasts = []
        for first in range(0, len(prepared), batch_size):
            forecasts.extend(self._forward_batch(prepared[first : first + batch_size], **forward_params))
        return [self.postprocess({"forecast": forecast}) for forecast in forecasts]

    def _sanitize_parameters(self, **kwargs):
        unknown = sorted(set(kwargs) - set(_PREPROCESS_KEYS) - set(_FORWARD_KEYS))
        if unknown:
            raise TypeError(f"unexpected argument(s) for the {TASK!r} pipeline: {unknown}")
        preprocess = {k: kwargs[k] for k in _PREPROCESS_KEYS if k in kwargs}
        forward = {k: kwargs[k] for k in _FORWARD_KEYS if k in kwargs}
        return preprocess, forward, {}

    def preprocess(self, inputs: object, x_timestamp=None, y_timestamp=None, pred_len: int | None = None) -> dict:
        if isinstance(inputs, dict):
            unknown = sorted(set(inputs) - {"df", "x_timestamp", "y_timestamp"})
            if unknown or "df" not in inputs:
                raise ValueError(f"a dict input needs the key 'df' (and optionally 'x_timestamp', 'y_timestamp'); got {sorted(inputs)}")
            x_timestamp = inputs.get("x_timestamp", x_timestamp)
            y_timestamp = inputs.get("y_timestamp", y_timestamp)
            inputs = inputs["df"]
        if not isinstance(inputs, pd.DataFrame):
            raise TypeError(f"{TASK!r} inputs must be DataFrames (or dicts with a 'df'), got {type(inputs).__name__}")
        return {"df": inputs, "x_timestamp": x_timestamp, "y_timestamp": y_timestamp, "pred_len": pred_len}

    def _forward(self, model_inputs, quantile_levels=None, verbose=False, **sampling):
        if quantile_levels is not None:
            return {"forecast": self.forecaster.predict_quantiles(**model_inputs, quantile_levels=quantile_levels, verbose=verbose, **sampling)}
        return {"forecast": self.forecaster.predict(**model_inputs, verbose=verbose, **sampling)}

    def _forward_batch(self, model_inputs, quantile_levels=None, verbose=False, **sampling):
        """[`_forward`] of several preprocessed inputs in one [`KronosForecaster.predict_batch`] pass."""
        series = dict(
            df_list=[m["df"] for m in model_inputs],
            x_timestamp_list=[m["x_timestamp"] for m in model_inputs],
            y_timestamp_list=[m["y_timestamp"] for m in model_inputs],
            pred_len=model_inputs[0]["pred_len"],
        )
        if quantile_levels is not None:
            return self.forecaster.predict_quantiles_batch(**series, quantile_levels=quantile_levels, verbose=verbose, **sampling)
        return self.forecaster.predict_batch(**series, verbose=verbose, **sampling)

    def postprocess(self, model_outputs: dict) -> object:
        return model_outputs["forecast"]


PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=KlineForecastingPipeline, pt_model=KronosForTokenPrediction, type="multimodal")

__all__ = ["KlineForecastingPipeline"]
