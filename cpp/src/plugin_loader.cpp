// Backend plugins as Backends: the options a plugin is given, its signature, and its runs (through the
// views it reads, plugin_views.hpp); finding and starting a plugin is plugin_table.cpp.
#include "plugin_loader.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "juno_bridge/plugin.h"
#include "last_error.hpp"
#include "plugin_table.hpp"
#include "plugin_views.hpp"

namespace jb {
namespace {

// The options the session itself has that a plugin may declare; the rest (backend, providers,
// onnxruntime, global_thread_pool) are the core's or ONNX Runtime's alone.
std::vector<std::pair<std::string, std::string>> shared_options(const SessionOptions& o) {
  return {{"intra_op_threads", std::to_string(o.intra_op_threads)},
          {"inter_op_threads", std::to_string(o.inter_op_threads)},
          {"optimization", o.optimization},
          {"log_level", o.log_level},
          {"execution_mode", o.execution_mode},
          {"output_device", o.output_device}};
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
  PluginBackend(const PluginTable& table, const std::string& model, const void* bytes, size_t size,
                const SessionOptions& options)
      : api_(&table.api), name_(table.api.name ? table.api.name : "plugin"), legacy_views_(table.api.abi_version < 4) {
    if (options.cuda_graph)
      throw Error(ErrorCode::InvalidArgument, "option 'cuda_graph' is for ONNX Runtime's CUDA provider; the " + name_ +
                                                  " backend does not take it");
    output_on_device_ = options.output_device == "cuda";
    if (output_on_device_ && !declares(table, "output_device"))
      throw Error(ErrorCode::InvalidArgument, "option 'output_device' cuda: the " + name_ +
                                                  " backend allocates its outputs in host memory (pass out= "
                                                  "buffers on the GPU it names instead)");
    const auto pairs = table.declares_options ? declared_options(options) : legacy_options(options);
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
      async_native_ = options.async_runs != "pool" && api_->async_native && api_->run_async &&
                      api_->async_native(handle_) == 1;
      if (!legacy_views_ && api_->devices) ask_devices();
      if (output_on_device_ && devices_.empty())
        throw Error(ErrorCode::InvalidArgument, "option 'output_device' cuda: the " + name_ +
                                                    " backend runs this model on no GPU, so its outputs lie in host "
                                                    "memory (juno-bridge never hands host memory where GPU memory "
                                                    "was asked for)");
    } catch (...) {
      api_->close(handle_);
      throw;
    }
  }
  ~PluginBackend() override { api_->close(handle_); }

  const std::string& name() const override { return name_; }
  const std::vector<Device>& devices() const override { return devices_; }
  const std::vector<TensorInfo>& inputs() const override { return inputs_; }
  const std::vector<TensorInfo>& outputs() const override { return outputs_; }

  // Host memory the plugin reads fastest (plugin.h allocate_host), else the core's. The block holds the
  // backend: the plugin's model may own the allocator.
  HostMemory allocate_host(size_t nbytes) override {
    if (legacy_views_ || api_->allocate_host == nullptr) return Backend::allocate_host(nbytes);
    void* data = nullptr;
    int32_t device = JB_DEVICE_CPU;
    jb_plugin_owned owned{};
    clear_last_error();
    if (jb_status s = api_->allocate_host(handle_, nbytes, &data, &device, &owned); s != JB_OK)
      throw_plugin_error(s, name_);
    std::shared_ptr<void> holder(data, [owned, self = shared_from_this()](void*) {
      if (owned.release) owned.release(owned.holder);
    });
    if (data == nullptr) return Backend::allocate_host(nbytes);  // none of its own (holder releases any)
    if (device != JB_DEVICE_CPU && device != JB_DEVICE_CUDA_PINNED)
      throw Error(ErrorCode::Runtime, "plugin '" + name_ + "' handed host memory on device kind " +
                                          std::to_string(device) + " (expected cpu 0 or cuda_pinned 2)");
    if (reinterpret_cast<uintptr_t>(data) % 64 != 0)
      throw Error(ErrorCode::Runtime, "plugin '" + name_ + "' handed host memory at " +
                                          std::to_string(reinterpret_cast<uintptr_t>(data)) + ", not 64-byte aligned");
    return {std::move(holder), Device{static_cast<DeviceKind>(device), 0}};
  }

