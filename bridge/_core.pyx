# cython: language_level=3, boundscheck=False, wraparound=False, embedsignature=True
"""Thin wrappers over the C++ core: numpy arrays <-> TensorView, Status -> exceptions, GIL release.

Everything here is glue a C++ caller does not need: the C++ Session does the checks and the work.
What juno_bridge._hits shares of it is declared in bridge/juno_bridge/_core.pxd.
"""
cimport cython
from cpython.buffer cimport PyObject_CheckBuffer
from cpython.dict cimport PyDict_Copy, PyDict_Next
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from cython.operator cimport dereference as deref
from libc.stdint cimport int32_t, int64_t, uintptr_t
from libcpp.memory cimport shared_ptr, unique_ptr
from libcpp.string cimport string
from libcpp.vector cimport vector

cimport numpy as cnp

from libjuno_bridge cimport backends as c_backends, backend_plugin_path, BackendInfo
from libjuno_bridge cimport (JB_MAX_RANK, CSession, CTensorInfo, ModelMetadata, OnnxRuntimeInfo,
                             SessionOptions, Status, Tensor, get_onnxruntime_info, jb_tensor_view,
                             jb_version, open_session, open_session_bytes, run_session, run_session_async,
                             free_ended_thread_states,
                             session_metadata, session_signature, session_stats, set_option, SessionStats,
                             CRuntime, RuntimeTask, make_runtime, make_runtime_with_executor, run_task,
                             open_backend_count as c_open_backend_count)
from libjuno_bridge cimport (JB_DTYPE_BFLOAT16, JB_DTYPE_BOOL, JB_DTYPE_FLOAT16, JB_DTYPE_FLOAT32, JB_DTYPE_FLOAT64,
                             JB_DTYPE_INT8, JB_DTYPE_INT16, JB_DTYPE_INT32, JB_DTYPE_INT64, JB_DTYPE_UINT8,
                             JB_DTYPE_UINT16, JB_DTYPE_UINT32, JB_DTYPE_UINT64)
from libjuno_bridge cimport jb_get_log_level, jb_set_log_callback, jb_set_log_level
import atexit
import concurrent.futures
import logging
import os
import threading

import ml_dtypes
import numpy as np

from juno_bridge.errors import InputError, InputTypeError, InvalidArgumentError, error_class
from juno_bridge.tensor_info import TensorInfo

cnp.import_array()

# The backends' own log (ONNX Runtime's) goes to Python logging, logger "juno_bridge.<source>"; the
# core's level (set_log_level) decides which lines are made at all. Levels: ONNX Runtime's 0..4.
_LOG_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)


cdef void _forward_log(void* user_data, int32_t level, const char* source, const char* message) noexcept with gil:
    try:
        logging.getLogger("juno_bridge." + source.decode("utf-8", "replace")).log(
            _LOG_LEVELS[min(max(level, 0), 4)], "%s", message.decode("utf-8", "replace"))
    except BaseException:  # a log line must never raise into a runtime thread
        pass


def _stop_forwarding_log():
    jb_set_log_callback(NULL, NULL)  # runtime threads may log after the interpreter is gone


jb_set_log_callback(_forward_log, NULL)
atexit.register(_stop_forwarding_log)


def set_log_level(level):
    """Sets, in one place, which log lines of the backends are made and forwarded: a name (verbose, info,
    warning, error, fatal) or a logging level; also sets the level of the "juno_bridge" logger."""
    names = ("verbose", "info", "warning", "error", "fatal")
    if isinstance(level, str):
        if level.lower() not in names:
            raise InvalidArgumentError(f"log level must be one of {', '.join(names)}; got {level!r}")
        code = names.index(level.lower())
    elif isinstance(level, int) and not isinstance(level, bool):
        code = sum(level > l for l in _LOG_LEVELS[:-1])  # the nearest level at or above it
    else:
        raise InvalidArgumentError(f"log level must be a name or a logging level; got {level!r}")
    jb_set_log_level(code)
    logging.getLogger("juno_bridge").setLevel(_LOG_LEVELS[code])


def get_log_level():
    """The backends' log level as a name."""
    return ("verbose", "info", "warning", "error", "fatal")[jb_get_log_level()]

cdef enum:
    CALL_TENSORS = 4    # tensors per call kept inside the _Call object; more use the heap
    MAX_PLANS = 8       # call signatures remembered per Session (a program uses a handful)

# jb dtype code (the C ABI's jb_dtype) -> numpy dtype: the Python side's one dtype table
# (juno_bridge.dtypes presents it; the C tables below are derived from it).
NUMPY_DTYPES = {JB_DTYPE_FLOAT32: np.dtype(np.float32), JB_DTYPE_UINT8: np.dtype(np.uint8),
                JB_DTYPE_INT8: np.dtype(np.int8), JB_DTYPE_UINT16: np.dtype(np.uint16),
                JB_DTYPE_INT16: np.dtype(np.int16), JB_DTYPE_INT32: np.dtype(np.int32),
                JB_DTYPE_INT64: np.dtype(np.int64), JB_DTYPE_BOOL: np.dtype(np.bool_),
                JB_DTYPE_FLOAT16: np.dtype(np.float16), JB_DTYPE_FLOAT64: np.dtype(np.float64),
                JB_DTYPE_UINT32: np.dtype(np.uint32), JB_DTYPE_UINT64: np.dtype(np.uint64),
                JB_DTYPE_BFLOAT16: np.dtype(ml_dtypes.bfloat16)}
