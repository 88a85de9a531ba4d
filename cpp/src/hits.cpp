#include "juno_bridge/hits.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

namespace jb {

namespace {

// Filling the dense slot costs more than scattering the few hits, and a plain loop is not vectorised
// at -O2: memset when `value` is +0.0, else a block of 64 copied by fixed-size memcpy (vector moves).
void fill_floats(float* out, int64_t count, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if (bits == 0) {
    std::memset(out, 0, static_cast<size_t>(count) * sizeof(float));
    return;
  }
  constexpr int64_t kBlock = 64;
  float block[kBlock];
  for (float& f : block) f = value;
  int64_t i = 0;
  for (; i + kBlock <= count; i += kBlock) std::memcpy(out + i, block, sizeof block);
  for (; i < count; ++i) out[i] = value;
}

}  // namespace

template <class Id>
void scatter_hits(const Id* pmt_ids, const float* npe, const float* time, size_t num_hits, float* slot,
                  int64_t channels, int64_t num_pmts, float empty) {
  if (channels < 1 || num_pmts < 0)
    throw Error(ErrorCode::InvalidArgument, "scatter_hits: slot needs channels >= 1 and num_pmts >= 0, got [" +
                                                std::to_string(channels) + ", " + std::to_string(num_pmts) + "]");
  if (num_hits && (pmt_ids == nullptr || npe == nullptr || (channels >= 2 && time == nullptr)))
    throw Error(ErrorCode::InvalidArgument, "scatter_hits: pmt_ids, npe or time is NULL");
  if (slot == nullptr && num_pmts > 0) throw Error(ErrorCode::InvalidArgument, "scatter_hits: slot is NULL");
  // Every id is checked before anything is written, so a bad event leaves the slot as it was.
  for (size_t h = 0; h < num_hits; ++h)
    if (pmt_ids[h] < 0 || static_cast<int64_t>(pmt_ids[h]) >= num_pmts)
      throw Error(ErrorCode::Input, "scatter_hits: pmt id " + std::to_string(pmt_ids[h]) + " (hit " +
                                        std::to_string(h) + ") is out of range [0, " + std::to_string(num_pmts) +
                                        ")");
  float* __restrict charge = slot;  // the hit arrays never alias the slot: loads need no reload
  fill_floats(charge, num_pmts, empty);
  if (channels == 1) {
    for (size_t h = 0; h < num_hits; ++h) charge[pmt_ids[h]] = 0.0f;
    for (size_t h = 0; h < num_hits; ++h) charge[pmt_ids[h]] += npe[h];
    return;
  }
  float* __restrict first = slot + num_pmts;
  fill_floats(first, num_pmts, empty);
  // Two passes over the few hits instead of a "seen" mask over all PMTs: the first resets the lit PMTs
  // to the identities of sum and min, the second accumulates (duplicates in any order).
  constexpr float kInf = std::numeric_limits<float>::infinity();
  for (size_t h = 0; h < num_hits; ++h) {
    charge[pmt_ids[h]] = 0.0f;
    first[pmt_ids[h]] = kInf;
  }
  for (size_t h = 0; h < num_hits; ++h) {
    const Id id = pmt_ids[h];
    charge[id] += npe[h];
    const float t = time[h], current = first[id];
    first[id] = (t < current || std::isnan(t)) ? t : current;  // numpy's minimum: NaN wins
  }
}

template JB_API void scatter_hits<int32_t>(const int32_t*, const float*, const float*, size_t, float*, int64_t, int64_t,
                                    float);
template JB_API void scatter_hits<int64_t>(const int64_t*, const float*, const float*, size_t, float*, int64_t, int64_t,
                                    float);

namespace {

// A view's rank comes from the caller (the C ABI): a rank outside [0, kMaxRank] cannot be printed as
// a shape, and reading its dims would run past the view.
// The scatter reads and writes on the host.
void check_rank(const TensorView& v, const char* what, int32_t expected, const char* dims) {
  if (!v.device.host())
    throw Error(ErrorCode::Input, std::string("scatter_hits: ") + what + ": expected host memory, got " +
                                      v.device.name() + " memory (the scatter runs on the CPU)");
  if (v.rank == expected) return;
  const std::string got = v.rank >= 0 && v.rank <= kMaxRank ? "rank " + std::to_string(v.rank) + " " +
                                                                   shape_string(v.shape, v.rank)
                                                             : "invalid rank " + std::to_string(v.rank);
  throw Error(ErrorCode::Input, std::string("scatter_hits: ") + what + ": expected rank " +
                                    std::to_string(expected) + " " + dims + ", got " + got);
}

void check_aligned(const TensorView& v, const char* what) {
  if (reinterpret_cast<uintptr_t>(v.data) % dtype_size(v.dtype) != 0)
    throw Error(ErrorCode::Input, std::string("scatter_hits: ") + what + ": data at " +
                                      std::to_string(reinterpret_cast<uintptr_t>(v.data)) + " is not aligned to its " +
                                      std::to_string(dtype_size(v.dtype)) + "-byte elements");
}

void check_hit_array(const TensorView& v, const char* what, int64_t num_hits) {
  check_rank(v, what, 1, "[hits]");
  if (v.shape[0] != num_hits)
    throw Error(ErrorCode::Input, std::string("scatter_hits: ") + what + ": expected shape [" +
                                      std::to_string(num_hits) + "] (one entry per hit), got " +
                                      shape_string(v.shape, v.rank));
  if (v.dtype != DType::Float32)
    throw Error(ErrorCode::InputType, std::string("scatter_hits: ") + what + ": expected dtype float32, got " +
                                          dtype_name(v.dtype));
  check_aligned(v, what);
}

}  // namespace

void scatter_hits(const TensorView& pmt_ids, const TensorView& npe, const TensorView& time, const TensorView& slot,
                  float empty) {
  check_rank(pmt_ids, "pmt_ids", 1, "[hits]");
  if (pmt_ids.shape[0] < 0)
    throw Error(ErrorCode::Input, "scatter_hits: pmt_ids: negative number of hits " + std::to_string(pmt_ids.shape[0]));
  if (pmt_ids.dtype != DType::Int32 && pmt_ids.dtype != DType::Int64)
    throw Error(ErrorCode::InputType, std::string("scatter_hits: pmt_ids: expected dtype int32 or int64, got ") +
                                          dtype_name(pmt_ids.dtype));
  check_aligned(pmt_ids, "pmt_ids");
  const int64_t num_hits = pmt_ids.shape[0];
  check_hit_array(npe, "npe", num_hits);
  if (slot.dtype != DType::Float32)
    throw Error(ErrorCode::InputType, std::string("scatter_hits: slot: expected dtype float32, got ") +
                                          dtype_name(slot.dtype));
  check_rank(slot, "slot", 2, "[channels, pmts]");
  check_aligned(slot, "slot");
  const int64_t channels = slot.shape[0], num_pmts = slot.shape[1];
  // The scatter addresses channel * num_pmts + id: the slot's byte count must fit in memory at all.
  if (slot.nbytes() > static_cast<size_t>(PTRDIFF_MAX) && channels >= 1 && num_pmts >= 0)
    throw Error(ErrorCode::Input, "scatter_hits: slot: shape " + shape_string(slot.shape, slot.rank) +
                                      " is too large (its byte count overflows)");
  if (channels >= 2) check_hit_array(time, "time", num_hits);
  // The slot is written before the ids are read again: a slot over a hit array would change the ids.
  const std::pair<const TensorView*, const char*> hit_arrays[] = {{&pmt_ids, "pmt_ids"}, {&npe, "npe"}, {&time, "time"}};
  for (const auto& [array, what] : hit_arrays)
    if ((array != &time || channels >= 2) && views_overlap(slot, *array))
      throw Error(ErrorCode::Input, std::string("scatter_hits: slot overlaps ") + what);
  auto* out = static_cast<float*>(slot.data);
  auto* q = static_cast<const float*>(npe.data);
  auto* t = channels >= 2 ? static_cast<const float*>(time.data) : nullptr;
  if (pmt_ids.dtype == DType::Int32)
    scatter_hits(static_cast<const int32_t*>(pmt_ids.data), q, t, static_cast<size_t>(num_hits), out, channels,
                 num_pmts, empty);
  else
    scatter_hits(static_cast<const int64_t*>(pmt_ids.data), q, t, static_cast<size_t>(num_hits), out, channels,
                 num_pmts, empty);
}

}  // namespace jb
