"""What a Python algorithm declares: ``@juno_bridge.algorithm`` records the tensors a callable takes and
gives, and the options it accepts, as an AlgorithmSpec the ``python`` backend reads (juno_bridge.algorithm).

    @juno_bridge.algorithm(inputs={"pmt": ("float32", ("B", 2, 17612))},
                           outputs={"energy": ("float32", ("B",))})
    def reco(inputs, outputs):
        outputs["energy"][:] = inputs["pmt"][:, 0].sum(axis=1) / 1345.0
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from juno_bridge.dtypes import CODES
from juno_bridge.errors import InvalidArgumentError


@dataclass(frozen=True)
class TensorSpec:
    """One declared input or output: dims are ints or symbolic names shared across tensors."""

    name: str
    dtype: np.dtype
    dims: tuple[int | str, ...]


@dataclass(frozen=True)
class AlgorithmSpec:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    options: Mapping[str, Callable[[str], Any]]


def _tensor_specs(role: str, declared: Mapping[str, tuple]) -> tuple[TensorSpec, ...]:
    if not isinstance(declared, Mapping) or not declared:
        raise InvalidArgumentError(f"@algorithm {role}: expected a non-empty dict name -> (dtype, dims), "
                                   f"got {declared!r}")
    specs = []
    for name, entry in declared.items():
        try:
            dtype_name, dims = entry
            dtype = np.dtype(dtype_name)
        except (TypeError, ValueError) as e:
            raise InvalidArgumentError(f"@algorithm {role} '{name}': expected (dtype, dims), got {entry!r}") from e
        if dtype not in CODES:
            raise InvalidArgumentError(f"@algorithm {role} '{name}': dtype {dtype} is not supported; expected "
                                       f"one of {', '.join(str(d) for d in CODES)}")
        dims = tuple(dims)
        for d in dims:
            if isinstance(d, bool) or not (isinstance(d, str) and d.isidentifier()
                                           or isinstance(d, int) and d >= 0):
                raise InvalidArgumentError(f"@algorithm {role} '{name}': dim {d!r} must be a non-negative "
                                           f"int or a symbolic name")
        specs.append(TensorSpec(str(name), dtype, dims))
    return tuple(specs)


def algorithm(inputs: Mapping[str, tuple], outputs: Mapping[str, tuple],
              options: Mapping[str, Callable[[str], Any]] | None = None):
    """Declares a callable ``f(inputs, outputs)`` (or a class whose instances are) for the python backend.

    ``inputs``/``outputs``: name -> (dtype, dims); a dim is an int or a symbolic name. Every symbolic
    dim of an output must appear in an input, so that the bridge knows each output's shape before the
    call. ``options``: keyword option name -> type (``int``, ``float``, ``bool``, ``str`` or any
    callable taking the option's string), converted from the session's config entries.
    """
    in_specs = _tensor_specs("inputs", inputs)
    out_specs = _tensor_specs("outputs", outputs)
    bound = {d for s in in_specs for d in s.dims if isinstance(d, str)}
    for s in out_specs:
        for d in s.dims:
            if isinstance(d, str) and d not in bound:
                raise InvalidArgumentError(f"@algorithm output '{s.name}': symbolic dim '{d}' appears in no "
                                           f"input, so its size would be unknown before the call")
    names = [s.name for s in in_specs + out_specs]
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"@algorithm: input and output names must be distinct, got {names}")
    for key, kind in (options or {}).items():
        if not callable(kind):
            raise InvalidArgumentError(f"@algorithm option '{key}': expected a type or converter, got {kind!r}")
    spec = AlgorithmSpec(in_specs, out_specs, dict(options or {}))

    def declare(target):
        target.__juno_bridge_algorithm__ = spec
        return target

    return declare
