# The README's two commands: `make demo` (set up, build, install, run the main job) and `make test`
# (set up, build, install, run the tests). Everything goes into a virtual environment, $(VENV).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# What the build and the tests need. Pinned where the project's own CI depends on exact behaviour.
# CMake and ninja build the C++ (setup.py runs them from the venv, so a fresh machine needs neither).
BUILD_DEPS := "setuptools>=77" wheel "Cython>=3.0" "numpy>=2.0" "onnxruntime==1.31.1" "cmake>=3.18" ninja
# The torch plugin is always built and tested here: torch (the CPU wheel, pinned: an unpinned torch
# pulls a multi-GB CUDA build) goes in before the build, and its absence fails the build.
TORCH_DEPS := "torch==2.13.0"
export JUNO_BRIDGE_REQUIRE_TORCH := 1
# TensorFlow for its plugin's tests (the plugin itself needs none to build: it binds TensorFlow's C API
# at run time, any release from 2.16 on; this pin is the release our CI tests besides 2.20).
TF_DEPS := "tensorflow-cpu==2.21.0"
# Extras installed with the package; our own CI installs them all.
EXTRAS := test,hdf5,root,torch,tf,triton,dask,converters,lint

.PHONY: all demo test install bench clean clean-cache sniper lint

all: install

$(VENV)/.deps: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(BUILD_DEPS) $(TORCH_DEPS) $(TF_DEPS)
	touch $@

install: $(VENV)/.deps
	$(PIP) install -q --no-build-isolation ".[$(EXTRAS)]"

demo: install
	$(VENV)/bin/juno-bridge demo

bench: install
	$(VENV)/bin/juno-bridge bench

# `make test` is our CI: a test whose optional library or tool is missing fails instead of being skipped
# (tests/helpers/optional.py). `make test REQUIRE_ALL=0` skips them instead.
REQUIRE_ALL ?= 1
test: install
	cd tests && JUNO_BRIDGE_REQUIRE_ALL=$(REQUIRE_ALL) ../$(VENV)/bin/pytest -q -p no:cacheprovider

# ruff and clang-format on what changed since the style was adopted (.ci/lint says how); CI runs it.
lint: install
	bash .ci/lint

# The SNiPER package (cpp/sniper) against the SNiPER installed in SNIPER_PREFIX, installed into the
# juno_bridge package of $(VENV):  make sniper SNIPER_PREFIX=/path/to/sniper/install
sniper: install
	@test -n "$(SNIPER_PREFIX)" || { echo "make sniper needs SNIPER_PREFIX=<SNiPER's install prefix>"; exit 2; }
	$(VENV)/bin/cmake -S cpp/sniper -B build/sniper -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV))/bin/ninja -DCMAKE_PREFIX_PATH="$(abspath $(SNIPER_PREFIX))" \
	  -Djuno_bridge_DIR="$$($(VENV)/bin/juno-bridge config --cmake-dir)" -DPython3_EXECUTABLE="$(abspath $(PY))"
	$(VENV)/bin/cmake --build build/sniper --target install

# What the package and the tests keep in the cache (generated models, the Triton server, other ONNX Runtime
# and TensorFlow releases for the compatibility tests: about 1.6 GB after `make test`).
CACHE ?= $(or $(JUNO_BRIDGE_CACHE),$(if $(XDG_CACHE_HOME),$(XDG_CACHE_HOME)/juno-bridge),$(HOME)/.cache/juno-bridge)
TEST_CACHE ?= $(or $(JUNO_BRIDGE_TEST_CACHE),$(HOME)/.cache/juno-bridge-test)
clean-cache:
	rm -rf "$(CACHE)" "$(TEST_CACHE)"

clean:
	rm -rf build dist *.egg-info juno_bridge/lib juno_bridge/include juno_bridge/cmake juno_bridge/bin juno_bridge/examples juno_bridge/*.so bridge/*.cpp
