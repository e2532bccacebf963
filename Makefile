# Entry points for a fresh machine: `make demo`, `make test` and `make bench`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[cpu,test]'
	touch $@

demo: install
	$(BIN)/facezoo demo

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile tests

bench: install
	$(BIN)/python benchmarks/run.py
