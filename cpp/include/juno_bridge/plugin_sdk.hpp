// The plugin SDK: what every backend plugin (torch, tf, python, a site's own) needs around its Model
// class to fill the C table of plugin.h. A plugin never links the core, so all of it is header-only:
// the host's error channel, the exception guard (the core's one translator, error.hpp), the dtype table
// and shape text (tensor.hpp), parse_count, and Table<Model>, which makes every entry of jb_plugin_api
// from the Model's methods.
//
// A plugin includes this in the one translation unit that defines jb_plugin_init, which is then:
//   extern "C" JB_PLUGIN_EXPORT const jb_plugin_api* jb_plugin_init(const jb_plugin_host* host) {
//     return jb::plugin::start(host) ? &kApi : nullptr;
//   }
// Everything here has internal linkage, so two plugins in one process never share it.
//
// What Table<Model> needs of Model:
//   static Model* open(const std::string& model, const void* bytes, size_t size, const Options& options);
//   inputs(), outputs(): containers whose elements have `jb_tensor_info c_info() const`;
//   metadata_keys(), metadata_values(): std::vector<const char*>, valid until close;
//   void stats(uint64_t* tensors_wrapped, const void** input_addresses, size_t n) const;
//   (ModelBase below has these four ready, and optionally uint64_t inputs_staged() const);
//   void run(const jb_tensor_view* inputs, const int32_t* output_index, jb_tensor_view* outputs,
//            jb_plugin_owned* owned, size_t num_outputs): the number of inputs is checked before;
//   optionally static void close(Model*) when `delete` is not the way to release it;
//   optionally std::vector<Device> devices() const: the GPUs whose memory run() takes in place (plugin.h);
//   optionally HostBlock allocate_host(size_t nbytes): host memory run() reads fastest (plugin.h), or an
//   empty HostBlock where the model has none of its own;
//   optionally, for a plugin with an asynchronous run of its own (plugin.h): bool async_native() const and
//   void run_async(inputs, output_index, outputs, owned, num_outputs, done, user_data) (run's arguments
//   and plugin.h's `done`), which throws when the run does not start.
// Any exception they throw reaches the host as a status: a jb::Error keeps its code and message.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "juno_bridge/error.hpp"
#include "juno_bridge/plugin.h"
#include "juno_bridge/tensor.hpp"

#define JB_PLUGIN_EXPORT __attribute__((visibility("default")))

namespace jb::plugin {
namespace {

const jb_plugin_host* g_host = nullptr;

// Keeps the host for the error channel; false when there is no host or it is older than the SDK.
inline bool start(const jb_plugin_host* host) {
  if (host == nullptr || host->abi_version < JB_PLUGIN_ABI_VERSION) return false;
  g_host = host;
  return true;
}

// The directory of libjuno_bridge.so as the host reports it; "" from a host that does not.
inline std::string library_dir() {
  const bool has = g_host && g_host->struct_size >= offsetof(jb_plugin_host, library_dir) + sizeof(const char*);
  return has && g_host->library_dir ? g_host->library_dir : "";
}

// A line for the host's log sink; dropped by a host older than the `log` entry.
inline void log(int32_t level, const char* source, const std::string& message) {
  const bool has = g_host && g_host->struct_size >= offsetof(jb_plugin_host, log) + sizeof(g_host->log);
  if (has && g_host->log) g_host->log(level, source, message.c_str());
}

inline jb_status fail(jb_status status, const std::string& message) {
  if (g_host) g_host->set_error(status, 0, message.c_str());
  return status;
}

// Runs `body`, turning any exception into a status and the host's error message (error.hpp's one
// translator: a jb::Error keeps its code, anything else becomes `fallback`).
template <class F>
jb_status guarded(jb_status fallback, F&& body) noexcept {
  try {
    body();
    return JB_OK;
  } catch (...) {
    std::string message;
    int backend_code = 0;
    jb_status status = status_of_current_exception(fallback, message, backend_code);
    if (g_host) g_host->set_error(status, backend_code, message.c_str());
    return status;
  }
}

// The dtype table of tensor.hpp for the C table's int32_t codes.
inline size_t dtype_size(int32_t dtype) { return jb::dtype_size(static_cast<DType>(dtype)); }
inline const char* dtype_name(int32_t dtype) { return jb::dtype_name(static_cast<DType>(dtype)); }
inline std::string onnx_type_name(int32_t dtype) { return jb::onnx_type_name(static_cast<DType>(dtype)); }
inline size_t nbytes(const jb_tensor_view& v) { return from_c(&v)->nbytes(); }

// The options the core passed to open: only names the plugin declared.
class Options {
 public:
  Options(const char* const* keys, const char* const* values, size_t n) {
    for (size_t i = 0; i < n; ++i) pairs_.emplace_back(keys[i], values[i] ? values[i] : "");
  }
  const std::vector<std::pair<std::string, std::string>>& pairs() const { return pairs_; }

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
};

// A count option ("intra_op_threads", ...): `fallback` when empty, an error naming the option otherwise.
inline int parse_count(const char* backend, const std::string& key, const std::string& value, int fallback) {
  if (value.empty()) return fallback;
  char* end = nullptr;
  long v = std::strtol(value.c_str(), &end, 10);
  if (*end != '\0' || v < 0 || v > 4096)
    throw Error(JB_ERROR_INVALID_ARGUMENT, std::string(backend) + " backend: option '" + key +
                                               "' needs an integer in [0, 4096]; got '" + value + "'");
  return static_cast<int>(v);
}

// The state most Models share, and the accessors Table reads: the tensors as the model declares them,
// key/value metadata, and the zero-copy evidence (SessionStats). A Model derives from it, fills
// inputs_, outputs_ and add_metadata while it opens, then calls seal() once.
template <class Info>
class ModelBase {
 public:
  const std::vector<Info>& inputs() const { return inputs_; }
  const std::vector<Info>& outputs() const { return outputs_; }
  const std::vector<const char*>& metadata_keys() const { return metadata_keys_; }
  const std::vector<const char*>& metadata_values() const { return metadata_values_; }

