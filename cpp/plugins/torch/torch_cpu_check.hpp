// Whether this machine can run an AOTInductor package: its compiled code targets one architecture
// and one set of vector extensions, and would die of an illegal instruction elsewhere.
#pragma once

#include <string>
#include <unordered_map>

namespace jb::torch_plugin {

// "" when the package's metadata (AOTI_MACHINE, AOTI_CPU_ISA) fits this machine, else why not,
// e.g. "was compiled for CPUs with AVX512; this CPU lacks AVX512".
std::string foreign_package_reason(const std::unordered_map<std::string, std::string>& metadata);

}  // namespace jb::torch_plugin
