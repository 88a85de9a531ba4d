// The backend registry: every way juno-bridge runs a model, how a model string is recognised as
// belonging to it, and where its code lives. Model routing, error messages, `juno-bridge info`,
// `bench --only` and juno_bridge.backends() all read this one table; adding a backend starts here.
#pragma once

#include <string>
#include <vector>

#include "juno_bridge/juno_bridge.h"  // JB_API

namespace jb {

struct BackendInfo {
  std::string name;                   // what `backend=` takes: "onnxruntime", "torch", ...
  std::vector<std::string> aliases;   // other spellings `backend=` accepts: "onnx", "ort"
  std::vector<std::string> prefixes;  // model strings starting with one of these: "python:", "triton://"
  std::vector<std::string> suffixes;  // model files ending with one of these: ".onnx", ".pt2"
  std::string directory_marker;       // a directory holding this file is such a model: "saved_model.pb"
  std::string plugin;                 // "" when built into the core, else libjuno_bridge_<plugin>.so
  std::string extra;                  // the pip extra that installs what it needs; "" when nothing
  std::string description;            // one line for `juno-bridge info`
};

// Every backend, the default (ONNX Runtime) first.
JB_API const std::vector<BackendInfo>& backends();

// The backend of that name or alias; nullptr when none is registered under it (a plugin of that name
// outside the registry may still be found by the plugin loader).
JB_API const BackendInfo* find_backend(const std::string& name);

// "onnxruntime, torch, tf, python, triton": for messages.
JB_API std::string backend_names();

// The backend that opens `model` when none is named: prefix, then suffix, then directory marker,
// else the default. Model bytes (`from_bytes`) are ONNX.
JB_API const BackendInfo& backend_for_model(const std::string& model, bool from_bytes);

// Where this backend's plugin library would be loaded from; "" when it is built in or not built.
JB_API std::string backend_plugin_path(const BackendInfo& backend);

}  // namespace jb
