"""The threaded stress program (tests/native/cpp/stress.cpp) in the normal build: many threads on shared
sessions bitwise equal to serial runs, close() while runs are in flight, open/close churn through the C++
API and the C ABI, run_async through RunAsync with the Session destroyed by its last completion; and the
leak check of one open/run/close under LeakSanitizer."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from juno_bridge import paths
from helpers.native_build import build, clean_env, require_tool, run_program, write_mlp_model

NATIVE = Path(__file__).resolve().parent / "cpp"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_mlp_model(tmp_path_factory.mktemp("model") / "mlp.onnx")


@pytest.fixture(scope="module")
def stress(tmp_path_factory):
    require_tool("g++")
    exe = tmp_path_factory.mktemp("stress") / "stress"
    build(["g++", "-std=c++17", "-O1", "-g", "-pthread", "-Wall", "-Wextra", *paths.cflags(), NATIVE / "stress.cpp",
           "-o", exe, *paths.libs()])
    return exe


@pytest.mark.parametrize("scenario", ["shared", "close", "churn", "async"])
def test_stress_scenario_passes(stress, model, scenario):
    result = run_program([stress, model, scenario], timeout=300)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-4000:]}"
    assert re.search(rf"^PASS {scenario} \(8 threads", result.stdout, re.M), result.stdout


def leak_reports_in_our_code(report: str) -> list[str]:
    """The LeakSanitizer records (one per leaked allocation) with a frame in our library or program."""
    records = re.split(r"\n(?=(?:Direct|Indirect) leak of )", report)
    return [r for r in records if re.match(r"(Direct|Indirect) leak of", r)
            and re.search(r"libjuno_bridge|jb::|/stress\b|stress\+0x", r)]


def test_one_open_run_close_leaks_nothing_of_ours(stress, model):
    # The library is not instrumented: the ASan runtime is preloaded for its allocator and leak check only.
    gcc = require_tool("gcc")
    asan = subprocess.run([gcc, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(asan) or not os.path.exists(asan):
        pytest.skip("gcc has no libasan.so")
    env = clean_env() | {"LD_PRELOAD": asan,
                         "ASAN_OPTIONS": "detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=40:"
                                         "verify_asan_link_order=0:exitcode=23"}
    result = subprocess.run([str(stress), str(model), "once"], env=env, capture_output=True, text=True, timeout=300)
    assert "PASS once" in result.stdout, result.stderr[-4000:]
    ours = leak_reports_in_our_code(result.stderr)
    assert not ours, "\n\n".join(ours)[:6000]
