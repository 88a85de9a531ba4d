// jb-bench-loop: the per-event hot path of juno-bridge timed from a compiled C++ loop, for
// `juno-bridge bench` (path (d) beside the raw C loop over the ONNX Runtime C API, jb-ort-raw-loop).
//
//   jb-bench-loop MODEL BATCH ITERATIONS WARMUP [--check] [--onnxruntime LIBRARY] [--input FILE]
//
// Opens MODEL with one intra-op thread, makes C-contiguous input and output buffers once (dynamic
// input dims become BATCH; output shapes come from one probe run), runs WARMUP untimed and ITERATIONS
// timed calls of Session::run into those buffers (nothing is allocated per call), and prints one JSON
// line: {"runner", "batch", "iterations", "warmup", "median_us", "p90_us", "mean_us", "min_us"}.
// --check adds "outputs": the first values of each output, to compare runners. --input FILE: the raw
// bytes of the first input (real events instead of the deterministic fill; its size must match).
// Errors: message on stderr, exit status 1.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "juno_bridge/session.hpp"

namespace {

constexpr int64_t kCheckValues = 8;  // values per output printed by --check

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "jb-bench-loop: %s\n", message.c_str());
  std::exit(1);
}

int64_t parse_count(const char* text, const char* what, int64_t minimum) {
  char* end = nullptr;
  long long value = std::strtoll(text, &end, 10);
  if (*text == '\0' || *end != '\0' || value < minimum)
    fail(std::string(what) + " must be an integer >= " + std::to_string(minimum) + "; got '" + text + "'");
  return value;
}

// IEEE half bits of a float that half represents exactly (the deterministic inputs below are k/16).
uint16_t half_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  const uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
  if ((b & 0x7fffffffu) == 0) return sign;
  const uint32_t exponent = ((b >> 23) & 0xffu) - 127 + 15;
  return static_cast<uint16_t>(sign | (exponent << 10) | ((b & 0x7fffffu) >> 13));
}

// Element i of every input is built from k = (37 i) mod 101, the same in jb-ort-raw-loop: floats
// k/16 - 3 (exact in every float type), signed ints k - 50, unsigned ints k, bool k odd.
void fill(const jb::TensorView& v) {
  const int64_t n = v.num_elements();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = (i * 37) % 101;
    const float real = static_cast<float>(k) / 16.0f - 3.0f;
    switch (v.dtype) {
      case jb::DType::Float32: static_cast<float*>(v.data)[i] = real; break;
      case jb::DType::Float64: static_cast<double*>(v.data)[i] = real; break;
      case jb::DType::Float16: static_cast<uint16_t*>(v.data)[i] = half_bits(real); break;
      case jb::DType::Int8: static_cast<int8_t*>(v.data)[i] = static_cast<int8_t>(k - 50); break;
      case jb::DType::Int16: static_cast<int16_t*>(v.data)[i] = static_cast<int16_t>(k - 50); break;
      case jb::DType::Int32: static_cast<int32_t*>(v.data)[i] = static_cast<int32_t>(k - 50); break;
      case jb::DType::Int64: static_cast<int64_t*>(v.data)[i] = k - 50; break;
      case jb::DType::UInt8: static_cast<uint8_t*>(v.data)[i] = static_cast<uint8_t>(k); break;
      case jb::DType::UInt16: static_cast<uint16_t*>(v.data)[i] = static_cast<uint16_t>(k); break;
      case jb::DType::UInt32: static_cast<uint32_t*>(v.data)[i] = static_cast<uint32_t>(k); break;
      case jb::DType::UInt64: static_cast<uint64_t*>(v.data)[i] = static_cast<uint64_t>(k); break;
      case jb::DType::Bool: static_cast<bool*>(v.data)[i] = (k & 1) != 0; break;
      default: fail(std::string("cannot fill an input of dtype ") + jb::dtype_name(v.dtype));
    }
  }
}

// Element i of a tensor as a double, for --check (float16 as its raw bits).
double element(const jb::TensorView& v, int64_t i) {
  switch (v.dtype) {
    case jb::DType::Float32: return static_cast<const float*>(v.data)[i];
    case jb::DType::Float64: return static_cast<const double*>(v.data)[i];
    case jb::DType::Float16: return static_cast<const uint16_t*>(v.data)[i];
    case jb::DType::Int8: return static_cast<const int8_t*>(v.data)[i];
    case jb::DType::Int16: return static_cast<const int16_t*>(v.data)[i];
    case jb::DType::Int32: return static_cast<const int32_t*>(v.data)[i];
    case jb::DType::Int64: return static_cast<double>(static_cast<const int64_t*>(v.data)[i]);
    case jb::DType::UInt8: return static_cast<const uint8_t*>(v.data)[i];
    case jb::DType::UInt16: return static_cast<const uint16_t*>(v.data)[i];
    case jb::DType::UInt32: return static_cast<const uint32_t*>(v.data)[i];
    case jb::DType::UInt64: return static_cast<double>(static_cast<const uint64_t*>(v.data)[i]);
    case jb::DType::Bool: return static_cast<const bool*>(v.data)[i] ? 1 : 0;
    default: return NAN;
  }
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out + "\"";
}

