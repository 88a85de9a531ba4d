#include "plugin_loader.hpp"

#include <cctype>
#include <cstdlib>
#include <map>
#include <mutex>

#include "juno_bridge/backends.hpp"
#include "juno_bridge/plugin.h"
#include "last_error.hpp"
#include "platform.hpp"

namespace jb {
namespace {

const jb_plugin_host kHost = {JB_PLUGIN_ABI_VERSION, &set_last_error};

// Throws the error the plugin recorded for this thread (or a generic one if it recorded none).
[[noreturn]] void throw_plugin_error(jb_status status, const std::string& plugin) {
  LastError& e = last_error();
  std::string message = e.message.empty() ? plugin + " backend failed without a message" : e.message;
  int backend_code = e.backend_code;
  jb_status code = status != JB_OK ? status : (e.status != JB_OK ? e.status : JB_ERROR_RUNTIME);
  clear_last_error();
  throw Error(static_cast<ErrorCode>(code), message, backend_code);
}

std::vector<std::string> plugin_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("JUNO_BRIDGE_PLUGIN_PATH"); env && *env) {
    std::string all = env;
    for (size_t start = 0, end; start <= all.size(); start = end + 1) {
      end = all.find(':', start);
      if (end == std::string::npos) end = all.size();
      if (end > start) dirs.push_back(all.substr(start, end - start));
    }
  }
  dirs.push_back(this_library_dir());
  return dirs;
}

const jb_plugin_api* load_plugin(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, const jb_plugin_api*> loaded;  // plugins stay loaded for the process
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = loaded.find(name); it != loaded.end()) return it->second;

  const std::string file = plugin_path(name);
  if (file.empty()) {
    for (const auto& b : backends())
      if (b.plugin == name)
        // A plugin is built only when its library is there at build time, so the order matters.
        throw Error(ErrorCode::BackendUnavailable,
                    "backend unavailable: '" + b.name + "' (libjuno_bridge_" + name + ".so was not built): " +
                        (b.extra.empty() ? std::string("rebuild juno-bridge")
                                         : "install with the " + b.extra + " extra and rebuild: first the extra's "
                                           "packages (pip install 'juno-bridge[" + b.extra + "]'), then juno-bridge "
                                           "again from source with pip install --no-build-isolation --no-deps "
                                           "--force-reinstall <source>"));
    std::string built;
    for (const auto& dir : plugin_dirs())
      for (const auto& path : list_files(dir, "libjuno_bridge_")) {
        const std::string base = path.substr(path.rfind('/') + 1);
        built += ", " + base.substr(15, base.size() - 15 - 3);  // libjuno_bridge_<name>.so
      }
    throw Error(ErrorCode::BackendUnavailable, "unknown backend '" + name + "': no plugin libjuno_bridge_" + name +
                                                   ".so; the backends are " + backend_names() +
                                                   " (plugins here: " + (built.empty() ? "none" : built.substr(2)) +
                                                   ")");
  }
  std::string error;
  void* handle = open_library(file, error);
  if (handle == nullptr)
    throw Error(ErrorCode::BackendUnavailable, "backend unavailable: cannot load '" + file + "': " + error);
  // A plugin that cannot start is unloaded again, so a later open retries from scratch.
  struct Unload {
    void* handle;
    ~Unload() {
      if (handle) close_library(handle);
    }
  } unload{handle};
  auto init = reinterpret_cast<jb_plugin_init_fn>(find_symbol(handle, JB_PLUGIN_INIT_SYMBOL));
  if (init == nullptr)
    throw Error(ErrorCode::BackendUnavailable, "'" + file + "' is not a juno-bridge plugin (no jb_plugin_init)");
  clear_last_error();
  const jb_plugin_api* api = init(&kHost);
  if (api == nullptr) throw_plugin_error(JB_ERROR_BACKEND_UNAVAILABLE, name);
  if (api->abi_version != JB_PLUGIN_ABI_VERSION)
    throw Error(ErrorCode::BackendUnavailable, "plugin '" + file + "' has ABI version " +
                                                   std::to_string(api->abi_version) + ", this core needs " +
                                                   std::to_string(JB_PLUGIN_ABI_VERSION) + ": rebuild it");
  unload.handle = nullptr;  // started: it stays loaded for the process
  return loaded[name] = api;
}

// ONNX's spelling of a tensor type, the one the ONNX backend reports: "tensor(float)", "tensor(double)".
std::string onnx_type_name(DType dtype) {
  const std::string name = dtype == DType::Float32 ? "float" : dtype == DType::Float64 ? "double" : dtype_name(dtype);
  return "tensor(" + name + ")";
}

TensorInfo to_info(const jb_tensor_info& c) {
  TensorInfo info;
  info.name = c.name ? c.name : "";
  info.dtype = static_cast<DType>(c.dtype);
  if (dtype_size(info.dtype) == 0) info.dtype = DType::Undefined;
  info.rank_known = c.rank >= 0;
  for (int32_t d = 0; d < c.rank; ++d) {
    info.shape.push_back(c.shape[d] < 0 ? -1 : c.shape[d]);
    const char* n = c.dim_names ? c.dim_names[d] : nullptr;
    info.dim_names.emplace_back(n && *n ? std::optional<std::string>(n) : std::nullopt);
  }
  info.type_name = c.type_name ? c.type_name : onnx_type_name(info.dtype);
  return info;
}

