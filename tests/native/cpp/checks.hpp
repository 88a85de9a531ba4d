// The PASS/FAIL lines the C++ test programs print, and their last line, "N passed, M failed", which ctest and
// the Python tests read.
#pragma once

#include <cstdio>
#include <string>

namespace jb_test {

inline int passed = 0, failed = 0;

inline bool check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "PASS" : "FAIL", what.c_str());
  (ok ? passed : failed)++;
  return ok;
}

// Prints the last line; the program's exit status.
inline int summary() {
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace jb_test
