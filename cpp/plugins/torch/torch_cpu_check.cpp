// Matches an AOTInductor package's target (AOTI_MACHINE, AOTI_CPU_ISA) against this machine.
#include "torch_cpu_check.hpp"

#include <sys/utsname.h>

#include <sstream>

namespace jb::torch_plugin {
namespace {

// The CPU features one AOTI_CPU_ISA word needs (inductor's names, upper-cased); an unknown word is
// not judged (true) because a newer torch may name features this code does not know.
bool cpu_has(const std::string& isa_word) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (isa_word == "AVX2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa_word == "AVX512")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
  if (isa_word == "AVX512_VNNI") return __builtin_cpu_supports("avx512vnni");
  if (isa_word == "AMX_TILE") return __builtin_cpu_supports("amx-tile");
#endif
  return true;
}

}  // namespace

std::string foreign_package_reason(const std::unordered_map<std::string, std::string>& metadata) {
  struct utsname u {};
  uname(&u);
  if (auto it = metadata.find("AOTI_MACHINE"); it != metadata.end() && !it->second.empty() && it->second != u.machine)
    return "was compiled for " + it->second + " machines; this one is " + u.machine;
  if (auto it = metadata.find("AOTI_CPU_ISA"); it != metadata.end()) {
    std::istringstream words(it->second);
    for (std::string w; words >> w;)
      if (!cpu_has(w)) return "was compiled for CPUs with " + it->second + "; this CPU lacks " + w;
  }
  return "";
}

}  // namespace jb::torch_plugin