  void stats(uint64_t* tensors_wrapped, const void** input_addresses, size_t n) const {
    if (tensors_wrapped) *tensors_wrapped = tensors_wrapped_.load();
    for (size_t i = 0; input_addresses && i < n && i < input_addresses_.size(); ++i)
      input_addresses[i] = input_addresses_[i].load();
  }
  uint64_t inputs_staged() const { return inputs_staged_.load(); }

 protected:
  void add_metadata(const std::string& key, const std::string& value) { metadata_.emplace_back(key, value); }

  // The C views of the metadata and the evidence slots, once every input and metadata entry is in.
  void seal() {
    for (const auto& [k, v] : metadata_) {
      metadata_keys_.push_back(k.c_str());
      metadata_values_.push_back(v.c_str());
    }
    input_addresses_ = std::vector<std::atomic<const void*>>(inputs_.size());
  }

  // Evidence of one run: where the runtime reads input i, and how many tensors it made over caller memory.
  void read_input_at(size_t i, const void* address) const { input_addresses_[i].store(address); }
  void count_wrapped(uint64_t n) const { tensors_wrapped_.fetch_add(n); }
  // Inputs copied into the plugin's own memory because the runtime cannot read them where they are.
  void count_staged(uint64_t n) const { inputs_staged_.fetch_add(n); }

  std::vector<Info> inputs_, outputs_;

 private:
  std::vector<std::pair<std::string, std::string>> metadata_;
  std::vector<const char*> metadata_keys_, metadata_values_;
  mutable std::atomic<uint64_t> tensors_wrapped_{0};
  mutable std::atomic<uint64_t> inputs_staged_{0};
  mutable std::vector<std::atomic<const void*>> input_addresses_;
};

template <class Model, class = void>
struct HasClose : std::false_type {};
template <class Model>
struct HasClose<Model, std::void_t<decltype(Model::close(static_cast<Model*>(nullptr)))>> : std::true_type {};

template <class Model, class = void>
struct HasInputsStaged : std::false_type {};
template <class Model>
struct HasInputsStaged<Model, std::void_t<decltype(&Model::inputs_staged)>> : std::true_type {};

template <class Model, class = void>
struct HasDevices : std::false_type {};
template <class Model>
struct HasDevices<Model, std::void_t<decltype(&Model::devices)>> : std::true_type {};

template <class Model, class = void>
struct HasAllocateHost : std::false_type {};
template <class Model>
struct HasAllocateHost<Model, std::void_t<decltype(&Model::allocate_host)>> : std::true_type {};

// What Model::allocate_host hands the core: memory (data nullptr: none of its own), where it is, and
// how it is released.
struct HostBlock {
  void* data = nullptr;
  Device device;  // Device::cuda_pinned() or Device::cpu()
  jb_plugin_owned owned{};
};

template <class Model, class = void>
struct HasRunAsync : std::false_type {};
template <class Model>
struct HasRunAsync<Model, std::void_t<decltype(&Model::run_async)>> : std::true_type {};

using RunAsyncDone = void (*)(void* user_data, jb_status status, int backend_code, const char* message);

// Every entry of jb_plugin_api, made from the Model's methods (see the top of this file).
template <class Model>
struct Table {
  static Model& model(void* handle) { return *static_cast<Model*>(handle); }

  static jb_status open(const char* path, const void* bytes, size_t size, const char* const* keys,
                        const char* const* values, size_t num_options, void** handle) {
    return guarded(JB_ERROR_MODEL_LOAD, [&] {
      if (handle == nullptr || (path == nullptr && bytes == nullptr))
        throw Error(JB_ERROR_INVALID_ARGUMENT, "plugin open: NULL model or handle");
      *handle = Model::open(path ? path : "", bytes, size, Options(keys, values, num_options));
    });
  }

  static void close(void* handle) {
    if constexpr (HasClose<Model>::value) Model::close(static_cast<Model*>(handle));
    else delete static_cast<Model*>(handle);
  }
  static size_t num_inputs(void* handle) { return model(handle).inputs().size(); }
  static size_t num_outputs(void* handle) { return model(handle).outputs().size(); }