SUPPORTED_DTYPES = tuple(str(d) for d in NUMPY_DTYPES.values())

cdef int32_t _JB_FROM_TYPENUM[64]  # numpy's built-in type numbers
# bfloat16 is a type that ml_dtypes registers with numpy: its number is given out at run time (>= 256).
cdef int _BFLOAT16_TYPENUM = NUMPY_DTYPES[JB_DTYPE_BFLOAT16].num
cdef int _TYPENUM_FROM_JB[17]
cdef int _ITEMSIZE_FROM_JB[17]


cdef void _init_dtype_tables() noexcept:
    cdef int i
    for i in range(64):
        _JB_FROM_TYPENUM[i] = 0
    for i in range(17):
        _TYPENUM_FROM_JB[i] = -1
        _ITEMSIZE_FROM_JB[i] = 0
    for code, dtype in NUMPY_DTYPES.items():
        _TYPENUM_FROM_JB[code] = dtype.num
        _ITEMSIZE_FROM_JB[code] = dtype.itemsize
        if dtype.num < 64:
            _JB_FROM_TYPENUM[dtype.num] = code
    # int64/uint64 have two numpy type numbers on LP64 (long and long long).
    _JB_FROM_TYPENUM[<int>cnp.NPY_LONGLONG] = JB_DTYPE_INT64
    _JB_FROM_TYPENUM[<int>cnp.NPY_ULONGLONG] = JB_DTYPE_UINT64
    _JB_FROM_TYPENUM[<int>cnp.NPY_LONG] = JB_DTYPE_INT64 if sizeof(long) == 8 else JB_DTYPE_INT32
    _JB_FROM_TYPENUM[<int>cnp.NPY_ULONG] = JB_DTYPE_UINT64 if sizeof(long) == 8 else JB_DTYPE_UINT32


_init_dtype_tables()


cdef int numpy_typenum(int32_t dtype) noexcept:
    return _TYPENUM_FROM_JB[dtype] if 0 <= dtype < 17 else -1


cdef int raise_status(Status& status) except -1:
    raise error_class(status.code)(status.message.decode("utf-8", "replace"), status.backend_code)


cdef str _what(str role, object name):
    """How an error names the tensor: "input 'x'", or the role alone ("pmt_ids")."""
    return role if name is None else f"{role} '{name}'"


cdef int fill_view(object obj, jb_tensor_view* view, str role, object name, bint writable,
                   list keep) except -1:
    cdef cnp.ndarray arr
    if cnp.PyArray_Check(obj):
        arr = <cnp.ndarray>obj
    elif PyObject_CheckBuffer(obj):
        arr = np.asarray(memoryview(obj))  # a view of the exporter's memory in its own format, not a copy
        keep.append(arr)  # alive until the run returns
    else:
        raise InputTypeError(f"{_what(role, name)}: expected a numpy array or a buffer-protocol object, "
                             f"got {type(obj).__name__}")
    cdef int flags = cnp.PyArray_FLAGS(arr)
    if not (flags & cnp.NPY_ARRAY_C_CONTIGUOUS):
        raise InputError(f"{_what(role, name)}: expected a C-contiguous array, got strides {(<object>arr).strides} "
                         f"for shape {(<object>arr).shape}; pass np.ascontiguousarray(...) (juno-bridge never copies "
                         f"silently)")
    if not (flags & cnp.NPY_ARRAY_ALIGNED):
        raise InputError(f"{_what(role, name)}: array data at {<uintptr_t>cnp.PyArray_DATA(arr):#x} is not aligned "
                         f"to its {arr.dtype.itemsize}-byte elements")
    if writable and not (flags & cnp.NPY_ARRAY_WRITEABLE):
        raise InputError(f"{_what(role, name)}: the output buffer is read-only")
    cdef int typenum = cnp.PyArray_TYPE(arr)
    cdef int32_t dtype = _JB_FROM_TYPENUM[typenum] if 0 <= typenum < 64 else (
        JB_DTYPE_BFLOAT16 if typenum == _BFLOAT16_TYPENUM else 0)
    if dtype == 0 or cnp.PyArray_ISBYTESWAPPED(arr):
        raise InputTypeError(f"{_what(role, name)}: dtype {arr.dtype.str if not arr.dtype.isnative else arr.dtype} "
                             f"is not supported; expected one of {', '.join(SUPPORTED_DTYPES)} "
                             f"in native byte order")
    cdef int ndim = cnp.PyArray_NDIM(arr)
    if ndim > JB_MAX_RANK:
        raise InputError(f"{_what(role, name)}: rank {ndim} exceeds the maximum of {JB_MAX_RANK}")
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(arr)
    cdef int d
    view.data = cnp.PyArray_DATA(arr)
    view.dtype = dtype
    view.rank = ndim
    for d in range(ndim):
        view.shape[d] = dims[d]
    return 0


