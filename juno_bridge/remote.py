"""The ``triton`` backend: ``Session("triton://host:port/model")`` runs the model on a Triton server.

How it is reached: the core routes "triton://..." (its backend registry) to the python plugin, whose
``open_algorithm`` (juno_bridge.algorithm) instantiates :class:`RemoteModel` with the URL and the
session's config entries as options; so C++ and Python callers get the same Session, with inputs/outputs from the
server's model metadata, and outputs written into the caller's buffers (``out=``).

Options (Session config entries): ``timeout_s`` deadline of every call, retries and region set-up
included (default 30; the client's own default waits forever on a hung server), ``retries`` on UNAVAILABLE
(default 3), ``fallback`` a local model run when the server cannot answer (after such a failure the server
is left alone for a back-off period, 1 s doubling to 30 s, and the fallback answers at once),
``shared_memory`` auto|on|off (auto: on for a loopback server; a 9 MB batch over plain gRPC measured
13-41 ms, through system shared memory 6-7 ms).

Answers are checked to be the request's own: a model served by ``juno-bridge serve`` echoes each request's
id (a fresh number per call) as the output ``juno_bridge_tag``; an answer with another id is an error.
A request that failed (timed out) may still be running on the server and write into its regions later:
they are retired, never reused, and unregistered and unmapped only once the server no longer holds them
(Triton refuses to unregister a region a request still uses); the next call takes fresh regions.
"""
from __future__ import annotations

import itertools
import os
import queue
import threading
import time
import weakref
from urllib.parse import urlparse

import numpy as np

from juno_bridge.algorithm_spec import AlgorithmSpec, TensorSpec
from juno_bridge.errors import BackendUnavailableError, Error, InvalidArgumentError, ModelLoadError, RunError
from juno_bridge.serve import leftovers
from juno_bridge.serve.leftovers import unregister_dead_clients
from juno_bridge.serve.protocol import TAG_OUTPUT

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
_OPTIONS = {"url": str, "timeout_s": float, "retries": int, "fallback": str, "shared_memory": str}
_TAGS = itertools.count(int.from_bytes(os.urandom(4), "little") << 24)  # request ids: fresh per call, < 2**64
BACKOFF_S = (1.0, 30.0)  # with a fallback: how long a server that could not answer is left alone (doubling)


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

    def __init__(self, owner: "RemoteModel", role: str, size: int, deadline: float):
        self._owner, self.size = weakref.ref(owner), 0  # weak: closing the model must free its regions
        self.role, self.handle = role, None
        self._lock = threading.Lock()  # release runs on the caller's thread, the reaper's or the finalizer's
        self.grow(size, deadline)

    def grow(self, size: int, deadline: float) -> None:
        if size <= self.size:
            return
        self.release()
        size = max(size, 2 * self.size, 4096)
        self.shm = self.owner._shm
        # A fresh name at every growth: a name is never registered twice (unique, with our PID for the sweep).
        self.name = leftovers.shm_name("jb") + self.role
        self.handle = self.owner._shm.create_shared_memory_region(self.name, "/" + self.name, size, create_only=True)
        self.size = size
        try:
            self.owner._call(lambda t: self.owner._client.register_system_shared_memory(
                self.name, "/" + self.name, size, client_timeout=t), deadline)
        except BaseException:
            # Never a region in /dev/shm that nothing owns; the server (hung?) is not waited for.
            self.release(background=True)
            raise

    @property
    def owner(self) -> "RemoteModel":
        return self._owner()

    def view(self, dtype, shape, offset: int) -> np.ndarray:
        return self.shm.get_contents_as_numpy(self.handle, dtype, shape, offset)

    def unregister(self, client, timeout: float = 1.0) -> bool:
        """Whether the server no longer holds the region: unregistered now, or never (a server that is
        gone or restarted). False while a request still uses it, or when the server cannot answer."""
        try:
            client.unregister_system_shared_memory(self.name, client_timeout=timeout)
        except Exception as err:  # noqa: BLE001
            status = str(getattr(err, "status", lambda: "")() or "")
            return "UNAVAILABLE" in status or ("in use" not in str(err) and "DEADLINE" not in status)
        return True

    def release(self, client=None, unregister: bool = True, background: bool = False) -> None:
        """Unregisters (as far as the server lets it; not when that is done already; on a thread of its
        own with ``background``, for a server that may be hung) and unmaps the region."""
        with self._lock:
            if self.handle is None:
                return
            if unregister:
                client = client or self.owner._client
                if background:
                    threading.Thread(target=self.unregister, args=(client,), daemon=True).start()
                else:
                    self.unregister(client)
            self.shm.destroy_shared_memory_region(self.handle)
            self.handle, self.size = None, 0


