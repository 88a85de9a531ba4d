# C++ declarations of the core's sparse-hit scatter and batch assembler, for bridge/_hits.pyx.
from libc.stdint cimport int64_t, uint64_t
from libcpp.vector cimport vector
from libcpp.memory cimport shared_ptr

from libjuno_bridge cimport CSession, Status, Tensor, TensorView, jb_tensor_view


cdef extern from "juno_bridge/hits.hpp" namespace "jb" nogil:
    const int64_t kLargePmts  # JUNO's 20-inch PMTs, defined once in C++
    const int64_t kSmallPmts  # its 3-inch PMTs


cdef extern from "juno_bridge/batch_assembler.hpp" namespace "jb" nogil:
    cdef cppclass EventResult "jb::BatchAssembler::EventResult":
        uint64_t event_id
        vector[Tensor] rows

    cdef cppclass CBatchAssembler "jb::BatchAssembler":
        int64_t batch_size()
        size_t pending()
        const TensorView& batch()
        uint64_t runs()


cdef extern from "hits_glue.hpp" namespace "jb" nogil:
    int scatter_hits_checked(const jb_tensor_view& pmt_ids, const jb_tensor_view& npe, const jb_tensor_view& time,
                             const jb_tensor_view& slot, float empty, Status* status)
    int new_assembler(CSession& session, int64_t batch_size, int64_t channels, int64_t num_pmts, float empty,
                      CBatchAssembler** out, Status* status)
    int assembler_next_slot(CBatchAssembler& a, jb_tensor_view* slot, uint64_t* event_id, Status* status)
    int assembler_submit(CBatchAssembler& a, vector[EventResult]* out, Status* status)
    int assembler_add(CBatchAssembler& a, const jb_tensor_view& pmt_ids, const jb_tensor_view& npe,
                      const jb_tensor_view& time, vector[EventResult]* out, Status* status)
    int assembler_flush(CBatchAssembler& a, vector[EventResult]* out, Status* status)
    const jb_tensor_view* as_c_view "jb::as_c"(const TensorView* view)
