# Everything runs inside a local virtual environment that the targets create on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned to the CPU build that this kind of machine ships (a bare `torch` would pull a multi-GB CUDA build);
# set TORCH_SPEC="torch" (or a CUDA index) on a GPU machine.
TORCH_SPEC ?= torch==2.13.0
# The upstream reference implementation, for parity tests only. Its dependency pins are stale: install without them.
UPSTREAM_SPEC ?= kronos-model-arch==0.1.0 einops

.PHONY: venv demo test test-fast benchmark clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	$(PY) -m pip install -q --no-deps $(UPSTREAM_SPEC)
	touch $@

venv: $(VENV)/.installed

## The main job: a forecast of the bundled sample with the bundled demo model (CSV + PNG under out/).
demo: venv
	$(VENV)/bin/kronos-forecast --csv examples/data/sample_kline.csv --pred-len 48 --samples 8 \
		--quantiles 0.1,0.5,0.9 --output out/forecast.csv --plot out/forecast.png

## The whole test suite, parity tests against the upstream reference included, in a random order: pytest-randomly
## shuffles it and prints its seed in the header ("Using --randomly-seed=N"); `make test PYTEST_ARGS=--randomly-seed=N`
## replays that order, `PYTEST_ARGS="-p no:randomly"` runs the files' own order.
test: venv
	$(PY) -m pytest -p randomly $(PYTEST_ARGS) tests

## Everything but the tests marked slow: the 7 that start subprocesses (fresh interpreters, DDP) took about a sixth of
## the time (measured 2026-12-03 with --durations=0 on the 2 shared cores: 105 of 592 s of test time), and the
## published-size ONNX export against upstream (tests/test_onnx_export.py) adds about 3.5 minutes on those cores.
test-fast: venv
	$(PY) -m pytest -q -m "not slow" tests

benchmark: venv
	$(PY) benchmarks/forecast_speed.py
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf $(VENV) out build dist src/*.egg-info .pytest_cache
