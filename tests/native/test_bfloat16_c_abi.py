"""bfloat16 through the C ABI (juno_bridge.h), from a C program built against the installed package:
JB_DTYPE_BFLOAT16 views of uint16_t memory, uint16 views refused by name, and the option bfloat16_as_uint16."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import juno_bridge as jb
from helpers import onnx_models

SOURCES = Path(__file__).resolve().parent / "cpp"
PKG = Path(jb.__file__).resolve().parent
CC = os.environ.get("CC", "gcc")


@pytest.mark.skipif(shutil.which(CC) is None, reason="no C compiler")
def test_bfloat16_through_the_c_abi(tmp_path, model_path):
    exe = tmp_path / "bfloat16_c_abi"
    subprocess.run([CC, "-std=c11", "-O1", "-Wall", "-Werror", str(SOURCES / "bfloat16_c_abi.c"), "-o", str(exe),
                    f"-I{PKG / 'include'}", f"-L{PKG / 'lib'}", "-ljuno_bridge", f"-Wl,-rpath,{PKG / 'lib'}"],
                   check=True)
    done = subprocess.run([str(exe), str(model_path("bfloat16_add", onnx_models.bfloat16_add))],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout and done.stdout.rstrip().endswith("OK")
