"""The ``triton`` backend: ``Session("triton://host:port/model")`` runs the model on a Triton server.

How it is reached: the core routes "triton://..." (its backend registry) to the python plugin, whose
``open_algorithm`` (juno_bridge.algorithm) instantiates :class:`RemoteModel` with the URL and the
session's config entries as options; so C++ and Python callers get the same Session, with inputs/outputs from the server's model
metadata, and outputs written into the caller's buffers (``out=``).

Options (Session config entries): ``timeout_s`` deadline of every call (default 30; the client's own
default waits forever on a hung server), ``retries`` on UNAVAILABLE (default 3), ``fallback`` a local
model run when the server cannot answer, ``shared_memory`` auto|on|off (auto: on for a loopback
server; a 9 MB batch over plain gRPC measured 13-41 ms, through system shared memory 6-7 ms).
"""
from __future__ import annotations

import queue
import threading
import time
import weakref
from urllib.parse import urlparse

import numpy as np

from juno_bridge.algorithm_spec import AlgorithmSpec, TensorSpec
from juno_bridge.errors import BackendUnavailableError, Error, InvalidArgumentError, ModelLoadError, RunError
from juno_bridge.serve import leftovers

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
_OPTIONS = {"url": str, "timeout_s": float, "retries": int, "fallback": str, "shared_memory": str}


def _client_modules():
    try:
        import tritonclient.grpc as grpcclient
        import tritonclient.utils as utils
        import tritonclient.utils.shared_memory as shm
    except ImportError as err:
        raise BackendUnavailableError("the triton backend needs tritonclient: pip install 'juno-bridge[triton]'") \
            from err
    return grpcclient, utils, shm


def parse_url(url: str) -> tuple[str, str]:
    """``triton://host:port/model`` -> (``host:port``, ``model``)."""
    parsed = urlparse(url)
    model = parsed.path.strip("/")
    if parsed.scheme != "triton" or not parsed.hostname or not parsed.port or not model or "/" in model:
        raise InvalidArgumentError(f"triton URL {url!r}: expected 'triton://host:port/model'")
    return f"{parsed.hostname}:{parsed.port}", model


class _Region:
    """One system shared memory region, registered with the server, grown on demand."""

    def __init__(self, owner: "RemoteModel", role: str, size: int):
        self._owner, self.size = weakref.ref(owner), 0  # weak: closing the model must free its regions
        self.name = leftovers.shm_name("jb") + role  # the /dev/shm key: unique, with our PID for the sweep
        self.handle = None
        self.grow(size)

    def grow(self, size: int) -> None:
        if size <= self.size:
            return
        self.release()
        size = max(size, 2 * self.size, 4096)
        self.shm = self.owner._shm
        self.handle = self.owner._shm.create_shared_memory_region(self.name, "/" + self.name, size, create_only=True)
        self.size = size
        try:
            self.owner._call(lambda t: self.owner._client.register_system_shared_memory(
                self.name, "/" + self.name, size, client_timeout=t))
        except BaseException:
            self.release()  # never leave a region in /dev/shm that nothing owns
            raise

    @property
    def owner(self) -> "RemoteModel":
        return self._owner()

    def view(self, dtype, shape, offset: int) -> np.ndarray:
        return self.shm.get_contents_as_numpy(self.handle, dtype, shape, offset)

    def release(self, client=None, wait: bool = True) -> None:
        if self.handle is None:
            return
        client = client or self.owner._client

        def unregister():
            try:
                client.unregister_system_shared_memory(self.name, client_timeout=1.0)
            except Exception:  # a dead server has nothing registered any more
                pass

        # After a failed call the server may be hung: the caller does not wait for it to forget the region.
        unregister() if wait else threading.Thread(target=unregister, daemon=True).start()
        self.shm.destroy_shared_memory_region(self.handle)
        self.handle, self.size = None, 0


class _Plan:
    """The request objects and shared memory views for one set of shapes, built once and reused."""

    def __init__(self, grpc, utils, regions, inputs: dict, outputs: dict):
        self.infer_inputs, self.in_views, self.requested, self.out_views = [], [], [], []
        offset = 0
        for name, array in inputs.items():
            i = grpc.InferInput(name, list(array.shape), utils.np_to_triton_dtype(array.dtype))
            i.set_shared_memory(regions[0].name, array.nbytes, offset)
            self.infer_inputs.append(i)
            self.in_views.append(regions[0].view(array.dtype, array.shape, offset))
            offset += array.nbytes
        offset = 0
        for name, target in outputs.items():
            r = grpc.InferRequestedOutput(name)
            r.set_shared_memory(regions[1].name, target.nbytes, offset)
            self.requested.append(r)
            self.out_views.append(regions[1].view(target.dtype, target.shape, offset))
            offset += target.nbytes