  template <class Infos>
  static jb_status info(const Infos& infos, size_t index, jb_tensor_info* out) {
    if (out == nullptr || index >= infos.size())
      return fail(JB_ERROR_INVALID_ARGUMENT, "index " + std::to_string(index) + " out of range");
    *out = infos[index].c_info();
    return JB_OK;
  }
  static jb_status input_info(void* h, size_t i, jb_tensor_info* out) { return info(model(h).inputs(), i, out); }
  static jb_status output_info(void* h, size_t i, jb_tensor_info* out) { return info(model(h).outputs(), i, out); }

  static jb_status metadata(void* handle, size_t* count, const char* const** keys, const char* const** values) {
    const Model& m = model(handle);
    *count = m.metadata_keys().size();
    *keys = m.metadata_keys().data();
    *values = m.metadata_values().data();
    return JB_OK;
  }

  static jb_status stats(void* handle, uint64_t* tensors_wrapped, const void** input_addresses, size_t n) {
    return guarded(JB_ERROR_RUNTIME, [&] { model(handle).stats(tensors_wrapped, input_addresses, n); });
  }

  static jb_status staged(void* handle, uint64_t* inputs_staged) {
    return guarded(JB_ERROR_RUNTIME, [&] {
      if constexpr (HasInputsStaged<Model>::value)
        if (inputs_staged) *inputs_staged = model(handle).inputs_staged();
    });
  }

  // The start every run shares: the count of inputs (the core checked each one against inputs()).
  static Model& counted(void* handle, size_t num_inputs) {
    Model& m = model(handle);
    if (num_inputs != m.inputs().size())
      throw Error(JB_ERROR_INPUT, "the model takes " + std::to_string(m.inputs().size()) + " input(s), got " +
                                      std::to_string(num_inputs));
    return m;
  }

  static jb_status run(void* handle, const jb_tensor_view* inputs, size_t num_inputs, const int32_t* output_index,
                       jb_tensor_view* outputs, jb_plugin_owned* owned, size_t num_outputs) {
    return guarded(JB_ERROR_RUNTIME,
                   [&] { counted(handle, num_inputs).run(inputs, output_index, outputs, owned, num_outputs); });
  }

  static size_t devices(void* handle, int32_t* kinds, int32_t* ids, size_t capacity) {
    if constexpr (HasDevices<Model>::value) {
      const std::vector<Device> gpus = model(handle).devices();
      for (size_t i = 0; i < gpus.size() && i < capacity; ++i) {
        kinds[i] = static_cast<int32_t>(gpus[i].kind);
        ids[i] = gpus[i].id;
      }
      return gpus.size();
    } else {
      return 0;
    }
  }

  static jb_status allocate_host(void* handle, size_t nbytes, void** data, int32_t* device, jb_plugin_owned* owned) {
    return guarded(JB_ERROR_RUNTIME, [&] {
      if (data == nullptr || device == nullptr || owned == nullptr)
        throw Error(JB_ERROR_INVALID_ARGUMENT, "plugin allocate_host: NULL data, device or owned");
      HostBlock block;
      if constexpr (HasAllocateHost<Model>::value) block = model(handle).allocate_host(nbytes);
      *data = block.data;
      *device = static_cast<int32_t>(block.device.kind);
      *owned = block.owned;
    });
  }

  static int async_native(void* handle) {
    if constexpr (HasRunAsync<Model>::value) return model(handle).async_native() ? 1 : 0;
    else return 0;
  }

  static jb_status run_async(void* handle, const jb_tensor_view* inputs, size_t num_inputs, const int32_t* output_index,
                             jb_tensor_view* outputs, jb_plugin_owned* owned, size_t num_outputs, RunAsyncDone done,
                             void* user_data) {
    return guarded(JB_ERROR_RUNTIME, [&] {
      if constexpr (HasRunAsync<Model>::value) {
        counted(handle, num_inputs).run_async(inputs, output_index, outputs, owned, num_outputs, done, user_data);
      } else {
        throw Error(JB_ERROR_UNSUPPORTED, "this plugin has no asynchronous run");
      }
    });
  }

  // `options`: the NULL-terminated names the plugin takes (plugin.h), in static storage.
  static constexpr jb_plugin_api api(const char* name, const char* const* options) {
    const bool has_async = HasRunAsync<Model>::value;
    return {JB_PLUGIN_ABI_VERSION,
            sizeof(jb_plugin_api),
            name,
            &open,
            &close,
            &num_inputs,
            &num_outputs,
            &input_info,
            &output_info,
            &metadata,
            &run,
            &stats,
            options,
            has_async ? &async_native : nullptr,
            has_async ? &run_async : nullptr,
            HasInputsStaged<Model>::value ? &staged : nullptr,
            HasDevices<Model>::value ? &devices : nullptr,
            HasAllocateHost<Model>::value ? &allocate_host : nullptr};
  }
};

}  // namespace
}  // namespace jb::plugin
