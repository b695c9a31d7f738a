# Targets match the README. `make setup` once, then `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup protos check-protos lint typecheck test serve triton results

setup:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[export,study,dev]'
	$(BIN)/python -m services.encoder.zoo.export --model efficientnet_lite0 --out model_repository
	$(PY) -m venv .venv-triton
	.venv-triton/bin/pip install -q -r services/encoder/triton/requirements.txt
	$(BIN)/python -m services.encoder.triton.cpu_repository --out build/triton-cpu

protos:
	$(BIN)/python -m imsearch.protos_gen

check-protos:
	$(BIN)/python -m imsearch.protos_gen --check

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy imsearch services bench tests

test: check-protos lint typecheck
	$(BIN)/pytest -q

serve:
	$(BIN)/imsearch serve

triton:
	$(BIN)/python -m services.encoder.triton.server --model-repository build/triton-cpu

results:
	$(BIN)/imsearch study --data ../shared/data --out docs