class _Plan:
    """The request objects and shared memory views for one set of shapes, built once and reused."""

    def __init__(self, grpc, utils, regions, inputs: dict, outputs: dict, tagged: bool, wire):
        self.infer_inputs, self.in_views, self.out_views = [], [], []
        self.requested = [grpc.InferRequestedOutput(TAG_OUTPUT)] if tagged else []  # in the answer itself
        offset = 0
        for name, array in inputs.items():
            i = grpc.InferInput(name, list(wire(name, array.shape)), utils.np_to_triton_dtype(array.dtype))
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

    def fit(self, in_bytes: int, out_bytes: int, deadline: float) -> None:
        if in_bytes > self.regions[0].size or out_bytes > self.regions[1].size:
            self.plans.clear()  # their views point into the regions being replaced
            self.regions[0].grow(in_bytes, deadline)
            self.regions[1].grow(out_bytes, deadline)

    def plan(self, grpc, utils, inputs: dict, outputs: dict, tagged: bool, wire) -> _Plan:
        key = tuple((n, a.dtype.num, a.shape) for n, a in inputs.items()) + \
            tuple((n, a.dtype.num, a.shape) for n, a in outputs.items())
        plan = self.plans.get(key)
        if plan is None:
            if len(self.plans) > 16:  # many batch sizes: keep the cache small
                self.plans.clear()
            plan = self.plans[key] = _Plan(grpc, utils, self.regions, inputs, outputs, tagged, wire)
        return plan


def _release_all(regions: list, client) -> None:
    """At close: every region goes. One a timed-out request still uses stays mapped in the server (Triton
    refuses to unregister it) until the server ends; this process never reuses its name."""
    for region in list(regions):
        region.release(client)
    client.close()


class _Request:
    """One inference request: what goes to the server and how the answer reaches the outputs. With
    shared memory it holds a slot (regions and plan) until ``finish`` gives it back or ``abandon``
    retires it (a request that failed may still be written by the server later: its regions are never
    reused, and unregistered only once the server lets go of them). ``id`` is sent as the request id; a
    tagged model echoes it."""

    def __init__(self, model: "RemoteModel", inputs: dict, outputs: dict, deadline: float):
        self.model, self.slot, self.plan = model, None, None
        self.id = next(_TAGS)
        grpc = model._grpc
        if not model.use_shm:
            self.requested = [grpc.InferRequestedOutput(name) for name in outputs]
            if model._tagged:
                self.requested.append(grpc.InferRequestedOutput(TAG_OUTPUT))
            self.infer_inputs = [grpc.InferInput(name, list(model.wire_shape(name, a.shape)),
                                                 model._utils.np_to_triton_dtype(a.dtype))
                                 for name, a in inputs.items()]
            for i, array in zip(self.infer_inputs, inputs.values()):
                i.set_data_from_numpy(array)
            return
        self.slot = model._take_slot(sum(a.nbytes for a in inputs.values()), sum(a.nbytes for a in outputs.values()),
                                     deadline)
        try:
            self.plan = self.slot.plan(grpc, model._utils, inputs, outputs, model._tagged, model.wire_shape)
            for view, array in zip(self.plan.in_views, inputs.values()):
                np.copyto(view, array)  # the one copy shared memory needs
        except BaseException:
            self.abandon()
            raise
        self.infer_inputs, self.requested = self.plan.infer_inputs, self.plan.requested

    def finish(self, result, outputs: dict) -> None:
        """Writes the answer into ``outputs`` once it is known to be this request's; gives the slot back
        once it is done with it."""
        model = self.model
        if model._tagged:
            tag = result.as_numpy(TAG_OUTPUT)
            if tag is None or tag.size == 0 or np.any(tag != np.uint64(self.id)):
                got = "none" if tag is None or tag.size == 0 else sorted({int(t) for t in tag.ravel()})
                raise RunError(f"{model._where()}: the answer belongs to another request (its tag {got}, this "
                               f"request's {self.id}): the server mixed up its responses (a model instance that "
                               f"stopped and resumed?); it was discarded")
        if self.plan is None:
            for name, target in outputs.items():
                model._store(name, result.as_numpy(name), target)
            return
        for (name, target), view in zip(outputs.items(), self.plan.out_views):
            output = result.get_output(name)
            if output is None:
                raise RunError(f"{model._where()}: the answer has no output '{name}'")
            shape = tuple(output.shape)
            if shape != model.wire_shape(name, target.shape):
                raise RunError(f"{model._where()}: output '{name}' came back with shape {shape}, "
                               f"expected {target.shape}")
            np.copyto(target, view)
        model._slots.put(self.slot)
        self.slot = None

    def abandon(self) -> None:
        if self.slot is not None:
            self.model._retire(self.slot)
            self.slot = None


