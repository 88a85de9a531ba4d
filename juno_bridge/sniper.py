"""juno-bridge inside SNiPER: the tensor store from Python, and a Python algorithm running a Session.

Importing this module loads the package's SNiPER library (``JunoBridgeAlg``, ``HitsReaderAlg``, the
tensor store) into SNiPER, so a job script creates those algorithms by name::

    import Sniper
    import juno_bridge.sniper as jbs
    task = Sniper.Task("task"); task.setEvtMax(1000)
    reader = task.createAlg("HitsReaderAlg/reader"); reader.property("Files").set(["events.h5"])
    reco = task.createAlg("JunoBridgeAlg/reco"); reco.property("Model").set("default")
    jbs.run(task)   # raises JobError when SNiPER ends the job with an error (task.run() returns False)

``store(alg_or_task)`` is the task's tensor store as a mapping name -> numpy array over the store's own
memory (no copy). Arrays of tensors a C++ algorithm made are read-only; ``store.create(name, shape,
dtype)`` makes a tensor Python writes and C++ reads. An array keeps the memory it shows alive: kept past
its event it shows a later event's values (the store reuses storage in place), kept past the task it
shows the last ones, never freed memory.

Needs the package built against SNiPER (``make sniper SNIPER_PREFIX=DIR``) and SNiPER's Python package
``Sniper`` importable (``$SNIPER_PREFIX/python`` on ``PYTHONPATH``).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

try:
    import Sniper
except ImportError as err:
    raise ImportError("juno_bridge.sniper needs SNiPER's Python package 'Sniper': put $SNIPER_PREFIX/python on "
                      "PYTHONPATH (or source SNiPER's setup.sh)") from err

LIBRARY = Path(__file__).resolve().parent / "lib" / "libJunoBridgeSniper.so"
if not LIBRARY.exists():
    raise ImportError(f"juno_bridge.sniper: {LIBRARY} is missing; build it with `make sniper SNIPER_PREFIX=DIR`")
Sniper.loadDll(str(LIBRARY))

from juno_bridge import _sniper  # noqa: E402  (needs the library loaded first)

__all__ = ["LIBRARY", "JobError", "TensorStore", "SessionAlg", "add_alg", "input_addresses", "run", "session_stats",
           "store"]


class JobError(RuntimeError):
    """SNiPER ended a task with an error: an algorithm's initialize, execute or finalize failed (its
    LogError says which and why). Uncaught, it ends ``python job.py`` with exit status 1."""


def run(task) -> None:
    """Run a SNiPER task and raise :class:`JobError` if it ended with an error.

    ``task.run()`` only returns False (and ``task.Snoopy().isErr()`` turns True): a job script that ignores
    it exits 0 and a batch system counts the job as done. SNiPER stops the job at the first failing
    ``execute``, so one error ends the job, not only its event."""
    ok = task.run()
    if not ok or task.Snoopy().isErr():
        raise JobError(f"SNiPER task '{task.objName()}' ended with an error (its log above says which algorithm "
                       "and why)")


_KEPT: list = []  # Python algorithms (and services) handed to SNiPER, alive as long as the process


def add_alg(task, alg):
    """``task.addAlg(alg)`` that also keeps ``alg`` alive: SNiPER holds a borrowed reference only, so an
    algorithm created inline (``task.addAlg(Show("show"))``) is freed while the task still runs it (a
    segfault). Returns ``alg``."""
    task.addAlg(alg)
    _KEPT.append(alg)
    return alg


class TensorStore(Mapping):
    """The tensor store of one SNiPER task: name -> numpy array, never a copy."""

    def __init__(self, handle):
        self._handle = handle

    def __getitem__(self, name: str) -> np.ndarray:
        return self._handle.get(name)

    def __iter__(self):
        return iter(self._handle.names())

    def __len__(self) -> int:
        return self._handle.size()

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and self._handle.contains(name)

    def create(self, name: str, shape, dtype="float32") -> np.ndarray:
        """A tensor Python writes and C++ algorithms read: 64-byte aligned store memory, reused (same
        address) when ``name`` exists with enough room; returns the writable array."""
        return self._handle.create(name, tuple(int(d) for d in shape), np.dtype(dtype).name)

    def address(self, name: str) -> int:
        """Where C++ algorithms find the tensor's data (equal to the array's data pointer)."""
        return self._handle.address(name)

    def memory(self, name: str) -> tuple[str, str]:
        """Where the tensor's bytes are: ``(device, source)``, device ``"cpu"`` or ``"cuda_pinned"``
        (page-locked), source the ``JunoBridgeAlg`` whose session made the storage (it reads the tensor: on
        a GPU its memory is pinned) or ``""`` for the store's own memory and for views."""
        device, source = self._handle.memory(name)
        return device, source

    def __repr__(self) -> str:
        try:
            held = ", ".join(self) or "empty"
        except Exception as err:  # noqa: BLE001  (a store that is gone says so)
            held = str(err)
        return f"<juno_bridge.sniper.TensorStore of task '{self._handle.task}': {held}>"


