// The C ABI of hits.h over the C++ scatter: pointers checked, every exception turned into a status.
#include <new>

#include "juno_bridge/hits.h"
#include "juno_bridge/hits.hpp"
#include "last_error.hpp"

extern "C" JB_API jb_status jb_scatter_hits(const jb_tensor_view* pmt_ids, const jb_tensor_view* npe,
                                            const jb_tensor_view* time, const jb_tensor_view* slot, float empty) {
  jb::clear_last_error();
  try {
    if (pmt_ids == nullptr || npe == nullptr || slot == nullptr)
      throw jb::Error(jb::ErrorCode::InvalidArgument, "jb_scatter_hits: pmt_ids, npe or slot is NULL");
    const jb::TensorView none;
    jb::scatter_hits(*jb::from_c(pmt_ids), *jb::from_c(npe), time ? *jb::from_c(time) : none, *jb::from_c(slot),
                     empty);
    return JB_OK;
  } catch (const jb::Error& e) {
    jb::set_last_error(static_cast<jb_status>(e.code()), e.backend_code(), e.what());
    return static_cast<jb_status>(e.code());
  } catch (const std::bad_alloc&) {
    jb::set_last_error(JB_ERROR_RUNTIME, 0, "out of memory");
  } catch (const std::exception& e) {
    jb::set_last_error(JB_ERROR_RUNTIME, 0, e.what());
  }
  return JB_ERROR_RUNTIME;
}
