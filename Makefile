# Two commands do all set-up: `make study` and `make test`.
# The virtual environment is installed from requirements.lock (every package at an exact version)
# and re-installed only when the lock file or pyproject.toml changes (stamp file).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KERNEL := propy
LOCK := requirements.lock
PIP_VERSION := 26.3
# The one platform the lock is resolved for: the study's machine kind (and CI's).
LOCK_TARGET := --python-version 3.11.7 --python-platform x86_64-unknown-linux-gnu

.PHONY: study exp test lint docs install lock clean-venv

# DVC stages call `python -m propy ...`: put the venv first on PATH. The stages run one at a
# time, so OpenMP threads may spin while waiting (ACTIVE; see propy/__init__.py).
# Then the README's headline table is rewritten from the pooled metrics (no hand-copied numbers).
DATASET = $(shell sed -n 's/^dataset: *\([A-Za-z0-9_-]*\).*/\1/p' params.yaml)
study: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" OMP_WAIT_POLICY=ACTIVE $(BIN)/dvc repro
	$(BIN)/python -m propy headline --metrics metrics/$(DATASET)/pooled --readme README.md

# One experiment in the workspace: make exp S='train.epochs=5' (several: S='train.epochs=5 train.lr=0.01').
# DVC writes the values into params.yaml and leaves them there; if the run fails, params.yaml is put back
# exactly as it was. (`dvc exp run --queue -S ...` never touches it; README, "Experiments and params.yaml".)
exp: $(STAMP)
	@test -n "$(S)" || { echo "usage: make exp S='key=value [key=value ...]'"; exit 2; }
	@cp params.yaml .params.yaml.before
	@PATH="$(abspath $(BIN)):$$PATH" OMP_WAIT_POLICY=ACTIVE $(BIN)/dvc exp run $(foreach s,$(S),-S '$(s)') \
		|| { mv .params.yaml.before params.yaml; echo "experiment failed: params.yaml restored"; exit 1; }
	@rm -f .params.yaml.before

# Lint and type check first (seconds), then the suite on both cores (pytest-xdist; the slowest tests listed).
# One torch/OpenMP thread per process: two workers already fill both cores, and the stages their DVC runs
# start would otherwise each spin up as many threads as there are cores (on a busy machine, many times too many).
test: lint
	PATH="$(abspath $(BIN)):$$PATH" OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist load --maxschedchunk 1 --durations=10

lint: $(STAMP)
	$(BIN)/ruff format --check propy tests scripts docs
	$(BIN)/ruff check propy tests scripts docs
	$(BIN)/mypy propy/config.py propy/model

# Rewrite docs/architecture.md's module map after adding, moving or re-describing a module.
docs: $(STAMP)
	$(BIN)/python tests/test_architecture.py --write

install: $(STAMP)

# The lock pins setuptools too, so propy itself is built without fetching anything unpinned.
$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install pip==$(PIP_VERSION) >/dev/null
	$(BIN)/python -m pip install -r $(LOCK)
	$(BIN)/python -m pip install --no-deps --no-build-isolation -e '.[dev]'
	$(BIN)/python -m pip check
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (propy)"
	touch $(STAMP)

# Re-resolve the lock from pyproject.toml after editing its dependencies. Versions already in the
# lock are kept while they still fit; `make lock LOCK_FLAGS=--upgrade` moves every package to the
# newest release. The next `make study`/`make test` then re-installs the venv.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev $(LOCK_TARGET) \
		--custom-compile-command "make lock" --quiet -o $(LOCK) $(LOCK_FLAGS)

clean-venv:
	rm -rf $(VENV)