class _Slot:
    """An input and an output region for one request in flight, with its plans by shapes."""

    def __init__(self, input_region: _Region, output_region: _Region):
        self.regions = (input_region, output_region)
        self.plans: dict[tuple, _Plan] = {}

    def fit(self, in_bytes: int, out_bytes: int) -> None:
        if in_bytes > self.regions[0].size or out_bytes > self.regions[1].size:
            self.plans.clear()  # their views point into the regions being replaced
            self.regions[0].grow(in_bytes)
            self.regions[1].grow(out_bytes)

    def plan(self, grpc, utils, inputs: dict, outputs: dict) -> _Plan:
        key = tuple((n, a.dtype.num, a.shape) for n, a in inputs.items()) + \
            tuple((n, a.dtype.num, a.shape) for n, a in outputs.items())
        plan = self.plans.get(key)
        if plan is None:
            if len(self.plans) > 16:  # many batch sizes: keep the cache small
                self.plans.clear()
            plan = self.plans[key] = _Plan(grpc, utils, self.regions, inputs, outputs)
        return plan


def _release_all(regions: list, client) -> None:
    for region in regions:
        region.release(client)
    client.close()


class _Request:
    """One inference request: what goes to the server and how the answer reaches the outputs. With
    shared memory it holds a slot (regions and plan) until ``finish`` gives it back or ``abandon``
    drops it (a request that failed may still be written by the server later: its regions are never
    reused)."""

    def __init__(self, model: "RemoteModel", inputs: dict, outputs: dict):
        self.model, self.slot, self.plan = model, None, None
        grpc = model._grpc
        if not model.use_shm:
            self.requested = [grpc.InferRequestedOutput(name) for name in outputs]
            self.infer_inputs = [grpc.InferInput(name, list(a.shape), model._utils.np_to_triton_dtype(a.dtype))
                                 for name, a in inputs.items()]
            for i, array in zip(self.infer_inputs, inputs.values()):
                i.set_data_from_numpy(array)
            return
        self.slot = model._take_slot(sum(a.nbytes for a in inputs.values()), sum(a.nbytes for a in outputs.values()))
        try:
            self.plan = self.slot.plan(grpc, model._utils, inputs, outputs)
            for view, array in zip(self.plan.in_views, inputs.values()):
                np.copyto(view, array)  # the one copy shared memory needs
        except BaseException:
            self.abandon()
            raise
        self.infer_inputs, self.requested = self.plan.infer_inputs, self.plan.requested

    def finish(self, result, outputs: dict) -> None:
        """Writes the answer into ``outputs``; gives the slot back once it is done with it."""
        model = self.model
        if self.plan is None:
            for name, target in outputs.items():
                model._store(name, result.as_numpy(name), target)
            return
        for (name, target), view in zip(outputs.items(), self.plan.out_views):
            shape = tuple(result.get_output(name).shape)
            if shape != target.shape:
                raise RunError(f"{model._where()}: output '{name}' came back with shape {shape}, "
                               f"expected {target.shape}")
            np.copyto(target, view)
        model._slots.put(self.slot)
        self.slot = None

    def abandon(self) -> None:
        if self.slot is None:
            return
        with self.model._lock:
            for region in self.slot.regions:
                region.release(wait=False)
                self.model._regions.remove(region)
        self.slot = None


