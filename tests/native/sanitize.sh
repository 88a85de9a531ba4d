#!/usr/bin/env bash
# The sanitizer builds of CI. For each kind, builds the core and the C/C++ test programs (the threaded
# stress program among them) with the project's CMake option JB_SANITIZE=<kind> in build/sanitize-<kind>,
# runs them with ctest, and for `address` also runs the ctypes C ABI fuzz and edge tests against that
# library. address = ASan + UBSan, thread = TSan.
#
# It fails on a failing test, on a crash, and on any sanitizer report with a frame in our code (cpp/,
# tests/native/cpp/). ONNX Runtime is not instrumented: reports wholly inside it are counted and listed
# (build/sanitize-<kind>/reports-other.txt) but do not fail the run. Ours are never suppressed.
#
#   tests/native/sanitize.sh [address] [thread]      (default: both)
# Environment: PYTHON (a Python with onnx, onnxruntime and the installed juno_bridge; default
# .venv/bin/python), SANITIZE_JOBS (parallel compilers and tests; default 2), STRESS_THREADS and
# STRESS_SCALE (the stress program's size).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
JOBS=${SANITIZE_JOBS:-2}
KINDS=("$@")
[ ${#KINDS[@]} -eq 0 ] && KINDS=(address thread)
for kind in "${KINDS[@]}"; do
  case $kind in address|thread) ;; *) echo "unknown sanitizer '$kind' (address|thread)"; exit 2 ;; esac
done
export PATH="$(dirname "$PYTHON"):$PATH"  # the cmake and ninja the Makefile installs into the venv

ORT=$("$PYTHON" -c 'import glob, os, onnxruntime; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so.1.*")))[-1])')

# Frames of our code: the sources compiled here, by path (the builds keep line tables).
OURS="$ROOT/cpp/|$ROOT/tests/native/cpp/"

# Splits sanitizer logs into reports: ASan/TSan reports sit between lines of '='; a LeakSanitizer report is
# split into its records (one per leaked allocation); UBSan prints one "path:line:col: runtime error:"
# line. A report is ours when a frame names our sources; a crash (a deadly signal) always counts. The one
# exception: a data race between two accesses that ONNX Runtime itself makes (the top frame of each, past
# the sanitizer's own, is in libonnxruntime: its new and delete of an object it hands between its threads
# through a queue TSan cannot see), though our call into it shows further down the stack.
# count_reports DIR LOG...  -> prints "<ours> <total>"; writes DIR/reports-ours.txt and DIR/reports-other.txt
count_reports() {
  "$PYTHON" - "$OURS" "$@" <<'PY'
import collections, re, sys
ours_pattern, out, logs = re.compile(sys.argv[1]), sys.argv[2], sys.argv[3:]
reports = []
for log in logs:
    text = open(log, errors="replace").read()
    for block in re.split(r"(?:^|\n)=+\n", text):
        if not re.search(r"(ERROR|WARNING): \w+Sanitizer", block):
            continue
        if "LeakSanitizer: detected memory leaks" in block:
            reports += [r for r in re.split(r"\n(?=(?:Direct|Indirect) leak of )", block)
                        if re.match(r"(Direct|Indirect) leak of", r)]
        else:
            reports.append(block.strip())
    reports += [l for l in text.splitlines() if "runtime error:" in l]
crash = re.compile(r"Sanitizer: (SEGV|BUS|FPE|ILL|ABRT|deadly signal|stack-overflow)")
sanitizer_frame = re.compile(r"libsanitizer/|lib[at]san\.so")
def runtime_internal_race(r):
    if "ThreadSanitizer: data race" not in r:
        return False
    accesses = re.findall(r"^ *(?:Previous )?(?:atomic )?(?:[Ww]rite|[Rr]ead) of size .*?(?=\n *\n|\Z)", r, re.M | re.S)
    tops = [next((f for f in re.findall(r"^ *#\d+ .*$", a, re.M) if not sanitizer_frame.search(f)), "") for a in accesses]
    return len(tops) >= 2 and all("libonnxruntime" in t and not ours_pattern.search(t) for t in tops)
ours = [r for r in reports if (ours_pattern.search(r) and not runtime_internal_race(r)) or crash.search(r)]
other = [r for r in reports if r not in ours]
open(f"{out}/reports-ours.txt", "w").write("\n\n----\n".join(ours))
open(f"{out}/reports-other.txt", "w").write("\n\n----\n".join(other))
def title(r):
    m = re.search(r"(?:ERROR|WARNING): \w+Sanitizer: [\w-]+( [\w-]+)?|(Direct|Indirect) leak|runtime error: .{0,60}", r)
    return m.group(0) if m else r.splitlines()[0][:80]
for name, n in collections.Counter(title(r) for r in other).most_common():
    sys.stderr.write(f"    not ours: {n} x {name}\n")
print(len(ours), len(reports))
PY
}

