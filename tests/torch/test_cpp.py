"""A C++ program built against the installed package opens a .pt2 and a .pt and runs them, no Python."""
import os
import subprocess

import numpy as np

from helpers import torch_models as tm
from helpers.native_build import CPP_TESTS, build_against_package
from helpers.torch_models import torch


def test_cpp_program_runs_pt2_and_pt_without_python(tmp_path):
    exe = build_against_package(CPP_TESTS / "run_torch.cpp", tmp_path / "run_torch")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    models = [tm.tiny(".pt2"), tm.tiny(".pt")]
    out = subprocess.run([str(exe), *map(str, models)], capture_output=True, text=True, env=env, check=True)
    x = (0.01 * np.arange(24, dtype=np.float32) - np.float32(0.1)).reshape(3, 8)
    with torch.inference_mode():
        want = tm.TINY(torch.from_numpy(x)).numpy().ravel()
    lines = out.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [[str(m), "y"] for m in models]
    for line in lines:
        np.testing.assert_allclose(np.array(line.split()[2:], np.float32), want, rtol=1e-5, atol=1e-6)
    # No libpython in the program: it ran torch through the plugin alone.
    ldd = subprocess.run(["ldd", str(exe)], capture_output=True, text=True).stdout
    assert "libpython" not in ldd and "libtorch" not in ldd
