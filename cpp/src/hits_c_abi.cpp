// The C ABI of hits.h over the C++ scatter: pointers checked, every exception turned into a status by
// jb::guarded, the same as every entry point of juno_bridge.h.
#include "juno_bridge/hits.h"
#include "juno_bridge/hits.hpp"
#include "last_error.hpp"

extern "C" JB_API jb_status jb_scatter_hits(const jb_tensor_view* pmt_ids, const jb_tensor_view* npe,
                                            const jb_tensor_view* time, const jb_tensor_view* slot, float empty) {
  return jb::guarded([&] {
    if (pmt_ids == nullptr || npe == nullptr || slot == nullptr)
      throw jb::Error(jb::ErrorCode::InvalidArgument, "jb_scatter_hits: pmt_ids, npe or slot is NULL");
    const jb::TensorView none;
    jb::scatter_hits(*jb::from_c(pmt_ids), *jb::from_c(npe), time ? *jb::from_c(time) : none, *jb::from_c(slot),
                     empty);
  });
}