cdef class _RuntimeMemory:
    """Keeps a backend-allocated output alive for as long as the numpy array that views it."""
    cdef shared_ptr[void] holder
    cdef readonly uintptr_t address  # the pointer the backend returned (tests check it is not copied)
    cdef readonly object aliased  # the caller's input this output is, when the model passes one through


cdef object aliased_input(const jb_tensor_view* out, const jb_tensor_view* ins, size_t n_in, list sources):
    """The caller's input whose memory a runtime-allocated output lies in, or None. ONNX Runtime hands a graph
    input that is also a graph output straight back: the output array must then keep that input alive."""
    cdef uintptr_t address = <uintptr_t>out.data
    cdef uintptr_t start
    cdef size_t j, nbytes
    cdef int d
    for j in range(n_in):
        nbytes = <size_t>_ITEMSIZE_FROM_JB[ins[j].dtype]
        for d in range(ins[j].rank):
            nbytes *= <size_t>ins[j].shape[d]
        start = <uintptr_t>ins[j].data
        if nbytes and start <= address < start + nbytes:
            return sources[j]
    return None


cdef object adopt(Tensor& tensor, object aliased):
    cdef jb_tensor_view* view = <jb_tensor_view*>&tensor.view
    cdef cnp.npy_intp dims[JB_MAX_RANK]
    cdef int d
    for d in range(view.rank):
        dims[d] = view.shape[d]
    memory = _RuntimeMemory.__new__(_RuntimeMemory)
    (<_RuntimeMemory>memory).holder = tensor.holder
    (<_RuntimeMemory>memory).address = <uintptr_t>view.data
    (<_RuntimeMemory>memory).aliased = aliased
    arr = cnp.PyArray_SimpleNewFromData(view.rank, dims, _TYPENUM_FROM_JB[view.dtype], view.data)
    cnp.set_array_base(arr, memory)
    return arr


cdef object to_info(const CTensorInfo* info):
    cdef size_t d
    name = info.name.decode()
    dtype = NUMPY_DTYPES.get(<int>info.dtype)
    if not info.rank_known:
        return TensorInfo(name, dtype, None, None, info.type_name.decode())
    shape = []
    names = []
    for d in range(info.shape.size()):
        shape.append(info.shape[d])
        names.append(info.dim_names[d].value().decode() if info.dim_names[d].has_value() else None)
    return TensorInfo(name, dtype, tuple(shape), tuple(names), info.type_name.decode())


cdef str _names(names):
    return ", ".join(repr(n) for n in names) or "none"


cdef int _raise_run_status(Session session, object in_names, Status& status) except -1:
    """raise_status for a run. For inputs given as a sequence, an error about one input also says the order
    the sequence was taken in: a sequence in another order is the likeliest cause (a swap of inputs of
    different dtypes or shapes)."""
    cls = error_class(status.code)
    message = status.message.decode("utf-8", "replace")
    if (in_names is None and session._n_in > 1 and issubclass(cls, InputError) and message.startswith("input '")
            and any(f"': expected {what} " in message for what in ("dtype", "rank", "shape"))):
        order = ", ".join(f"{i.name!r} ({i.dtype if i.dtype is not None else i.type_name})" for i in session._inputs)
        message += (f"; the inputs came as a sequence, taken in the model's input order: {order}; "
                    f"give them by name (a dict) if that is not the order meant")
    raise cls(message, status.backend_code)


cdef str _unordered_inputs(Session session):
    """Why a sequence of inputs cannot be taken, when the model gives its inputs no order (its metadata
    says so: custom.input_order "names only"); None when it can."""
    if session._n_in < 2:
        return None
    custom = session.metadata()["custom"]
    if custom.get("input_order") != "names only":
        return None
    return (f"{custom.get('input_order_note') or 'the model gives its inputs no order'}: give them by name, "
            f"a dict {{{', '.join(f'{n!r}: ...' for n in session._input_index)}}}, not a sequence")


cdef jb_tensor_view* _views(jb_tensor_view* inline_room, vector[jb_tensor_view]& heap, size_t n):
    """Room for n views: `inline_room` (CALL_TENSORS long) when they fit, else `heap` grown to n."""
    if n <= CALL_TENSORS:
        return inline_room
    heap.resize(n)
    return heap.data()


cdef bint _keys_are(dict d, tuple names):
    """The dict's keys are `names`, in that order (identity first: the caller usually passes the same strings)."""
    cdef Py_ssize_t n = len(names), pos = 0, j
    cdef PyObject* key
    cdef PyObject* value
    if len(d) != n:
        return False
    for j in range(n):
        PyDict_Next(d, &pos, &key, &value)
        if <object>key is not names[j] and <object>key != names[j]:
            return False
    return True


cdef inline list _keeper(list keep, object obj):
    """`keep`, made on first need: only a buffer-protocol object that is not an array needs one (fill_view)."""
    return keep if keep is not None or cnp.PyArray_Check(obj) else []


cdef tuple _as_names(outputs):
    return (outputs,) if isinstance(outputs, str) else tuple(outputs)


