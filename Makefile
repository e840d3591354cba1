# Two commands do all set-up: `make study` and `make test`.
# The virtual environment is (re)installed only when pyproject.toml changes (stamp file).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KERNEL := propy

.PHONY: study test install clean-venv

# DVC stages call `python -m propy ...`: put the venv first on PATH. The stages run one at a
# time, so OpenMP threads may spin while waiting (ACTIVE; see propy/__init__.py).
study: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" OMP_WAIT_POLICY=ACTIVE $(BIN)/dvc repro

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (propy)"
	touch $(STAMP)

clean-venv:
	rm -rf $(VENV)
