"""Helpers of the tests in tests/tf/: TensorFlow releases other than the installed one, and a way to
run juno-bridge without importing TensorFlow in Python (one process holds one TensorFlow release: the
test process imports the installed one to write its SavedModels)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Cached outside the repo (like the older ONNX Runtime releases), so reruns and CI do not fetch it again.
CACHE = Path(os.environ.get("JUNO_BRIDGE_TEST_CACHE", Path.home() / ".cache" / "juno-bridge-test"))
OTHER_RELEASE = "2.20.0"


def install_tensorflow(version: str) -> Path:
    """The package folder (holding libtensorflow_cc.so.2) of tensorflow-cpu==version, pip-installed once
    into the cache. --no-deps: only its two libraries are used, nothing is imported."""
    target = CACHE / f"tf-{version}"
    folder = target / "tensorflow"
    if not (folder / "libtensorflow_cc.so.2").exists():
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                               "--target", str(target), f"tensorflow-cpu=={version}"],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not (folder / "libtensorflow_cc.so.2").exists():
            pytest.fail(f"could not install tensorflow-cpu=={version} into {target}: {proc.stderr[-2000:]}")
    return folder


@pytest.fixture(scope="session")
def other_tensorflow() -> Path:
    """tensorflow-cpu 2.20.0's package folder: a release juno-bridge was not built with (nor against)."""
    return install_tensorflow(OTHER_RELEASE)


def python_env(**extra: str) -> dict:
    """This interpreter's module path, no JUNO_BRIDGE_TENSORFLOW unless given, TensorFlow's logs quiet."""
    env = {k: v for k, v in os.environ.items() if k != "JUNO_BRIDGE_TENSORFLOW"}
    env.update(PYTHONPATH=os.pathsep.join(p for p in sys.path if p), TF_CPP_MIN_LOG_LEVEL="2", **extra)
    return env


def run_python(code: str, *args, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter that never imports tensorflow; a crash fails the test here."""
    code = "import sys\n" + code + "\nassert 'tensorflow' not in sys.modules, 'the subprocess imported tensorflow'\n"
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env or python_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"subprocess failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-4000:]}"
    return done