  SessionStats stats() const override {
    SessionStats st;
    if (api_->stats == nullptr) return st;  // the plugin offers no evidence: all zero
    st.input_addresses.assign(inputs_.size(), nullptr);
    jb_status s = api_->stats(handle_, &st.tensors_wrapped, st.input_addresses.data(), st.input_addresses.size());
    if (s != JB_OK) throw_plugin_error(s, name_);
    if (api_->staged != nullptr && (s = api_->staged(handle_, &st.inputs_staged)) != JB_OK)
      throw_plugin_error(s, name_);
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
    PluginViews::allocated_on_host(outputs, num_outputs);
    PluginViews in(legacy_views_, inputs, num_inputs), out(legacy_views_, outputs, num_outputs);
    jb_status status = api_->run(handle_, in.get(), num_inputs, output_index, out.get(), handles, num_outputs);
    out.copy_back();
    const std::string misplaced = status == JB_OK ? misplaced_output(outputs, output_index, handles, num_outputs) : "";
    // Whatever happened, every allocated output gets an owner, so nothing leaks.
    for (size_t i = 0; i < num_outputs; ++i) {
      if (handles[i].release == nullptr) continue;
      std::shared_ptr<void> holder(handles[i].holder, handles[i].release);
      if (status == JB_OK && misplaced.empty() && owned) {
        owned[i].view = outputs[i];
        owned[i].holder = std::move(holder);
      }
    }
    if (status != JB_OK) throw_plugin_error(status, name_);
    if (!misplaced.empty()) throw Error(ErrorCode::Runtime, misplaced);
  }

  bool async_native() const override { return async_native_; }

  void run_async(const TensorView* inputs, size_t num_inputs, const int32_t* output_index, const TensorView* outputs,
                 Tensor* owned, size_t num_outputs, Done done) override {
    auto run = std::make_unique<AsyncRun>();
    run->inputs.assign(inputs, inputs + num_inputs);
    run->outputs.assign(outputs, outputs + num_outputs);
    run->index.assign(output_index, output_index + num_outputs);
    run->handles.assign(num_outputs, jb_plugin_owned{});
    run->owned = owned;
    run->done = std::move(done);
    run->backend = name_;
    run->self = this;
    run->in.emplace(legacy_views_, run->inputs.data(), num_inputs);
    PluginViews::allocated_on_host(run->outputs.data(), num_outputs);
    run->out.emplace(legacy_views_, run->outputs.data(), num_outputs);
    clear_last_error();
    jb_status status = api_->run_async(handle_, run->in->get(), num_inputs, run->index.data(), run->out->get(),
                                       run->handles.data(), num_outputs, &complete_run_async, run.get());
    if (status != JB_OK) {
      run->adopt_outputs(false);  // nothing the plugin allocated before refusing may leak
      throw_plugin_error(status, name_);
    }
    run.release();  // the plugin calls complete_run_async with it
  }

 private:
  // One plugin run_async in flight: the arrays the plugin uses until it calls `done`.
  struct AsyncRun {
    std::vector<TensorView> inputs, outputs;
    std::optional<PluginViews> in, out;  // of inputs and outputs, as the plugin reads them
    std::vector<int32_t> index;
    std::vector<jb_plugin_owned> handles;
    Tensor* owned = nullptr;
    Done done;
    std::string backend;
    const PluginBackend* self = nullptr;  // alive until `done` (the core holds the backend for the run)

    // As run does: every allocated output gets an owner; the caller's Tensor when the run succeeded and
    // each lies where it may. Returns why one does not, or "".
    std::string adopt_outputs(bool succeeded) {
      out->copy_back();
      const std::string misplaced =
          succeeded ? self->misplaced_output(outputs.data(), index.data(), handles.data(), handles.size()) : "";
      for (size_t i = 0; i < handles.size(); ++i) {
        if (handles[i].release == nullptr) continue;
        std::shared_ptr<void> holder(handles[i].holder, handles[i].release);
        if (succeeded && misplaced.empty() && owned) {
          owned[i].view = outputs[i];
          owned[i].holder = std::move(holder);
        }
      }
      return misplaced;
    }
  };

  static void complete_run_async(void* user_data, jb_status status, int backend_code, const char* message) {
    std::unique_ptr<AsyncRun> run(static_cast<AsyncRun*>(user_data));
    std::exception_ptr error;
    try {
      const std::string misplaced = run->adopt_outputs(status == JB_OK);
      if (status == JB_OK && !misplaced.empty()) throw Error(ErrorCode::Runtime, misplaced);
      if (status != JB_OK)
        throw Error(static_cast<ErrorCode>(status),
                    message && *message ? message : run->backend + " backend failed without a message", backend_code);
    } catch (...) {
      error = std::current_exception();
    }
    Done done = std::move(run->done);
    run.reset();
    done(error);
  }