@cython.final
cdef class _Plan:
    """What `Session.run` resolved for one call signature (the input dict's keys in order, the keys of
    out=, the outputs= names), reused by every later call with the same signature: the names are
    looked up once, the arrays are still checked on every call."""
    cdef tuple in_names         # the input dict's keys in the caller's order; None: a sequence in model order
    cdef vector[Py_ssize_t] in_index  # model input index of each
    cdef tuple out_keys         # the keys of out= in the caller's order; None: no out=
    cdef vector[Py_ssize_t] out_slot  # the position in `names` of each key of out=
    cdef tuple outputs          # the outputs= names; None: all of them
    cdef tuple names            # the outputs this call produces, in order
    cdef vector[int32_t] out_index
    cdef bint out_is_result     # out= holds exactly `names`, in order: the result is a copy of out

    cdef bint fits(self, object inputs, object out, object outputs):
        if self.in_names is None:
            if type(inputs) is dict:
                return False
        elif type(inputs) is not dict or not _keys_are(<dict>inputs, self.in_names):
            return False
        if (out is None) != (self.out_keys is None) or (out is not None and not _keys_are(<dict>out, self.out_keys)):
            return False
        if outputs is None or self.outputs is None:
            return outputs is self.outputs
        return outputs is self.outputs or _as_names(outputs) == self.outputs




