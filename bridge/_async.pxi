# run_async's completions and the runs in flight at exit (included by _core.pyx).

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
