// A C++ host with no Python of its own runs a Python algorithm through `python:` and reads the results.
// Usage: python_algorithm <module:attr>   (the algorithm of tests/pyalgos.py `reco`: [B, 2, 16] in)
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "juno_bridge/session.hpp"

int main(int argc, char** argv) {
  const std::string model = std::string("python:") + (argc > 1 ? argv[1] : "pyalgos:reco");
  try {
    jb::Session session(model);
    const int64_t B = 3, N = 16;
    std::vector<float> pmt(B * 2 * N);
    for (size_t i = 0; i < pmt.size(); ++i) pmt[i] = static_cast<float>(i % 11) * 0.5f;
    std::vector<float> vertex(B * 3, -1.0f), energy(B, -1.0f);
    std::vector<jb::TensorView> in = {jb::TensorView::of(pmt.data(), {B, 2, N})};
    std::vector<jb::TensorView> out = {jb::TensorView::of(vertex.data(), {B, 3}), jb::TensorView::of(energy.data(), {B})};
    for (int event = 0; event < 3; ++event) session.run(in, out);  // caller buffers, written in place

    int bad = 0;
    for (int64_t b = 0; b < B; ++b) {
      float expected = 0;
      for (int64_t p = 0; p < N; ++p) expected += pmt[(b * 2 + 0) * N + p];
      if (std::fabs(energy[b] - expected) > 1e-4f * std::fabs(expected) + 1e-4f) ++bad;
      for (int k = 0; k < 3; ++k)
        if (vertex[b * 3 + k] != pmt[(b * 2 + 1) * N + k]) ++bad;
      std::printf("event %lld energy %.3f expected %.3f\n", static_cast<long long>(b), energy[b], expected);
    }
    // Outputs the bridge allocates, with shapes bound from the inputs before the call.
    std::vector<jb::Tensor> owned = session.run(in);
    if (owned.size() != 2 || owned[1].shape() != std::vector<int64_t>{B} || owned[1].data<float>()[2] != energy[2]) ++bad;
    jb::SessionStats stats = session.stats();
    if (stats.input_addresses.size() != 1 || stats.input_addresses[0] != pmt.data()) ++bad;
    std::printf("backend %s, tensors wrapped %llu, input read in place: %s\n", session.backend_name().c_str(),
                static_cast<unsigned long long>(stats.tensors_wrapped),
                stats.input_addresses[0] == pmt.data() ? "yes" : "no");
    // A Python exception becomes a jb::Error with the traceback, and the session stays usable.
    try {
      jb::Session failing("python:pyalgos:failing_on_negative");
      std::vector<float> x = {-1.0f}, y = {0.0f};
      std::vector<jb::TensorView> fin = {jb::TensorView::of(x.data(), {1})}, fout = {jb::TensorView::of(y.data(), {1})};
      try {
        failing.run(fin, fout);
        ++bad;
      } catch (const jb::Error& e) {
        const std::string what = e.what();
        if (e.code() != jb::ErrorCode::Runtime || what.find("ValueError: negative energy") == std::string::npos) ++bad;
        std::printf("error as expected: %s\n", what.substr(what.rfind('\n') + 1).c_str());
      }
      x[0] = 2.0f;
      failing.run(fin, fout);
      if (y[0] != 4.0f) ++bad;
    } catch (const jb::Error& e) {
      std::printf("unexpected: %s\n", e.what());
      ++bad;
    }
    std::printf(bad ? "FAILED %d checks\n" : "OK\n", bad);
    return bad ? 1 : 0;
  } catch (const jb::Error& e) {
    std::printf("error %d: %s\n", static_cast<int>(e.code()), e.what());
    return 2;
  }
}
