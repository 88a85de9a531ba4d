#!/usr/bin/env bash
# Builds the core library and the threaded stress program (tests/native/cpp/stress.cpp) with
# -fsanitize=address,undefined, and separately with -fsanitize=thread, runs the stress program under each,
# and fails only on sanitizer reports with a frame in our code (cpp/, tests/native/cpp/). ONNX Runtime is
# not instrumented, so reports wholly inside it are listed but do not fail the run; ours are never
# suppressed. Until the CMake build has its JB_SANITIZE=address|thread option, g++ is called directly.
#
#   tests/native/sanitize.sh [address] [thread]      (default: both)
# Environment: PYTHON (a Python with onnx and onnxruntime; default .venv/bin/python), SANITIZE_DIR (where
# builds and logs go; default build/sanitize), STRESS_THREADS, STRESS_SCALE (passed to the program).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
OUT=${SANITIZE_DIR:-$ROOT/build/sanitize}
CXX=${CXX:-g++}
KINDS=("$@")
[ ${#KINDS[@]} -eq 0 ] && KINDS=(address thread)
mkdir -p "$OUT"

ORT=$("$PYTHON" -c 'import glob, os, onnxruntime; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so.1.*")))[-1])')
MODEL=$OUT/mlp.onnx
"$PYTHON" -c "import sys; sys.path.insert(0, '$ROOT/tests'); from native_build import write_mlp_model; write_mlp_model(__import__('pathlib').Path('$MODEL'))"

# Frames of our code: the sources compiled here, by path.
OURS="$ROOT/cpp/|$ROOT/tests/native/cpp/"

build() {  # build KIND FLAGS...: the core as a shared library and the stress program linked to it
  local kind=$1; shift
  local dir=$OUT/$kind objects=()
  mkdir -p "$dir/obj"
  local start=$SECONDS
  for src in "$ROOT"/cpp/src/*.cpp; do
    local obj=$dir/obj/$(basename "${src%.cpp}").o
    "$CXX" -std=c++17 -O1 -g -fno-omit-frame-pointer -fPIC "$@" -DJB_BUILD_ONNXRUNTIME="\"$ORT\"" \
      -I"$ROOT/cpp/include" -I"$ROOT/third_party/onnxruntime" -c "$src" -o "$obj" &
    objects+=("$obj")
    # two compilers at a time: the machine is shared
    [ $(jobs -r | wc -l) -ge 2 ] && wait -n
  done
  wait
  "$CXX" -shared -o "$dir/libjuno_bridge.so" "${objects[@]}" "$@" -Wl,-soname,libjuno_bridge.so -ldl -pthread
  "$CXX" -std=c++17 -O1 -g -fno-omit-frame-pointer -pthread "$@" -I"$ROOT/cpp/include" \
    "$ROOT/tests/native/cpp/stress.cpp" -o "$dir/stress" -L"$dir" -ljuno_bridge -Wl,-rpath,"$dir"
  echo "built $kind in $((SECONDS - start)) s"
}

# Splits a sanitizer log into reports and counts those with a frame (or a UBSan source line) in our code.
count_ours() {  # count_ours LOG... -> prints "<ours> <total>", writes ours to $OUT/<kind>-ours.txt
  "$PYTHON" - "$OURS" "$@" <<'PY'
import re, sys
ours_pattern, logs = re.compile(sys.argv[1]), sys.argv[2:]
reports = []
for log in logs:
    text = open(log, errors="replace").read()
    # ASan/TSan/LSan reports sit between lines of '=' ; UBSan prints one "path:line:col: runtime error:" line.
    reports += [r for r in re.split(r"\n=+\n", text) if re.search(r"(ERROR|WARNING): \w+Sanitizer|leak of", r)]
    reports += [l for l in text.splitlines() if "runtime error:" in l]
ours = [r for r in reports if ours_pattern.search(r)]
print(len(ours), len(reports))
sys.stderr.write("\n\n----\n".join(ours)[:20000])
PY
}

status=0
for kind in "${KINDS[@]}"; do
  case $kind in
    address) flags=(-fsanitize=address,undefined -fsanitize-recover=address,undefined)
             export ASAN_OPTIONS="halt_on_error=0:detect_leaks=1:fast_unwind_on_malloc=0:log_path=$OUT/address/log"
             export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:log_path=$OUT/address/log" ;;
    thread)  flags=(-fsanitize=thread)
             export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:log_path=$OUT/thread/log" ;;
    *) echo "unknown sanitizer '$kind' (address|thread)"; exit 2 ;;
  esac
  build "$kind" "${flags[@]}"
  rm -f "$OUT/$kind"/log.*
  start=$SECONDS
  set +e
  # setarch -R: TSan needs the classic memory layout on kernels with high mmap randomisation.
  env -u LD_LIBRARY_PATH -u PYTHONPATH setarch "$(uname -m)" -R "$OUT/$kind/stress" "$MODEL" shared close churn once \
    > "$OUT/$kind/stdout.txt" 2> "$OUT/$kind/stderr.txt"
  rc=$?
  set -e
  cat "$OUT/$kind/stdout.txt"
  logs=("$OUT/$kind/stderr.txt")
  for l in "$OUT/$kind"/log.*; do [ -e "$l" ] && logs+=("$l"); done
  read -r ours total < <(count_ours "${logs[@]}" 2> "$OUT/$kind-ours.txt")
  echo "$kind: stress exit $rc in $((SECONDS - start)) s; sanitizer reports: $total, with a frame in our code: $ours"
  if [ "$ours" != 0 ]; then
    echo "reports in our code ($OUT/$kind-ours.txt):"; head -c 6000 "$OUT/$kind-ours.txt"; echo
    status=1
  fi
  if ! grep -q "^PASS once" "$OUT/$kind/stdout.txt" || grep -q "^FAIL" "$OUT/$kind/stdout.txt"; then
    echo "$kind: the stress program failed"; tail -20 "$OUT/$kind/stderr.txt"; status=1
  fi
  if [ "$kind" = address ] && "$PYTHON" -c "import pytest, hypothesis" 2>/dev/null; then
    # The C ABI fuzz and edge tests (ctypes) against this build: a report stops the worker, so a report
    # is a failing example. The runtimes are preloaded (Python is not built with them); libstdc++ too,
    # so that ASan finds the C++ throw it intercepts.
    start=$SECONDS
    set +e
    (cd "$ROOT/tests" && JUNO_BRIDGE_TEST_LIBRARY="$OUT/address/libjuno_bridge.so" \
      LD_PRELOAD="$("$CXX" -print-file-name=libasan.so) $("$CXX" -print-file-name=libstdc++.so)" \
      ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:verify_asan_link_order=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      "$PYTHON" -m pytest -q -p no:cacheprovider native/test_c_abi_fuzz.py native/test_c_abi_robustness.py \
      > "$OUT/address/fuzz.txt" 2>&1)
    rc=$?
    set -e
    echo "address: C ABI fuzz and edge tests under ASan+UBSan: $(tail -1 "$OUT/address/fuzz.txt") in $((SECONDS - start)) s"
    [ $rc = 0 ] || { tail -60 "$OUT/address/fuzz.txt"; status=1; }
  fi
done
exit $status
