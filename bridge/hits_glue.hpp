// What bridge/_hits.pyx calls: the scatter and the batch assembler wrapped so that no C++ exception
// crosses into Cython (same convention as glue.hpp, whose Status and fail_with_current it reuses).
#pragma once

#include <vector>

#include "glue.hpp"
#include "juno_bridge/batch_assembler.hpp"
#include "juno_bridge/hits.hpp"

namespace jb {

inline int scatter_hits_checked(const jb_tensor_view& pmt_ids, const jb_tensor_view& npe, const jb_tensor_view& time,
                                const jb_tensor_view& slot, float empty, Status* status) noexcept {
  JB_GUARD(scatter_hits(*from_c(&pmt_ids), *from_c(&npe), *from_c(&time), *from_c(&slot), empty))
}

inline int new_assembler(Session& session, int64_t batch_size, int64_t channels, int64_t num_pmts, float empty,
                         BatchAssembler** out, Status* status) noexcept {
  JB_GUARD(*out = new BatchAssembler(session, batch_size, channels, num_pmts, empty))
}

inline int assembler_next_slot(BatchAssembler& a, jb_tensor_view* slot, uint64_t* event_id, Status* status) noexcept {
  JB_GUARD(*from_c(slot) = a.next_slot(event_id))
}

inline int assembler_submit(BatchAssembler& a, std::vector<BatchAssembler::EventResult>* out, Status* status) noexcept {
  JB_GUARD(*out = a.submit())
}

inline int assembler_add(BatchAssembler& a, const jb_tensor_view& pmt_ids, const jb_tensor_view& npe,
                         const jb_tensor_view& time, std::vector<BatchAssembler::EventResult>* out,
                         Status* status) noexcept {
  JB_GUARD(*out = a.add(*from_c(&pmt_ids), *from_c(&npe), *from_c(&time)))
}

inline int assembler_flush(BatchAssembler& a, std::vector<BatchAssembler::EventResult>* out, Status* status) noexcept {
  JB_GUARD(*out = a.flush())
}


}  // namespace jb
