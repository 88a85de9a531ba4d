/* juno-bridge C ABI for sparse PMT hits -> dense buffers (see hits.hpp for the C++ form).
 * Same conventions as juno_bridge.h: a status, and a message for jb_last_error_message(). */
#ifndef JUNO_BRIDGE_HITS_H
#define JUNO_BRIDGE_HITS_H

#include "juno_bridge/juno_bridge.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Scatters one event's hits into `slot`, a float32 [C, N] view (a slot of a [B, C, N] batch buffer):
 * channel 0 the nPE summed per PMT, channel 1 (C >= 2) the first-hit time (minimum); dark PMTs get
 * `empty`; channels beyond the second are left untouched. pmt_ids: int32 or int64 [H]; npe, time:
 * float32 [H] (time may be NULL when C == 1). An id outside [0, N) is JB_ERROR_INPUT, nothing written. */
JB_API jb_status jb_scatter_hits(const jb_tensor_view* pmt_ids, const jb_tensor_view* npe, const jb_tensor_view* time,
                                 const jb_tensor_view* slot, float empty);

#ifdef __cplusplus
}
#endif
#endif /* JUNO_BRIDGE_HITS_H */
