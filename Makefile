# Targets match the README. `make setup` once, then `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup protos check-protos lint imports typecheck test serve triton results images images-smoke images-clean

setup:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python -m lab.zoo.export --model efficientnet_lite0 --out model_repository
	$(PY) -m venv .venv-triton
	.venv-triton/bin/pip install -q -r devtools/triton/requirements.txt
	$(BIN)/python -m devtools.triton.cpu_repository --out build/triton-cpu

protos:
	$(BIN)/python -m devtools.protos

check-protos:
	$(BIN)/python -m devtools.protos --check

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The layers' contracts (pyproject.toml, [tool.importlinter]): a wrong import fails here.
imports:
	$(BIN)/lint-imports

typecheck:
	$(BIN)/mypy imsearch services devtools lab bench cli tests

test: check-protos lint imports typecheck
	$(BIN)/pytest -q

serve:
	$(BIN)/imsearch serve

triton:
	$(BIN)/python -m devtools.triton.server --model-repository build/triton-cpu

results:
	$(BIN)/imsearch study --data ../shared/data --out docs

# OCI images per role with buildah (root; apt-get install buildah debootstrap): deploy/images/.
images:
	deploy/images/build.sh

images-smoke: images
	deploy/images/smoke.sh

images-clean:
	deploy/images/build.sh clean
