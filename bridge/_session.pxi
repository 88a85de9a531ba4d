# Session: opening a model, what it says of itself, run, bind, run_async, close (included by _core.pyx).

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
    shared sessions and executor of run_async; closed with it), else the process default runtime.
    ``async_runs`` chooses how ``run_async`` runs: "native" through the backend's own asynchronous call
    (ONNX Runtime's RunAsync, with 2+ intra-op threads; Triton's async_infer), "pool" by the runtime's
    executor (the process default's is a worker pool), "auto" (default) native except for ONNX Runtime
    on the CPU, whose RunAsync is slower there than the pool; ``async_mode`` says what was got.

    bfloat16 tensors are ``ml_dtypes.bfloat16`` arrays; ``bfloat16_as_uint16=True`` takes and gives them
    as ``uint16`` arrays of their bits instead (the same memory; a uint16 array is refused without it).

    ``cuda_graph=True`` (ONNX Runtime with ``providers=("cuda", "cpu")``) captures the first run as a CUDA
    graph and replays it: the shapes and buffers must stay those of the first run (``bind()``), in CUDA
    memory. ``devices`` says which memory the session takes in place.

    ``output_device="cuda"`` (ONNX Runtime with ``providers=("cuda", "cpu")``, or the torch plugin for a
    model on a GPU): the outputs given no ``out=`` buffer are allocated on the GPU and returned there,
    zero-copy, as torch tensors (torch with CUDA installed), else CuPy arrays, else ``RuntimeMemory`` objects
    (DLPack: ``cupy.from_dlpack(m)``). A session that cannot compute on a GPU is refused, never given host
    outputs. ``staging="pinned"`` (a session that copies its inputs to a GPU) copies pageable host arrays,
    inputs and ``out=``, through pinned buffers of the session's own, which the GPU reads at the bus's
    speed; pinned (``empty()``) and device memory pass as they are, ``_stats()`` counts what was staged.
    """
    # The attributes are declared in bridge/juno_bridge/_core.pxd (juno_bridge._hits reads _session).

    def __init__(self, model, *, backend=None, intra_op_threads=0, inter_op_threads=0,
                 optimization="all", providers=("cpu",), onnxruntime=None, log_level="warning",
                 execution_mode="sequential", global_thread_pool=False, require_providers=False,
                 shared=True, async_runs="auto", bfloat16_as_uint16=False, cuda_graph=False, config=None,
                 runtime=None, output_device="cpu", staging="off"):
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
                    "async_runs": async_runs, "bfloat16_as_uint16": int(bool(bfloat16_as_uint16)),
                    "cuda_graph": int(bool(cuda_graph)), "output_device": output_device, "staging": staging}
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
        self._input_names = tuple(info.name for info in self._inputs)
        self._output_names = tuple(info.name for info in self._outputs)
        for i in range(self._n_out):
            self._all_outputs.push_back(i)
        self._layouts = []
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
        into memory not the caller's since open (TensorFlow's unaligned ones; staging's, and the bytes it
        copied), and where the runtime reads each input (the address it reports for the last bound input)."""
        cdef SessionStats st
        cdef Status status
        if session_stats(deref(self._open()), &st, &status):
            raise_status(status)
        return {"tensors_wrapped": st.tensors_wrapped, "inputs_staged": st.inputs_staged,
                "input_addresses": [<uintptr_t>st.input_addresses[i] for i in range(st.input_addresses.size())],
                "bytes_staged": st.bytes_staged, "backend_id": st.backend_id, "backend_users": st.backend_users}

    @property
    def backend(self):
        self._open()
        return self._backend

    @property
    def providers(self):
        """The execution providers the session uses, in order ("cuda", "cpu"): the first of the wanted
        ones that initialised; [] for a backend without providers."""
        return [p.decode() for p in self._open().providers()]

    @property
    def devices(self):
        """The memory the session computes from in place: "cpu" (host memory, pinned or not), then the GPUs
        it runs on ("cuda:0" for ONNX Runtime with the CUDA provider). Tensors elsewhere are refused, never
        copied."""
        return [d.name().decode() for d in self._open().devices()]

    def empty(self, shape, dtype=np.float32):
        """An uninitialised numpy array to fill with inputs, in the memory the session reads fastest: pinned
        (page-locked) host memory where it copies inputs to a GPU, so that copy runs at the bus's speed; plain
        aligned host memory otherwise. ``array.base.device`` says which ("cuda_pinned" or "cpu")."""
        return session_empty(self._open(), shape, dtype)

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
        cdef _Call call = _Call.__new__(_Call)
        try:
            call.inputs = _inputs_of(inputs)
            call.out = out if out is None or type(out) is dict else dict(out)
            call.layout = _lay_out(self, call.inputs, call.out, outputs, call.views)
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
        rc = run_session_async(deref(session), call.views.inputs, call.views.num_inputs, call.views.output_index,
                               call.views.outputs, call.views.owned, call.views.num_outputs, _complete_run_async,
                               <void*>call, &status)
        if rc:
            Py_DECREF(call)
            try:
                _raise_run_status(self, call.layout.in_names, status)
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
        array to be written in place (returned as is: a dict ``out`` that holds exactly the outputs produced,
        in output order, is itself the result). ``outputs``: names of the outputs wanted (all by default).
        Outputs not in ``out`` are allocated by the runtime and returned without a copy.
        """
        cdef shared_ptr[CSession] session = self._session  # keeps the model alive while the GIL is free
        if not session:
            raise InvalidArgumentError("the session is closed")
        if type(inputs) is not dict:
            inputs = _inputs_of(inputs)
        if out is not None and type(out) is not dict:
            out = dict(out)
        cdef CallViews views
        cdef _CallLayout layout = _lay_out(self, inputs, out, outputs, views)
        cdef Status status
        cdef int rc
        with nogil:
            rc = run_session(deref(session), views.inputs, views.num_inputs, views.output_index, views.outputs,
                             views.owned, views.num_outputs, &status)
        if rc:
            _raise_run_status(self, layout.in_names, status)
        return _result(layout, views, inputs, out)