cdef class Session:
    """An opened model: ``inputs()``, ``outputs()``, ``metadata()``, ``run()``.

    ``model`` is a path (``.onnx``: ONNX Runtime; ``.pt2``/``.pt``: libtorch), ``python:module:callable``
    (a Python algorithm), or the bytes of an ONNX model; ``backend=`` overrides the choice. The GIL is
    released while the model runs, and one Session may be used from many threads at once.

    ``providers`` is an order of preference: the first that initialises is used, each one skipped is
    logged (logger "juno_bridge.providers") and ``Session.providers`` says what was got;
    ``require_providers=True`` makes a skipped one an error. Sessions of the same model (file or bytes)
    with the same options share one backend session in their runtime (``shared=False``: one of its own);
    closing one leaves the others running. ``runtime=`` a ``Runtime`` opens the Session in it (its own
    shared sessions and executor of run_async; closed with it), else the process default runtime. ``async_runs`` chooses how ``run_async`` runs: "native"
    through the backend's own asynchronous call (ONNX Runtime's RunAsync, with 2+ intra-op threads;
    Triton's async_infer), "pool" by the runtime's executor (the process default's is a worker pool),
    "auto" (default) native except for ONNX Runtime on the CPU, whose RunAsync is slower there than the pool; ``async_mode`` says what was got.

    bfloat16 tensors are ``ml_dtypes.bfloat16`` arrays; ``bfloat16_as_uint16=True`` takes and gives them
    as ``uint16`` arrays of their bits instead (the same memory; a uint16 array is refused without it).
    """
    # The attributes are declared in bridge/juno_bridge/_core.pxd (juno_bridge._hits reads _session).

    def __init__(self, model, *, backend=None, intra_op_threads=0, inter_op_threads=0,
                 optimization="all", providers=("cpu",), onnxruntime=None, log_level="warning",
                 execution_mode="sequential", global_thread_pool=False, require_providers=False,
                 shared=True, async_runs="auto", bfloat16_as_uint16=False, config=None, runtime=None):
        cdef SessionOptions options
        cdef Status status
        cdef CRuntime* in_runtime = NULL
        if runtime is not None:
            if not isinstance(runtime, Runtime):
                raise InvalidArgumentError(f"runtime must be a juno_bridge.Runtime, got {type(runtime).__name__}")
            in_runtime = (<Runtime>runtime)._get()
        self.runtime = runtime
        settings = {"intra_op_threads": intra_op_threads, "inter_op_threads": inter_op_threads,
                    "optimization": optimization, "log_level": log_level,
                    "execution_mode": execution_mode, "global_thread_pool": int(bool(global_thread_pool)),
                    "require_providers": int(bool(require_providers)), "shared": int(bool(shared)),
                    "async_runs": async_runs, "bfloat16_as_uint16": int(bool(bfloat16_as_uint16))}
        if isinstance(providers, str):
            providers = (providers,)
        if not isinstance(providers, (list, tuple)) or not all(isinstance(p, str) for p in providers):
            raise InvalidArgumentError(f"option 'providers' must be a name or a sequence of names, got {providers!r}")
        settings["providers"] = ",".join(providers)
        if backend is not None:
            settings["backend"] = backend
        if onnxruntime is not None:
            if not isinstance(onnxruntime, (str, os.PathLike)):
                raise InvalidArgumentError(f"option 'onnxruntime' must be a library path, got {onnxruntime!r}")
            settings["onnxruntime"] = os.fspath(onnxruntime)
        for key, value in (config or {}).items():
            settings[str(key)] = value
        for key, value in settings.items():
            if isinstance(value, bool) or not isinstance(value, (str, int, os.PathLike)):
                raise InvalidArgumentError(f"option '{key}' must be a string or an integer, got {value!r}")
            if set_option(&options, str(key).encode(), str(value).encode(), &status):
                raise_status(status)

        cdef string path
        cdef const unsigned char[::1] data
        if isinstance(model, (bytes, bytearray, memoryview)):
            data = memoryview(model).cast("B")
            self.model = f"<{len(data)} bytes>"
            if len(data) == 0:
                from juno_bridge.errors import ModelLoadError
                raise ModelLoadError("model bytes are empty (0 bytes)")
            with nogil:
                rc = open_session_bytes(<const char*>&data[0], data.shape[0], options, in_runtime, &self._session,
                                        &status)
        elif isinstance(model, (str, os.PathLike)):
            self.model = os.fspath(model)
            path = self.model.encode()
            with nogil:
                rc = open_session(path, options, in_runtime, &self._session, &status)
        else:
            raise InvalidArgumentError(f"model must be a path or bytes, got {type(model).__name__}")
        if rc:
            raise_status(status)

        cdef vector[CTensorInfo] input_infos, output_infos
        cdef string backend_name
        if session_signature(deref(self._session), &input_infos, &output_infos, &backend_name, &status):
            raise_status(status)
        self._backend = backend_name.decode()
        self._inputs = tuple([to_info(&input_infos[i]) for i in range(input_infos.size())])
        self._outputs = tuple([to_info(&output_infos[i]) for i in range(output_infos.size())])
        self._n_in = len(self._inputs)
        self._n_out = len(self._outputs)
        self._input_index = {info.name: i for i, info in enumerate(self._inputs)}
        self._output_index = {info.name: i for i, info in enumerate(self._outputs)}
        self._output_names = tuple(info.name for info in self._outputs)
        for i in range(self._n_out):
            self._all_outputs.push_back(i)
        self._plans = []
        self._pending = set()
        self._unordered = _unordered_inputs(self)

    cdef CSession* _open(self) except NULL:
        if not self._session or not self._session.get().is_open():  # closed, by close() or by its runtime
            raise InvalidArgumentError("the session is closed")
        return self._session.get()

    def inputs(self):
        """The model's inputs, as a list of TensorInfo, in model order: the order a sequence of inputs is taken
        in (a SavedModel's: its function's arguments; by name only where metadata's custom input_order says
        "names only")."""
        self._open()
        return list(self._inputs)

    def outputs(self):
        """The model's outputs, as a list of TensorInfo."""
        self._open()
        return list(self._outputs)

    def metadata(self):
        """producer_name, graph_name, domain, description, version and the custom key/value map."""
        cdef ModelMetadata md
        cdef Status status
        if session_metadata(deref(self._open()), &md, &status):
            raise_status(status)
        return {"producer_name": md.producer_name.decode(), "graph_name": md.graph_name.decode(),
                "domain": md.domain.decode(), "description": md.description.decode(),
                "version": md.version,
                "custom": {k.decode(): v.decode() for k, v in md.custom}}

    def _stats(self):
        """Zero-copy evidence for tests: runtime tensors made over caller memory since open, inputs copied
        into the backend's own memory since open (TensorFlow's unaligned ones), and where the runtime reads
        each input (the address it reports for the last bound input)."""
        cdef SessionStats st
        cdef Status status
        if session_stats(deref(self._open()), &st, &status):
            raise_status(status)
        return {"tensors_wrapped": st.tensors_wrapped, "inputs_staged": st.inputs_staged,
                "input_addresses": [<uintptr_t>st.input_addresses[i] for i in range(st.input_addresses.size())],
                "backend_id": st.backend_id, "backend_users": st.backend_users}

    @property
    def backend(self):
        self._open()
        return self._backend

    @property
    def providers(self):
        """The execution providers the session uses, in order ("cuda", "cpu"): the first of the wanted
        ones that initialised; [] for a backend without providers."""
        return [p.decode() for p in self._open().providers()]

    def close(self):
        """Releases the model now (a run in flight on another thread, and every run_async already
        made, finishes first)."""
        if self._pending:
            concurrent.futures.wait(list(self._pending))  # releases the GIL while it waits
        self._release()

    cdef void _release(self) noexcept:
        # Without the GIL: a backend released here may wait for its own threads, and one of them may be
        # finishing a run_async completion that needs the GIL.
        cdef shared_ptr[CSession] session
        session.swap(self._session)
        with nogil:
            session.reset()

    def __dealloc__(self):
        self._release()

    @property
    def async_mode(self):
        """How run_async runs for this session: "native", the backend's own asynchronous call (ONNX
        Runtime's RunAsync on the session's intra-op threads, when it has 2 or more), or "pool", the
        runtime's executor (the process default's: a pool of $JUNO_BRIDGE_ASYNC_THREADS threads, default the
        number of cores)."""
        return self._open().async_mode().decode()

    def run_async(self, inputs, out=None, outputs=None):
        """``run`` without waiting: returns a ``concurrent.futures.Future`` of run's result (its error,
        if any, bad input included); ``await asyncio.wrap_future(f)`` from asyncio. The run goes through
        the core's run_async (see ``async_mode``), the GIL free while the model runs; the future is
        settled on the thread that completes it. The future holds ``inputs`` and ``out`` until it is
        done: leave their arrays untouched until then."""
        cdef shared_ptr[CSession] session = self._session
        if not session:
            raise InvalidArgumentError("the session is closed")
        future = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        cdef _Call call
        try:
            call = <_Call>self._call(inputs, out, outputs)
        except Exception as error:
            future.set_exception(error)
            return future
        call.session = self
        call.future = future
        pending = self._pending
        pending.add(future)
        future.add_done_callback(pending.discard)
        _in_flight.add(future)
        future.add_done_callback(_in_flight.discard)
        cdef Status status
        cdef int rc
        Py_INCREF(call)  # the core's until it calls _complete_run_async
        # With the GIL: starting a run never waits for another thread, and handing the GIL over here on
        # every call would let the completions take it in between (measured: 26 -> 18 us per call).
        rc = run_session_async(deref(session), call.in_views, call.n_in, call.out_index, call.out_views,
                               call.owned_ptr, call.n_out, _complete_run_async, <void*>call, &status)
        if rc:
            Py_DECREF(call)
            try:
                _raise_run_status(self, call.plan.in_names, status)
            except Exception as error:
                future.set_exception(error)
        return future

    @property
    def closed(self):
        return not self._session or not self._session.get().is_open()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self.closed else self.backend
        return f"Session({self.model!r}, {state})"

    def bind(self, inputs, out, outputs=None):
        """Binds input and output buffers once for a per-event loop: ``b = s.bind({"x": x}, out={"y": y})``,
        then ``b.run()`` after each refill of ``x``. Every requested output needs an ``out`` buffer."""
        cdef shared_ptr[CSession] session = self._session
        if not session:
            raise InvalidArgumentError("the session is closed")
        cdef Binding binding = Binding.__new__(Binding)
        if type(inputs) is not dict:
            if not isinstance(inputs, (list, tuple)):
                inputs = dict(inputs)
            else:
                if self._unordered is not None:
                    raise InputError(self._unordered)
                if len(inputs) != self._n_in:
                    raise InputError(f"the model takes {self._n_in} input(s) ({_names(self._input_index)}), "
                                     f"got {len(inputs)}")
                inputs = {info.name: array for info, array in zip(self._inputs, inputs)}
        names = self._output_names if outputs is None else (
            (outputs,) if isinstance(outputs, str) else tuple(outputs))
        out = dict(out)
        missing = [n for n in names if n not in out]
        if missing:
            raise InputError(f"bind needs an out= buffer for every output it produces; missing {_names(missing)}")
        # A trial run through the general path checks everything once and maps the names.
        self.run(inputs, out=out, outputs=names)
        cdef list keep = []
        binding._inputs.resize(self._n_in)
        for name, array in inputs.items():
            fill_view(array, &binding._inputs[<Py_ssize_t>self._input_index[name]], "input", name, False, keep)
        binding._outputs.resize(len(names))
        for i, name in enumerate(names):
            binding._index.push_back(self._output_index[name])
            fill_view(out[name], &binding._outputs[i], "output", name, True, keep)
        binding._session = session
        binding._arrays = (tuple(inputs.values()), tuple(out[n] for n in names), tuple(keep))
        binding._result = {name: out[name] for name in names}
        return binding

    def run(self, inputs, out=None, outputs=None):
        """Runs the model; returns a dict output name -> array, in the model's output order.

        ``inputs``: a dict name -> array, or a sequence in model input order (``inputs()``; refused for a
        model that gives its inputs no order, as a SavedModel whose function takes a dict). ``out``: a dict name ->
        array to be written in place (returned as is). ``outputs``: names of the outputs wanted (all by
        default). Outputs not in ``out`` are allocated by the runtime and returned without a copy.
        """
        cdef shared_ptr[CSession] session = self._session  # keeps the model alive while the GIL is free
        if not session:
            raise InvalidArgumentError("the session is closed")
        cdef _Call call = <_Call>self._call(inputs, out, outputs)
        cdef Status status
        cdef int rc
        with nogil:
            rc = run_session(deref(session), call.in_views, call.n_in, call.out_index, call.out_views,
                             call.owned_ptr, call.n_out, &status)
        if rc:
            _raise_run_status(self, call.plan.in_names, status)
        return call.result()

    cdef object _call(self, object inputs, object out, object outputs):
        """The views of one call's arrays, every name and Python-side property checked."""
        cdef _Call call = _Call.__new__(_Call)
        if type(inputs) is not dict and not isinstance(inputs, (list, tuple)):
            if not hasattr(inputs, "keys"):
                raise InputTypeError(f"inputs must be a dict name -> array or a sequence of arrays, "
                                     f"got {type(inputs).__name__}")
            inputs = dict(inputs)
        if out is not None and type(out) is not dict:
            out = dict(out)
        call.inputs = inputs
        call.out = out
        # The names of this call signature, resolved by an earlier call; None the first time.
        cdef _Plan plan = None
        for known in self._plans:
            if (<_Plan>known).fits(inputs, out, outputs):
                plan = <_Plan>known
                break

        # Inputs, in model order.
        cdef size_t n_in = self._n_in
        cdef jb_tensor_view* in_views = _views(call.in_stack, call.in_heap, n_in)
        call.in_views = in_views
        call.n_in = n_in
        cdef list keep = None  # temporary arrays over buffer-protocol objects, alive until the run is over
        cdef Py_ssize_t i, j = 0, k, pos
        cdef PyObject* key
        cdef PyObject* value
        if type(inputs) is dict:
            for name, array in (<dict>inputs).items():
                if plan is not None:
                    i = plan.in_index[j]
                else:
                    index = self._input_index.get(name)
                    if index is None:
                        raise InputError(f"unknown input {name!r}; the model's inputs are "
                                         f"{_names(self._input_index)}")
                    i = index
                keep = _keeper(keep, array)
                fill_view(array, &in_views[i], "input", name, False, keep)
                j += 1
            if <size_t>j != n_in:
                missing = [n for n in self._input_index if n not in inputs]
                raise InputError(f"missing input(s) {_names(missing)}; the model's inputs are "
                                 f"{_names(self._input_index)}")
        else:
            if self._unordered is not None:
                raise InputError(self._unordered)
            if <size_t>len(inputs) != n_in:
                raise InputError(f"the model takes {n_in} input(s) ({_names(self._input_index)}), "
                                 f"got {len(inputs)}")
            for i in range(<Py_ssize_t>n_in):
                keep = _keeper(keep, inputs[i])
                fill_view(inputs[i], &in_views[i], "input", self._inputs[i].name, False, keep)

        # Outputs: which ones, and where they go.
        cdef vector[int32_t] chosen
        cdef const int32_t* out_index = self._all_outputs.data()
        cdef size_t n_out = self._n_out
        cdef tuple names = self._output_names
        if plan is not None:
            names = plan.names
            out_index = plan.out_index.data()
            n_out = plan.out_index.size()
        elif outputs is not None:
            names = _as_names(outputs)
            for name in names:
                index = self._output_index.get(name)
                if index is None:
                    raise InputError(f"unknown output {name!r}; the model's outputs are "
                                     f"{_names(self._output_names)}")
                chosen.push_back(index)
            out_index = chosen.data()
            n_out = chosen.size()

        cdef jb_tensor_view* out_views = _views(call.out_stack, call.out_heap, n_out)
        cdef bint allocating = False
        cdef Py_ssize_t n_placed = 0
        if plan is not None:
            # out= has the plan's keys in its order (fits checked): no name is looked up.
            for i in range(<Py_ssize_t>n_out):
                out_views[i].data = NULL
            allocating = out is None or <size_t>plan.out_slot.size() < n_out
            pos = 0
            for k in range(<Py_ssize_t>plan.out_slot.size()):
                PyDict_Next(out, &pos, &key, &value)
                i = plan.out_slot[k]
                if <object>value is None:
                    allocating = True
                else:
                    keep = _keeper(keep, <object>value)
                    fill_view(<object>value, &out_views[i], "output", names[i], True, keep)
        else:
            for i in range(<Py_ssize_t>n_out):
                target = None if out is None else (<dict>out).get(names[i])
                if target is None:
                    out_views[i].data = NULL
                    allocating = True
                else:
                    keep = _keeper(keep, target)
                    fill_view(target, &out_views[i], "output", names[i], True, keep)
                    n_placed += 1
            if out is not None and n_placed != len(out):
                # The difference is either names this run does not produce, or entries of None (allocate).
                unknown = [n for n in out if n not in names]
                if unknown:
                    raise InputError(f"out= names output(s) {_names(unknown)} that this run does not produce; "
                                     f"it produces {_names(names)}")
            plan = _remember(self, inputs, out, outputs, names, out_index, n_out)

        call.plan = plan
        call.keep = keep
        call.out_views = out_views
        call.out_index = plan.out_index.data()
        call.n_out = n_out
        call.allocating = allocating
        if allocating:
            call.owned.resize(n_out)
            call.owned_ptr = call.owned.data()
        return call