// Cache-line aligned memory, like a framework's event buffers.
struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
std::unique_ptr<void, AlignedFree> allocate(size_t nbytes) {
  const size_t size = std::max<size_t>(64, (nbytes + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, size);
  if (p == nullptr) fail("out of memory allocating " + std::to_string(nbytes) + " bytes");
  std::memset(p, 0, size);
  return std::unique_ptr<void, AlignedFree>(p);
}

// The bytes of `path` into `view`, which they must fill exactly.
void read_input(const std::string& path, const jb::TensorView& view) {
  std::ifstream file(path, std::ios::binary);
  if (!file) fail("cannot open --input '" + path + "'");
  const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (bytes.size() != view.nbytes())
    fail("--input '" + path + "' holds " + std::to_string(bytes.size()) +
         " bytes; the first input at this batch takes " + std::to_string(view.nbytes()));
  std::memcpy(view.data, bytes.data(), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  bool check = false;
  std::string input_file;
  jb::SessionOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--check") check = true;
    else if (arg == "--onnxruntime" && i + 1 < argc) options.onnxruntime = argv[++i];
    else if (arg == "--input" && i + 1 < argc) input_file = argv[++i];
    else if (arg.rfind("--", 0) == 0) fail("unknown option '" + arg + "'");
    else positional.push_back(arg);
  }
  if (positional.size() != 4)
    fail("usage: jb-bench-loop MODEL BATCH ITERATIONS WARMUP [--check] [--onnxruntime LIBRARY] [--input FILE]");
  const std::string model = positional[0];
  const int64_t batch = parse_count(positional[1].c_str(), "BATCH", 1);
  const int64_t iterations = parse_count(positional[2].c_str(), "ITERATIONS", 1);
  const int64_t warmup = parse_count(positional[3].c_str(), "WARMUP", 0);
  options.intra_op_threads = 1;

  try {
    jb::Session session(model, options);

    std::vector<std::unique_ptr<void, AlignedFree>> memory;
    std::vector<jb::TensorView> inputs, outputs;
    for (const auto& info : session.inputs()) {
      if (!info.rank_known) fail("input '" + info.name + "' has no declared rank; cannot make its buffer");
      std::vector<int64_t> dims = info.shape;
      for (auto& d : dims) d = d < 0 ? batch : d;
      jb::TensorView view(nullptr, info.dtype, dims.data(), dims.size());
      memory.push_back(allocate(view.nbytes()));
      view.data = memory.back().get();
      if (inputs.empty() && !input_file.empty()) read_input(input_file, view);
      else fill(view);
      inputs.push_back(view);
    }
    // One probe run with runtime-allocated outputs tells the output shapes for this batch.
    for (const auto& probe : session.run(inputs)) {
      jb::TensorView view = probe.view;
      memory.push_back(allocate(view.nbytes()));
      view.data = memory.back().get();
      outputs.push_back(view);
    }

    for (int64_t i = 0; i < warmup; ++i) session.run(inputs.data(), inputs.size(), outputs.data(), outputs.size());
    std::vector<double> micros(static_cast<size_t>(iterations));
    for (auto& t : micros) {
      const auto start = std::chrono::steady_clock::now();
      session.run(inputs.data(), inputs.size(), outputs.data(), outputs.size());
      t = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    }

    double mean = 0;
    for (double t : micros) mean += t / static_cast<double>(micros.size());
    std::sort(micros.begin(), micros.end());
    const size_t n = micros.size();
    const double median = n % 2 ? micros[n / 2] : (micros[n / 2 - 1] + micros[n / 2]) / 2;
    const double p90 = micros[static_cast<size_t>(std::ceil(0.9 * static_cast<double>(n))) - 1];

    std::printf("{\"runner\": \"jb-bench-loop\", \"batch\": %lld, \"iterations\": %lld, \"warmup\": %lld, "
                "\"median_us\": %.4f, \"p90_us\": %.4f, \"mean_us\": %.4f, \"min_us\": %.4f",
                static_cast<long long>(batch), static_cast<long long>(iterations), static_cast<long long>(warmup),
                median, p90, mean, micros.front());
    if (check) {
      std::printf(", \"outputs\": {");
      for (size_t o = 0; o < outputs.size(); ++o) {
        std::printf("%s%s: [", o ? ", " : "", json_string(session.outputs()[o].name).c_str());
        const int64_t count = std::min(kCheckValues, outputs[o].num_elements());
        for (int64_t i = 0; i < count; ++i) {
          const double x = element(outputs[o], i);
          if (std::isfinite(x)) std::printf("%s%.17g", i ? ", " : "", x);
          else std::printf("%snull", i ? ", " : "");
        }
        std::printf("]");
      }
      std::printf("}");
    }
    std::printf("}\n");
  } catch (const jb::Error& e) {
    fail(e.what());
  } catch (const std::exception& e) {
    fail(std::string("unexpected error: ") + e.what());
  }
  return 0;
}
