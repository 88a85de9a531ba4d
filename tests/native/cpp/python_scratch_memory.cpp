// A C++ host runs a Python algorithm that allocates 80 MB of temporaries per call and frees them before it
// returns, as a torch module does (pyalgos:scratch_faults), and prints the minor page faults each call took.
// With the heap keeping freed memory for reuse (the python plugin sets glibc's malloc so), the calls after
// the first take almost none; when the heap gives that memory back each call, every call faults it in again.
// Prints "faults per run: ..." and "freed memory reused: yes|no".
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "juno_bridge/session.hpp"

int main() {
  try {
    jb::Session session("python:pyalgos:scratch_faults");
    std::vector<float> x = {1.0f};
    std::vector<int64_t> faults = {-1};
    std::vector<jb::TensorView> in = {jb::TensorView::of(x.data(), {1})}, out = {jb::TensorView::of(faults.data(), {1})};
    const long pages = 80'000'000L / sysconf(_SC_PAGESIZE);
    bool reused = true;
    std::printf("faults per run:");
    for (int run = 0; run < 6; ++run) {
      session.run(in, out);
      std::printf(" %lld", static_cast<long long>(faults[0]));
      if (run >= 2 && (faults[0] < 0 || faults[0] > pages / 100)) reused = false;  // after two to settle
    }
    std::printf("\nfreed memory reused: %s\n", reused ? "yes" : "no");
    return 0;
  } catch (const jb::Error& e) {
    std::printf("unexpected: %s\n", e.what());
    return 1;
  }
}
