# One entry point for people and CI. Every target creates/reuses .venv and installs what it needs.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow lint docs readme export clean-nbs bench mutate

$(STAMP): setup.py settings.ini
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the local CPU wheel: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install            ## the main job on the embedded default (toy env); ARGS=--quick for a smoke test
	$(BIN)/wrl_demo --out-dir out/demo $(ARGS)

test: install            ## every test: the notebooks, then tests/
	$(BIN)/nbdev_test --n_workers 2
	$(BIN)/python -m pytest -q -n 2 tests      # two workers: the machine's two cores

lint: install           ## ruff (ruff.toml): line length, syntax, undefined names, unused imports
	$(BIN)/ruff check

test-slow: install
	$(BIN)/nbdev_test --n_workers 2 --flags slow

bench: install
	$(BIN)/wrl_env_bench

mutate: install          ## mutation testing of the core modules (cosmic-ray; ~40 min); ARGS="metrics --sample 0" for all of one
	$(BIN)/python tools/mutate.py $(ARGS)

export: install
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean

readme: install
	$(BIN)/python tools/make_readme.py

DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): docs/requirements.txt $(STAMP)
	$(BIN)/python -m pip install -q -r docs/requirements.txt
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)      ## the offline documentation site in _docs/ (nbdev processing + Sphinx/myst-nb, no Quarto, no network)
	$(BIN)/python tools/build_docs.py
