# Backend Fundamentals — every command a learner or contributor needs.
# The only prerequisites are Python 3.11+, make and git: the first target that needs them
# creates .venv and installs from a pinned lock, and later ones reuse it. Each target
# installs only what it needs (every lock is generated from pyproject.toml by `make lock`):
#   requirements-learn.txt     the site and the snippets' libraries   serve, run, services, build
#   requirements-lab.txt       + pytest to grade the labs              lab
#   requirements-notebook.txt  + JupyterLab and matplotlib             notebook
#   requirements.txt           everything, the test tools included     test, lint, outputs

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := uv==0.13.8
TOPIC  := $(if $(T),--topic $(T))
CLOCK  = $(BIN)/python -c 'import sys, time; print(time.time() - float(sys.argv[1]))'
# The exclusive tests' files: the exclusive phase collects only those.
EXCLUSIVE = $(shell grep -rl --include='test_*.py' 'mark.exclusive' tests)
# What pytest collects: everything, or with T= only the files that can hold tests about
# that page (tests/topic.py), since collecting the whole suite costs each worker seconds.
PATHS = $(if $(T),$(shell $(BIN)/python -m tests.topic $(T)),tests docs)
EXCLUSIVE_PATHS = $(if $(T),$(filter $(EXCLUSIVE),$(PATHS)),$(EXCLUSIVE))
# xdist workers: one more than the cores (tests/workers.py says why); WORKERS=n overrides it.
WORKERS ?= $(shell $(BIN)/python -m tests.workers)
# Tests and snippets find the venv's tools (python, mkdocs) first.
export PATH := $(abspath $(BIN)):$(PATH)
# The locks, and a stamp per lock once installed.
LEARN_STAMP    := $(VENV)/.installed-learn
LAB_STAMP      := $(VENV)/.installed-lab
NOTEBOOK_STAMP := $(VENV)/.installed-notebook
STAMP          := $(VENV)/.installed-all
COMPILE  := $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --quiet

.DEFAULT_GOAL := help
.PHONY: help serve test flakes bench-snippets bench-pages cpu-map diagrams build lint format run services notebook outputs lab lock clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 10

$(BIN)/uv:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(UV)

# Installs add to the venv (uv pip install, not sync), so `make test` after `make notebook`
# keeps JupyterLab; every version still comes from a lock. They compile the packages'
# bytecode once, as pip does (uv does not by default): otherwise, where nothing may write
# __pycache__ (PYTHONDONTWRITEBYTECODE=1), every snippet, server and notebook kernel the
# tests start compiles its libraries again (import matplotlib.pyplot: 2.7 s of CPU -> 0.9 s).
export UV_COMPILE_BYTECODE := 1
$(LEARN_STAMP): requirements-learn.txt | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-learn.txt
	@touch $@
$(LAB_STAMP): requirements-lab.txt | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-lab.txt
	@touch $@
$(NOTEBOOK_STAMP): requirements-notebook.txt | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-notebook.txt
	@touch $@
$(STAMP): requirements.txt | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.txt
	@touch $@

serve: $(LEARN_STAMP)  ## serve the site on http://127.0.0.1:8000 with live reload (pages and snippets)
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000 --livereload

build: $(LEARN_STAMP)  ## build the site into site/ (strict: any warning fails)
	$(BIN)/mkdocs build --strict

test: $(STAMP)  ## everything CI runs (make test T=protocols/tcp-udp: only what is about one page)
	@test -z "$(T)" -o -n "$(strip $(PATHS))" || exit 2  # T= names no page (said above)
	@start=$$($(CLOCK) 0); $(MAKE) --no-print-directory lint || exit 1; \
	export LINT_SECONDS=$$($(CLOCK) $$start); \
	set -x; $(BIN)/python -m pytest -p no:randomly -n $(WORKERS) --dist load --codeblocks $(PATHS) -m "not exclusive" $(TOPIC) $(ARGS)
	$(if $(EXCLUSIVE_PATHS),$(BIN)/python -m pytest -p no:randomly -p no:xdist $(EXCLUSIVE_PATHS) -m exclusive $(TOPIC) $(ARGS) || test $$? -eq 5  # 5: T or ARGS selected none,@echo "no exclusive test about $(T)")

flakes: $(STAMP)  ## hunt flaky tests: the parallel phase N times, random order, some runs with 2x workers: make flakes N=10
	$(BIN)/python -m tests.flake_hunt --runs $(or $(N),10) $(if $(ARGS),-- $(ARGS))

bench-snippets: $(STAMP)  ## time every snippet alone against its budget (DESIGN.md §6): make bench-snippets [R=3]
	$(BIN)/python -m pytest -q -p no:randomly -p no:xdist tests/bench_snippets.py --repeats $(or $(R),3) -s

cpu-map: $(STAMP)  ## where a whole `make test`'s CPU goes, by kind of process (root: cgroups): make cpu-map
	$(BIN)/python -m tests.cpu_map -- $(MAKE) --no-print-directory test

bench-pages: $(STAMP)  ## Lighthouse (mobile, desktop) on home, a topic per chapter, a notebook, a lab: score, TBT, LCP, gzip bytes
	$(BIN)/python -m tests.bench_pages $(if $(SITE),--site $(SITE))

diagrams: $(STAMP)  ## turn every ```mermaid fence and .mmd file into committed SVGs, light and dark (needs Chromium)
	$(BIN)/python -m tests.diagrams

lint: $(STAMP)  ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

run: $(LEARN_STAMP)  ## run one snippet, starting the servers it needs: make run S=protocols/tcp_echo
	@$(BIN)/python -m services run "$(S)" || test $$? -eq 64  # 64: no such snippet; the list was printed

services: $(LEARN_STAMP)  ## keep the servers (PostgreSQL, Redis, RabbitMQ, NATS) running and print their export lines: make services [ONLY="postgresql"]
	@$(BIN)/python -m services up $(ONLY)

notebook: $(NOTEBOOK_STAMP)  ## open the notebook labs in JupyterLab (on 127.0.0.1; Ctrl-C stops it)
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=. $(if $(filter 0,$(shell id -u)),--allow-root) \
		$(sort $(wildcard docs/*/*.ipynb))

outputs: $(STAMP)  ## re-record page output from real runs: make outputs [S=protocols/tcp_echo | S=notebooks]
	$(BIN)/python -m pytest -q -p no:randomly tests/test_snippets.py tests/test_notebooks.py \
		--record-outputs -k "$(if $(filter notebooks,$(S)),test_notebook_runs,$(if $(S),snippets/$(S).py,test_snippet_runs or test_notebook_runs))"

lab: $(LAB_STAMP)  ## grade your lab, stage by stage: make lab LAB=http-server [FILE=my.py] [SEED=n]
	@$(BIN)/python labs/run.py $(LAB) $(if $(FILE),--file "$(FILE)") $(if $(SEED),--seed $(SEED)) \
		|| test $$? -eq 1  # 1: a stage failed, which the report above says; anything else is an error

lock: | $(BIN)/uv  ## re-resolve the locks from pyproject.toml (the smaller ones pinned to requirements.txt)
	$(COMPILE) --extra docs --extra lab --extra test -o requirements.txt
	$(COMPILE) --extra docs -c requirements.txt -o requirements-learn.txt
	$(COMPILE) --extra docs --extra lab -c requirements.txt -o requirements-lab.txt
	$(COMPILE) --extra docs --extra notebook -c requirements.txt -o requirements-notebook.txt

clean:  ## remove the built site and caches (keeps .venv)
	rm -rf site .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
