# Binding: Session.bind's per-event fast path (included by _core.pyx).

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
