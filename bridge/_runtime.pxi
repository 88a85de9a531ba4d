# jb.Runtime: what Sessions share (the shared backend sessions, the executor of run_async), owned by the
# caller (included by _core.pyx).

cdef int _hand_to_executor(void* executor, RuntimeTask* task) noexcept with gil:
    # Called by the core (runtime.hpp) for each piece of asynchronous work: the Python executor gets a
    # callable that runs it. An executor that raises is reported, and the work runs here instead.
    cdef _Task handle = _Task.__new__(_Task)
    handle._task = task
    try:
        (<object>executor)(handle)
        return 0
    except BaseException as error:
        logging.getLogger("juno_bridge.runtime").error("the runtime's executor raised %r; the run goes on, on the "
                                                        "calling thread", error)
        return -1


@cython.final
cdef class _Task:
    """One piece of a Runtime's asynchronous work: call it once, on any thread (the GIL is released while
    it runs). Made by the runtime for its executor."""
    cdef RuntimeTask* _task

    def __call__(self):
        cdef RuntimeTask* task = self._task
        if task is NULL:
            raise InvalidArgumentError("this task has already run")
        self._task = NULL
        with nogil:
            run_task(task)
            del task

    def __dealloc__(self):
        # Never run (an executor that dropped it): freeing it ends the run unfinished, its Session's flight
        # and the runtime's count released, and its future never settled.
        if self._task is not NULL:
            del self._task


cdef class Runtime:
    """What Sessions share, owned by the caller: a framework's service, a test, a job.

    A runtime holds the cache of shared backend sessions (Sessions of the same model and options opened
    with ``runtime=`` this one share one backend session; two runtimes never share) and the executor of
    ``run_async``'s work: a pool of ``async_threads`` threads (started on first use), the calling thread
    (``async_threads=0``: ``run_async`` returns once the run is done), or ``executor``, a callable
    ``executor(task)`` that arranges for ``task()`` to run once, on any thread (a framework's own pool).
    Sessions opened without ``runtime=`` use the process default, whose pool has
    ``$JUNO_BRIDGE_ASYNC_THREADS`` threads (default: the number of cores). ONNX Runtime's environment and
    the log sink stay process-wide.

    ``close()`` (or leaving a ``with`` block) refuses new Sessions, waits for the runs in flight of the
    runtime's Sessions, closes them and stops the pool.
    """
    cdef shared_ptr[CRuntime] _runtime  # shared with a framework's service where it owns the runtime
    cdef readonly object executor
    cdef readonly str service  # the SNiPER JunoBridgeSvc whose runtime this is (None: the caller's own)

    def __init__(self, async_threads=None, *, executor=None):
        cdef Status status
        cdef int threads
        cdef unique_ptr[CRuntime] made
        if executor is not None:
            if async_threads is not None:
                raise InvalidArgumentError("give async_threads or executor, not both")
            if not callable(executor):
                raise InvalidArgumentError(f"executor must be callable as executor(task), got {executor!r}")
            self.executor = executor
            if make_runtime_with_executor(_hand_to_executor, <void*>executor, &made, &status):
                raise_status(status)
            self._runtime.reset(made.release())
            return
        if async_threads is None:
            threads = -1
        elif isinstance(async_threads, bool) or not isinstance(async_threads, int) or async_threads < 0:
            raise InvalidArgumentError(f"async_threads must be None (the default pool), 0 (the calling thread) or a "
                                       f"number of threads, got {async_threads!r}")
        else:
            threads = async_threads
        if make_runtime(threads, &made, &status):
            raise_status(status)
        self._runtime.reset(made.release())

    cdef CRuntime* _get(self) except NULL:
        if not self._runtime:
            raise InvalidArgumentError("the runtime is not initialised")
        return self._runtime.get()

    def close(self):
        """Refuses new Sessions, waits for the runs in flight of this runtime's Sessions (the GIL is free
        meanwhile), closes those Sessions and stops the pool's threads."""
        cdef CRuntime* runtime = self._get()
        with nogil:
            runtime.close()

    @property
    def closed(self):
        return not self._get().is_open()

    @property
    def executor_kind(self):
        """"pool" (the runtime's threads), "caller" (async_threads=0) or "executor"."""
        return self._get().executor_kind().decode()

    @property
    def async_threads(self):
        """The pool's size (0 without a pool)."""
        return self._get().async_threads()

    @property
    def started_threads(self):
        """The pool threads started so far."""
        return self._get().started_threads()

    def open_backend_count(self):
        """Backend sessions open in this runtime (a shared one counts once)."""
        return self._get().open_backend_count()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __dealloc__(self):
        cdef shared_ptr[CRuntime] runtime
        runtime.swap(self._runtime)
        with nogil:
            runtime.reset()  # the last holder closes it: its Sessions' runs finish first

    def __repr__(self):
        if not self._runtime:
            return "Runtime(<uninitialised>)"
        kind = self.executor_kind
        detail = f"{self.async_threads} threads" if kind == "pool" else kind
        of = f", of {self.service}" if self.service is not None else ""
        return f"Runtime({detail}{of}{', closed' if self.closed else ''})"


def _service_runtime(capsule, str service, uintptr_t core):
    """The jb.Runtime over a SNiPER JunoBridgeSvc's runtime (juno_bridge.sniper.SessionAlg): `capsule` holds a
    std::shared_ptr to it, made by the SNiPER package, whose juno-bridge core's jb_version lies at `core`.
    The service closes it at its finalize, whoever holds it."""
    if core != <uintptr_t>&jb_version:
        raise InvalidArgumentError(f"the SNiPER package links another juno-bridge core than this Python module "
                                   f"(two libjuno_bridge are loaded): service {service}'s runtime cannot be used "
                                   f"from Python")
    cdef shared_ptr[CRuntime]* held = <shared_ptr[CRuntime]*>PyCapsule_GetPointer(capsule, b"juno_bridge.shared_runtime")
    cdef Runtime runtime = Runtime.__new__(Runtime)
    runtime._runtime = held[0]
    runtime.service = service
    return runtime
