"""The README's examples run as written: the Python session example, and the C++ program (the file
cpp/examples/vertex_alg.cpp, shown whole) compiled by the command on its first line, run on the default
model and on a model it does not fit (an error it reports, not an abort)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from helpers.optional import require_tool
from helpers.readme import README, blocks
from juno_bridge import paths

ROOT = README.parent
ENV = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def test_the_python_example_runs(tmp_path):
    code = blocks("Python", "python")[0]
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == ["[TensorInfo('pmt', float32, [B, 2, 17612])]",
                                            "[TensorInfo('vertex', float32, [B, 3]), TensorInfo('energy', float32, [B])]"]


def test_the_cpp_example_is_the_tested_file_and_installed():
    source = (ROOT / "cpp" / "examples" / "vertex_alg.cpp").read_text()
    assert blocks("C++", "cpp")[0] == source
    assert (paths.examples_dir() / "vertex_alg.cpp").read_text() == source


def test_the_cpp_example_builds_with_its_command_and_runs(tmp_path):
    require_tool("c++")
    source = blocks("C++", "cpp")[0]
    (tmp_path / "vertex_alg.cpp").write_text(source)
    command = source.splitlines()[0].removeprefix("// ")
    assert command.startswith("c++ ") and command.endswith("./vertex_alg")
    done = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("vertex (") and line.endswith(" MeV") for line in lines), lines
    energy = float(lines[0].split("energy ")[1].split()[0])
    assert 1.0 < energy < 3.0, lines  # about 2,500 PE: about 2 MeV

    # A model whose input is not [1, 2, 17612]: the program reports the error and ends with status 1.
    graph = helper.make_graph([helper.make_node("Identity", ["pmt"], ["vertex"]),
                               helper.make_node("ReduceSum", ["pmt"], ["energy"], keepdims=0)], "small",
                              [helper.make_tensor_value_info("pmt", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("vertex", TensorProto.FLOAT, [1, 3]),
                               helper.make_tensor_value_info("energy", TensorProto.FLOAT, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "small.onnx")
    wrong = subprocess.run([str(tmp_path / "vertex_alg"), str(tmp_path / "small.onnx")], capture_output=True,
                           text=True, env=ENV)
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert wrong.stderr.startswith("VertexAlg: ") and "pmt" in wrong.stderr and "terminate" not in wrong.stderr
    missing = subprocess.run([str(tmp_path / "vertex_alg"), "vertx.onnx"], capture_output=True, text=True, env=ENV)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "VertexAlg: model file 'vertx.onnx' does not exist (ONNX Runtime: NO_SUCHFILE)"


OTHER_METHODS = "The other two methods, and events as the event model gives them"


def run_block(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(ENV, PYTHONPATH=os.pathsep.join(filter(None, [str(cwd), ENV.get("PYTHONPATH", "")])))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=env, timeout=900)


def test_the_python_algorithm_and_hits_examples_run(tmp_path):
    torch_block, module, hits = blocks(OTHER_METHODS, "python")
    assert module.startswith("# mypkg/reco.py\n")
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "reco.py").write_text(module)
    done = run_block(hits, tmp_path)
    assert done.returncode == 0, done.stderr
    count, energy = done.stdout.split()
    assert int(count) == 200 and abs(float(energy) - 5.0 / 1345.0) < 1e-7  # 5 PE of the event's hits


def test_the_torch_export_example_runs(tmp_path):
    from helpers.optional import require

    require("torch")
    torch_block = blocks(OTHER_METHODS, "python")[0]
    done = run_block(torch_block + "\nprint([i.name for i in s.inputs()], [o.name for o in s.outputs()])\n", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['pmt'] ['vertex', 'energy']"
    assert (tmp_path / "reco.pt2").is_file()
