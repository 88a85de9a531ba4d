// The backend registry (backends.hpp) and the routing of a model string to its backend.
#include "juno_bridge/backends.hpp"

#include "platform.hpp"
#include "plugin_loader.hpp"

namespace jb {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

const std::vector<BackendInfo>& backends() {
  static const std::vector<BackendInfo> table = {
      {"onnxruntime", {"onnx", "ort"}, {}, {".onnx", ".ort"}, "", "", "",
       "ONNX Runtime through its C API (the default; any release with C API 16 or newer)"},
      {"torch", {"libtorch"}, {}, {".pt2", ".pt", ".ts"}, "", "torch", "torch",
       "libtorch: AOTInductor packages (.pt2) and TorchScript (.pt)"},
      {"tf", {"tensorflow"}, {}, {".savedmodel", ".savedmodel/"}, "saved_model.pb", "tf", "tf",
       "TensorFlow SavedModels through TensorFlow's C API"},
      {"python", {}, {"python:"}, {}, "", "python", "",
       "a Python callable (python:module:attr) on numpy views of the buffers"},
      // The Triton client is Python (tritonclient): the python plugin runs it, so C++ callers reach a
      // server through the same plugin and no extra library.
      {"triton", {}, {"triton://"}, {}, "", "python", "triton",
       "a model served by a Triton Inference Server (triton://host:port/model)"},
  };
  return table;
}

const BackendInfo* find_backend(const std::string& name) {
  for (const auto& b : backends()) {
    if (b.name == name) return &b;
    for (const auto& alias : b.aliases)
      if (alias == name) return &b;
  }
  return nullptr;
}

std::string backend_names() {
  std::string names;
  for (const auto& b : backends()) names += (names.empty() ? "" : ", ") + b.name;
  return names;
}

const BackendInfo& backend_for_model(const std::string& model, bool from_bytes) {
  const auto& all = backends();
  if (from_bytes) return all.front();
  for (const auto& b : all)
    for (const auto& p : b.prefixes)
      if (starts_with(model, p)) return b;
  for (const auto& b : all)
    for (const auto& s : b.suffixes)
      if (ends_with(model, s)) return b;
  for (const auto& b : all)
    if (!b.directory_marker.empty() && file_exists(model + "/" + b.directory_marker)) return b;
  return all.front();  // the recommended default; it reports clearly what it cannot read
}

std::string backend_plugin_path(const BackendInfo& backend) {
  return backend.plugin.empty() ? "" : plugin_path(backend.plugin);
}

}  // namespace jb
