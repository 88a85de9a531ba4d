#!/usr/bin/env bash
# juno-bridge built as a HEP toolchain builds it: libstdc++ and libgcc linked statically into every library
# (-static-libstdc++ -static-libgcc). Such a library once exported ~4,000 std:: symbols, and the first
# Session(path) in a Python process (which carries its own libstdc++) crashed. This builds the package that
# way with pip, as a user would, into build/static-libstdcxx/, then against that build runs
#   1. the exported-symbol test and the smoke set in processes that have numpy, torch and TensorFlow
#      loaded (tests/native/test_other_runtimes.py), and
#   2. the C and C++ test programs of the same build (JB_BUILD_TESTS=ON) with ctest.
# The build folder is kept, so a second run rebuilds only what changed.
#
#   bash tests/native/static_libstdcxx.sh        (after `make install`; PYTHON: default .venv/bin/python)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
OUT=$ROOT/build/static-libstdcxx
mkdir -p "$OUT"
export PATH="$(dirname "$PYTHON"):$PATH"  # the cmake and ninja the Makefile installs into the venv
cd "$ROOT"

start=$SECONDS
LDFLAGS="-static-libstdc++ -static-libgcc" JUNO_BRIDGE_BUILD_DIR="$OUT/cmake" JUNO_BRIDGE_REQUIRE_TORCH=1 \
JUNO_BRIDGE_CMAKE_ARGS="-DJB_BUILD_TESTS=ON -DJB_WITH_PYTHON=ON -DJB_WITH_TORCH=ON -DJB_WITH_TF=ON" \
  "$PYTHON" -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps --upgrade \
  --target "$OUT/site" . > "$OUT.build.log" 2>&1 || { tail -50 "$OUT.build.log"; echo "static-libstdc++ build failed"; exit 1; }
built=$((SECONDS - start))

# The package under test is the static one: first on the path of pytest and of the smoke processes.
cd tests
PYTHONPATH="$OUT/site" JUNO_BRIDGE_EXPECT_STATIC_LIBSTDCXX=1 JUNO_BRIDGE_REQUIRE_ALL=1 \
  "$(dirname "$PYTHON")/pytest" -q -p no:cacheprovider native/test_exported_symbols.py native/test_other_runtimes.py
cd "$ROOT"
ctest --test-dir "$OUT/cmake" --output-on-failure
echo "static-libstdc++: build ${built} s, tests $((SECONDS - start - built)) s"