@cython.freelist(8)
cdef class _Call:
    """One call of Session.run or run_async as the core takes it (made by Session._call): views of the
    caller's arrays (inputs in model order, outputs as requested), the outputs' index, the Tensors that
    receive the outputs the runtime allocates, and every object the views point into, held until the
    call is over."""
    cdef jb_tensor_view in_stack[CALL_TENSORS]
    cdef jb_tensor_view out_stack[CALL_TENSORS]
    cdef vector[jb_tensor_view] in_heap
    cdef vector[jb_tensor_view] out_heap
    cdef jb_tensor_view* in_views
    cdef jb_tensor_view* out_views
    cdef const int32_t* out_index  # into plan.out_index
    cdef size_t n_in
    cdef size_t n_out
    cdef bint allocating
    cdef vector[Tensor] owned
    cdef Tensor* owned_ptr
    cdef _Plan plan
    cdef list keep
    cdef object inputs
    cdef object out
    cdef Session session  # run_async's: the Session stays alive until the completion
    cdef object future    # run_async's

    cdef object result(self):
        """The dict of outputs once the core has run the call."""
        cdef _Plan plan = self.plan
        if not self.allocating and plan.out_is_result:
            return PyDict_Copy(self.out)  # the caller's own arrays, written in place, already in output order
        cdef list sources = _sources(plan, self.inputs, self.n_in) if self.allocating else None
        cdef tuple names = plan.names
        cdef Py_ssize_t i
        result = {}
        for i in range(<Py_ssize_t>self.n_out):
            if self.allocating and self.owned[i].holder.get() != NULL:
                result[names[i]] = adopt(self.owned[i], aliased_input(<jb_tensor_view*>&self.owned[i].view,
                                                                      self.in_views, self.n_in, sources))
            else:
                result[names[i]] = (<dict>self.out)[names[i]]  # the caller's own array, written in place
        return result


