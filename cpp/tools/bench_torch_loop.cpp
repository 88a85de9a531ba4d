// A C++ event loop over one juno-bridge Session, for the benchmark's "from a C++ loop" rows:
//   bench_torch_loop MODEL BATCH ITERATIONS WARMUP
// Every input is float32 with dynamic dims set to BATCH; outputs are written in place into buffers
// allocated once, as a framework's execute() would. One intra-op thread. Prints one JSON line.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "juno_bridge/session.hpp"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s MODEL BATCH ITERATIONS WARMUP\n", argv[0]);
    return 2;
  }
  const int64_t batch = std::atoll(argv[2]);
  const int iterations = std::atoi(argv[3]), warmup = std::atoi(argv[4]);
  try {
    jb::SessionOptions options;
    options.intra_op_threads = 1;
    jb::Session session(argv[1], options);
    std::vector<std::vector<float>> buffers;
    auto views = [&](const std::vector<jb::TensorInfo>& infos, float fill) {
      std::vector<jb::TensorView> out;
      for (const auto& info : infos) {
        std::vector<int64_t> dims(info.shape);
        int64_t n = 1;
        for (auto& d : dims) n *= (d = d < 0 ? batch : d);
        buffers.emplace_back(n, fill);
        out.emplace_back(buffers.back().data(), jb::DType::Float32, dims.data(), dims.size());
      }
      return out;
    };
    std::vector<jb::TensorView> inputs = views(session.inputs(), 0.5f), outputs = views(session.outputs(), 0.f);
    std::vector<double> us;
    us.reserve(iterations);
    for (int i = 0; i < warmup + iterations; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      session.run(inputs, outputs);
      auto t1 = std::chrono::steady_clock::now();
      if (i >= warmup) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    std::sort(us.begin(), us.end());
    auto at = [&](double q) { return us.empty() ? 0.0 : us[static_cast<size_t>(q * (us.size() - 1))]; };
    std::printf("{\"model\": \"%s\", \"batch\": %lld, \"iterations\": %d, \"median_us\": %.3f, \"p90_us\": %.3f}\n",
                argv[1], static_cast<long long>(batch), iterations, at(0.5), at(0.9));
  } catch (const jb::Error& e) {
    std::fprintf(stderr, "juno-bridge error: %s\n", e.what());
    return 1;
  }
  return 0;
}
