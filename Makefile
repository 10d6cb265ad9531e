# Backend Fundamentals — every command a learner or contributor needs.
# The only prerequisites are Python 3.11+, make and git: the first target that
# needs them creates .venv from requirements.txt (pinned) and reuses it after.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-from-lock
UV     := uv==0.13.8
TOPIC  := $(if $(T),--topic $(T))
CLOCK  = $(BIN)/python -c 'import sys, time; print(time.time() - float(sys.argv[1]))'
# The exclusive tests' files: the exclusive phase collects only those.
EXCLUSIVE = $(shell grep -rl --include='test_*.py' 'mark.exclusive' tests)
# Tests and snippets find the venv's tools (python, mkdocs) first.
export PATH := $(abspath $(BIN)):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help serve test flakes bench-snippets build lint format run outputs lab lock clean

help:  ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 10

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(UV)
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.txt
	@touch $@

serve: $(STAMP)  ## serve the site on http://127.0.0.1:8000 with live reload (pages and snippets)
	$(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000 --livereload

build: $(STAMP)  ## build the site into site/ (strict: any warning fails)
	$(BIN)/mkdocs build --strict

test: $(STAMP)  ## everything CI runs (make test T=protocols/tcp-udp: only what is about one page)
	@start=$$($(CLOCK) 0); $(MAKE) --no-print-directory lint || exit 1; \
	export LINT_SECONDS=$$($(CLOCK) $$start); \
	set -x; $(BIN)/python -m pytest -p no:randomly -n auto --dist load --codeblocks tests docs -m "not exclusive" $(TOPIC) $(ARGS)
	$(BIN)/python -m pytest -p no:randomly -p no:xdist $(EXCLUSIVE) -m exclusive $(TOPIC) $(ARGS) || test $$? -eq 5  # 5: T or ARGS selected none

flakes: $(STAMP)  ## hunt flaky tests: the parallel phase N times, random order, some runs with 2x workers: make flakes N=10
	$(BIN)/python -m tests.flake_hunt --runs $(or $(N),10) $(if $(ARGS),-- $(ARGS))

bench-snippets: $(STAMP)  ## time every snippet alone against its budget (DESIGN.md §6): make bench-snippets [R=3]
	$(BIN)/python -m pytest -q -p no:randomly -p no:xdist tests/bench_snippets.py --repeats $(or $(R),3) -s

lint: $(STAMP)  ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

run: $(STAMP)  ## run one snippet: make run S=protocols/tcp_echo
	@test -n "$(S)" || { echo "usage: make run S=<chapter>/<snippet>  (e.g. S=protocols/tcp_echo)"; exit 2; }
	$(BIN)/python snippets/$(S).py

outputs: $(STAMP)  ## re-record page output from real runs: make outputs [S=protocols/tcp_echo | S=notebooks]
	$(BIN)/python -m pytest -q -p no:randomly tests/test_snippets.py tests/test_notebooks.py \
		--record-outputs -k "$(if $(filter notebooks,$(S)),test_notebook_runs,$(if $(S),snippets/$(S).py,test_snippet_runs or test_notebook_runs))"

lab: $(STAMP)  ## grade your lab, stage by stage: make lab LAB=http-server [FILE=my.py] [SEED=n]
	@$(BIN)/python labs/run.py $(LAB) $(if $(FILE),--file "$(FILE)") $(if $(SEED),--seed $(SEED))

lock: $(STAMP)  ## re-resolve requirements.txt from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --all-extras --universal --python-version 3.11 --quiet -o requirements.txt

clean:  ## remove the built site and caches (keeps .venv)
	rm -rf site .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
