"""The Python-algorithm method: ``@juno_bridge.algorithm`` (juno_bridge.algorithm_spec) declares what a
callable takes and gives; this module holds what the ``python`` backend plugin
(cpp/plugins/python/) calls to open, check and guard it.

    @juno_bridge.algorithm(inputs={"pmt": ("float32", ("B", 2, 17612))},
                           outputs={"energy": ("float32", ("B",))})
    def reco(inputs, outputs):
        outputs["energy"][:] = inputs["pmt"][:, 0].sum(axis=1) / 1345.0

    jb.Session("python:mypkg.reco:reco")      # from Python, or from C++ through the same core

The arrays in ``inputs`` and ``outputs`` are views of the caller's memory, lent for one run: the dicts
are emptied when it returns, and a view still referenced then (kept in a list, an attribute, a suspended
generator) is revoked and fails the run, naming it. A finished frame that still holds one by accident (a
stack sampler such as Dask's worker profiler, a kept traceback) has its locals cleared instead.

A class is instantiated once per session, with keyword options from the session's config entries
(strings, converted by the types the decorator declares in ``options=``), and then called per run. An
instance with a ``close()`` method has it called when its session closes (the last of the Sessions
sharing it), so what it holds (a connection, shared memory, files) goes then, not whenever Python
collects it; an exception from ``close()`` is reported as unraisable, never raised into the caller.

An instance may also have ``run_async(inputs, outputs, done)``: an asynchronous run of its own, which
``Session.run_async`` then uses instead of a worker thread (``Session.async_mode`` is "native"). It
starts the work and returns; once the outputs are written it calls ``done()`` exactly once, from any
thread (``done(exc)`` with the exception when the run failed). The views are lent until then: drop every
reference to them before calling ``done`` (the dicts are emptied then; a view still referenced is
revoked and fails the run, as after a plain call). Raising from ``run_async`` itself means the run did
not start, and ``done`` must not be called. ``juno_bridge.remote.RemoteModel`` is one (the Triton
client's ``async_infer``).
"""
from __future__ import annotations

import gc
import importlib
import inspect
import traceback
import types
from typing import Any, Callable, Mapping

import numpy as np

from juno_bridge.algorithm_spec import AlgorithmSpec, TensorSpec, algorithm
from juno_bridge.dtypes import CODES
from juno_bridge.errors import InvalidArgumentError, ModelLoadError, RunError