class _Pending:
    """A run_async request: sent by ``start``, completed on the client's thread by ``complete``."""

    def __init__(self, model: "RemoteModel", inputs: dict, outputs: dict, done):
        self.model, self.inputs, self.outputs, self.done, self.request = model, inputs, outputs, done, None

    def start(self) -> None:
        model = self.model
        try:
            self.request = _Request(model, self.inputs, self.outputs)
        except Error as failure:  # its shared memory could not be registered, retries included
            self.fail(failure, retried=True)
            return
        try:
            model._client.async_infer(model.model, self.request.infer_inputs, self.complete,
                                      outputs=self.request.requested, client_timeout=model.timeout_s)
        except model._utils.InferenceServerException as err:  # refused at once: as a failed answer
            self.complete(None, err)
        except BaseException:
            self.request.abandon()
            raise

    def complete(self, result, error) -> None:
        if error is not None:
            self.request.abandon()
            self.fail(self.model._error(error, 0), retried=False)
            return
        try:
            self.request.finish(result, self.outputs)
        except Exception as failure:  # noqa: BLE001 - every failure goes to done, none into the client's thread
            self.request.abandon()
            self.done(failure)
            return
        self.done()

    def fail(self, failure: Error, retried: bool) -> None:
        """What ``__call__`` would do next (retries on UNAVAILABLE, then the fallback model) is done by
        ``__call__`` itself on a thread of its own; otherwise the run ends with ``failure``."""
        model = self.model
        retry = not retried and isinstance(failure, BackendUnavailableError) and model.retries > 0
        if retry or (model.fallback_model and not isinstance(failure, ModelLoadError)):
            threading.Thread(target=self.again, name="juno-bridge-triton-retry", daemon=True).start()
            return
        self.done(failure)

    def again(self) -> None:
        try:
            self.model(self.inputs, self.outputs)
        except Exception as failure:  # noqa: BLE001
            self.done(failure)
            return
        self.done()