# Every run_async future not done yet, of every Session: the interpreter waits for them before it
# finalises, since their completions (on runtime and worker threads) still need it.
_in_flight = set()


def _wait_for_runs_in_flight():
    concurrent.futures.wait(list(_in_flight))  # releases the GIL while it waits


atexit.register(_wait_for_runs_in_flight)


cdef void _complete_run_async(void* user_data, Status* status) noexcept with gil:
    """The core's completion of a run_async (a runtime or worker-pool thread): settles the future."""
    cdef _Call call = <_Call>user_data
    Py_DECREF(call)  # the reference run_async gave the core; `call` holds its own
    free_ended_thread_states()
    future = call.future
    try:
        if status.code:
            try:
                raise_status(deref(status))
            except BaseException as error:
                future.set_exception(error)
        else:
            future.set_result(call.result())
    except BaseException as error:  # nothing may escape into the runtime's thread
        if not future.done():
            future.set_exception(error)


cdef _Plan _remember(Session session, object inputs, object out, object outputs, tuple names,
                     const int32_t* out_index, size_t n_out):
    """Records the names this call resolved (every name check has passed) under its signature."""
    cdef _Plan plan = _Plan.__new__(_Plan)
    if type(inputs) is dict:
        plan.in_names = tuple(<dict>inputs)
        for name in plan.in_names:
            plan.in_index.push_back(session._input_index[name])
    plan.out_keys = None if out is None else tuple(<dict>out)
    for name in plan.out_keys or ():
        plan.out_slot.push_back(names.index(name))
    plan.outputs = None if outputs is None else names
    plan.names = names
    plan.out_index.assign(out_index, out_index + n_out)
    plan.out_is_result = plan.out_keys == names
    # The newest first; a caller inventing new names per call pushes the oldest out.
    session._plans = [plan, *session._plans[:MAX_PLANS - 1]]
    return plan


