// Sparse PMT hits -> dense per-event buffers: the step that turns an event as the event model gives it
// (hits of fired PMTs, several per PMT possible) into the [C, N] float32 slot a model reads.
#pragma once

#include <cstddef>
#include <cstdint>

#include "juno_bridge/tensor.hpp"

namespace jb {

constexpr int64_t kLargePmts = 17612;  // JUNO central detector 20-inch PMTs (ids 0..17611)
constexpr int64_t kSmallPmts = 25600;  // 3-inch PMTs

// Fills `slot` (channels x num_pmts float32, C-contiguous): channel 0 the nPE summed per PMT, channel 1
// (when channels >= 2) the first-hit time, the minimum over the PMT's hits. Dark PMTs get `empty` in
// both; channels beyond the second are left as the caller wrote them (e.g. a PMT-type mask). An id
// outside [0, num_pmts) throws jb::Error naming it, before anything is written. `time` may be
// nullptr when channels == 1. A NaN time or nPE propagates, as in numpy.
template <class Id>
void scatter_hits(const Id* pmt_ids, const float* npe, const float* time, size_t num_hits, float* slot,
                  int64_t channels, int64_t num_pmts, float empty = 0.0f);

extern template JB_API void scatter_hits<int32_t>(const int32_t*, const float*, const float*, size_t, float*, int64_t,
                                           int64_t, float);
extern template JB_API void scatter_hits<int64_t>(const int64_t*, const float*, const float*, size_t, float*, int64_t,
                                           int64_t, float);

// The checked form over views: pmt_ids int32 or int64 [H], npe and time float32 [H], slot float32 [C, N]
// (a slot of a [B, C, N] batch is batch.data + b * C * N). Errors name the argument at fault.
JB_API void scatter_hits(const TensorView& pmt_ids, const TensorView& npe, const TensorView& time, const TensorView& slot,
                  float empty = 0.0f);

}  // namespace jb
