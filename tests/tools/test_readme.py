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


class_prelude = '''
import torch
import juno_bridge as jb

class GNN(torch.nn.Module):                # message passing: x [N, 4], edge_index [2, E] -> [N, 4]
    def forward(self, x, edge_index):
        return x + torch.zeros_like(x).index_add(0, edge_index[1], x[edge_index[0]])

class Encoder(torch.nn.Module):            # tokens [B, T, 8] -> [B, T, 8]
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    def forward(self, tokens):
        return self.layer(tokens)

gnn, encoder = GNN().eval(), Encoder().eval()
x, edge_index = torch.randn(50, 4), torch.randint(0, 50, (2, 120))
tokens = torch.randn(3, 7, 8)
'''


def test_the_dynamic_shapes_example_runs(tmp_path):
    """The libtorch section's example, after a prelude that makes the two modules and examples it names."""
    from helpers.optional import require

    require("torch")
    block = blocks("libtorch", "python")[0]
    check = '''
import numpy as np
s = jb.Session("gnn.pt2")
for n, e in ((1, 0), (1000, 5000)):
    xs, es = np.random.rand(n, 4).astype(np.float32), np.random.randint(0, n, (2, e))
    got = s.run([xs, es])[s.outputs()[0].name]
    want = gnn(torch.from_numpy(xs), torch.from_numpy(es)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
s = jb.Session("encoder.pt2")
t = np.random.rand(16, 64, 8).astype(np.float32)
np.testing.assert_allclose(s.run([t])[s.outputs()[0].name], encoder(torch.from_numpy(t)).detach().numpy(),
                           rtol=1e-4, atol=1e-5)
print("ok")
'''
    done = run_block(class_prelude + block + check, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_the_runtime_example_runs(tmp_path):
    code = next(b for b in blocks("Python", "python") if "jb.Runtime(executor=" in b)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr
    energy = done.stdout.strip()
    assert energy.startswith("[") and energy.endswith("]") and float(energy[1:-1]) >= 0, done.stdout
