"""The installed example package (`juno-bridge config --examples-dir`/sniper): a JUNO algorithm derived
from jb::sniper::ModelAlg, configured from its installed place with find_package(juno_bridge COMPONENTS
sniper) alone (SNiPER found where the component was built against it), built Release by default, run by
its own Python job and by sniper.exe on the JSON job its build writes. Its results are the model's on the
example's inputs; its failures are exit statuses a batch system sees."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import juno_bridge
from helpers.sniper_env import job_env
from juno_bridge import paths
from juno_bridge.demo.models import default

EXAMPLE = paths.examples_dir() / "sniper"


@pytest.fixture(scope="module")
def example_build(tmp_path_factory):
    build = tmp_path_factory.mktemp("example-build")
    env = job_env()
    env.pop("CMAKE_PREFIX_PATH", None)  # the component finds SNiPER itself
    for argv in (["cmake", "-S", str(EXAMPLE), "-B", str(build), f"-Djuno_bridge_DIR={paths.cmake_dir()}",
                  "-DCMAKE_CXX_FLAGS=-g0"],
                 ["cmake", "--build", str(build)]):
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    return build


def expected_energies(events: int) -> list[float]:
    """The example's inputs (a pattern of the event number), run through the model in plain Python."""
    session = juno_bridge.Session(str(default.onnx_model()), intra_op_threads=1)
    i = np.arange(17612)
    out = []
    for event in range(events):
        pmt = juno_bridge.empty((1, 2, 17612), np.float32)
        pmt[0, 0] = (i * 7 + event) % 5
        pmt[0, 1] = (i + 3 * event) % 11
        out.append(float(session.run({"pmt": pmt})["energy"][0]))
    return out


def python_job(build: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLE / "job.py"), str(build / "libExampleReco.so"), *args],
                          capture_output=True, text=True, env=job_env(), cwd=build, timeout=600)


def test_the_example_is_installed_whole():
    for name in ("CMakeLists.txt", "ExampleRecoAlg.cpp", "job.py", "job.json.in"):
        assert (EXAMPLE / name).is_file(), f"{EXAMPLE / name} is not installed"


def test_it_builds_release_by_default(example_build):
    cache = (example_build / "CMakeCache.txt").read_text()
    assert re.search(r"^CMAKE_BUILD_TYPE:STRING=Release$", cache, re.M), "the example builds -O0 without Release"


def test_the_python_job_gives_the_models_results(example_build):
    done = python_job(example_build, "--events", "4")
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("energies [MeV]:"))
    got = json.loads(line.split(":", 1)[1])
    np.testing.assert_allclose(got, np.round(expected_energies(4), 3), atol=1e-6)
    stats = next(line for line in done.stdout.splitlines() if line.startswith("session:"))
    assert "'backend': 'onnxruntime'" in stats and "'backend_users': 1" in stats, stats


def test_a_failing_python_job_exits_non_zero(example_build):
    done = python_job(example_build, "--model", str(example_build / "missing.onnx"), "--events", "2")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "JobError: SNiPER task 'task' ended with an error" in done.stderr
    assert "missing.onnx" in done.stdout + done.stderr  # the algorithm's LogError names the model


def test_the_json_job_the_build_wrote_runs(example_build):
    job = json.loads((example_build / "job.json").read_text())
    libraries = job["sniper"]["LoadDlls"]
    assert all(Path(p).is_file() for p in libraries), libraries
    done = subprocess.run(["sniper.exe", str(example_build / "job.json")], capture_output=True, text=True,
                          env=job_env(), cwd=example_build, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "events processed 5" in done.stdout + done.stderr


def test_a_failing_json_job_exits_non_zero(example_build, tmp_path):
    job = json.loads((example_build / "job.json").read_text())
    job["algorithms"][0]["properties"]["Model"] = str(tmp_path / "missing.onnx")
    (tmp_path / "job.json").write_text(json.dumps(job))
    done = subprocess.run(["sniper.exe", str(tmp_path / "job.json")], capture_output=True, text=True,
                          env=job_env(), cwd=tmp_path, timeout=600)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "missing.onnx" in done.stdout + done.stderr
