# What juno_bridge._core shares with the package's other extension modules (juno_bridge._hits cimports
# it: `from juno_bridge._core cimport Session, fill_view, raise_status`). Cython finds a module's .pxd by
# the module's full name, juno_bridge._core, hence this folder; bridge/_core.pyx is the implementation.
from libc.stdint cimport int32_t
from libcpp.memory cimport shared_ptr
from libcpp.vector cimport vector

from libjuno_bridge cimport CSession, Status, jb_tensor_view


# The one place a core error becomes a Python exception.
cdef int raise_status(Status& status) except -1

# Points `view` at a numpy array's (or a buffer-protocol or CPU DLPack object's) memory after checking what
# only Python sees: C-contiguous, aligned, writable when it is an output, a supported dtype in native byte
# order, rank. Never copies. Errors name `role 'name'` (or `role` alone when name is None).
cdef int fill_view(object obj, jb_tensor_view* view, str role, object name, bint writable, list keep) except -1

# The numpy type number of a jb dtype code, -1 for none.
cdef int numpy_typenum(int32_t dtype) noexcept


cdef class Session:
    cdef shared_ptr[CSession] _session
    cdef object __weakref__
    cdef readonly str model
    cdef readonly object runtime  # the jb.Runtime it was opened in (None: the process default)
    cdef size_t _n_in
    cdef size_t _n_out
    cdef tuple _inputs
    cdef str _backend  # the backend's name, read at open
    cdef tuple _outputs
    cdef tuple _input_names
    cdef tuple _output_names
    cdef dict _input_index
    cdef dict _output_index
    cdef vector[int32_t] _all_outputs
    cdef list _layouts  # the _CallLayout of each call signature seen lately, newest first (_calls.pxi)
    cdef set _pending  # the run_async futures not done yet (close() waits for them)
    cdef str _unordered  # why a sequence of inputs is refused (the model gives its inputs no order); None: taken

    cdef CSession* _open(self) except NULL
    cdef void _release(self) noexcept