status=0
summary=()
for kind in "${KINDS[@]}"; do
  dir=$ROOT/build/sanitize-$kind
  logs=$dir/sanitizer-logs
  # Plugins that pull in large uninstrumented libraries (libtorch, TensorFlow) and the tools stay out.
  start=$SECONDS
  mkdir -p "$dir"
  cmake -S "$ROOT" -B "$dir" -G Ninja -DJB_SANITIZE="$kind" -DJB_BUILD_TESTS=ON -DJB_BUILD_TOOLS=OFF \
    -DJB_WITH_TORCH=OFF -DJB_WITH_TF=OFF -DJB_WITH_PYTHON=ON \
    -DJB_PYTHON_EXECUTABLE="$PYTHON" -DJB_ONNXRUNTIME_LIBRARY="$ORT" > "$dir/configure.txt" 2>&1 \
    || { cat "$dir/configure.txt"; exit 1; }
  cmake --build "$dir" -j "$JOBS"
  build_s=$((SECONDS - start))

  # Every report goes to a log file (log.<pid>), is counted below, and decides nothing by itself: the
  # programs go on after a report (halt_on_error=0, exitcode=0) and ctest judges only their results.
  rm -rf "$logs" && mkdir -p "$logs"
  common="halt_on_error=0:exitcode=0:log_path=$logs/log"
  export ASAN_OPTIONS="$common:detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=30"
  export UBSAN_OPTIONS="$common:print_stacktrace=1"
  export TSAN_OPTIONS="$common:second_deadlock_stack=1:history_size=4"
  # Python's small-object allocator takes memory by mmap, where LeakSanitizer does not look for pointers:
  # every object reachable only through it would be a leak. With malloc the interpreter's roots are seen.
  export PYTHONMALLOC=malloc
  start=$SECONDS
  set +e
  # setarch -R: TSan needs the classic memory layout on kernels with high mmap randomisation.
  setarch "$(uname -m)" -R ctest --test-dir "$dir" -j "$JOBS" --output-on-failure > "$dir/ctest.txt" 2>&1
  ctest_rc=$?
  set -e
  grep -E "tests passed|tests failed|^\s+[0-9]+ - " "$dir/ctest.txt" | sed "s/^/$kind: ctest: /"
  grep -hE "^(PASS|FAIL) (shared|close|churn|async|once) \(" "$dir/Testing/Temporary/LastTest.log" | sed "s/^/$kind: stress: /" || true
  if [ $ctest_rc != 0 ]; then
    echo "$kind: ctest failed ($dir/ctest.txt)"; grep -B2 -A30 "Failed\|\*\*\*" "$dir/ctest.txt" | head -80; status=1
  fi
  unset ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS PYTHONMALLOC

  fuzz=""
  if [ "$kind" = address ]; then
    # The C ABI fuzz and edge tests (ctypes) against this build: a report stops the worker, so a report
    # is a failing example. The runtimes are preloaded (Python is not built with them); libstdc++ too,
    # so that ASan finds the C++ throw it intercepts.
    fuzz_start=$SECONDS
    set +e
    (cd "$ROOT/tests" && JUNO_BRIDGE_TEST_LIBRARY="$dir/lib/libjuno_bridge.so" \
      LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)" \
      ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:verify_asan_link_order=0:log_path="$logs/fuzz" \
      UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path="$logs/fuzz" \
      "$PYTHON" -m pytest -q -p no:cacheprovider native/test_c_abi_fuzz.py native/test_c_abi_robustness.py \
      > "$dir/fuzz.txt" 2>&1)
    fuzz_rc=$?
    set -e
    fuzz="; fuzz and edge tests: $(tail -1 "$dir/fuzz.txt" | tr -d '=') in $((SECONDS - fuzz_start)) s"
    echo "$kind: C ABI fuzz and edge tests under ASan+UBSan: $(tail -1 "$dir/fuzz.txt")"
    [ $fuzz_rc = 0 ] || { tail -60 "$dir/fuzz.txt"; status=1; }
  fi
  run_s=$((SECONDS - start))

  read -r ours total < <(count_reports "$dir" $(find "$logs" -type f | sort))
  if [ "$ours" != 0 ]; then
    echo "$kind: sanitizer reports in our code ($dir/reports-ours.txt):"; head -c 8000 "$dir/reports-ours.txt"; echo
    status=1
  fi
  line="$kind: build ${build_s} s, run ${run_s} s (ctest exit $ctest_rc$fuzz); sanitizer reports: ours $ours / total $total"
  echo "$line"
  summary+=("$line")
done
printf '%s\n' "${summary[@]}"
exit $status
