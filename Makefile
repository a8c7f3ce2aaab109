# Two commands do all the set-up on a fresh machine (Python 3.11, no GPU):
#   make run    installs everything and runs the whole pipeline on the built-in default
#   make test   installs everything plus the test tools and runs the test suite
#   make unit   the fast subset, tests/unit (under two minutes on 2 cores); tests/pipeline runs stages and pipelines
#   make full   the paper's full comparison (3 architectures x 4 training sets + scaling curve):
#               rewrites three keys of params.yaml (`gendeg comparison default` puts them back)
PYTHON ?= python3.11
VENV := .venv
BIN := $(abspath $(VENV)/bin)
export PATH := $(BIN):$(PATH)
PIP_FLAGS := --quiet --disable-pip-version-check

.PHONY: install run full repro test unit benchmarks mlflow-ui clean ood-photos

$(VENV)/.installed: pyproject.toml envs/requirements.txt envs/constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -c envs/constraints.txt -r envs/requirements.txt
	$(BIN)/pip install $(PIP_FLAGS) -c envs/constraints.txt --no-build-isolation -e ".[test]"
	touch $@

install: $(VENV)/.installed

run: install
	snakemake --cores all

full: install
	gendeg comparison full
	snakemake --cores all

repro: install
	gendeg track -- dvc repro

test: install
	pytest -q

unit: install
	pytest -q tests/unit

benchmarks: install
	python benchmarks/pipeline_time.py

# The frozen second OOD benchmark (docs/ood-photos.md): photos from three Debian packages.
OOD_PHOTO_PACKAGES := lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 plasma-workspace-wallpapers
ood-photos: install
	dpkg -s $(OOD_PHOTO_PACKAGES) >/dev/null 2>&1 || { apt-get update && apt-get install -y $(OOD_PHOTO_PACKAGES); }
	python benchmarks/ood_photos_set/build.py --out data/ood_photos

# `gendeg tracking init` first: a copied or moved project's artifact paths point at this folder's
# mlruns/ again, and the experiment opens on MLflow's "Model training" view (gendeg.pipeline.tracking).
mlflow-ui: install
	@id=$$(GENDEG_PROJECT_ROOT=$(CURDIR) gendeg tracking init 2>/dev/null | tee /dev/stderr | sed -n 's/.*experiment id //p'); \
	echo "Restorer runs (select two, then Compare): http://127.0.0.1:5000/#/experiments/$$id/runs?viewStateShareKey=gendeg&workflowType=machine_learning"
	mlflow ui --backend-store-uri sqlite:///$(abspath mlflow.db)

clean:
	rm -rf .snakemake logs checkpoints resolved_params
