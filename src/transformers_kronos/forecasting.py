# Copyright 2026 The transformers-kronos authors. Licensed under the MIT licence.
"""Forecasting K-lines with Kronos: a thin pandas layer over the token-level decoding loop.

[`KronosForecaster`] is a drop-in replacement for upstream's `KronosPredictor` (same `predict`/`predict_batch`
signature, preprocessing and output), backed by [`KronosForTokenPrediction.generate_tokens`], which decodes with a
key/value cache. On top of upstream it exposes the sampled paths (`return_samples=True`) and their quantiles
([`KronosForecaster.predict_quantiles`]), accepts batches of series of different lengths, infers future timestamps
and validates its inputs.

The data flow, per series:

1. the six features (open, high, low, close, volume, amount) are z-scored over the whole context with upstream's
   `(x - mean) / (std + 1e-5)` and clipped to `[-clip, clip]`;
2. the tokenizer encodes the whole context into (s1, s2) tokens (its encoder is causal, so the tokens of the last
   window still depend on every candle before it);
3. the predictor generates `pred_len` token pairs per sample path, attending to at most `max_context` tokens;
4. the tokenizer decodes the last window of tokens and the last `pred_len` rows are kept, averaged over the paths
   (or returned per path) and de-normalised with `x * (std + 1e-5) + mean`; with several paths, the window's context
   part, which all paths of a series share, is decoded once per series ([`tokenizer_decoding.decode_paths`]).
"""

import numpy as np
import torch

from .fast_decoding import KronosFastSteps
from .forecasting_base import (  # noqa: F401 - the pandas side, defined there (torch-free) and re-exported here
    AMOUNT_COLUMN,
    FEATURE_COLUMNS,
    NORM_EPS,
    PRICE_COLUMNS,
    TIME_FEATURES,
    VOLUME_COLUMN,
    KlineForecaster,
    calendar_features,
    check_batch_size,
    check_float32_range,
    check_forecaster_options,
    check_network_pair,
    infer_future_timestamps,
    quantile_column,
    reject_numeric_timestamps,
)
from .generation_kronos import check_generator, compiled_steps
from .modeling_kronos import KronosForTokenPrediction, KronosTokenizerModel
from .tokenizer_decoding import decode_paths
from .utils import check_device, default_device, series_generator

# candle positions (series x length) the tokenizer encodes together on CPU (KronosForecaster._encode)
ENCODE_POSITIONS_PER_PASS = 2048


# --------------------------------------------------------------------------------------------------------------------
# The forecaster
# --------------------------------------------------------------------------------------------------------------------


def _is_dispatched(module):
    return getattr(module, "hf_device_map", None) is not None


def _input_device(module):
    """Where `module` expects its inputs: its first parameter's device (the first stage of a dispatched model)."""
    device_map = getattr(module, "hf_device_map", None)
    if device_map:
        first = next(iter(device_map.values()))
        if isinstance(first, int):
            return torch.device("cuda", first)
        if first not in ("disk", "meta"):
            return torch.device(first)
    for param in module.parameters():
        if param.device.type != "meta":
            return param.device
    return torch.device("cpu")


def path_generators(generator, count: int, sample_count: int, device) -> list:
    """
    One `torch.Generator` per sample path of `count` series, for paths decoded over several passes: each series
    draws one seed from its source (its own generator in a list, else `generator` or torch's global RNG, in series
    order), and path `p` is seeded from that seed and `p` ([`series_seed`]). A path's random numbers then do not
    depend on which pass decodes it, so the paths are the same for every `batch_size` below `sample_count`.

    Returns:
        `list` of `count` lists of `sample_count` generators on `device`.
    """
    out = []
    for index in range(count):
        source = generator[index] if isinstance(generator, tuple) else generator
        where = source.device if source is not None else "cpu"
        seed = int(torch.randint(0, 2**62, (1,), generator=source, device=where))
        out.append([series_generator(seed, path, device) for path in range(sample_count)])
    return out