# Session options every backend receives; they are not the algorithm's keyword options.
_SESSION_OPTIONS = frozenset({"intra_op_threads", "inter_op_threads", "optimization", "log_level",
                              "execution_mode", "providers", "onnxruntime", "global_thread_pool", "backend",
                              "require_providers", "shared"})

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert_option(key: str, value: str, kind: Callable[[str], Any]) -> Any:
    if kind is bool:
        if value.strip().lower() in _TRUE:
            return True
        if value.strip().lower() in _FALSE:
            return False
        raise InvalidArgumentError(f"option '{key}' needs a bool (1/0, true/false, yes/no, on/off), got {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(f"option '{key}' needs {getattr(kind, '__name__', kind)}, got {value!r}: {e}") \
            from e


def _resolve(model: str):
    target = model[len("python:"):] if model.startswith("python:") else model
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ModelLoadError("expected 'python:package.module:attr'")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise ModelLoadError(f"cannot import module '{module_name}': {e}") from e
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as e:
            raise ModelLoadError(f"module '{module_name}' has no attribute '{attr}'") from e
    return obj


def open_algorithm(model: str, config: Mapping[str, str]):
    """Called by the plugin at open: returns (callable, inputs, outputs, metadata, run_async) where each
    tensor is (name, jb dtype code, dims) with dims ints or symbolic names and run_async is the
    instance's asynchronous entry or None (see the module's doc). Its errors do not name the model: the
    plugin prefixes every failure of the open with "python model '<model>': " (once)."""
    if model.startswith("triton://"):
        # The triton backend is a built-in algorithm: the core hands "triton://..." to this plugin.
        from juno_bridge.remote import RemoteModel

        obj, config = RemoteModel, {**config, "url": model}
    else:
        obj = _resolve(model)
    spec = getattr(obj, "__juno_bridge_algorithm__", None)
    if not isinstance(spec, AlgorithmSpec):
        raise ModelLoadError(f"{obj!r} is not declared with @juno_bridge.algorithm(...)")
    given = {k: v for k, v in config.items() if k not in _SESSION_OPTIONS}
    unknown = sorted(set(given) - set(spec.options))
    if unknown:
        declared = ", ".join(repr(k) for k in spec.options) or "none"
        raise InvalidArgumentError(f"unknown option(s) {', '.join(map(repr, unknown))}; "
                                   f"the algorithm declares {declared}")
    kwargs = {k: _convert_option(k, v, spec.options[k]) for k, v in given.items()}
    if isinstance(obj, type):
        call = obj(**kwargs)
        if not callable(call):
            raise ModelLoadError(f"instances of {obj.__name__} are not callable "
                                 f"(define __call__(self, inputs, outputs))")
    elif kwargs:
        raise InvalidArgumentError(f"options are given to a class at construction; "
                                   f"{obj!r} is a function")
    elif not callable(obj):
        raise ModelLoadError(f"{obj!r} is not callable")
    else:
        call = obj
    # An instance may declare its tensors only once constructed (a remote model asks its server).
    spec = getattr(call, "__juno_bridge_algorithm__", spec)
    doc = (obj.__doc__ or "").strip().splitlines()
    metadata = {"producer_name": "juno_bridge.algorithm", "graph_name": getattr(obj, "__qualname__", str(obj)),
                "domain": getattr(obj, "__module__", "") or "", "description": doc[0] if doc else ""}
    metadata.update(getattr(call, "juno_bridge_metadata", None) or {})  # e.g. a remote model's server and name
    tensors = lambda specs: [(s.name, CODES[s.dtype], s.dims) for s in specs]  # noqa: E731
    run_async = getattr(call, "run_async", None)
    if run_async is not None and not callable(run_async):
        raise ModelLoadError(f"{obj!r}: run_async is not callable (define run_async(self, inputs, outputs, done))")
    return call, tensors(spec.inputs), tensors(spec.outputs), metadata, run_async


def store_returned(returned, outputs: dict) -> None:
    """The callable returned new arrays instead of writing in place: check each, then copy it in."""
    if not isinstance(returned, Mapping):
        raise RunError(f"the algorithm returned {type(returned).__name__}; expected None (outputs written in "
                       f"place) or a dict output name -> array")
    for name, value in returned.items():
        target = outputs.get(name)
        if target is None:
            raise RunError(f"the algorithm returned unknown output {name!r}; its outputs are "
                           f"{', '.join(map(repr, outputs))}")
        if not isinstance(value, np.ndarray):
            raise RunError(f"output '{name}': the algorithm returned {type(value).__name__}; expected a numpy "
                           f"array of dtype {target.dtype} and shape {target.shape}")
        if value.dtype != target.dtype:
            raise RunError(f"output '{name}': the algorithm returned dtype {value.dtype}, expected {target.dtype} "
                           f"(juno-bridge never casts silently)")
        if value.shape != target.shape:
            raise RunError(f"output '{name}': the algorithm returned shape {value.shape}, expected {target.shape}")
        np.copyto(target, value, casting="no")


class ReleasedViewError(ValueError):
    """A view handed to an algorithm was used after the run that lent it had returned."""


class _Released:
    """Stands in for every element of a view revoked after its run: any arithmetic or conversion fails."""

    __slots__ = ("what",)

    def __init__(self, what: str):
        self.what = what

    def _fail(self, *args):
        raise ReleasedViewError(f"operation on a released buffer: {self.what} was lent to the algorithm only "
                                f"for the duration of one run; keep a .copy() to use it later")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _fail
    __lt__ = __le__ = __gt__ = __ge__ = __float__ = __int__ = __index__ = __bool__ = __neg__ = __abs__ = _fail
    __pow__ = __floordiv__ = __mod__ = _fail

    def __repr__(self):
        return "<released>"


def revoke(array: np.ndarray, what: str) -> None:
    """Makes a view the algorithm kept past its run unusable, in place.

    A numpy array over raw memory cannot be revoked through numpy's API (a released memoryview under
    it does not stop it reading), so the array's state is replaced (numpy's pickle hook) by an object
    array of the same shape whose elements raise ReleasedViewError on use: no stale reads, no crash.
    """
    marker = _Released(what)
    array.__setstate__((1, array.shape, np.dtype(object), False, [marker] * array.size))


_GENERATOR_CODE = (inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
                   | inspect.CO_ITERABLE_COROUTINE)


def release_finished_frames(lent: np.ndarray) -> None:
    """Clears the locals of finished frames that still reference a lent view (or a view derived from it).

    A frame object outlives its call when something holds it: Dask's worker profiler samples every
    thread's stack (``sys._current_frames()``) and may still hold the algorithm's frame, with its locals,
    when the call returns; so may a traceback. Such a frame keeps the view only by accident, and clearing
    it (``frame.clear()``) drops the reference without running any code. Executing frames refuse to be
    cleared, and generator or coroutine frames are left alone (clearing one would close it): a view they
    hold is kept, as is one in any other container. Called only when a view is still referenced after its
    run: the referrer search walks the collector's objects, which costs milliseconds.
    """
    holders = gc.get_referrers(lent)
    derived = [h for h in holders if isinstance(h, np.ndarray)]  # views of a view name the lease as base
    for holder in holders + [f for view in derived for f in gc.get_referrers(view)]:
        if isinstance(holder, types.FrameType) and not holder.f_code.co_flags & _GENERATOR_CODE:
            try:
                holder.clear()
            except RuntimeError:  # still executing: a real reference
                pass


def format_exception(exc: BaseException) -> str:
    """The text a Python failure carries into the bridge's error: message and full traceback."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


__all__ = ["AlgorithmSpec", "ReleasedViewError", "TensorSpec", "algorithm", "format_exception", "open_algorithm",
           "release_finished_frames", "revoke", "store_returned"]
