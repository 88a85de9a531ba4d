"""export_torch: a PyTorch module to a file juno-bridge runs through its libtorch plugin.

``.pt2`` is an AOTInductor package (torch.export + ahead-of-time compilation, the modern path);
``.pt`` is TorchScript, for users whose code already expects it. Either way the file carries the
I/O signature (names, dtypes, shapes, dynamic dims with their ranges) inside it (AOTInductor metadata
or a TorchScript extra file), so it travels with the model and cannot go stale beside it. The plugin
reads it to describe inputs()/outputs() and to check every shape before running compiled code.

Imported lazily (``juno_bridge.export_torch``) so that ``import juno_bridge`` never imports torch.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

SIGNATURE_KEY = "juno_bridge.signature"
BATCH = "batch"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]*$")  # no whitespace: the signature is split on it
_DTYPES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
           torch.int8: "int8", torch.int16: "int16", torch.int32: "int32", torch.int64: "int64",
           torch.uint8: "uint8", torch.uint16: "uint16", torch.uint32: "uint32", torch.uint64: "uint64",
           torch.bool: "bool", torch.bfloat16: "bfloat16"}
# TorchScript still works in torch 2.13 but warns on every call; a caller who asked for .pt knows.
# torch's compiler also imports its own TorchScript modules and pickles pytree specs, warning about
# itself: noise to whoever exports. Only these exact messages are silenced, nothing else.
_TORCH_NOISE = ((DeprecationWarning, r"`torch\.jit\.\w+` is deprecated"),
                (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"))


def export_torch(module: torch.nn.Module, example_inputs, path, dynamic_batch: bool = True, *,
                 input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                 max_batch: int = 1 << 20, inductor_configs: dict | None = None) -> Path:
    """Writes ``module`` to ``path`` (``.pt2``: AOTInductor; ``.pt``: TorchScript) with its signature.

    ``example_inputs`` is a tensor or a tuple of tensors (numpy arrays are wrapped, not copied).
    With ``dynamic_batch`` dim 0 of every input is the dynamic dim ``batch`` in [1, max_batch]
    (the example batch must then be at least 2, or torch.export specializes it); otherwise every
    shape is fixed to the example's. Returns the path.
    """
    with warnings.catch_warnings():
        for category, message in _TORCH_NOISE:
            warnings.filterwarnings("ignore", message=message, category=category)
        return _export(module, example_inputs, Path(path), dynamic_batch, input_names, output_names, max_batch,
                       inductor_configs)


def _export(module, example_inputs, path: Path, dynamic_batch, input_names, output_names, max_batch,
            inductor_configs) -> Path:
    if path.suffix not in (".pt2", ".pt"):
        raise ValueError(f"export_torch writes .pt2 (AOTInductor) or .pt (TorchScript); got '{path.name}'")
    args = _as_tensors(example_inputs)
    module = module.eval()
    if dynamic_batch:
        small = [i for i, t in enumerate(args) if t.dim() == 0 or t.shape[0] < 2]
        if small:
            raise ValueError(f"dynamic_batch needs every example input to have a batch dim of at least 2 "
                             f"(torch.export specializes 0 and 1); input {small[0]} has shape "
                             f"{tuple(args[small[0]].shape)}")
        batch = torch.export.Dim(BATCH, min=1, max=max_batch)
        dynamic_shapes = tuple({0: batch} for _ in args)
    else:
        dynamic_shapes = None
    with torch.no_grad():
        program = torch.export.export(module, args, dynamic_shapes=dynamic_shapes)
    text = signature_text(program, args, dynamic_batch, max_batch, input_names, output_names)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".pt2":
        configs = {"aot_inductor.metadata": {SIGNATURE_KEY: text},
                   # the exported range starts at 1; torch's own runtime check would demand 2
                   "aot_inductor.check_lowerbound": False, **(inductor_configs or {})}
        torch._inductor.aoti_compile_and_package(program, package_path=str(path), inductor_configs=configs)
    else:
        _save_torchscript(module, args, path, text, dynamic_batch)
    return path


def signature_text(program, args, dynamic_batch: bool, max_batch: int, input_names=None,
                   output_names=None) -> str:
    """The signature record juno-bridge's torch plugin reads (format: cpp/plugins/torch/torch_signature.hpp)."""
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    user_inputs = list(program.graph_signature.user_inputs)
    names_in = list(input_names) if input_names is not None else user_inputs
    outputs = [n for n in program.graph.output_node().args[0]]
    names_out = (list(output_names) if output_names is not None
                 else ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))])
    for kind, names, count in (("input", names_in, len(args)), ("output", names_out, len(outputs))):
        if len(names) != count:
            raise ValueError(f"{len(names)} {kind} name(s) given for {count} {kind}(s)")
        for n in names:
            if not _NAME.match(n):
                raise ValueError(f"{kind} name {n!r} must be an identifier-like word without spaces")
    batch_symbol = None
    if dynamic_batch:
        batch_symbol = str(placeholders[user_inputs[0]].meta["val"].shape[0])
    lines = [f"{SIGNATURE_KEY} 1"]
    if dynamic_batch:
        lines.append(f"dim {BATCH} 1 {max_batch}")
    for name, arg in zip(names_in, args):
        dims = [BATCH if (dynamic_batch and d == 0) else str(s) for d, s in enumerate(arg.shape)]
        lines.append(" ".join(["input", name, _dtype_name(arg.dtype, name), *dims]))
    for name, node in zip(names_out, outputs):
        val = getattr(node, "meta", {}).get("val")
        if not isinstance(val, torch.Tensor):
            raise TypeError(f"output {name!r} is {type(val).__name__}; juno-bridge passes tensors only")
        dims = [str(s) if isinstance(s, int) else (BATCH if str(s) == batch_symbol else "?") for s in val.shape]
        lines.append(" ".join(["output", name, _dtype_name(val.dtype, name), *dims]))
    return "\n".join(lines) + "\n"


def _as_tensors(example_inputs) -> tuple:
    items = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    out = []
    for i, x in enumerate(items):
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"example input {i} is {type(x).__name__}; export_torch takes tensors or numpy arrays")
        out.append(x)
    return tuple(out)


def _dtype_name(dtype, name: str) -> str:
    if dtype not in _DTYPES:
        raise TypeError(f"tensor {name!r} is {dtype}; juno-bridge passes {', '.join(_DTYPES.values())}")
    return _DTYPES[dtype]


def _save_torchscript(module, args, path: Path, text: str, dynamic_batch: bool) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(module, args)
        if dynamic_batch:
            # A trace can bake the example's batch into the graph: prove it generalizes.
            bigger = tuple(torch.cat([a, a[:1]]) for a in args)
            got, want = traced(*bigger), module(*bigger)
            for g, w in zip(_flat(got), _flat(want)):
                same = torch.allclose(g, w, equal_nan=True) if g.is_floating_point() else torch.equal(g, w)
                if g.shape != w.shape or not same:
                    raise ValueError("the TorchScript trace does not generalize to another batch size; "
                                     "export with dynamic_batch=False or use .pt2")
    torch.jit.save(traced, str(path), _extra_files={SIGNATURE_KEY: text})


def _flat(x):
    if isinstance(x, torch.Tensor):
        return [x]
    return [t for item in x for t in _flat(item)]
