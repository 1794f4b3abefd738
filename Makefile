# `make book`: build the HTML book on the CPU (chapters executed by papermill at book parameters).
# `make test`: everything CI checks: unit tests, the GPU command rehearsed on the CPU, the book
#              build (warnings are errors), every chapter through nbval at small parameters, and the
#              headless-browser checks of every page.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
CHAPTERS := $(wildcard book/*.ipynb)
EXECUTED := $(patsubst book/%.ipynb,_build/src/book/%.ipynb,$(CHAPTERS))
PACKAGE := $(shell find ncrepro -name '*.py') pyproject.toml
RESULTS := $(shell find data/results -name '*.json' 2>/dev/null)
STATIC := $(wildcard book/*.md) $(wildcard book/*.bib) $(wildcard book/_ext/*) _config.yml _toc.yml scripts/stage_book.py
# The scorecard reads what the other chapters glued, the status page their execution times.
SUMMARIES := _build/src/book/scorecard.ipynb _build/src/book/status.ipynb
CONTENT := $(filter-out $(SUMMARIES),$(EXECUTED))

.PHONY: book test unit lint nbval browser install benchmarks clean prepare-gpu rehearse-gpu

book: $(INSTALLED) $(EXECUTED) $(STATIC)
	$(PY) scripts/stage_book.py
	$(VENV)/bin/jupyter-book build _build/src --path-output . -W -n --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html"

install: $(INSTALLED)

$(INSTALLED): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Each chapter is executed headlessly at its book parameters; a failed run leaves no output.
_build/src/book/%.ipynb: book/%.ipynb $(PACKAGE) $(INSTALLED)
	@mkdir -p $(dir $@)
	NCREPRO_STATIC=1 $(PY) -m papermill --cwd book --no-progress-bar $< $(@:.ipynb=.part.ipynb)
	mv $(@:.ipynb=.part.ipynb) $@

# The real-networks and equivalence chapters read the committed training results.
_build/src/book/real-networks.ipynb _build/src/book/equivalence.ipynb: $(RESULTS)
_build/src/book/scorecard.ipynb: $(CONTENT)
_build/src/book/status.ipynb: $(CONTENT) _build/src/book/scorecard.ipynb

# The book is built before nbval: the scorecard and status pages read the executed chapters.
test: lint unit rehearse-gpu book nbval browser

# ruff (pinned in requirements.txt) over the package, tests, benchmarks and scripts, and over the
# chapters with a 100-character limit: no reader scrolls sideways through a code cell.
lint: $(INSTALLED)
	$(VENV)/bin/ruff check ncrepro tests benchmarks scripts
	$(VENV)/bin/ruff check --line-length 100 book

# The package's docstring examples run as tests too.
unit: $(INSTALLED)
	$(PY) -m pytest tests ncrepro --ignore=tests/browser --doctest-modules

nbval: $(INSTALLED)
	NCREPRO_QUICK=1 NCREPRO_STATIC=1 $(PY) -m pytest --nbval-lax -p no:cacheprovider -W default \
		--override-ini=testpaths= $(CHAPTERS)

browser: book
	$(PY) -m pytest tests/browser -W default

# What travels to a lent GPU machine: the dataset pack and pure-Python helpers (ignored folders).
prepare-gpu: $(INSTALLED)
	scripts/prepare-gpu.sh

# The GPU command rehearsed on the CPU at smoke scale: environment check, budgeted sweep, archive,
# then the import here, all into a temporary folder.
rehearse-gpu: prepare-gpu
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	OUT=$$tmp/out NCREPRO_RESULTS=$$tmp/device scripts/gpu-sweep.sh gpu-smoke 3 cpu >$$tmp/run.log 2>&1 \
		|| { cat $$tmp/run.log; exit 1; } && \
	tail -n 2 $$tmp/run.log && \
	$(PY) -m ncrepro.sweep import $$tmp/out/results.tar.gz --results-dir $$tmp/imported && \
	test $$(ls $$tmp/imported/*.json | wc -l) -eq 4 && test $$(ls $$tmp/out | wc -l) -le 8

benchmarks: $(INSTALLED)
	$(PY) benchmarks/nc_metrics_speed.py
	$(PY) benchmarks/ufm_batched_speed.py
	$(PY) benchmarks/train_throughput.py

clean:
	rm -rf _build
