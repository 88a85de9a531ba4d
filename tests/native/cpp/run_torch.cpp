// Opens each torch model given on the command line (a .pt2 and a .pt) through the installed
// juno-bridge and runs it, without Python: the torch plugin is found beside libjuno_bridge.so.
// Input: every float32 input of shape [3, ...] filled with 0.01 * i - 0.1. Prints, per model and
// output, "<model> <output> <values...>" for the in-place run, then checks the allocated run agrees.
#include <cmath>
#include <cstdio>
#include <vector>

#include "juno_bridge/session.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL...\n", argv[0]);
    return 2;
  }
  try {
    for (int m = 1; m < argc; ++m) {
      jb::Session session(argv[m]);
      const int64_t batch = 3;
      std::vector<std::vector<float>> in_data, out_data;
      std::vector<jb::TensorView> inputs, outputs;
      auto dims_of = [&](const jb::TensorInfo& info) {
        std::vector<int64_t> dims(info.shape);
        for (auto& d : dims) d = d < 0 ? batch : d;
        return dims;
      };
      for (const auto& info : session.inputs()) {
        auto dims = dims_of(info);
        int64_t n = 1;
        for (int64_t d : dims) n *= d;
        in_data.emplace_back(n);
        for (int64_t i = 0; i < n; ++i) in_data.back()[i] = 0.01f * static_cast<float>(i) - 0.1f;
        inputs.emplace_back(in_data.back().data(), jb::DType::Float32, dims.data(), dims.size());
      }
      for (const auto& info : session.outputs()) {
        auto dims = dims_of(info);
        int64_t n = 1;
        for (int64_t d : dims) n *= d;
        out_data.emplace_back(n, NAN);
        outputs.emplace_back(out_data.back().data(), jb::DType::Float32, dims.data(), dims.size());
      }
      session.run(inputs, outputs);  // in place, into out_data
      std::vector<jb::Tensor> owned = session.run(inputs);  // allocated by the backend
      for (size_t k = 0; k < outputs.size(); ++k) {
        std::printf("%s %s", argv[m], session.outputs()[k].name.c_str());
        for (float v : out_data[k]) std::printf(" %.9g", v);
        std::printf("\n");
        for (size_t i = 0; i < out_data[k].size(); ++i)
          if (owned[k].data<float>()[i] != out_data[k][i]) {
            std::fprintf(stderr, "%s: allocated and in-place outputs differ at %zu\n", argv[m], i);
            return 1;
          }
      }
    }
  } catch (const jb::Error& e) {
    std::fprintf(stderr, "juno-bridge error %d: %s\n", static_cast<int>(e.code()), e.what());
    return 1;
  }
  return 0;
}
