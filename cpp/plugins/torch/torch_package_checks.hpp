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

// Where the package also holds its ExportedProgram (models/<name>.json, written by torch.export's
// package_pt2), the ranges its dims were exported for ("range_constraints") replace the compiled ones:
// torch compiles a lower bound of 2 for a dim exported from 0 or 1. Symbols it does not name keep theirs.
// Throws std::invalid_argument when the JSON's range_constraints cannot be read.
void apply_exported_ranges(Signature& sig, const std::string& exported_program_json);

}  // namespace jb::torch_plugin
