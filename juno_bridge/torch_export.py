"""export_torch: a PyTorch module to a file juno-bridge runs through its libtorch plugin.

``.pt2`` is an AOTInductor package (torch.export + ahead-of-time compilation, the modern path);
``.pt`` is TorchScript, for users whose code already expects it. Either way the file carries the
I/O signature (names, dtypes, shapes, dynamic dims with their ranges) inside it (AOTInductor metadata
or a TorchScript extra file), so it travels with the model and cannot go stale beside it. The plugin
reads it to describe inputs()/outputs() and to check every shape before running compiled code.

Imported lazily (``juno_bridge.export_torch``) so that ``import juno_bridge`` never imports torch.
"""
from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

SIGNATURE_KEY = "juno_bridge.signature"
BATCH = "batch"
_INT64_MAX = (1 << 63) - 1
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


def export_torch(module: torch.nn.Module, example_inputs, path, dynamic_batch: bool | None = None, *,
                 input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                 max_batch: int | None = None, dynamic_shapes=None, inductor_configs: dict | None = None) -> Path:
    """Writes ``module`` to ``path`` (``.pt2``: AOTInductor; ``.pt``: TorchScript) with its signature.

    ``example_inputs`` is a tensor or a tuple of tensors (numpy arrays are wrapped, not copied).
    ``dynamic_shapes`` is what ``torch.export.export`` takes: per input (a tuple in input order, or a dict
    by the forward's argument names) a dict ``{dim: Dim}`` or a tuple with one entry per dim (a ``Dim`` or
    ``Dim.STATIC``). A ``torch.export.Dim`` has a name and a range (``min``, ``max``); one name used in
    several places is one size those inputs share, distinct names vary independently (``Dim.AUTO`` and
    ``Dim.DYNAMIC`` dims take torch's own symbol as their name, ``s77``). The signature names each dynamic
    dim with its exported range, and every run is checked against them (``.pt``: the trace must give the
    module's results with every dynamic dim one larger than in the example). Without ``dynamic_shapes``, with
    ``dynamic_batch`` (the default) dim 0 of every input is the one dynamic dim ``batch`` in
    [1, max_batch] (default 2^20; the example batch must then be at least 2, or torch.export specializes
    it); with ``dynamic_batch=False`` every shape is fixed to the example's. Returns the path.
    """
    if dynamic_shapes is not None and (dynamic_batch or max_batch is not None):
        raise ValueError("dynamic_shapes states every dynamic dim; it replaces dynamic_batch and max_batch, "
                         "give one or the other")
    with warnings.catch_warnings():
        for category, message in _TORCH_NOISE:
            warnings.filterwarnings("ignore", message=message, category=category)
        return _export(module, example_inputs, Path(path), dynamic_batch is not False, input_names, output_names,
                       max_batch if max_batch is not None else 1 << 20, dynamic_shapes, inductor_configs)


def _export(module, example_inputs, path: Path, dynamic_batch, input_names, output_names, max_batch,
            dynamic_shapes, inductor_configs) -> Path:
    if path.suffix not in (".pt2", ".pt"):
        raise ValueError(f"export_torch writes .pt2 (AOTInductor) or .pt (TorchScript); got '{path.name}'")
    args = _as_tensors(example_inputs)
    module = module.eval()
    if dynamic_shapes is None and dynamic_batch:
        small = [i for i, t in enumerate(args) if t.dim() == 0 or t.shape[0] < 2]
        if small:
            raise ValueError(f"dynamic_batch needs every example input to have a batch dim of at least 2 "
                             f"(torch.export specializes 0 and 1); input {small[0]} has shape "
                             f"{tuple(args[small[0]].shape)}")
        batch = torch.export.Dim(BATCH, min=1, max=max_batch)
        dynamic_shapes = tuple({0: batch} for _ in args)
    with torch.no_grad():
        program = torch.export.export(module, args, dynamic_shapes=dynamic_shapes)
    dim_names = _dim_names(module, program, dynamic_shapes)
    text = signature_text(program, args, dim_names, input_names, output_names)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".pt2":
        configs = {"aot_inductor.metadata": {SIGNATURE_KEY: text},
                   # torch's own runtime check would demand 2 of a dim exported from 1 (or 0)
                   "aot_inductor.check_lowerbound": False, **(inductor_configs or {})}
        torch._inductor.aoti_compile_and_package(program, package_path=str(path), inductor_configs=configs)
    else:
        _save_torchscript(module, args, path, text, _dynamic_dims(program))
    return path


def _user_input_shapes(program) -> list:
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    return [placeholders[name].meta["val"].shape for name in program.graph_signature.user_inputs]


def _symbol(size):
    """The shape symbol a dim was exported as (a sympy Symbol), or None for a fixed dim or an expression."""
    if isinstance(size, int):
        return None
    expr = size.node.expr
    return expr if expr.is_Symbol else None


