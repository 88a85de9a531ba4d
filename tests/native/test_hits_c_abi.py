"""The scatter's C ABI (hits.h), from a C program built against the installed package."""
import os
import subprocess
from pathlib import Path

import pytest

import juno_bridge as jb
from helpers.native_build import CPP_TESTS

PKG = Path(jb.__file__).resolve().parent
CC = os.environ.get("CC", "gcc")


@pytest.mark.cc
def test_a_c_program_scatters_hits_through_the_c_abi(tmp_path):
    exe = tmp_path / "scatter_c_abi"
    subprocess.run([CC, "-std=c11", "-O1", str(CPP_TESTS / "scatter_c_abi.c"), "-o", str(exe),
                    f"-I{PKG / 'include'}", f"-L{PKG / 'lib'}", "-ljuno_bridge", f"-Wl,-rpath,{PKG / 'lib'}"],
                   check=True)
    done = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pmt id 10 (hit 2) is out of range [0, 10)" in done.stdout and done.stdout.rstrip().endswith("OK")