  // What the plugin declared (plugin.h): the shared options it names, and the backend-specific entries
  // it names (all of them for "*"); any other backend-specific entry is refused by name.
  std::vector<std::pair<std::string, std::string>> declared_options(const SessionOptions& options) const {
    auto declared = [&](const std::string& key) {
      for (const char* const* n = api_->options; n && *n; ++n)
        if (key == *n) return true;
      return false;
    };
    std::vector<std::pair<std::string, std::string>> pairs;
    for (auto& kv : shared_options(options))
      if (declared(kv.first)) pairs.push_back(std::move(kv));
    for (const auto& kv : options.config) {
      if (declared(kv.first) || declared("*")) {
        pairs.push_back(kv);
        continue;
      }
      std::string own;
      for (const char* const* n = api_->options; n && *n; ++n) {
        bool shared = false;
        for (const auto& s : shared_options(options)) shared = shared || s.first == *n;
        if (!shared) own += (own.empty() ? "" : ", ") + std::string(*n);
      }
      reject_option(kv.first, name_, own.empty() ? "none" : own);
    }
    return pairs;
  }

  // An ABI 2 plugin declares nothing and skips by name what it does not take.
  static std::vector<std::pair<std::string, std::string>> legacy_options(const SessionOptions& options) {
    auto pairs = shared_options(options);
    pairs.erase(std::remove_if(pairs.begin(), pairs.end(), [](const auto& kv) { return kv.first == "output_device"; }),
                pairs.end());  // newer than ABI 2 (such a plugin cannot allocate on a GPU: refused at open)
    pairs.insert(pairs.end(), options.config.begin(), options.config.end());
    return pairs;
  }

  static bool declares(const PluginTable& table, const char* option) {
    for (const char* const* n = table.declares_options ? table.api.options : nullptr; n && *n; ++n)
      if (std::strcmp(*n, option) == 0) return true;
    return false;
  }

  // An output the plugin allocated lies in host memory, or with output_device=cuda on a GPU the plugin
  // names: why the first that does not, or "". (The caller would read it as what it says it is.)
  std::string misplaced_output(const TensorView* outputs, const int32_t* index, const jb_plugin_owned* handles,
                               size_t n) const {
    for (size_t i = 0; i < n; ++i) {
      if (handles[i].release == nullptr) continue;
      const Device& d = outputs[i].device;
      if (d.host() || (output_on_device_ && std::find(devices_.begin(), devices_.end(), d) != devices_.end())) continue;
      std::string may = "host memory";
      for (const Device& g : devices_) may += output_on_device_ ? " or " + g.name() + " memory" : "";
      return "plugin '" + name_ + "' allocated output '" + outputs_[index[i]].name + "' in " + d.name() +
             " memory; expected " + may + (output_on_device_ ? "" : " (GPU outputs need option output_device=cuda)");
    }
    return "";
  }

  // The GPUs the plugin takes memory of (plugin.h `devices`); a kind other than CUDA is not one.
  void ask_devices() {
    constexpr size_t kMost = 16;
    int32_t kinds[kMost] = {}, ids[kMost] = {};
    const size_t n = api_->devices(handle_, kinds, ids, kMost);
    for (size_t i = 0; i < n && i < kMost; ++i) {
      const Device d{static_cast<DeviceKind>(kinds[i]), ids[i]};
      if (d.kind != DeviceKind::CUDA || d.id < 0)
        throw Error(ErrorCode::BackendUnavailable, "plugin '" + name_ + "' names " + d.name() +
                                                       " among its devices; a plugin names CUDA devices only");
      devices_.push_back(d);
    }
  }

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
  bool async_native_ = false;  // the plugin's run_async serves this model (plugin.h)
  bool legacy_views_;          // ABI 2 or 3: views without their device (plugin_views.hpp)
  std::vector<Device> devices_;  // the GPUs it takes memory of (plugin.h `devices`)
  bool output_on_device_ = false;  // output_device=cuda: it may allocate outputs on those GPUs
};

}  // namespace

std::unique_ptr<Backend> open_plugin(const std::string& name, const std::string& model, const void* bytes,
                                     size_t size, const SessionOptions& options) {
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_'))
      throw Error(ErrorCode::InvalidArgument, "invalid backend name '" + name + "'");
  return std::make_unique<PluginBackend>(*load_plugin(name), model, bytes, size, options);
}

}  // namespace jb
