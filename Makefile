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
	$(BIN)/python -m pytest tests

# The tests marked `onednn` once more with TensorFlow's oneDNN setting flipped (from this CPU's
# default, on for recent Intel CPUs and off elsewhere, or from TF_ENABLE_ONEDNN_OPTS if set).
test-onednn-flipped: $(STAMP)
	TF_ENABLE_ONEDNN_OPTS=$$($(BIN)/python -c \
	  "from tf_cyclegan.runtime import onednn_default; print(int(not onednn_default()))") \
	  $(BIN)/python -m pytest tests -m onednn

clean:
	rm -rf runs data