class PluginBackend final : public Backend {
 public:
  PluginBackend(const jb_plugin_api* api, const std::string& model, const void* bytes, size_t size,
                const SessionOptions& options)
      : api_(api), name_(api->name ? api->name : "plugin") {
    std::vector<std::pair<std::string, std::string>> pairs = {
        {"intra_op_threads", std::to_string(options.intra_op_threads)},
        {"inter_op_threads", std::to_string(options.inter_op_threads)},
        {"optimization", options.optimization},
        {"log_level", options.log_level},
        {"execution_mode", options.execution_mode},
    };
    for (const auto& kv : options.config) pairs.push_back(kv);
    std::vector<const char*> keys, values;
    for (const auto& [k, v] : pairs) {
      keys.push_back(k.c_str());
      values.push_back(v.c_str());
    }
    clear_last_error();
    jb_status status = api_->open(model.c_str(), bytes, size, keys.data(), values.data(), keys.size(), &handle_);
    if (status != JB_OK) throw_plugin_error(status, name_);
    try {
      for (size_t i = 0, n = api_->num_inputs(handle_); i < n; ++i) inputs_.push_back(info(true, i));
      for (size_t i = 0, n = api_->num_outputs(handle_); i < n; ++i) outputs_.push_back(info(false, i));
    } catch (...) {
      api_->close(handle_);
      throw;
    }
  }
  ~PluginBackend() override { api_->close(handle_); }

  const std::string& name() const override { return name_; }
  const std::vector<TensorInfo>& inputs() const override { return inputs_; }
  const std::vector<TensorInfo>& outputs() const override { return outputs_; }

  SessionStats stats() const override {
    SessionStats st;
    if (api_->stats == nullptr) return st;  // the plugin offers no evidence: all zero
    st.input_addresses.assign(inputs_.size(), nullptr);
    jb_status s = api_->stats(handle_, &st.tensors_wrapped, st.input_addresses.data(), st.input_addresses.size());
    if (s != JB_OK) throw_plugin_error(s, name_);
    return st;
  }

  ModelMetadata metadata() const override {
    size_t count = 0;
    const char* const* keys = nullptr;
    const char* const* values = nullptr;
    if (jb_status s = api_->metadata(handle_, &count, &keys, &values); s != JB_OK) throw_plugin_error(s, name_);
    ModelMetadata md;
    for (size_t i = 0; i < count; ++i) {
      std::string k = keys[i], v = values[i] ? values[i] : "";
      if (k == "producer_name") md.producer_name = v;
      else if (k == "graph_name") md.graph_name = v;
      else if (k == "domain") md.domain = v;
      else if (k == "description") md.description = v;
      else if (k == "version") md.version = std::atoll(v.c_str());
      else md.custom[k.rfind("custom.", 0) == 0 ? k.substr(7) : k] = v;
    }
    return md;
  }

  void run(const TensorView* inputs, size_t num_inputs, const int32_t* output_index, TensorView* outputs,
           Tensor* owned, size_t num_outputs) override {
    constexpr size_t kStack = 16;
    jb_plugin_owned stack[kStack] = {};
    std::vector<jb_plugin_owned> heap(num_outputs > kStack ? num_outputs : 0);
    jb_plugin_owned* handles = num_outputs > kStack ? heap.data() : stack;
    jb_status status = api_->run(handle_, as_c(inputs), num_inputs, output_index, as_c(outputs), handles, num_outputs);
    // Whatever happened, every allocated output gets an owner, so nothing leaks.
    for (size_t i = 0; i < num_outputs; ++i) {
      if (handles[i].release == nullptr) continue;
      std::shared_ptr<void> holder(handles[i].holder, handles[i].release);
      if (status == JB_OK && owned) {
        owned[i].view = outputs[i];
        owned[i].holder = std::move(holder);
      }
    }
    if (status != JB_OK) throw_plugin_error(status, name_);
  }

 private:
  TensorInfo info(bool input, size_t i) {
    jb_tensor_info c{};
    jb_status s = input ? api_->input_info(handle_, i, &c) : api_->output_info(handle_, i, &c);
    if (s != JB_OK) throw_plugin_error(s, name_);
    return to_info(c);
  }

  const jb_plugin_api* api_;
  std::string name_;
  void* handle_ = nullptr;
  std::vector<TensorInfo> inputs_, outputs_;
};

}  // namespace

std::string plugin_path(const std::string& name) {
  for (const auto& dir : plugin_dirs()) {
    std::string file = dir + "/libjuno_bridge_" + name + ".so";
    if (file_exists(file)) return file;
  }
  return "";
}

std::unique_ptr<Backend> open_plugin(const std::string& name, const std::string& model, const void* bytes,
                                     size_t size, const SessionOptions& options) {
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_'))
      throw Error(ErrorCode::InvalidArgument, "invalid backend name '" + name + "'");
  return std::make_unique<PluginBackend>(load_plugin(name), model, bytes, size, options);
}

}  // namespace jb