def _dim_names(module, program, dynamic_shapes) -> dict:
    """Symbol -> the name of the torch.export.Dim it came from (torch's own name, "s77", where the spec
    named none: Dim.AUTO, Dim.DYNAMIC)."""
    names = {}
    specs = dynamic_shapes if dynamic_shapes is not None else ()
    if isinstance(specs, dict):
        params = list(inspect.signature(module.forward).parameters)
        specs = [specs.get(p) for p in params]
    for shape, spec in zip(_user_input_shapes(program), specs):
        per_dim = spec.items() if isinstance(spec, dict) else enumerate(spec or ())
        for d, dim in per_dim:
            symbol = _symbol(shape[d]) if d < len(shape) else None
            name = getattr(dim, "__name__", None)
            if symbol is not None and isinstance(name, str) and _NAME.match(name):
                names.setdefault(symbol, name)
    for shape in _user_input_shapes(program):
        for size in shape:
            if (symbol := _symbol(size)) is not None:
                names.setdefault(symbol, str(symbol))
    return names


def _range(program, symbol) -> tuple[int, int]:
    """The range a dim was exported for; an unbounded end is 0 or 2^63 - 1."""
    r = program.range_constraints.get(symbol)
    if r is None:
        return 0, _INT64_MAX
    lower = int(r.lower) if r.lower.is_finite else 0
    upper = int(r.upper) if r.upper.is_finite and r.upper <= _INT64_MAX else _INT64_MAX
    return max(lower, 0), upper


def _dynamic_dims(program) -> list:
    """Per input, {dim: (symbol, min, max)} for its dims exported as a symbol."""
    return [{d: (s, *_range(program, s)) for d, size in enumerate(shape) if (s := _symbol(size)) is not None}
            for shape in _user_input_shapes(program)]


def signature_text(program, args, dim_names: dict, input_names=None, output_names=None) -> str:
    """The signature record juno-bridge's torch plugin reads (format: README, "The signature inside a
    torch model"). ``dim_names`` maps the program's shape symbols to the names the signature uses."""
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
    shapes = _user_input_shapes(program)
    used = {}  # symbol -> name, in order of first use by an input
    for shape in shapes:
        for size in shape:
            if (symbol := _symbol(size)) is not None:
                used.setdefault(symbol, dim_names[symbol])
    lines = [f"{SIGNATURE_KEY} 1"]
    for symbol, name in used.items():
        lo, hi = _range(program, symbol)
        if name == str(symbol) and lo == 2:
            lo = 1  # Dim.AUTO, Dim.DYNAMIC: torch traces at 2 or more and states that, the code runs at 1 too
        lines.append(f"dim {name} {lo} {hi}")

    def dims_of(shape) -> list[str]:
        words = []
        for size in shape:
            symbol = _symbol(size)
            words.append(str(size) if isinstance(size, int) else used.get(symbol, "?") if symbol is not None else "?")
        return words

    for name, arg, shape in zip(names_in, args, shapes):
        lines.append(" ".join(["input", name, _dtype_name(arg.dtype, name), *dims_of(shape)]))
    for name, node in zip(names_out, outputs):
        val = getattr(node, "meta", {}).get("val")
        if not isinstance(val, torch.Tensor):
            raise TypeError(f"output {name!r} is {type(val).__name__}; juno-bridge passes tensors only")
        lines.append(" ".join(["output", name, _dtype_name(val.dtype, name), *dims_of(val.shape)]))
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


def _save_torchscript(module, args, path: Path, text: str, dynamic: list) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(module, args)
        bigger = _grown(args, dynamic)
        if bigger is not None:
            # A trace can bake the example's sizes into the graph: prove it generalizes.
            got, want = traced(*bigger), module(*bigger)
            for g, w in zip(_flat(got), _flat(want)):
                same = torch.allclose(g, w, equal_nan=True) if g.is_floating_point() else torch.equal(g, w)
                if g.shape != w.shape or not same:
                    raise ValueError("the TorchScript trace does not generalize to other sizes of its dynamic dims "
                                     "(another batch size, ...): export with fixed shapes or use .pt2")
    torch.jit.save(traced, str(path), _extra_files={SIGNATURE_KEY: text})


def _grown(args, dynamic: list):
    """The example inputs with each dynamic dim one larger (its first slice repeated, so that values such as
    indices stay valid), where its range allows; None when no dim can grow."""
    grow = {}
    for arg, dims in zip(args, dynamic):
        for d, (symbol, _, hi) in dims.items():
            ok = arg.shape[d] >= 1 and arg.shape[d] < hi
            grow[symbol] = grow.get(symbol, True) and ok
    if not any(grow.values()):
        return None
    out = []
    for arg, dims in zip(args, dynamic):
        for d, (symbol, _, _) in dims.items():
            if grow[symbol]:
                arg = torch.cat([arg, arg.narrow(d, 0, 1)], dim=d)
        out.append(arg)
    return tuple(out)


def _flat(x):
    if isinstance(x, torch.Tensor):
        return [x]
    return [t for item in x for t in _flat(item)]
