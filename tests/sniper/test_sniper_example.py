"""A JUNO-style algorithm derived from jb::sniper::ModelAlg, built against the installed package with
find_package(juno_bridge_sniper), fills its inputs and consumes its outputs through the two hooks."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import juno_bridge
from helpers.sniper_env import HERE, PREFIX, job_env


@pytest.fixture(scope="module")
def example_library(tmp_path_factory):
    build = tmp_path_factory.mktemp("example-build")
    cmake_dir = subprocess.run([str(Path(sys.executable).parent / "juno-bridge"), "config", "--cmake-dir"],
                               check=True, capture_output=True, text=True).stdout.strip()
    for argv in (["cmake", "-S", str(HERE / "example"), "-B", str(build), f"-DCMAKE_PREFIX_PATH={PREFIX}",
                  f"-Djuno_bridge_sniper_DIR={cmake_dir}", f"-DPython3_EXECUTABLE={sys.executable}",
                  "-DCMAKE_CXX_FLAGS=-g0"],
                 ["cmake", "--build", str(build)]):
        done = subprocess.run(argv, capture_output=True, text=True, env=job_env())
        assert done.returncode == 0, done.stdout + done.stderr
    return build / "libExampleReco.so"


def test_a_derived_algorithm_fills_and_consumes_through_the_hooks(example_library, models, run_job):
    job = run_job(f'''
        Sniper.loadDll({str(example_library)!r})
        task = Sniper.Task("task"); task.setEvtMax(3)
        ex = task.createAlg("ExampleRecoAlg/ex"); ex.property("Model").set({models["onnx"]!r})
        collect = Collector("collect", ["example_energy"]); task.addAlg(collect)
        ok = task.run()
        emit(ok=ok, energy=collect.stacked()["example_energy"].tolist())
    ''')
    assert job.result and job.result["ok"], job
    session = juno_bridge.Session(models["onnx"], intra_op_threads=1)
    i = np.arange(17612)
    expected = []
    for event in range(3):
        pmt = juno_bridge.empty((1, 2, 17612), np.float32)
        pmt[0, 0] = (i * 7 + event) % 5
        pmt[0, 1] = (i + 3 * event) % 11
        expected.append(session.run({"pmt": pmt})["energy"][0])
    np.testing.assert_array_equal(np.asarray(job.result["energy"], np.float32), np.asarray(expected, np.float32))
