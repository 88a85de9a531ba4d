"""Torch test models, exported once per test process (AOTInductor compiles take tens of seconds).

Every builder is cached, so the session-scoped fixtures of all test_torch_*.py files share one
export of each model in one temporary directory.
"""
from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

from .optional import require

require("torch")  # a module-level skip (or failure under JUNO_BRIDGE_REQUIRE_ALL=1) for its importers

import torch  # noqa: E402

from juno_bridge.torch_export import SIGNATURE_KEY, export_torch  # noqa: E402

_DIR = Path(tempfile.mkdtemp(prefix="jb-torch-models-"))
atexit.register(shutil.rmtree, _DIR, True)

# Noise from torch's own deprecated exporters, which these tests use on purpose to make reference files.
_NOISE = [(DeprecationWarning, r"You are using the legacy TorchScript-based ONNX export"),
          (DeprecationWarning, r"The feature will be removed"),
          (DeprecationWarning, r"`torch\.jit\.\w+` is deprecated")]


class Tiny(torch.nn.Module):
    """The benchmark's tiny model: [B, 8] -> Linear -> [B, 4]."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.linear(x)


class AllDTypes(torch.nn.Module):
    """One input and one output per dtype torch computes with on the CPU, all with a dynamic batch."""

    DTYPES = ("float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")

    def forward(self, f32, f64, f16, i64, i32, i16, i8, u8, b):
        return (f32 * 2 + 1, f64 * 0.5 - 3, f16 * 2, i64 * 3 - 1, i32 + 7, i16 // 2,
                torch.clamp(i8, -100, 100), u8 // 2, ~b)


class FlattenView(torch.nn.Module):
    """Returns a view of its input: TorchScript hands back memory that aliases the caller's."""

    def forward(self, x):
        return torch.flatten(x, 1)


TINY = Tiny().eval()
ALL_DTYPES = AllDTypes().eval()


@functools.cache
def tiny(suffix: str, dynamic_batch: bool = True) -> Path:
    name = f"tiny{'' if dynamic_batch else '_fixed'}{suffix}"
    return export_torch(TINY, torch.randn(4, 8), _DIR / name, dynamic_batch=dynamic_batch,
                        input_names=["x"], output_names=["y"])


@functools.cache
def all_dtypes(suffix: str) -> Path:
    examples = tuple(torch.ones(3, 5, dtype=getattr(torch, d)) for d in AllDTypes.DTYPES)
    return export_torch(ALL_DTYPES, examples, _DIR / f"all_dtypes{suffix}")


@functools.cache
def flatten_view_pt() -> Path:
    return export_torch(FlattenView(), torch.randn(3, 2, 5), _DIR / "flatten_view.pt")


@functools.cache
def tiny_onnx() -> Path:
    path = _DIR / "tiny.onnx"
    with warnings.catch_warnings():
        for category, message in _NOISE:
            warnings.filterwarnings("ignore", message=message, category=category)
        torch.onnx.export(TINY, (torch.randn(4, 8),), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                          opset_version=17)
    return path


@functools.cache
def tiny_pt_unsigned() -> Path:
    """A TorchScript file as users already have them: saved without juno-bridge's signature."""
    path = _DIR / "tiny_unsigned.pt"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NOISE[2][1], category=DeprecationWarning)
        torch.jit.save(torch.jit.trace(TINY, torch.randn(4, 8)), str(path))
    return path