cdef list _sources(_Plan plan, object inputs, size_t n_in):
    """The caller's input objects in model order (an output the runtime allocated may alias one)."""
    if plan.in_names is None:
        return list(inputs)
    cdef list sources = [None] * <Py_ssize_t>n_in
    cdef Py_ssize_t j = 0
    for array in (<dict>inputs).values():
        sources[plan.in_index[j]] = array
        j += 1
    return sources


cdef class Binding:
    """The per-event fast path: inputs and outputs resolved and checked once, then ``run()`` with no
    arguments runs the model on the same buffers. Fill the input arrays in place between runs; the
    outputs are written in place. Made by ``Session.bind``; it keeps the arrays alive."""
    cdef shared_ptr[CSession] _session
    cdef vector[jb_tensor_view] _inputs
    cdef vector[jb_tensor_view] _outputs
    cdef vector[int32_t] _index
    cdef tuple _arrays
    cdef dict _result

    def run(self):
        """Runs the model on the bound buffers; returns the dict of output arrays (the same each time)."""
        cdef Status status
        cdef int rc
        with nogil:
            rc = run_session(deref(self._session), self._inputs.data(), self._inputs.size(), self._index.data(),
                             self._outputs.data(), NULL, self._outputs.size(), &status)
        if rc:
            raise_status(status)
        return self._result

    def __call__(self):
        return self.run()

    @property
    def outputs(self):
        return dict(self._result)


def onnxruntime_info(library=None):
    """Facts about an ONNX Runtime library: the default one, or the one at ``library``."""
    cdef OnnxRuntimeInfo info
    cdef Status status
    cdef string path = os.fspath(library).encode() if library is not None else b""
    if get_onnxruntime_info(path, &info, &status):
        raise_status(status)
    return {"path": info.path.decode(), "version": info.version.decode(),
            "api_version": info.api_version, "build_info": info.build_info.decode(),
            "providers": [p.decode() for p in info.providers]}


def backends():
    """The core's backend registry, one dict per backend (juno_bridge.backends() wraps it)."""
    cdef const vector[BackendInfo]* table = &c_backends()
    cdef size_t i
    found = []
    for i in range(table.size()):
        b = &table.at(i)
        found.append({"name": b.name.decode(), "aliases": tuple(a.decode() for a in b.aliases),
                      "prefixes": tuple(p.decode() for p in b.prefixes),
                      "suffixes": tuple(x.decode() for x in b.suffixes),
                      "directory_marker": b.directory_marker.decode(), "plugin": b.plugin.decode(),
                      "extra": b.extra.decode(), "description": b.description.decode(),
                      "plugin_path": backend_plugin_path(b[0]).decode()})
    return found


def open_backend_count():
    """Backend sessions open in the process now; Sessions sharing one (shared=True) count once."""
    return c_open_backend_count()


def version():
    """The version of the core library this module is linked to."""
    return jb_version().decode()


include "runtime.pxi"
