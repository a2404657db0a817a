# The Makefile only wraps scripts/setup.sh, cmake and ctest (Docker and CI call these targets).
#   make demo    set-up + build + the pipeline on the embedded sample data
#   make test    set-up + build + every test (ctest)
#   make bench   set-up + build + benchmarks against the Python peers
#   make fuzz    set-up + every libFuzzer target for FUZZ_SECONDS each (default 300), random seed
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
BUILD ?= build
JOBS ?= $(shell nproc)
CTEST_ARGS ?=
# ccache: paths under the clone are hashed relative to it (BASEDIR) and, with -g, the working
# directory is left out of the hash (NOHASHDIR), so a second clone or worktree builds from cache.
ENV = eval "$$(bash scripts/setup.sh --print-env)"; export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime CCACHE_MAXSIZE=5G CCACHE_BASEDIR=$(CURDIR) CCACHE_NOHASHDIR=1;

.PHONY: all setup configure build test demo bench fuzz clean clean-cache
all: build

setup:
	bash scripts/setup.sh

# Torch_DIR is passed each time: a build folder configured with an older venv must not keep
# the old libtorch when the pins (and so the venv) change.
configure: setup
	@$(ENV) \
	cmake -S . -B $(BUILD) -G Ninja \
	  -DTorch_DIR="$$($$HFKIT_VENV/bin/python -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch" \
	  -DHFKIT_PYTHON="$$HFKIT_VENV/bin/python" $(CMAKE_ARGS) >$(BUILD).configure.log 2>&1 \
	  || { cat $(BUILD).configure.log; exit 1; }; grep -E '^-- (hfkit|  )' $(BUILD).configure.log

build: configure
	@$(ENV) cmake --build $(BUILD) -j $(JOBS)

test: build
	@$(ENV) cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

demo: build
	@$(ENV) BIN=$(BUILD)/bin bash scripts/demo.sh

bench: build
	@$(ENV) BIN=$(BUILD)/bin bash bench/run.sh

FUZZ_SECONDS ?= 300
fuzz: setup
	@$(ENV) for t in safetensors records; do \
	  FUZZ_SEED=$${FUZZ_SEED:-0} bash test/fuzz/run_fuzz.sh $(BUILD)-fuzz $$t $(FUZZ_SECONDS) || exit 1; done

clean:
	rm -rf $(BUILD)

# Removes venvs of older pins and trims ccache; the current venv stays.
clean-cache:
	@$(ENV) find "$$HFKIT_CACHE" -maxdepth 1 -name 'venv-*' ! -path "$$HFKIT_VENV" -exec rm -rf {} +; ccache -c
