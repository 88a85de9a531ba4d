// The input checks AOTInductor compiles into a package, read back from the wrapper source the package
// keeps beside its library: dtypes, fixed dims, the shape symbols inputs share and each symbol's range.
//
// A .pt2 without juno_bridge's signature (made by torch._inductor.aoti_compile_and_package) is checked
// against these before its compiled code reads anything. The package's own copy of the checks runs only
// under AOTI_RUNTIME_CHECK_INPUTS, which is the user's process-wide setting, not ours to set.
#pragma once

#include <string>

#include "torch_signature.hpp"

namespace jb::torch_plugin {

// Inputs "input_0".. with their dtypes and shapes (dim names: torch's shape symbols, "s77", or the
// expression a dim was compiled as) and each dim name's range, from a package's wrapper source.
// Throws std::invalid_argument when the source does not state every input's checks.
Signature signature_from_wrapper(const std::string& source, size_t num_inputs);

}  // namespace jb::torch_plugin
