#include "juno_bridge/tensor.hpp"

namespace jb {

std::string TensorInfo::shape_string() const {
  if (!rank_known) return "[unknown rank]";
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += i ? ", " : "";
    if (shape[i] >= 0) s += std::to_string(shape[i]);
    else s += i < dim_names.size() && dim_names[i] ? *dim_names[i] : "?";
  }
  return s + "]";
}

}  // namespace jb
