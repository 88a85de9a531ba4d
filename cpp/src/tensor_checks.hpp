// Shared by Session and its checks (tensor_checks.cpp).
#pragma once

#include <string>
#include <vector>

#include "juno_bridge/tensor.hpp"

namespace jb {

// "'a', 'b'" (or "none"): the names of a model's inputs or outputs, for messages.
std::string known_names(const std::vector<TensorInfo>& infos);

// Option bfloat16_as_uint16: the backend sees bfloat16 where the caller's uint16 views hold its bits (the
// same memory, relabelled in a copy of the view array; `index` maps views to infos, nullptr for 0..n-1),
// and the caller sees uint16 where the backend made a bfloat16 output.
std::vector<TensorView> bits_as_bfloat16(const TensorView* views, size_t n, const std::vector<TensorInfo>& infos,
                                         const int32_t* index);
void bfloat16_as_bits(TensorView& view);

}  // namespace jb
