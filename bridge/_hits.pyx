# cython: language_level=3, boundscheck=False, wraparound=False, embedsignature=True
"""Python face of the core's sparse-hit scatter and batch assembler: numpy arrays <-> views, no copies."""
from libc.stdint cimport int64_t, uint64_t, uintptr_t
from libcpp.memory cimport shared_ptr
from libcpp.vector cimport vector

cimport numpy as cnp

from juno_bridge._core cimport Session, fill_view, numpy_typenum, raise_status
from libjuno_bridge cimport (JB_DEVICE_CPU, JB_DTYPE_FLOAT32, JB_DTYPE_INT32, JB_DTYPE_INT64, JB_MAX_RANK, CSession,
                             Status, Tensor, jb_tensor_view)
from libjuno_bridge_hits cimport (CBatchAssembler, EventResult, as_c_view, assembler_add, assembler_flush,
                                  assembler_next_slot, assembler_submit, kLargePmts, kSmallPmts, new_assembler,
                                  scatter_hits_checked)

import numpy as np

from juno_bridge.errors import InputTypeError

cnp.import_array()

NUM_LPMT = kLargePmts  # JUNO's 20-inch PMTs (jb::kLargePmts): the default width of a dense event
NUM_SPMT = kSmallPmts  # its 3-inch PMTs (jb::kSmallPmts)


cdef int view_of(object obj, jb_tensor_view* view, str what, bint writable) except -1:
    """Points `view` at a numpy array's memory, checked as every tensor is (juno_bridge._core.fill_view),
    and only float32 values or int32/int64 ids; anything else is refused, never cast."""
    if not cnp.PyArray_Check(obj):
        raise InputTypeError(f"{what}: expected a numpy array, got {type(obj).__name__}")
    fill_view(obj, view, what, None, writable, None)
    if view.dtype != JB_DTYPE_FLOAT32 and view.dtype != JB_DTYPE_INT32 and view.dtype != JB_DTYPE_INT64:
        raise InputTypeError(f"{what}: dtype {obj.dtype} is not accepted (float32 values, int32/int64 ids)")
    return 0


def scatter_hits(pmt_ids, npe, time, out=None, *, num_pmts=NUM_LPMT, channels=2, empty=0.0):
    """Dense [C, N] float32 from one event's hits: channel 0 nPE summed per PMT, channel 1 first-hit
    time (minimum), ``empty`` for dark PMTs; channels beyond the second are left untouched.

    ``pmt_ids`` int32/int64, ``npe`` and ``time`` float32, one entry per hit (several per PMT allowed).
    ``out`` is written in place (e.g. ``batch[b]`` of a [B, C, N] buffer) and returned; without it a
    [channels, num_pmts] array is allocated. An id outside [0, N) raises InputError naming it.
    """
    cdef jb_tensor_view ids_v, npe_v, time_v, slot_v
    cdef Status status
    cdef float empty_f = empty
    if out is None:
        out = np.empty((channels, num_pmts), np.float32)
    view_of(pmt_ids, &ids_v, "pmt_ids", False)
    view_of(npe, &npe_v, "npe", False)
    if time is None:
        time_v.data = NULL
        time_v.device = JB_DEVICE_CPU
        time_v.device_id = 0
        time_v.dtype = 1
        time_v.rank = 1
        time_v.shape[0] = 0
    else:
        view_of(time, &time_v, "time", False)
    view_of(out, &slot_v, "out", True)
    cdef int rc
    with nogil:
        rc = scatter_hits_checked(ids_v, npe_v, time_v, slot_v, empty_f, &status)
    if rc:
        raise_status(status)
    return out


ctypedef int (*Completion)(CBatchAssembler& a, vector[EventResult]* out, Status* status) noexcept nogil


cdef class _BatchMemory:
    """Keeps a batch output alive for as long as any row array that views it."""
    cdef shared_ptr[void] holder


cdef object _row_array(Tensor& t, dict holders):
    cdef const jb_tensor_view* v = as_c_view(&t.view)
    cdef cnp.npy_intp dims[JB_MAX_RANK]
    cdef int d
    for d in range(v.rank):
        dims[d] = v.shape[d]
    key = <uintptr_t>t.holder.get()
    memory = holders.get(key)
    if memory is None:
        memory = _BatchMemory.__new__(_BatchMemory)
        (<_BatchMemory>memory).holder = t.holder
        holders[key] = memory
    arr = cnp.PyArray_SimpleNewFromData(v.rank, dims, numpy_typenum(v.dtype), v.data)
    cnp.set_array_base(arr, memory)
    return arr


