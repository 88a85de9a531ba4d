"""juno-bridge in a Python process that has numpy, torch and TensorFlow loaded (each with its C++ runtime),
in either import order: sessions shared and not, by path and by bytes, run_async, a python: model, a .pt2
and a .pt, and errors thrown in the core and in a plugin caught by the caller. Each order runs in a process of
its own (tests/helpers/other_runtimes_smoke.py), so a crash is a failed test with its signal, not the end of the run.

`bash tests/native/static_libstdcxx.sh` runs this file against a build linked with -static-libstdc++
-static-libgcc (JUNO_BRIDGE_EXPECT_STATIC_LIBSTDCXX=1): the toolchain whose exported libstdc++ crashed the
first Session(path)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import juno_bridge as jb
from juno_bridge.demo.models import default

pytestmark = [pytest.mark.torch, pytest.mark.tf]

SMOKE = Path(__file__).resolve().parents[1] / "helpers" / "other_runtimes_smoke.py"
CORE = Path(jb.__file__).parent / "lib" / "libjuno_bridge.so"


@pytest.fixture(scope="module")
def torch_models():
    from helpers import torch_models as tm
    return tm.tiny(".pt2"), tm.tiny(".pt")


def needed(library: Path) -> list[str]:
    dynamic = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True, check=True).stdout
    return [line.split("[", 1)[1].rstrip("]") for line in dynamic.splitlines() if "(NEEDED)" in line]


@pytest.mark.skipif(not os.environ.get("JUNO_BRIDGE_EXPECT_STATIC_LIBSTDCXX"),
                    reason="only for the -static-libstdc++ build (tests/native/static_libstdcxx.sh)")
def test_the_build_under_test_carries_its_own_libstdcxx():
    for library in [CORE, *CORE.parent.glob("libjuno_bridge_*.so"), *CORE.parent.parent.glob("_*.so")]:
        # libstdc++ is linked in; the unwinder stays shared (libgcc_s), one for the whole process.
        assert not [n for n in needed(library) if n.startswith("libstdc++")], (library, needed(library))


@pytest.mark.parametrize("order", ["numpy", "numpy,torch,tensorflow", "after"])
def test_sessions_in_a_process_with_other_cpp_runtimes(order, torch_models):
    pt2, pt = torch_models
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(jb.__file__).parent.parent),
                                                        os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(SMOKE), order, str(default.ONNX), str(pt2), str(pt)],
                            capture_output=True, text=True, timeout=600, env=env)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, (f"exit {result.returncode} (a negative status is a signal)\n{result.stdout}\n"
                                    f"{result.stderr[-3000:]}")
    assert lines[-1] == "9 passed, 0 failed", result.stdout