class KronosForecaster(KlineForecaster):
    """
    Forecasts K-lines (candlesticks) with a Kronos predictor and its tokenizer.

    A drop-in replacement for upstream's `KronosPredictor`: `predict` and `predict_batch` take the same arguments and
    give the same numbers (greedy forecasts equal upstream's within float rounding, and so do seeded samples, see
    docs/forecasting.md), much faster.

    Args:
        model ([`KronosForTokenPrediction`]): The predictor.
        tokenizer ([`KronosTokenizerModel`]): The K-line tokenizer it was trained with (same `s1_bits`/`s2_bits`).
        device (`str` or `torch.device`, *optional*): Where to run. Defaults to cuda, then mps, then cpu. A model
            dispatched by accelerate (`device_map=`) is left where it is.
        max_context (`int`, *optional*): Tokens the predictor attends to; defaults to `model.config.max_context`
            (512 for the published models). Longer contexts are accepted, and their last window is used.
        clip (`float`, defaults to 5): Normalised inputs are clipped to `[-clip, clip]`.
        compile (`bool` or `dict`, defaults to `False`): Compile the decoding step with `torch.compile`, over a
            static cache of `max_context` positions ([`generation_kronos.KronosStaticSteps`]), so it is built once
            for every prompt length (again for another number of rows); `mode="reduce-overhead"`, i.e. CUDA graphs,
            on CUDA. A dict gives `torch.compile`'s options. The first forecast pays the compilation.

    Both models are put in eval mode (upstream's predictor leaves them as they are, so dropout stays active in a
    freshly built upstream model). Plain float32 models on CPU (no hooks or adapters) decode with
    [`fast_decoding.KronosFastSteps`], the same arithmetic without module calls and with few-row products split over
    the CPU's threads; every other model goes through its modules.
    """

    def __init__(self, model: KronosForTokenPrediction, tokenizer: KronosTokenizerModel, device=None, max_context=None, clip=5, compile=False) -> None:
        if not isinstance(model, KronosForTokenPrediction):
            raise TypeError(
                f"`model` must be a KronosForTokenPrediction, got {type(model).__name__} "
                "(upstream checkpoints load with KronosForTokenPrediction.from_pretrained)"
            )
        if not isinstance(tokenizer, KronosTokenizerModel):
            raise TypeError(
                f"`tokenizer` must be a KronosTokenizerModel, got {type(tokenizer).__name__} "
                "(upstream checkpoints load with KronosTokenizerModel.from_pretrained)"
            )
        check_network_pair(vars(model.config), vars(tokenizer.config))
        max_context = model.config.max_context if max_context is None else max_context
        max_context, clip = check_forecaster_options(max_context, clip)

        self.model = model
        self.tokenizer = tokenizer
        self.max_context = max_context
        self.clip = clip
        if device is None:
            device = _input_device(model) if _is_dispatched(model) else default_device()
        else:
            check_device(device, "`device`")
        self.device = torch.device(device)
        for module in (self.model, self.tokenizer):
            if not _is_dispatched(module):  # accelerate's hooks place the inputs of a dispatched model
                module.to(self.device)
        self.model.eval()
        self.tokenizer.eval()
        # the compiled decoding step, if asked for; otherwise each forecast takes the CPU fast path when the model
        # is plain (KronosFastSteps.supports), else the modules
        self._steps = self._compiled_steps(compile) if compile else None

    def _compiled_steps(self, compile):
        options = dict(compile) if isinstance(compile, dict) else {}
        if self.device.type == "cuda":
            options.setdefault("mode", "reduce-overhead")  # CUDA graphs: one launch per step
        return compiled_steps(**options)

    @classmethod
    def from_pretrained(
        cls, model_id_or_path, tokenizer_id_or_path, device=None, max_context=None, clip=5, compile=False, **load_kwargs
    ) -> "KronosForecaster":
        """
        Load a predictor and a tokenizer (upstream-format or converted, local directories or Hub ids).

        Args:
            model_id_or_path (`str`): The predictor, e.g. `"NeoQuasar/Kronos-small"`.
            tokenizer_id_or_path (`str`): Its tokenizer, e.g. `"NeoQuasar/Kronos-Tokenizer-base"`.
            device, max_context, clip: As in [`KronosForecaster`]. `device` is ignored when `device_map` is given.
            load_kwargs: Passed to both `from_pretrained` calls (`dtype`, `device_map`, `revision`, `cache_dir`,
                `trust_remote_code`, ...).
        """
        model = KronosForTokenPrediction.from_pretrained(model_id_or_path, **load_kwargs)
        tokenizer = KronosTokenizerModel.from_pretrained(tokenizer_id_or_path, **load_kwargs)
        if load_kwargs.get("device_map") is not None:
            # keep what the map chose (a map onto one device sets no `hf_device_map`, so name that device)
            device = None if _is_dispatched(model) else _input_device(model)
        return cls(model, tokenizer, device=device, max_context=max_context, clip=clip, compile=compile)

    # ------------------------------------------------------------------ the core

    def _check_generator(self, generator, count):
        return check_generator(generator, count)

    def _path_generators(self, generator, count, sample_count):
        return path_generators(generator, count, sample_count, _input_device(self.model))

    def _generate(self, *args, **kwargs):
        self.model.eval()
        self.tokenizer.eval()
        return super()._generate(*args, **kwargs)

    def _generate_pass(self, series, pred_len, T, top_k, top_p, sample_count, sliding, generator, bar):
        """[`_generate`] of series decoded together, left-padded to the longest; `bar` counts the steps."""
        batch = len(series)
        lengths = [len(s.x) for s in series]
        longest = max(lengths)
        padded = any(n != longest for n in lengths)

        # left padding: every series ends at the same position, so one step generates the next candle of all
        x = np.zeros((batch, longest, len(FEATURE_COLUMNS)), dtype=np.float32)
        x_stamp = np.zeros((batch, longest, len(TIME_FEATURES)), dtype=np.float32)
        mask = np.zeros((batch, longest), dtype=np.int64)
        for i, s in enumerate(series):
            x[i, longest - lengths[i] :] = s.x
            x_stamp[i, longest - lengths[i] :] = s.x_stamp
            mask[i, longest - lengths[i] :] = 1
        y_stamp = np.stack([s.y_stamp for s in series])

        tok_device = _input_device(self.tokenizer)
        model_device = _input_device(self.model)
        attention_mask = torch.from_numpy(mask).to(tok_device) if padded else None

        with torch.inference_mode():
            s1, s2 = self._encode(torch.from_numpy(x).to(tok_device), attention_mask)
            gen_s1, gen_s2, _ = self.model.generate_tokens(
                s1.to(model_device),
                s2.to(model_device),
                torch.from_numpy(x_stamp).to(model_device),
                torch.from_numpy(y_stamp).to(model_device),
                pred_len,
                attention_mask=attention_mask.to(model_device) if attention_mask is not None else None,
                max_context=self.max_context,
                temperature=T,
                top_k=top_k,
                top_p=top_p,
                sample_count=sample_count,
                sliding=sliding,
                generator=generator,
                progress=lambda step: bar.update(1),
                steps=self._steps or (KronosFastSteps if KronosFastSteps.supports(self.model) else None),
            )
            decoded = self._decode_window(s1, s2, gen_s1, gen_s2, mask if padded else None, sample_count, pred_len)
            decoded = decoded.float().cpu().numpy()
        return decoded.reshape(batch, sample_count, pred_len, len(FEATURE_COLUMNS))

    def _encode(self, x: torch.Tensor, attention_mask: torch.Tensor | None):
        """
        The tokens `(s1, s2)`, each `(series, len)`, of normalised candles `x` `(series, len, 6)`. On CPU a few
        series at a time (about `ENCODE_POSITIONS_PER_PASS` positions): every series is encoded on its own rows, so
        the tokens are the same, and the activations stay in the CPU's caches (64 series of 400 candles at
        Tokenizer-base size: 1.5 s in passes of 4 series against 1.9 s in one pass, best of 3).
        """
        per_pass = max(1, ENCODE_POSITIONS_PER_PASS // x.shape[1]) if x.device.type == "cpu" else len(x)
        if per_pass >= len(x):
            return self.tokenizer.encode(x, half=True, attention_mask=attention_mask)
        parts = [
            self.tokenizer.encode(
                x[first : first + per_pass],
                half=True,
                attention_mask=None if attention_mask is None else attention_mask[first : first + per_pass],
            )
            for first in range(0, len(x), per_pass)
        ]
        return torch.cat([s1 for s1, _ in parts]), torch.cat([s2 for _, s2 in parts])

    def _decode_window(self, s1, s2, gen_s1, gen_s2, mask, sample_count, pred_len):
        """
        The forecast candles `(series * sample_count, pred_len, 6)` of generated tokens `(series * sample_count,
        pred_len)` after prompts `(series, prompt_len)` (left-padded where `mask` `(series, prompt_len)` has zeros).

        As upstream, the last window of tokens is decoded (the tokenizer's decoder is causal, so the forecast rows
        depend on the context tokens before them in the window; a forecast longer than the window decodes all of it).
        The window's context part is the same for every path of a series: with several paths, [`decode_paths`]
        decodes it once per series (the same candles up to float rounding). One path decodes its window as upstream
        does, bitwise: sharing would save nothing.
        """
        tok_device = _input_device(self.tokenizer)
        prompt_len = s1.shape[1]
        start = max(0, prompt_len + pred_len - max(self.max_context, pred_len))
        if sample_count > 1 and start < prompt_len:
            prompt_mask = None
            if mask is not None and not mask[:, start:].all():
                prompt_mask = torch.from_numpy(mask[:, start:]).to(tok_device)
            prompt = (s1[:, start:].to(tok_device), s2[:, start:].to(tok_device))
            return decode_paths(self.tokenizer, prompt, (gen_s1.to(tok_device), gen_s2.to(tok_device)), sample_count, prompt_mask)
        full_s1 = torch.cat([s1.to(gen_s1.device).repeat_interleave(sample_count, dim=0), gen_s1], dim=1)[:, start:]
        full_s2 = torch.cat([s2.to(gen_s2.device).repeat_interleave(sample_count, dim=0), gen_s2], dim=1)[:, start:]
        decode_mask = None
        if mask is not None:
            full_mask = np.concatenate([mask, np.ones((len(mask), pred_len), dtype=np.int64)], axis=1)[:, start:]
            if not full_mask.all():
                decode_mask = torch.from_numpy(full_mask).repeat_interleave(sample_count, dim=0).to(tok_device)
        decoded = self.tokenizer.decode([full_s1.to(tok_device), full_s2.to(tok_device)], half=True, attention_mask=decode_mask)
        return decoded[:, -pred_len:]


__all__ = ["KronosForecaster", "calendar_features", "infer_future_timestamps", "quantile_column"]