class _Pending:
    """A run_async request: sent by ``start``, completed on the client's thread by ``complete``."""

    def __init__(self, model: "RemoteModel", inputs: dict, outputs: dict, done):
        self.model, self.inputs, self.outputs, self.done, self.request = model, inputs, outputs, done, None

    def start(self) -> None:
        model = self.model
        if model.fallback_model and time.monotonic() < model._down_until:  # the server is left alone
            threading.Thread(target=self.again, name="juno-bridge-triton-retry", daemon=True).start()
            return
        deadline = time.monotonic() + model.timeout_s
        try:
            self.request = _Request(model, self.inputs, self.outputs, deadline)
        except _Restricted:  # the server refuses shared memory: plain gRPC from now on, this run included
            if not model.use_shm:
                raise
            model._refuse_shm()
            self.start()
            return
        except Error as failure:  # its shared memory could not be registered, retries included
            self.fail(failure, retried=True)
            return
        try:
            model._client.async_infer(model.model, self.request.infer_inputs, self.complete,
                                      outputs=self.request.requested, request_id=str(self.request.id),
                                      client_timeout=max(deadline - time.monotonic(), 1e-3))
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
        if isinstance(failure, _RegionsLost):  # the server restarted: new regions, and once more
            model._forget_slots()
        retry = not retried and (isinstance(failure, BackendUnavailableError) and model.retries > 0
                                 or isinstance(failure, _RegionsLost))
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
        self._tagged = False  # whether the model echoes request ids (TAG_OUTPUT): set from its metadata
        self._batched, self._reshaped = False, {}  # from the model's config (wire_shape)
        self._down_until, self._backoff, self._down_cause = 0.0, 0.0, None  # with a fallback: the server is
        # left alone until _down_until after it failed (_down_cause)
        self._slots: queue.SimpleQueue = queue.SimpleQueue()  # free (input, output) region pairs
        self._regions: list[_Region] = []  # all of them, for close
        self._retired: list[_Region] = []  # those of failed requests, unregistered once the server lets go
        self._reaping = False
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _release_all, self._regions, self._client)
        try:
            inputs, outputs = self._signature_from_server()
            if self.use_shm:  # what killed clients registered stays mapped in the server until unregistered
                unregister_dead_clients(self.server, timeout=min(self.timeout_s, 2.0))
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
        # A tensor with a config `reshape` has the shape the model has (batch + reshape) in our signature and
        # the shape Triton's clients see (batch + dims) on the wire: `serve` declares a rank-1 batched
        # tensor [B] as dims [1], reshape [] (Triton wants at least one dim).
        self._batched, self._reshaped = batched, {}
        for e in config.get("config", {}).get("input", []) + config.get("config", {}).get("output", []):
            model_dims = tuple(int(d) for d in e.get("reshape", {}).get("shape", []))
            wire_dims = tuple(int(d) for d in e.get("dims", []))
            if "reshape" in e and min(model_dims + wire_dims, default=0) >= 0:  # fixed sizes only
                self._reshaped[e["name"]] = (model_dims, wire_dims)

        def specs(role, entries):
            out = []
            for e in entries:
                if e["name"] in self._reshaped:
                    e = dict(e, shape=[-1] * batched + list(self._reshaped[e["name"]][0]))
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

        outputs = metadata.get("outputs", [])
        self._tagged = any(e["name"] == TAG_OUTPUT for e in outputs)
        return specs("input", metadata.get("inputs", [])), specs("output", [e for e in outputs
                                                                            if e["name"] != TAG_OUTPUT])

    def wire_shape(self, name: str, shape: tuple) -> tuple:
        """The shape Triton's clients send or receive for a tensor of ``shape`` in our signature."""
        if name not in self._reshaped:
            return tuple(shape)
        return tuple(shape[:1]) * self._batched + self._reshaped[name][1]

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

    def _call(self, request, deadline: float | None = None):
        """Runs ``request(timeout)``, the timeout being what is left until ``deadline`` (default: the
        option timeout_s from now); retries UNAVAILABLE a bounded number of times within it."""
        deadline = time.monotonic() + self.timeout_s if deadline is None else deadline
        for attempt in range(self.retries + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._deadline_error()
            try:
                return request(left)
            except self._utils.InferenceServerException as err:
                status, refused = str(err.status() or ""), "protocol is restricted" in str(err)
                pause = min(0.1 * 2 ** attempt, 1.0)
                if "UNAVAILABLE" in status and not refused and attempt < self.retries and \
                        time.monotonic() + pause < deadline:
                    time.sleep(pause)
                    continue
                raise self._error(err, attempt) from None

    def _deadline_error(self) -> RunError:
        err = RunError(f"{self._where()}: no answer within the deadline of {self.timeout_s:g} s "
                       f"(server hung or overloaded; option timeout_s)")
        err.server_down = True
        return err

    def _error(self, err, attempt: int) -> Error:
        status, message = str(err.status() or ""), err.message() or str(err)
        down = True  # whether the server cannot answer at all (a fallback then leaves it alone a while)
        if "DEADLINE_EXCEEDED" in status:
            return self._deadline_error()
        if "protocol is restricted" in message:  # Triton's access check (--grpc-restricted-protocol)
            failure, down = _Restricted(f"{self._where()}: the server refuses this request without its access "
                                        f"header: {message}"), False
        elif "UNAVAILABLE" in status:
            failure = BackendUnavailableError(f"{self._where()}: server unavailable after {attempt + 1} "
                                              f"attempt(s): {message}")
        elif "not healthy" in message:
            failure = RunError(f"{self._where()}: the model instance is dead (its python backend stub stopped; "
                               f"Triton still reports the model ready); restart the server: {message}")
        elif "NOT_FOUND" in status or "unknown model" in message:
            failure, down = ModelLoadError(f"{self._where()}: the server does not serve this model: {message}"), False
        elif "shared memory region" in message and "nable to find" in message:
            failure, down = _RegionsLost(f"{self._where()}: the server does not know this client's shared memory "
                                         f"(restarted?): {message}"), False
        else:
            failure, down = RunError(f"{self._where()}: {status or 'error'}: {message}"), False
        failure.server_down = down
        return failure

    def _take_slot(self, in_bytes: int, out_bytes: int, deadline: float) -> "_Slot":
        try:
            slot = self._slots.get_nowait()
        except queue.Empty:
            regions = []
            try:
                for role, size in (("in", in_bytes), ("out", out_bytes)):
                    regions.append(_Region(self, role, size, deadline))
            except BaseException:
                for region in regions:
                    region.release(background=True)
                raise
            slot = _Slot(*regions)
            with self._lock:
                self._regions += slot.regions
        try:
            slot.fit(in_bytes, out_bytes, deadline)
        except BaseException:
            self._retire(slot)
            raise
        return slot

    def _retire(self, slot: "_Slot") -> None:
        """A slot whose request failed: never used again; its regions go once the server lets go of them
        (a reaper thread tries now and then)."""
        with self._lock:
            self._retired += slot.regions
            if self._reaping:
                return
            self._reaping = True
        threading.Thread(target=_reap, args=(weakref.ref(self),), name="juno-bridge-triton-reaper",
                         daemon=True).start()

    def _refuse_shm(self) -> None:
        self.use_shm = False
        self._forget_slots()

    def _forget_slots(self) -> None:
        """The server forgot our regions (it restarted): every free slot is retired; new ones get registered."""
        while True:
            try:
                self._retire(self._slots.get_nowait())
            except queue.Empty:
                return

    def __call__(self, inputs: dict, outputs: dict) -> None:
        if self.fallback_model and time.monotonic() < self._down_until:
            self.fallback_runs += 1  # the server failed a moment ago: left alone until the back-off ends
            self._open_fallback(self._down_cause).run(inputs, out=outputs)
            return
        try:
            self._remote(inputs, outputs, time.monotonic() + self.timeout_s)
            self._backoff = 0.0
        except Error as err:
            if not self.fallback_model or isinstance(err, ModelLoadError):
                raise
            if getattr(err, "server_down", False):
                self._backoff = min(max(2 * self._backoff, BACKOFF_S[0]), BACKOFF_S[1])
                # Its message only: the error's traceback holds the caller's views, lent for this call only.
                self._down_until, self._down_cause = time.monotonic() + self._backoff, str(err)
            # The server could not answer: the same outputs come from the local model.
            self.fallback_runs += 1
            self._open_fallback(err).run(inputs, out=outputs)

    def _remote(self, inputs: dict, outputs: dict, deadline: float) -> None:
        for last in (False, True):
            try:
                request = _Request(self, inputs, outputs, deadline)
            except _Restricted:
                if not self.use_shm or last:
                    raise
                self._refuse_shm()  # the server refuses shared memory (`serve` beyond loopback): plain gRPC
                continue
            try:
                result = self._call(lambda t: self._client.infer(
                    self.model, request.infer_inputs, outputs=request.requested, request_id=str(request.id),
                    client_timeout=t), deadline)
                request.finish(result, outputs)
                return
            except _RegionsLost:
                request.abandon()
                self._forget_slots()
                if last:
                    raise
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
        if value is None or value.dtype != target.dtype or value.shape != self.wire_shape(name, target.shape):
            got = "nothing" if value is None else f"{value.dtype} {value.shape}"
            raise RunError(f"{self._where()}: output '{name}' came back as {got}, expected {target.dtype} "
                           f"{self.wire_shape(name, target.shape)}")
        np.copyto(target, value.reshape(target.shape))

    def close(self) -> None:
        self._finalizer()


class _RegionsLost(RunError):
    """The server does not know a region this client registered (it restarted)."""


class _Restricted(RunError):
    """Triton's --grpc-restricted-protocol refused a request (`serve` refuses shared memory that way)."""


def _reap(model_ref) -> None:
    """Unregisters and unmaps the retired regions of a model once the server lets go of each (every 0.5 s
    while any is left); ends with the model."""
    while True:
        model = model_ref()
        if model is None:
            return
        with model._lock:
            retired = list(model._retired)
        for region in retired:
            if region.handle is None or region.unregister(model._client, timeout=1.0):
                region.release(unregister=False)
                with model._lock:
                    model._retired.remove(region)
                    if region in model._regions:
                        model._regions.remove(region)
        with model._lock:
            if not model._retired:
                model._reaping = False
                return
        del model
        time.sleep(0.5)


# The class declares its options; each instance declares its tensors once it has asked the server.
RemoteModel.__juno_bridge_algorithm__ = AlgorithmSpec((), (), _OPTIONS)
