# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-onednn-flipped install clean

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
	$(BIN)/lint-imports  # the layers of pyproject.toml's [tool.importlinter]
	$(BIN)/python -m pytest -n auto --dist worksteal tests  # one worker per core (pytest-xdist): 1.7x on 2 cores

# The tests marked `onednn` once more with TensorFlow's oneDNN setting flipped from what this
# process's TensorFlow runs (on by default on recent Intel CPUs, off on AMD ones).
test-onednn-flipped: $(STAMP)
	flipped=$$($(BIN)/python -c "from tf_cyclegan.runtime import onednn_enabled; print(int(not onednn_enabled()))") \
	  && test -n "$$flipped" && TF_ENABLE_ONEDNN_OPTS=$$flipped $(BIN)/python -m pytest -n auto --dist worksteal tests -m onednn

clean:
	rm -rf runs data
