// Opens each model given on the command line (any mix of .onnx, .pt2, .pt and SavedModels) in one
// process through the installed juno-bridge and runs them side by side, without Python: the plugins
// are found beside libjuno_bridge.so. Input: every float32 input of shape [3, ...] filled with
// 0.01 * i - 0.1, in 64-byte aligned memory (TensorFlow reads only such memory in place). Prints, per
// model and output, "<model> <output> <values...>" of the in-place run; checks that the allocated run
// agrees and that the backend read each input where the program put it.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "juno_bridge/session.hpp"

namespace {

using Buffer = std::unique_ptr<float, decltype(&std::free)>;

Buffer aligned_floats(int64_t n) {
  const size_t bytes = (static_cast<size_t>(n) * sizeof(float) + 63) / 64 * 64;
  return Buffer(static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64)), &std::free);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL...\n", argv[0]);
    return 2;
  }
  try {
    std::vector<jb::Session> sessions;
    for (int m = 1; m < argc; ++m) sessions.emplace_back(argv[m]);  // all open at once
    for (int m = 1; m < argc; ++m) {
      jb::Session& session = sessions[m - 1];
      const int64_t batch = 3;
      std::vector<Buffer> in_data, out_data;
      std::vector<int64_t> out_sizes;
      std::vector<jb::TensorView> inputs, outputs;
      auto dims_of = [&](const jb::TensorInfo& info) {
        std::vector<int64_t> dims(info.shape);
        for (auto& d : dims) d = d < 0 ? batch : d;
        return dims;
      };
      auto count = [](const std::vector<int64_t>& dims) {
        int64_t n = 1;
        for (int64_t d : dims) n *= d;
        return n;
      };
      for (const auto& info : session.inputs()) {
        auto dims = dims_of(info);
        in_data.push_back(aligned_floats(count(dims)));
        for (int64_t i = 0; i < count(dims); ++i) in_data.back().get()[i] = 0.01f * static_cast<float>(i) - 0.1f;
        inputs.emplace_back(in_data.back().get(), jb::DType::Float32, dims.data(), dims.size());
      }
      for (const auto& info : session.outputs()) {
        auto dims = dims_of(info);
        out_sizes.push_back(count(dims));
        out_data.push_back(aligned_floats(count(dims)));
        for (int64_t i = 0; i < count(dims); ++i) out_data.back().get()[i] = NAN;
        outputs.emplace_back(out_data.back().get(), jb::DType::Float32, dims.data(), dims.size());
      }
      session.run(inputs, outputs);                         // in place, into out_data
      std::vector<jb::Tensor> owned = session.run(inputs);  // allocated by the backend
      const jb::SessionStats stats = session.stats();
      for (size_t i = 0; i < inputs.size(); ++i)
        if (stats.input_addresses.size() == inputs.size() && stats.input_addresses[i] != inputs[i].data) {
          std::fprintf(stderr, "%s: input %zu was not read in place\n", argv[m], i);
          return 1;
        }
      for (size_t k = 0; k < outputs.size(); ++k) {
        std::printf("%s %s", argv[m], session.outputs()[k].name.c_str());
        for (int64_t i = 0; i < out_sizes[k]; ++i) std::printf(" %.9g", out_data[k].get()[i]);
        std::printf("\n");
        for (int64_t i = 0; i < out_sizes[k]; ++i)
          if (owned[k].data<float>()[i] != out_data[k].get()[i]) {
            std::fprintf(stderr, "%s: allocated and in-place outputs differ at %ld\n", argv[m], static_cast<long>(i));
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
