// A C++ program that only runs an ONNX model never loads libpython: the core keeps Python in its plugin.
// Usage: onnx_without_python <model.onnx>   (one float32 input [B, 32], one output)
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "juno_bridge/session.hpp"

static bool libpython_mapped() {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);)
    if (line.find("libpython") != std::string::npos) return true;
  return false;
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  try {
    jb::Session session(argv[1]);
    std::vector<float> x(2 * 32, 1.0f);
    std::vector<jb::Tensor> out = session.run({jb::TensorView::of(x.data(), {2, 32})});
    std::printf("backend %s, output shape [%lld, %lld]\n", session.backend_name().c_str(),
                static_cast<long long>(out[0].view.shape[0]), static_cast<long long>(out[0].view.shape[1]));
  } catch (const jb::Error& e) {
    std::printf("error: %s\n", e.what());
    return 2;
  }
  const bool loaded = libpython_mapped();
  std::printf("libpython mapped: %s\n%s\n", loaded ? "yes" : "no", loaded ? "FAILED" : "OK");
  return loaded ? 1 : 0;
}
