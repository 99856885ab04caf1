# The README's two commands: `make demo` and `make test`. Both set up from nothing.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.mpc-installed
# Locally `make test` runs the quick subset; CI (CI=true) runs everything, slow cases included.
# Every run prints its 25 slowest tests and fails a test that runs past TEST_TIMEOUT seconds.
TEST_TIMEOUT ?= 900
PYTEST_ARGS ?= $(if $(filter true 1,$(CI)),,-m "not slow")
PYTEST_COMMON := --durations=25 --timeout=$(TEST_TIMEOUT)

.PHONY: setup demo test test-all lint tools bench clean

setup: $(STAMP) tools

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "installing torch==2.13.0 (CPU) and mpc into $(VENV)"
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# Icarus Verilog (simulation), yosys (synthesis) and the iCE40 place-and-route flow (nextpnr-ice40;
# icepack and icetime from fpga-icestorm) come from Debian's packages: command:package pairs.
TOOLS := iverilog:iverilog yosys:yosys nextpnr-ice40:nextpnr-ice40 icepack:fpga-icestorm

tools:
	@missing=""; for tp in $(TOOLS); do command -v $${tp%%:*} >/dev/null || missing="$$missing $${tp#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing with apt-get:$$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends$$missing >/dev/null; \
	fi

demo: setup
	$(BIN)/mpc compile examples/digits_mlp.onnx --data examples/digits.npz --target fpga -o build/demo --force
	$(BIN)/mpc simulate build/demo --samples 64
	@cat build/demo/report.md

test: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 $(PYTEST_COMMON) $(PYTEST_ARGS)

test-all: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 $(PYTEST_COMMON)

# ruff (lint + format check), mypy, and lint-imports (the layer table of docs/architecture.md as
# import-linter contracts), all configured in pyproject.toml.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

BENCHMARKS := compile_and_simulate admm_compression circulant_speed circulant_hardware hardware_sweep privacy cnn frontend_coverage explore_speedup backdoor fpga_targets

# Each benchmark in its quick mode; run one alone without --quick for the full tables.
bench: setup
	for b in $(BENCHMARKS); do OMP_NUM_THREADS=1 $(BIN)/python benchmarks/$$b.py --quick || exit 1; done

clean:
	rm -rf build sim_build .pytest_cache