class RemoteModel:
    """A model on a Triton server as a python-backend algorithm: called with numpy views of the caller's
    inputs and outputs, it sends the inputs, waits (bounded) and writes the answer into the outputs."""

    def __init__(self, url: str, timeout_s: float = 30.0, retries: int = 3, fallback: str = "",
                 shared_memory: str = "auto"):
        grpcclient, self._utils, self._shm = _client_modules()
        self._grpc = grpcclient
        self.server, self.model = parse_url(url)
        if timeout_s <= 0:
            raise InvalidArgumentError(f"triton option timeout_s must be > 0, got {timeout_s}")
        if retries < 0:
            raise InvalidArgumentError(f"triton option retries must be >= 0, got {retries}")
        if shared_memory not in ("auto", "on", "off"):
            raise InvalidArgumentError(f"triton option shared_memory: expected auto, on or off, got {shared_memory!r}")
        self.timeout_s, self.retries, self.fallback_model = timeout_s, retries, fallback
        self.use_shm = shared_memory == "on" or (shared_memory == "auto" and self.server.rsplit(":", 1)[0] in _LOOPBACK)
        if self.use_shm:
            leftovers.sweep(workdirs=False)  # regions of killed clients and servers of this machine
        self._client = grpcclient.InferenceServerClient(self.server)
        self._fallback = None
        self.fallback_runs = 0
        self._slots: queue.SimpleQueue = queue.SimpleQueue()  # free (input, output) region pairs
        self._regions: list[_Region] = []
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _release_all, self._regions, self._client)
        try:
            inputs, outputs = self._signature_from_server()
        except Error as err:
            if not fallback:
                raise
            inputs, outputs = self._signature_from_fallback(err)
        self._inputs, self._outputs = inputs, outputs
        self.__juno_bridge_algorithm__ = AlgorithmSpec(inputs, outputs, _OPTIONS)
        self.juno_bridge_metadata = {"triton_server": self.server, "triton_model": self.model,
                                     "graph_name": self.model, "producer_name": "triton"}

    # -- signature ------------------------------------------------------------------------------------
    def _signature_from_server(self):
        metadata = self._call(lambda t: self._client.get_model_metadata(self.model, as_json=True, client_timeout=t))
        config = self._call(lambda t: self._client.get_model_config(self.model, as_json=True, client_timeout=t))
        batched = int(config.get("config", {}).get("max_batch_size", 0)) > 0

        def specs(role, entries):
            out = []
            for e in entries:
                dtype = self._utils.triton_to_np_dtype(e["datatype"])
                if dtype is None or np.dtype(dtype).kind not in "biuf":
                    raise ModelLoadError(f"{self._where()}: {role} '{e['name']}' is of type {e['datatype']}; "
                                         f"juno-bridge passes numeric and bool tensors only")
                dims = []
                for k, d in enumerate(int(x) for x in e["shape"]):
                    if d >= 0:
                        dims.append(d)
                    elif k == 0 and batched:
                        dims.append("B")
                    elif role == "input":
                        dims.append(f"{e['name']}_dim{k}")
                    else:
                        raise ModelLoadError(f"{self._where()}: output '{e['name']}' has a dynamic dim {k} beyond "
                                             f"the batch; its size would be unknown before the call")
                out.append(TensorSpec(e["name"], np.dtype(dtype), tuple(dims)))
            return tuple(out)

        return specs("input", metadata.get("inputs", [])), specs("output", metadata.get("outputs", []))

    def _signature_from_fallback(self, err: Error):
        local = self._open_fallback(err)

        def specs(infos):
            return tuple(TensorSpec(t.name, t.dtype, tuple(
                (n or f"{t.name}_dim{k}") if d < 0 else d for k, (d, n) in enumerate(zip(t.shape, t.dim_names))))
                for t in infos)

        return specs(local.inputs()), specs(local.outputs())

    def _open_fallback(self, cause: Exception):
        if self._fallback is None:
            from juno_bridge._core import Session  # not the package: it imports this module's importer

            try:
                self._fallback = Session(self.fallback_model, intra_op_threads=1)
            except Error as err:
                raise type(err)(f"{self._where()}: the server failed ({cause}) and the fallback model "
                                f"{self.fallback_model!r} cannot be opened: {err}") from err
        return self._fallback

    # -- calls ----------------------------------------------------------------------------------------
    def _where(self) -> str:
        return f"triton server {self.server} model '{self.model}'"

    def _call(self, request):
        """Runs ``request(timeout)`` with the deadline; retries UNAVAILABLE a bounded number of times."""
        for attempt in range(self.retries + 1):
            try:
                return request(self.timeout_s)
            except self._utils.InferenceServerException as err:
                status = str(err.status() or "")
                if "UNAVAILABLE" in status and attempt < self.retries:
                    time.sleep(min(0.1 * 2 ** attempt, 1.0))
                    continue
                raise self._error(err, attempt) from None

    def _error(self, err, attempt: int) -> Error:
        status, message = str(err.status() or ""), err.message() or str(err)
        if "DEADLINE_EXCEEDED" in status:
            return RunError(f"{self._where()}: no answer within the deadline of {self.timeout_s:g} s "
                            f"(server hung or overloaded; option timeout_s)")
        if "UNAVAILABLE" in status:
            return BackendUnavailableError(f"{self._where()}: server unavailable after {attempt + 1} attempt(s): "
                                           f"{message}")
        if "not healthy" in message:
            return RunError(f"{self._where()}: the model instance is dead (its python backend stub stopped; "
                            f"Triton still reports the model ready); restart the server: {message}")
        if "NOT_FOUND" in status or "unknown model" in message:
            return ModelLoadError(f"{self._where()}: the server does not serve this model: {message}")
        return RunError(f"{self._where()}: {status or 'error'}: {message}")

    def _take_slot(self, in_bytes: int, out_bytes: int) -> "_Slot":
        try:
            slot = self._slots.get_nowait()
        except queue.Empty:
            with self._lock:
                slot = _Slot(_Region(self, "in", in_bytes), _Region(self, "out", out_bytes))
                self._regions += slot.regions
        slot.fit(in_bytes, out_bytes)
        return slot

    def __call__(self, inputs: dict, outputs: dict) -> None:
        try:
            self._remote(inputs, outputs)
        except Error as err:
            if not self.fallback_model or isinstance(err, ModelLoadError):
                raise
            # The server could not answer: the same outputs come from the local model.
            self.fallback_runs += 1
            self._open_fallback(err).run(inputs, out=outputs)

    def _remote(self, inputs: dict, outputs: dict) -> None:
        request = _Request(self, inputs, outputs)
        try:
            result = self._call(lambda t: self._client.infer(self.model, request.infer_inputs,
                                                             outputs=request.requested, client_timeout=t))
            request.finish(result, outputs)
        except BaseException:
            request.abandon()
            raise

    def run_async(self, inputs: dict, outputs: dict, done) -> None:
        """The algorithm protocol's asynchronous run (juno_bridge.algorithm): the request goes out with
        the client's ``async_infer`` (the inputs copied into shared memory or the request first, on this
        thread) and the answer is written into ``outputs`` on the client's thread, which then calls
        ``done``. A request that fails where ``__call__`` would try again (UNAVAILABLE with retries left,
        or a fallback model) is handed to ``__call__`` on a thread of its own."""
        _Pending(self, inputs, outputs, done).start()

    def _store(self, name: str, value: np.ndarray, target: np.ndarray) -> None:
        if value is None or value.dtype != target.dtype or value.shape != target.shape:
            got = "nothing" if value is None else f"{value.dtype} {value.shape}"
            raise RunError(f"{self._where()}: output '{name}' came back as {got}, expected {target.dtype} "
                           f"{target.shape}")
        np.copyto(target, value)

    def close(self) -> None:
        self._finalizer()


# The class declares its options; each instance declares its tensors once it has asked the server.
RemoteModel.__juno_bridge_algorithm__ = AlgorithmSpec((), (), _OPTIONS)