def rewrite_package_metadata(src: Path, dst: Path, change) -> Path:
    """Copies an AOTInductor package with change(metadata_dict) applied to its metadata files."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("_metadata.json"):
                md = json.loads(data)
                change(md)
                data = json.dumps(md).encode()
            zout.writestr(item, data)
    return dst


def tiny_pt2_unsigned(fixed: bool) -> Path:
    dst = _DIR / f"tiny{'_fixed' if fixed else ''}_unsigned.pt2"
    if not dst.exists():
        rewrite_package_metadata(tiny(".pt2", dynamic_batch=not fixed), dst, lambda md: md.pop(SIGNATURE_KEY))
    return dst


@functools.cache
def _tiny_program_from_batch_1():
    batch = torch.export.Dim("batch", min=1, max=100)
    with torch.no_grad():
        return torch.export.export(TINY, (torch.randn(4, 8),), dynamic_shapes=({0: batch},))


@functools.cache
def tiny_pt2_from_torch() -> Path:
    """A package as torch alone makes it (no juno-bridge signature, torch's default configs): batch exported
    in [1, 100], which its compiled checks state as [2, 100]."""
    program = _tiny_program_from_batch_1()
    path = _DIR / "tiny_from_torch.pt2"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                category=FutureWarning)
        warnings.filterwarnings("ignore", message=_NOISE[2][1], category=DeprecationWarning)
        torch._inductor.aoti_compile_and_package(program, package_path=str(path))
    return path


@functools.cache
def tiny_pt2_from_torch_with_program() -> Path:
    """tiny_pt2_from_torch() with its ExportedProgram beside the compiled model (models/model.json), as
    torch.export's package_pt2 writes it."""
    import io

    from torch.export.pt2_archive._package import package_pt2
    program_only = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        package_pt2(program_only, exported_programs={"model": _tiny_program_from_batch_1()})
    path = _DIR / "tiny_from_torch_with_program.pt2"
    with zipfile.ZipFile(tiny_pt2_from_torch()) as zin, zipfile.ZipFile(program_only) as zep, \
            zipfile.ZipFile(path, "w") as zout:
        top = zin.namelist()[0].split("/")[0]
        names = set(zin.namelist())
        for item in zin.infolist():
            zout.writestr(item, zin.read(item.filename))
        for name in zep.namelist():
            renamed = top + "/" + name.split("/", 1)[1]
            if renamed not in names:
                zout.writestr(renamed, zep.read(name))
    return path


def scratch_dir() -> Path:
    return _DIR


class MessagePassing(torch.nn.Module):
    """One round of a graph network: node features x [N, 4], edges edge_index [2, E] (source, target rows,
    int64); each edge's message is summed into its target (scatter_add), then every node is updated."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.message = torch.nn.Linear(8, 8)
        self.update = torch.nn.Linear(12, 4)

    def forward(self, x, edge_index):
        source, target = edge_index[0], edge_index[1]
        messages = torch.relu(self.message(torch.cat([x[source], x[target]], dim=1)))      # [E, 8]
        summed = torch.zeros(x.shape[0], 8, dtype=x.dtype).scatter_add(0, target.unsqueeze(1).expand(-1, 8),
                                                                       messages)           # [N, 8]
        return self.update(torch.cat([x, summed], dim=1))


class Encoder(torch.nn.Module):
    """A small transformer encoder block: tokens [B, T, 8] -> [B, T, 16], two attention heads."""

    HEADS, WIDTH = 2, 16

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.embed = torch.nn.Linear(8, self.WIDTH)
        self.qkv = torch.nn.Linear(self.WIDTH, 3 * self.WIDTH)
        self.project = torch.nn.Linear(self.WIDTH, self.WIDTH)
        self.norm1, self.norm2 = torch.nn.LayerNorm(self.WIDTH), torch.nn.LayerNorm(self.WIDTH)
        self.feed = torch.nn.Sequential(torch.nn.Linear(self.WIDTH, 32), torch.nn.GELU(),
                                        torch.nn.Linear(32, self.WIDTH))

    def forward(self, tokens):
        b, t = tokens.shape[0], tokens.shape[1]
        h = self.embed(tokens)
        q, k, v = (part.reshape(b, t, self.HEADS, -1).transpose(1, 2) for part in self.qkv(h).chunk(3, dim=-1))
        attended = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, -1)
        h = self.norm1(h + self.project(attended))
        return self.norm2(h + self.feed(h))


MESSAGE_PASSING = MessagePassing().eval()
ENCODER = Encoder().eval()
GRAPH_NODES, GRAPH_EDGES = (1, 1000), (0, 5000)  # the ranges the graph network is exported for
ENCODER_BATCH, ENCODER_TOKENS = (1, 16), (1, 64)


def graph_example(nodes: int = 50, edges: int = 120, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(nodes, 4, generator=g), torch.randint(0, nodes, (2, edges), generator=g)


def graph_dynamic_shapes():
    n, e = torch.export.Dim("N", min=GRAPH_NODES[0], max=GRAPH_NODES[1]), torch.export.Dim("E", min=GRAPH_EDGES[0],
                                                                                          max=GRAPH_EDGES[1])
    return {"x": {0: n}, "edge_index": {1: e}}


@functools.cache
def message_passing(suffix: str) -> Path:
    return export_torch(MESSAGE_PASSING, graph_example(), _DIR / f"message_passing{suffix}",
                        dynamic_shapes=graph_dynamic_shapes(), output_names=["y"])


def encoder_dynamic_shapes():
    b = torch.export.Dim("B", min=ENCODER_BATCH[0], max=ENCODER_BATCH[1])
    t = torch.export.Dim("T", min=ENCODER_TOKENS[0], max=ENCODER_TOKENS[1])
    return ({0: b, 1: t},)


@functools.cache
def encoder(suffix: str) -> Path:
    return export_torch(ENCODER, torch.randn(3, 10, 8), _DIR / f"encoder{suffix}",
                        dynamic_shapes=encoder_dynamic_shapes(), input_names=["tokens"], output_names=["encoded"])


def _onnx_dynamo(module, args, dynamic_shapes, name: str, input_names, output_names) -> Path:
    path = _DIR / name
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                category=FutureWarning)
        torch.onnx.export(module, args, str(path), dynamo=True, dynamic_shapes=dynamic_shapes,
                          input_names=input_names, output_names=output_names, verbose=False)
    return path


@functools.cache
def message_passing_onnx() -> Path:
    """The graph network through torch.onnx's dynamo exporter (needs onnxscript)."""
    return _onnx_dynamo(MESSAGE_PASSING, graph_example(), graph_dynamic_shapes(), "message_passing.onnx",
                        ["x", "edge_index"], ["y"])


@functools.cache
def encoder_onnx() -> Path:
    return _onnx_dynamo(ENCODER, (torch.randn(3, 10, 8),), encoder_dynamic_shapes(), "encoder.onnx", ["tokens"],
                        ["encoded"])
