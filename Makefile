# The README's two commands: `make demo` (set up, build, install, run the main job) and `make test`
# (set up, build, install, run the tests). Everything goes into a virtual environment, $(VENV).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# What the build and the tests need. Pinned where the project's own CI depends on exact behaviour.
BUILD_DEPS := "setuptools>=77" wheel "Cython>=3.0" "numpy>=2.0" "onnxruntime==1.31.1"
# The torch plugin is always built and tested here: torch (the CPU wheel, pinned: an unpinned torch
# pulls a multi-GB CUDA build) goes in before the build, and its absence fails the build.
TORCH_DEPS := "torch==2.13.0"
export JUNO_BRIDGE_REQUIRE_TORCH := 1
# The same for the TensorFlow plugin (the CPU wheel, pinned: the plugin refuses another release).
TF_DEPS := "tensorflow-cpu==2.21.0"
export JUNO_BRIDGE_REQUIRE_TF := 1
# Extras installed with the package; our own CI installs them all.
EXTRAS := test,hdf5,torch,tf,triton,dask

.PHONY: all demo test install bench clean sniper

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

test: install
	cd tests && ../$(VENV)/bin/pytest -q -p no:cacheprovider

# The SNiPER package (cpp/sniper) against the SNiPER installed in SNIPER_PREFIX, installed into the
# juno_bridge package of $(VENV):  make sniper SNIPER_PREFIX=/path/to/sniper/install
sniper: install
	@test -n "$(SNIPER_PREFIX)" || { echo "make sniper needs SNIPER_PREFIX=<SNiPER's install prefix>"; exit 2; }
	cmake -S cpp/sniper -B build/sniper -G Ninja -DCMAKE_PREFIX_PATH="$(abspath $(SNIPER_PREFIX))" \
	  -Djuno_bridge_DIR="$$($(VENV)/bin/juno-bridge config --cmake-dir)" -DPython3_EXECUTABLE="$(abspath $(PY))"
	cmake --build build/sniper --target install

clean:
	rm -rf build dist *.egg-info juno_bridge/lib juno_bridge/include juno_bridge/cmake juno_bridge/bin juno_bridge/*.so bridge/*.cpp