def store(alg_or_task) -> TensorStore:
    """The tensor store of the task an algorithm belongs to (or of the task itself)."""
    return TensorStore(_sniper.store_of(alg_or_task))


def session_stats(alg) -> dict:
    """Which session a ``JunoBridgeAlg`` (or a C++ algorithm on ``ModelAlg``) runs on: ``backend`` (its
    kind), ``backend_id`` (equal for algorithms that share one backend session: same model and options),
    ``backend_users`` (open sessions sharing it) and ``tensors_wrapped``. Valid between initialize and
    finalize."""
    return dict(_sniper.session_stats(alg))


def input_addresses(alg) -> list[int]:
    """Where the runtime of a ``JunoBridgeAlg`` read each model input in its last run (zero-copy proof)."""
    return list(_sniper.input_addresses(alg))


class SessionAlg(Sniper.PyAlgBase):
    """A Python algorithm that runs a ``juno_bridge.Session`` on store tensors, bound once (``bind()``)
    and run per event without a copy: inputs are the store's arrays, outputs store tensors that Python
    creates (C++ algorithms read them). ``inputs`` / ``outputs`` map model tensor names to store keys
    (default: the same names); other keywords go to ``juno_bridge.Session``. The first event (and any
    change of the inputs' shapes or addresses) runs the model once more to learn the output shapes.

    The session opens in the runtime of a ``JunoBridgeSvc``, as a ``JunoBridgeAlg``'s does: the one
    ``service`` names, else the one its task (or the nearest task above) has, else the process default; so
    it shares a backend session with the JunoBridgeAlg instances of the same model and options there.
    ``runtime=`` a ``juno_bridge.Runtime`` of the caller's own overrides that."""

    def __init__(self, name: str, model: str, inputs: dict | None = None, outputs: dict | None = None,
                 service: str = "", **options):
        super().__init__(name)
        self.model, self.inputs, self.outputs, self.options = model, dict(inputs or {}), dict(outputs or {}), options
        self.service = service
        self.session = self.store = self._binding = self._bound_to = None

    def initialize(self) -> bool:
        import juno_bridge as jb
        from juno_bridge._core import _service_runtime

        try:
            options = dict(self.options)
            if "runtime" not in options:
                found = _sniper.runtime_of(self, self.service)
                options["runtime"] = _service_runtime(*found) if found is not None else None
            self.session = jb.Session(self.model, **options)
            self.store = store(self)
        except (jb.Error, ValueError, TypeError) as err:
            self.LogError(f"{self.objName()} ({self.model}): {err}")
            return False
        return True

    def execute(self) -> bool:
        import juno_bridge as jb

        try:
            ins = {i.name: self.store[self.inputs.get(i.name, i.name)] for i in self.session.inputs()}
            bound_to = [(a.__array_interface__["data"][0], a.shape, a.dtype) for a in ins.values()]
            if bound_to != self._bound_to:
                first = self.session.run(ins)
                out = {n: self.store.create(self.outputs.get(n, n), a.shape, a.dtype) for n, a in first.items()}
                self._binding = self.session.bind(ins, out=out)  # its trial run fills the store tensors
                self._bound_to = bound_to
            else:
                self._binding.run()
        except (jb.Error, KeyError, ValueError, TypeError) as err:
            self.LogError(f"{self.objName()} ({self.model}): {err}")
            return False
        return True

    def finalize(self) -> bool:
        self._binding = self.store = None
        if self.session is not None:
            self.session.close()
            self.session = None
        return True
