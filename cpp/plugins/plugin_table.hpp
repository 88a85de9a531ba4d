// What every C++ backend plugin needs around its Model class: the host's error channel, and the C
// table entries that only forward to the Model (signature, metadata, stats). A plugin includes this in
// its one translation unit that defines jb_plugin_init; everything here has internal linkage, so two
// plugins in one process never share it.
#pragma once

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "juno_bridge/plugin.h"

namespace jb::plugin {
namespace {

const jb_plugin_host* g_host = nullptr;

// Carries a jb_status to the one place that reports errors to the host.
struct Failure : std::runtime_error {
  jb_status status;
  Failure(jb_status s, const std::string& message) : std::runtime_error(message), status(s) {}
};

jb_status fail(jb_status status, const std::string& message) {
  if (g_host) g_host->set_error(status, 0, message.c_str());
  return status;
}

// A count option ("intra_op_threads", ...): `fallback` when unset, an error naming the option otherwise.
int parse_count(const char* backend, const std::string& key, const char* value, int fallback) {
  if (value == nullptr || *value == '\0') return fallback;
  char* end = nullptr;
  long v = std::strtol(value, &end, 10);
  if (*end != '\0' || v < 0 || v > 4096)
    throw Failure(JB_ERROR_INVALID_ARGUMENT, std::string(backend) + " backend: option '" + key +
                                                 "' needs an integer in [0, 4096]; got '" + value + "'");
  return static_cast<int>(v);
}

// The forwarding entries of jb_plugin_api for a Model with inputs()/outputs() (each element having
// c_info()), metadata_keys()/metadata_values() and stats(). open and run stay the plugin's own.
template <class Model>
struct Table {
  static void close(void* handle) { delete static_cast<Model*>(handle); }
  static size_t num_inputs(void* handle) { return static_cast<Model*>(handle)->inputs().size(); }
  static size_t num_outputs(void* handle) { return static_cast<Model*>(handle)->outputs().size(); }

  template <class Infos>
  static jb_status info(const Infos& infos, size_t index, jb_tensor_info* out) {
    if (out == nullptr || index >= infos.size())
      return fail(JB_ERROR_INVALID_ARGUMENT, "index " + std::to_string(index) + " out of range");
    *out = infos[index].c_info();
    return JB_OK;
  }
  static jb_status input_info(void* h, size_t i, jb_tensor_info* out) {
    return info(static_cast<Model*>(h)->inputs(), i, out);
  }
  static jb_status output_info(void* h, size_t i, jb_tensor_info* out) {
    return info(static_cast<Model*>(h)->outputs(), i, out);
  }

  static jb_status metadata(void* handle, size_t* count, const char* const** keys, const char* const** values) {
    auto* m = static_cast<Model*>(handle);
    *count = m->metadata_keys().size();
    *keys = m->metadata_keys().data();
    *values = m->metadata_values().data();
    return JB_OK;
  }

  static jb_status stats(void* handle, uint64_t* tensors_wrapped, const void** input_addresses, size_t n) {
    static_cast<Model*>(handle)->stats(tensors_wrapped, input_addresses, n);
    return JB_OK;
  }

  using Open = jb_status (*)(const char*, const void*, size_t, const char* const*, const char* const*, size_t,
                             void**);
  using Run = jb_status (*)(void*, const jb_tensor_view*, size_t, const int32_t*, jb_tensor_view*,
                            jb_plugin_owned*, size_t);
  static constexpr jb_plugin_api api(const char* name, Open open, Run run) {
    return {JB_PLUGIN_ABI_VERSION, name, open, &close, &num_inputs, &num_outputs, &input_info, &output_info,
            &metadata, run, &stats};
  }
};

}  // namespace
}  // namespace jb::plugin