cdef list _results(vector[EventResult]& results, tuple names):
    cdef size_t e, k
    cdef dict holders = {}
    out = []
    for e in range(results.size()):
        rows = {}
        for k in range(results[e].rows.size()):
            rows[names[k]] = _row_array(results[e].rows[k], holders)
        out.append((results[e].event_id, rows))
    return out


cdef class BatchAssembler:
    """Per-event callers, batched inference: B event slots in one 64-byte aligned [B, C, N] buffer.

        asm = jb.BatchAssembler(session, 64)
        for ev in events:
            for event_id, rows in asm.add(ev.pmt_ids, ev.npe, ev.time):   # results when a batch ran
                use(event_id, rows["energy"])
        for event_id, rows in asm.flush(): ...

    Rows are views of the batch's outputs (no copy). The session's only input must be float32
    [B, C, N]. Not for sharing between threads: one assembler per stream.
    """
    cdef CBatchAssembler* _asm
    cdef shared_ptr[CSession] _session
    cdef readonly object session
    cdef tuple _names
    cdef object _slot

    def __cinit__(self):
        self._asm = NULL

    def __init__(self, session, int64_t batch_size, *, int64_t channels=2, int64_t num_pmts=NUM_LPMT,
                 float empty=0.0):
        cdef Status status
        if not isinstance(session, Session):
            raise InputTypeError(f"session: expected a juno_bridge.Session, got {type(session).__name__}")
        (<Session>session)._open()
        self._session = (<Session>session)._session
        self.session = session
        self._names = tuple(o.name for o in session.outputs())
        if new_assembler(self._session.get()[0], batch_size, channels, num_pmts, empty, &self._asm, &status):
            raise_status(status)
        cdef const jb_tensor_view* b = as_c_view(&self._asm.batch())
        cdef cnp.npy_intp dims[3]
        dims[0], dims[1], dims[2] = b.shape[0], b.shape[1], b.shape[2]
        self._slot = cnp.PyArray_SimpleNewFromData(3, dims, cnp.NPY_FLOAT32, b.data)
        cnp.set_array_base(self._slot, self)  # the buffer lives as long as the assembler

    def __dealloc__(self):
        del self._asm  # before the session it refers to

    @property
    def batch(self):
        """The whole [B, C, N] buffer (a view; slot b is batch[b])."""
        return self._slot

    @property
    def batch_size(self):
        return self._asm.batch_size()

    @property
    def pending(self):
        """Events filled and waiting for the next run."""
        return self._asm.pending()

    @property
    def runs(self):
        return self._asm.runs()

    def next_slot(self):
        """(event_id, slot): the next free [C, N] slot, to fill in place before submit()."""
        cdef jb_tensor_view v
        cdef uint64_t event_id
        cdef Status status
        if assembler_next_slot(self._asm[0], &v, &event_id, &status):
            raise_status(status)
        index = (<uintptr_t>v.data - <uintptr_t>cnp.PyArray_DATA(<cnp.ndarray>self._slot)) // (v.shape[0] * v.shape[1] * 4)
        return event_id, self._slot[index]

    cdef list _complete(self, Completion step):
        """Runs submit or flush with the GIL released; the rows of the events whose batch ran."""
        cdef vector[EventResult] results
        cdef Status status
        cdef int rc
        with nogil:
            rc = step(self._asm[0], &results, &status)
        if rc:
            raise_status(status)
        return _results(results, self._names)

    def submit(self):
        """Marks the slot filled; returns [(event_id, {output: row})] when that completed a batch, else []."""
        return self._complete(assembler_submit)

    def add(self, pmt_ids, npe, time):
        """One event from its hits (scatter into the next slot, then submit)."""
        cdef jb_tensor_view ids_v, npe_v, time_v
        cdef vector[EventResult] results
        cdef Status status
        cdef int rc
        view_of(pmt_ids, &ids_v, "pmt_ids", False)
        view_of(npe, &npe_v, "npe", False)
        view_of(time, &time_v, "time", False)
        with nogil:
            rc = assembler_add(self._asm[0], ids_v, npe_v, time_v, &results, &status)
        if rc:
            raise_status(status)
        return _results(results, self._names)

    def flush(self):
        """Runs the filled slots now; returns their [(event_id, {output: row})]."""
        return self._complete(assembler_flush)
