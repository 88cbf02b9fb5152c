# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

data/demo/trainA: | $(STAMP)
	$(BIN)/tf-cyclegan make-demo-data data/demo

demo: $(STAMP) data/demo/trainA
	$(BIN)/tf-cyclegan train --config configs/demo.yaml --run-dir runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest tests

clean:
	rm -rf runs data
