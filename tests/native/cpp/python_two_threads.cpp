// Two C++ threads share one `python:` session; the GIL serialises the calls and nothing deadlocks.
#include <atomic>
#include <cmath>
#include <cstdio>
#include <thread>
#include <vector>

#include "juno_bridge/session.hpp"

int main() {
  try {
    jb::Session session("python:pyalgos:reco");
    std::atomic<int> bad{0}, runs{0};
    auto work = [&](int seed) {
      const int64_t B = 2, N = 16;
      std::vector<float> pmt(B * 2 * N), vertex(B * 3), energy(B);
      for (int iteration = 0; iteration < 300; ++iteration) {
        for (size_t i = 0; i < pmt.size(); ++i) pmt[i] = static_cast<float>((i * 7 + seed + iteration) % 13);
        std::vector<jb::TensorView> in = {jb::TensorView::of(pmt.data(), {B, 2, N})};
        std::vector<jb::TensorView> out = {jb::TensorView::of(vertex.data(), {B, 3}),
                                           jb::TensorView::of(energy.data(), {B})};
        try {
          session.run(in, out);
        } catch (const jb::Error& e) {
          std::printf("thread %d: %s\n", seed, e.what());
          ++bad;
          return;
        }
        for (int64_t b = 0; b < B; ++b) {
          float expected = 0;
          for (int64_t p = 0; p < N; ++p) expected += pmt[(b * 2) * N + p];
          if (std::fabs(energy[b] - expected) > 1e-3f) ++bad;
        }
        ++runs;
      }
    };
    std::thread a(work, 1), b(work, 2);
    a.join();
    b.join();
    std::printf("runs %d, bad %d\n%s\n", runs.load(), bad.load(), bad ? "FAILED" : "OK");
    return bad || runs != 600 ? 1 : 0;
  } catch (const jb::Error& e) {
    std::printf("error: %s\n", e.what());
    return 2;
  }
}
