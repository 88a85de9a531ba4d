// The ONNX Runtime backend: one OrtSession over the C API, run on the caller's buffers.
//
// Zero-copy: every tensor reaches ONNX Runtime as an OrtValue made by CreateTensorWithDataAsOrtValue
// over the caller's memory. Those OrtValues are cached per input/output and reused while the caller
// passes the same buffer (the per-event loop of a framework), so the steady state allocates nothing.
// The cache belongs to whichever thread holds its lock; a thread that finds it busy makes temporary
// OrtValues instead, so many threads can run one session at once (OrtSession::Run is thread-safe).
//
// Asynchronous runs use ONNX Runtime's RunAsync where the session allows it (see probe_run_async): the
// run and its completion happen on a thread of the session's intra-op pool.
#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>

#include "backend.hpp"
#include "juno_bridge/juno_bridge.h"
#include "log.hpp"
#include "onnx_model_bytes.hpp"
#include "ort_runtime.hpp"

namespace jb {
namespace {

// Set on a runtime thread while it completes a RunAsync: a session released there (the completion's
// callback may close the last Session of a model) must not release its own thread pool from inside it.
thread_local bool g_in_run_async_completion = false;

// A small array on the stack, on the heap only for unusually many tensors.
template <class T, size_t N = 16>
class Scratch {
 public:
  explicit Scratch(size_t n) : size_(n) {
    if (n > N) heap_.resize(n);
  }
  T* data() { return size_ > N ? heap_.data() : stack_.data(); }
  T& operator[](size_t i) { return data()[i]; }

 private:
  size_t size_;
  std::array<T, N> stack_;  // uninitialised: every used element is written before it is read
  std::vector<T> heap_;
};

std::string element_type_name(ONNXTensorElementDataType t) {
  // The element types numpy shares have the same numbers as DType: the one table spells them.
  if (const DTypeFacts* f = dtype_facts(static_cast<DType>(t))) return f->onnx;
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING: return "string";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_COMPLEX64: return "complex64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_COMPLEX128: return "complex128";
    default: return "element type " + std::to_string(static_cast<int>(t));
  }
}

// The element types numpy and ONNX share map onto DType with the same number; the rest are Undefined.
DType to_dtype(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_COMPLEX64:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_COMPLEX128:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED: return DType::Undefined;
    default: return dtype_size(static_cast<DType>(t)) ? static_cast<DType>(t) : DType::Undefined;
  }
}

GraphOptimizationLevel optimization_level(const std::string& name) {
  if (name == "disable") return ORT_DISABLE_ALL;
  if (name == "basic") return ORT_ENABLE_BASIC;
  if (name == "extended") return ORT_ENABLE_EXTENDED;
  if (name == "all") return ORT_ENABLE_ALL;
  throw Error(ErrorCode::InvalidArgument,
              "optimization must be one of disable, basic, extended, all; got '" + name + "'");
}

int log_severity(const std::string& name) {
  static const char* const levels[] = {"verbose", "info", "warning", "error", "fatal"};
  for (int i = 0; i < 5; ++i)
    if (name == levels[i]) return i;
  throw Error(ErrorCode::InvalidArgument,
              "log_level must be one of verbose, info, warning, error, fatal; got '" + name + "'");
}

// An OrtValue over caller memory, remembered with the view it was made for.
struct BoundValue {
  const void* data = nullptr;
  DType dtype = DType::Undefined;
  int32_t rank = -1;
  int64_t shape[kMaxRank] = {};
  OrtValue* value = nullptr;
  const void* runtime_address = nullptr;  // what the runtime reports as the tensor's data

  bool matches(const TensorView& v) const {
    return value != nullptr && v.data == data && v.dtype == dtype && v.rank == rank &&
           std::memcmp(v.shape, shape, sizeof(int64_t) * static_cast<size_t>(rank)) == 0;
  }
};

class OrtBackend final : public Backend {
 public:
  OrtBackend(const std::string& path, const void* bytes, size_t size, const SessionOptions& options)
      : rt_(OrtRuntime::get(options.onnxruntime)), api_(rt_.api()) {
    open_session(path, bytes, size, options);

    try {
      read_signature();
    } catch (...) {
      api_.ReleaseSession(session_);
      throw;
    }
    cache_inputs_.resize(inputs_.size());
    cache_outputs_.resize(outputs_.size());
    // ONNX Runtime hands a graph input that is also a graph output straight back, leaving a pre-allocated
    // output untouched: remember which, to fill such out= buffers ourselves.
    passthrough_.assign(outputs_.size(), -1);
    for (size_t k = 0; k < outputs_.size(); ++k)
      for (size_t j = 0; j < inputs_.size(); ++j)
        if (outputs_[k].name == inputs_[j].name) passthrough_[k] = static_cast<int>(j);
    run_options_ = nullptr;  // default run options
    // RunAsync only when asked for: on the CPU it was 1.5x slower than the core's pool (SessionOptions).
    async_native_ = options.async_runs == "native" && probe_run_async();
  }

  ~OrtBackend() override {
    for (auto* cache : {&cache_inputs_, &cache_outputs_})
      for (auto& b : *cache)
        if (b.value) api_.ReleaseValue(b.value);
    if (!g_in_run_async_completion) {
      api_.ReleaseSession(session_);
      return;
    }
    // Releasing the session joins its intra-op threads, this one among them: another thread does it.
    // The function itself, not the runtime object: the task may run while the process exits.
    submit_to_worker_pool([release = api_.ReleaseSession, session = session_] { release(session); });
  }

  const std::string& name() const override { return name_; }
  std::vector<std::string> providers() const override { return providers_; }
  const std::vector<TensorInfo>& inputs() const override { return inputs_; }
  const std::vector<TensorInfo>& outputs() const override { return outputs_; }

  ModelMetadata metadata() const override {
    OrtModelMetadata* md = nullptr;
    rt_.check(api_.SessionGetModelMetadata(session_, &md), ErrorCode::Runtime, "reading model metadata");
    std::unique_ptr<OrtModelMetadata, void (*)(OrtModelMetadata*)> guard(md, api_.ReleaseModelMetadata);
    ModelMetadata result;
    OrtAllocator* alloc = rt_.allocator();
    // Each getter hands over a string from the allocator: copy it, free it.
    auto take = [&](OrtStatus* status, char** value, const char* what) {
      rt_.check(status, ErrorCode::Runtime, what);
      std::string s = *value ? *value : "";
      if (*value) api_.AllocatorFree(alloc, *value);
      *value = nullptr;
      return s;
    };
    char* value = nullptr;
    result.producer_name = take(api_.ModelMetadataGetProducerName(md, alloc, &value), &value, "reading producer");
    result.graph_name = take(api_.ModelMetadataGetGraphName(md, alloc, &value), &value, "reading graph name");
    result.domain = take(api_.ModelMetadataGetDomain(md, alloc, &value), &value, "reading domain");
    result.description = take(api_.ModelMetadataGetDescription(md, alloc, &value), &value, "reading description");
    rt_.check(api_.ModelMetadataGetVersion(md, &result.version), ErrorCode::Runtime, "reading model version");

    char** keys = nullptr;
    int64_t num_keys = 0;
    rt_.check(api_.ModelMetadataGetCustomMetadataMapKeys(md, alloc, &keys, &num_keys), ErrorCode::Runtime,
              "reading custom metadata keys");
    for (int64_t i = 0; i < num_keys; ++i) {
      OrtStatus* status = api_.ModelMetadataLookupCustomMetadataMap(md, alloc, keys[i], &value);
      result.custom[keys[i]] = take(status, &value, "reading custom metadata");
      api_.AllocatorFree(alloc, keys[i]);
    }
    if (keys) api_.AllocatorFree(alloc, keys);
    return result;
  }

  SessionStats stats() const override {
    SessionStats s;
    s.tensors_wrapped = tensors_wrapped_.load();
    std::lock_guard<std::mutex> lock(cache_mutex_);
    for (const auto& b : cache_inputs_) s.input_addresses.push_back(b.runtime_address);
    return s;
  }

  void run(const TensorView* inputs, size_t num_inputs, const int32_t* output_index, TensorView* outputs,
           Tensor* owned, size_t num_outputs) override {
    std::unique_lock<std::mutex> lock(cache_mutex_, std::try_to_lock);
    const bool cached = lock.owns_lock();

    Scratch<OrtValue*> in_values(num_inputs), out_values(num_outputs), temporaries(num_inputs + num_outputs);
    size_t num_temporaries = 0;
    struct Release {  // temporaries made because the cache was busy, released however run ends
      const JbOrtApi& api;
      Scratch<OrtValue*>& values;
      size_t& count;
      ~Release() {
        for (size_t i = 0; i < count; ++i) api.ReleaseValue(values[i]);
      }
    } release{api_, temporaries, num_temporaries};

    auto bind = [&](BoundValue& slot, const TensorView& view) -> OrtValue* {
      if (cached) {
        if (!slot.matches(view)) rebind(slot, view);
        return slot.value;
      }
      OrtValue* v = make_value(view);
      temporaries[num_temporaries++] = v;
      return v;
    };

    for (size_t i = 0; i < num_inputs; ++i) in_values[i] = bind(cache_inputs_[i], inputs[i]);

    Scratch<const char*> out_names(num_outputs);
    for (size_t i = 0; i < num_outputs; ++i) {
      const int32_t k = output_index[i];
      out_names[i] = output_names_[k];
      out_values[i] = outputs[i].data ? bind(cache_outputs_[k], outputs[i]) : nullptr;
    }

    rt_.check(api_.Run(session_, run_options_, input_names_.data(), in_values.data(), num_inputs, out_names.data(),
                       num_outputs, out_values.data()),
              ErrorCode::Runtime, "running the model");

    // Every runtime-allocated value gets its owner first, so one that cannot be passed leaks nothing.
    for (size_t i = 0; i < num_outputs; ++i)
      if (outputs[i].data == nullptr) owned[i].holder.reset(out_values[i], api_.ReleaseValue);
    for (size_t i = 0; i < num_outputs; ++i) {
      if (outputs[i].data == nullptr) adopt(out_values[i], outputs_[output_index[i]], outputs[i], owned[i]);
      else if (const int j = passthrough_[output_index[i]]; j >= 0)
        fill_passthrough(outputs_[output_index[i]].name, outputs[i], inputs[j]);
    }
  }

  bool async_native() const override { return async_native_; }

  void run_async(const TensorView* inputs, size_t num_inputs, const int32_t* output_index, const TensorView* outputs,
                 Tensor* owned, size_t num_outputs, Done done) override {
    auto run = std::make_unique<AsyncRun>(*this, owned, std::move(done));
    run->inputs.assign(inputs, inputs + num_inputs);
    run->outputs.assign(outputs, outputs + num_outputs);
    run->index.assign(output_index, output_index + num_outputs);
    run->in_values.reserve(num_inputs);
    for (size_t i = 0; i < num_inputs; ++i) run->in_values.push_back(make_value(inputs[i]));
    run->out_values.assign(num_outputs, nullptr);
    for (size_t i = 0; i < num_outputs; ++i) {
      run->out_names.push_back(output_names_[output_index[i]]);
      if (outputs[i].data) run->out_values[i] = make_value(outputs[i]);
    }
    // Once RunAsync has it, the run may complete and release this backend before RunAsync returns: after
    // the call, only locals.
    const OrtRuntime& rt = rt_;
    auto* run_async_fn = api_.RunAsync;
    OrtSession* session = session_;
    const OrtRunOptions* options = run_options_;
    const char* const* in_names = input_names_.data();
    OrtValue** in_values = run->in_values.data();
    const char* const* out_names = run->out_names.data();
    OrtValue** out_values = run->out_values.data();
    AsyncRun* handed = run.get();
    handed->handed.store(true, std::memory_order_release);
    OrtStatus* refused = run_async_fn(session, options, in_names, in_values, num_inputs, out_names, num_outputs,
                                      out_values, &complete_run_async, handed);
    if (refused == nullptr) {
      run.release();  // the runtime calls complete_run_async with it
      return;
    }
    rt.check(refused, ErrorCode::Runtime, "starting the model asynchronously");
  }

 private:
  void configure(OrtSessionOptions* so, const SessionOptions& o) {
    rt_.check(api_.SetSessionGraphOptimizationLevel(so, optimization_level(o.optimization)),
              ErrorCode::InvalidArgument, "setting the optimization level");
    rt_.check(api_.SetSessionLogSeverityLevel(so, log_severity(o.log_level)), ErrorCode::InvalidArgument,
              "setting the log level");
    if (o.execution_mode != "sequential" && o.execution_mode != "parallel")
      throw Error(ErrorCode::InvalidArgument,
                  "execution_mode must be sequential or parallel; got '" + o.execution_mode + "'");
    rt_.check(api_.SetSessionExecutionMode(so, o.execution_mode == "parallel" ? ORT_PARALLEL : ORT_SEQUENTIAL),
              ErrorCode::InvalidArgument, "setting the execution mode");
    if (o.intra_op_threads < 0 || o.inter_op_threads < 0)
      throw Error(ErrorCode::InvalidArgument, "thread counts must be >= 0 (0: the runtime's default)");
    if (o.global_thread_pool) {
      rt_.check(api_.DisablePerSessionThreads(so), ErrorCode::InvalidArgument, "using the global thread pools");
    } else {
      rt_.check(api_.SetIntraOpNumThreads(so, o.intra_op_threads), ErrorCode::InvalidArgument,
                "setting intra-op threads");
      rt_.check(api_.SetInterOpNumThreads(so, o.inter_op_threads), ErrorCode::InvalidArgument,
                "setting inter-op threads");
    }
    for (const auto& [key, value] : o.config) {
      // Every ONNX Runtime session config key is "<area>.<name>" (session., optimization., ep., mlas.):
      // a plain word is a misspelt option or another backend's, which ONNX Runtime would keep silently.
      if (key.find('.') == std::string::npos)
        reject_option(key, "onnxruntime", "session config entries '<area>.<name>' (config.session.intra_op.allow_spinning)");
      rt_.check(api_.AddSessionConfigEntry(so, key.c_str(), value.c_str()), ErrorCode::InvalidArgument,
                "setting session config entry '" + key + "'");
    }
  }

  // Opens session_ with the first of the wanted providers that initialises. `providers` is an order of
  // preference: the session is tried with the wanted providers from the first on, dropping the first
  // each time it cannot be used; CPU alone is the last try. A skipped provider is logged once the session
  // is open; under require_providers it is an error instead.
  void open_session(const std::string& path, const void* bytes, size_t size, const SessionOptions& options) {
    refuse_external_data_without_a_path(bytes, size, options);
    OrtEnv* env = rt_.env(options.global_thread_pool, options.intra_op_threads, options.inter_op_threads);
    std::vector<std::pair<std::string, std::string>> skipped;  // provider, why
    const std::vector<std::string> candidates = provider_candidates(options, skipped);
    std::optional<Error> required_failure;  // a required provider failed where the model itself may be at fault
    for (size_t first = 0;; ++first) {
      const std::vector<std::string> use(candidates.begin() + static_cast<std::ptrdiff_t>(first), candidates.end());
      OrtSessionOptions* so = nullptr;
      rt_.check(api_.CreateSessionOptions(&so), ErrorCode::BackendUnavailable, "creating session options");
      std::unique_ptr<OrtSessionOptions, void (*)(OrtSessionOptions*)> so_guard(so, api_.ReleaseSessionOptions);
      configure(so, options);  // a bad option is an error whatever the providers
      try {
        append_providers(so, use);
        create_session(path, bytes, size, so, env);
        for (const auto& full : use) providers_.push_back(short_provider_name(full));
        providers_.push_back("cpu");
        break;
      } catch (const Error& e) {
        if (first == candidates.size()) throw;  // CPU alone failed: the model's own error
        const std::string provider = short_provider_name(candidates[first]);
        if (!options.require_providers) {
          skipped.emplace_back(provider, e.what());
          continue;
        }
        Error failure(ErrorCode::BackendUnavailable, "execution provider '" + provider +
                                                         "' could not be used (require_providers is set): " + e.what(),
                      e.backend_code());
        if (e.code() != ErrorCode::ModelLoad) throw failure;  // it could not even be enabled
        // The session failed to open with it: the provider's fault only if the CPU alone opens the model.
        required_failure = failure;
        first = candidates.size() - 1;
      }
    }
    if (required_failure) {
      api_.ReleaseSession(session_);
      session_ = nullptr;
      throw *required_failure;
    }
    for (const auto& [provider, why] : skipped) {
      std::string line = "execution provider '" + provider + "' skipped: " + why + "; the session uses ";
      for (size_t i = 0; i < providers_.size(); ++i) line += (i ? ", " : "") + providers_[i];
      log_message(JB_LOG_WARNING, "providers", line.c_str());
    }
  }

  void create_session(const std::string& path, const void* bytes, size_t size, OrtSessionOptions* so, OrtEnv* env) {
    const std::string what = bytes ? "loading a model from " + std::to_string(size) + " bytes in memory"
                                   : "loading model '" + path + "'";
    if (bytes == nullptr)
      rt_.check(api_.CreateSession(env, path.c_str(), so, &session_), ErrorCode::ModelLoad, what);
    else
      rt_.check(api_.CreateSessionFromArray(env, bytes, size, so, &session_), ErrorCode::ModelLoad, what);
  }

  // External data are found next to the model's file; bytes have none, and ONNX Runtime would look in
  // the working directory instead (failing there, or reading a stranger's file of that name). Unless the
  // caller names their folder with ONNX Runtime's own config entry, such bytes are refused here.
  static void refuse_external_data_without_a_path(const void* bytes, size_t size, const SessionOptions& options) {
    static const std::string folder_key = "session.model_external_initializers_file_folder_path";
    if (bytes == nullptr || options.config.count(folder_key)) return;
    const std::optional<ExternalTensor> external = find_external_tensor(bytes, size);
    if (!external) return;
    throw Error(ErrorCode::ModelLoad,
                "loading a model from " + std::to_string(size) + " bytes in memory: its tensor '" + external->name +
                    "' keeps its data in an external file ('" + external->location +
                    "'), and external data need the model's path, to be found next to it: open the model by its "
                    "path, or name the folder of its external data with the session config entry '" +
                    folder_key + "' (in releases that honour it)");
  }

  // The wanted providers other than CPU, by ONNX Runtime's full names, in order. One this runtime does
  // not offer is an error under require_providers, else recorded in `skipped`.
  std::vector<std::string> provider_candidates(const SessionOptions& options,
                                               std::vector<std::pair<std::string, std::string>>& skipped) const {
    const std::vector<std::string> available = rt_.providers();
    std::vector<std::string> candidates;
    for (const auto& name : options.providers) {
      std::string lower = name;
      std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
      if (lower == "cpu" || lower == "cpuexecutionprovider") continue;  // always there, always last
      std::string full = name;
      for (const auto& a : available)  // "cuda", "CUDA" and "CUDAExecutionProvider" name the same one
        if (short_provider_name(a) == lower || short_provider_name(a) == short_provider_name(name)) full = a;
      if (std::find(available.begin(), available.end(), full) == available.end()) {
        std::string list;
        for (const auto& a : available) list += (list.empty() ? "" : ", ") + a;
        const std::string why = "execution provider '" + name + "' is not available in ONNX Runtime " + rt_.version() +
                                " at '" + rt_.path() + "'; it offers: " + list;
        if (options.require_providers) throw Error(ErrorCode::BackendUnavailable, why);
        skipped.emplace_back(lower, why);
        continue;
      }
      if (std::find(candidates.begin(), candidates.end(), full) == candidates.end()) candidates.push_back(full);
    }
    return candidates;
  }

  // "CUDAExecutionProvider" -> "cuda": the spelling Session.providers reports.
  static std::string short_provider_name(const std::string& full) {
    std::string s = full.substr(0, full.find("ExecutionProvider"));
    std::transform(s.begin(), s.end(), s.begin(), ::tolower);
    return s;
  }

  void append_providers(OrtSessionOptions* so, const std::vector<std::string>& providers) {
    for (const auto& full : providers) {
      const std::string name = short_provider_name(full);
      if (full == "CUDAExecutionProvider") {
        OrtCUDAProviderOptionsV2* cuda = nullptr;
        rt_.check(api_.CreateCUDAProviderOptions(&cuda), ErrorCode::BackendUnavailable, "creating CUDA options");
        std::unique_ptr<OrtCUDAProviderOptionsV2, void (*)(OrtCUDAProviderOptionsV2*)> guard(
            cuda, api_.ReleaseCUDAProviderOptions);
        rt_.check(api_.SessionOptionsAppendExecutionProvider_CUDA_V2(so, cuda), ErrorCode::BackendUnavailable,
                  "enabling the CUDA execution provider");
      } else {
        // The name as the runtime lists it; releases before 1.21 know only the short spelling ("AZURE").
        OrtStatus* status = api_.SessionOptionsAppendExecutionProvider(so, full.c_str(), nullptr, nullptr, 0);
        if (status != nullptr) {
          api_.ReleaseStatus(status);
          std::string upper = full.substr(0, full.find("ExecutionProvider"));
          std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
          status = api_.SessionOptionsAppendExecutionProvider(so, upper.c_str(), nullptr, nullptr, 0);
        }
        rt_.check(status, ErrorCode::BackendUnavailable, "enabling execution provider '" + name + "'");
      }
    }
  }

  // ONNX's full spelling of a type, as onnxruntime's Python API writes it: "tensor(float)",
  // "seq(map(int64,tensor(float)))" (a classifier's ZipMap output), "optional(tensor(float))". Names the
  // type of what the bridge cannot pass in its messages.
  std::string type_string(const OrtTypeInfo* type_info, const std::string& what, int depth) {
    const std::string reading = "reading the type of " + what;
    ONNXType kind = ONNX_TYPE_UNKNOWN;
    rt_.check(api_.GetOnnxTypeFromTypeInfo(type_info, &kind), ErrorCode::ModelLoad, reading);
    using Owned = std::unique_ptr<OrtTypeInfo, void (*)(OrtTypeInfo*)>;  // an inner type handed to us
    auto inner = [&](const char* prefix, OrtTypeInfo* contained, const std::string& before = "") {
      Owned guard(contained, api_.ReleaseTypeInfo);
      if (contained == nullptr || depth >= 32) return std::string(prefix);  // 32: no real type nests deeper
      return std::string(prefix) + "(" + before + type_string(contained, what, depth + 1) + ")";
    };
    switch (kind) {
      case ONNX_TYPE_TENSOR:
      case ONNX_TYPE_SPARSETENSOR: {
        const char* prefix = kind == ONNX_TYPE_TENSOR ? "tensor" : "sparse_tensor";
        const OrtTensorTypeAndShapeInfo* tensor = nullptr;
        rt_.check(api_.CastTypeInfoToTensorInfo(type_info, &tensor), ErrorCode::ModelLoad, reading);
        ONNXTensorElementDataType element = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
        if (tensor == nullptr) return prefix;
        rt_.check(api_.GetTensorElementType(tensor, &element), ErrorCode::ModelLoad, reading);
        return std::string(prefix) + "(" + element_type_name(element) + ")";
      }
      case ONNX_TYPE_SEQUENCE: {
        const OrtSequenceTypeInfo* sequence = nullptr;
        OrtTypeInfo* element = nullptr;
        rt_.check(api_.CastTypeInfoToSequenceTypeInfo(type_info, &sequence), ErrorCode::ModelLoad, reading);
        if (sequence) rt_.check(api_.GetSequenceElementType(sequence, &element), ErrorCode::ModelLoad, reading);
        return inner("seq", element);
      }
      case ONNX_TYPE_MAP: {
        const OrtMapTypeInfo* map = nullptr;
        ONNXTensorElementDataType key = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
        OrtTypeInfo* value = nullptr;
        rt_.check(api_.CastTypeInfoToMapTypeInfo(type_info, &map), ErrorCode::ModelLoad, reading);
        if (map == nullptr) return "map";
        rt_.check(api_.GetMapKeyType(map, &key), ErrorCode::ModelLoad, reading);
        rt_.check(api_.GetMapValueType(map, &value), ErrorCode::ModelLoad, reading);
        return inner("map", value, element_type_name(key) + ",");
      }
      case ONNX_TYPE_OPTIONAL: {
        const OrtOptionalTypeInfo* optional = nullptr;
        OrtTypeInfo* contained = nullptr;
        rt_.check(api_.CastTypeInfoToOptionalTypeInfo(type_info, &optional), ErrorCode::ModelLoad, reading);
        if (optional) rt_.check(api_.GetOptionalContainedTypeInfo(optional, &contained), ErrorCode::ModelLoad, reading);
        return inner("optional", contained);
      }
      case ONNX_TYPE_OPAQUE: return "opaque";
      default: return "unknown";
    }
  }

  TensorInfo describe(OrtTypeInfo* type_info, std::string name) {
    std::unique_ptr<OrtTypeInfo, void (*)(OrtTypeInfo*)> guard(type_info, api_.ReleaseTypeInfo);
    TensorInfo info;
    info.name = std::move(name);
    ONNXType kind = ONNX_TYPE_UNKNOWN;
    rt_.check(api_.GetOnnxTypeFromTypeInfo(type_info, &kind), ErrorCode::ModelLoad, "reading type of " + info.name);
    if (kind != ONNX_TYPE_TENSOR) {
      info.type_name = type_string(type_info, info.name, 0);
      info.rank_known = false;
      return info;
    }
    const OrtTensorTypeAndShapeInfo* tensor = nullptr;
    rt_.check(api_.CastTypeInfoToTensorInfo(type_info, &tensor), ErrorCode::ModelLoad, "reading " + info.name);
    ONNXTensorElementDataType element = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    rt_.check(api_.GetTensorElementType(tensor, &element), ErrorCode::ModelLoad, "reading " + info.name);
    info.dtype = to_dtype(element);
    info.type_name = "tensor(" + element_type_name(element) + ")";
    size_t rank = 0;
    rt_.check(api_.GetDimensionsCount(tensor, &rank), ErrorCode::ModelLoad, "reading " + info.name);
    info.shape.resize(rank);
    std::vector<const char*> symbols(rank, nullptr);
    rt_.check(api_.GetDimensions(tensor, info.shape.data(), rank), ErrorCode::ModelLoad, "reading " + info.name);
    rt_.check(api_.GetSymbolicDimensions(tensor, symbols.data(), rank), ErrorCode::ModelLoad, "reading " + info.name);
    for (size_t d = 0; d < rank; ++d) {
      if (info.shape[d] < 0) info.shape[d] = -1;
      if (symbols[d] && *symbols[d]) info.dim_names.emplace_back(symbols[d]);
      else info.dim_names.emplace_back(std::nullopt);
    }
    // The C API reports an unknown rank as rank 0; leave such a tensor's rank to the runtime to check.
    info.rank_known = rank > 0;
    return info;
  }

  void read_signature() {
    OrtAllocator* alloc = rt_.allocator();
    auto read = [&](bool is_input, std::vector<TensorInfo>& infos, std::vector<std::string>& names) {
      size_t count = 0;
      rt_.check(is_input ? api_.SessionGetInputCount(session_, &count) : api_.SessionGetOutputCount(session_, &count),
                ErrorCode::ModelLoad, "counting model inputs/outputs");
      for (size_t i = 0; i < count; ++i) {
        char* name = nullptr;
        rt_.check(is_input ? api_.SessionGetInputName(session_, i, alloc, &name)
                           : api_.SessionGetOutputName(session_, i, alloc, &name),
                  ErrorCode::ModelLoad, "reading input/output names");
        names.emplace_back(name);
        api_.AllocatorFree(alloc, name);
        OrtTypeInfo* type_info = nullptr;
        rt_.check(is_input ? api_.SessionGetInputTypeInfo(session_, i, &type_info)
                           : api_.SessionGetOutputTypeInfo(session_, i, &type_info),
                  ErrorCode::ModelLoad, "reading the type of " + names.back());
        infos.push_back(describe(type_info, names.back()));
      }
    };
    read(true, inputs_, input_name_storage_);
    read(false, outputs_, output_name_storage_);
    for (const auto& n : input_name_storage_) input_names_.push_back(n.c_str());
    for (const auto& n : output_name_storage_) output_names_.push_back(n.c_str());
  }

  OrtValue* make_value(const TensorView& view) {
    static char empty_tensor_storage;  // ONNX Runtime wants a non-NULL pointer even for zero elements
    void* data = view.data ? view.data : &empty_tensor_storage;
    OrtValue* value = nullptr;
    rt_.check(api_.CreateTensorWithDataAsOrtValue(rt_.cpu_memory(), data, view.nbytes(), view.shape,
                                                  static_cast<size_t>(view.rank),
                                                  static_cast<ONNXTensorElementDataType>(view.dtype), &value),
              ErrorCode::Input, "wrapping a tensor");
    tensors_wrapped_.fetch_add(1, std::memory_order_relaxed);
    return value;
  }

  void rebind(BoundValue& slot, const TensorView& view) {
    OrtValue* value = make_value(view);
    if (slot.value) api_.ReleaseValue(slot.value);
    slot.value = value;
    void* address = nullptr;
    rt_.check(api_.GetTensorMutableData(value, &address), ErrorCode::Runtime, "reading a wrapped tensor");
    slot.runtime_address = address;
    slot.data = view.data;
    slot.dtype = view.dtype;
    slot.rank = view.rank;
    std::memcpy(slot.shape, view.shape, sizeof(int64_t) * static_cast<size_t>(view.rank));
  }

  // An out= buffer for an output that is an input: the one case where writing the output means copying.
  void fill_passthrough(const std::string& name, const TensorView& out, const TensorView& in) {
    if (out.rank != in.rank || std::memcmp(out.shape, in.shape, sizeof(int64_t) * static_cast<size_t>(in.rank)) != 0)
      throw Error(ErrorCode::Input, "output '" + name + "' is the model's input of that name passed through, so its "
                                    "buffer must have the input's shape " + shape_string(in.shape, in.rank) +
                                    ", got " + shape_string(out.shape, out.rank));
    std::memcpy(out.data, in.data, in.nbytes());
  }

  // Hands a runtime-allocated output to the caller without a copy: the Tensor holds the OrtValue.
  void adopt(OrtValue* value, const TensorInfo& info, TensorView& view, Tensor& owned) {
    ONNXType kind = ONNX_TYPE_UNKNOWN;
    rt_.check(api_.GetValueType(value, &kind), ErrorCode::Runtime, "reading output " + info.name);
    if (kind != ONNX_TYPE_TENSOR)
      throw Error(ErrorCode::Unsupported, "output '" + info.name + "' is a " + info.type_name +
                                              ", not a tensor; juno-bridge passes tensors only");
    OrtTensorTypeAndShapeInfo* shape_info = nullptr;
    rt_.check(api_.GetTensorTypeAndShape(value, &shape_info), ErrorCode::Runtime, "reading output " + info.name);
    std::unique_ptr<OrtTensorTypeAndShapeInfo, void (*)(OrtTensorTypeAndShapeInfo*)> guard(
        shape_info, api_.ReleaseTensorTypeAndShapeInfo);
    ONNXTensorElementDataType element = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    size_t rank = 0;
    rt_.check(api_.GetTensorElementType(shape_info, &element), ErrorCode::Runtime, "reading output " + info.name);
    rt_.check(api_.GetDimensionsCount(shape_info, &rank), ErrorCode::Runtime, "reading output " + info.name);
    if (to_dtype(element) == DType::Undefined)
      throw Error(ErrorCode::Unsupported, "output '" + info.name + "' has element type " + element_type_name(element) +
                                              ", which juno-bridge does not pass");
    if (rank > static_cast<size_t>(kMaxRank))
      throw Error(ErrorCode::Unsupported, "output '" + info.name + "' has rank " + std::to_string(rank) +
                                              ", above the maximum of " + std::to_string(kMaxRank));
    view.dtype = to_dtype(element);
    view.rank = static_cast<int32_t>(rank);
    rt_.check(api_.GetDimensions(shape_info, view.shape, rank), ErrorCode::Runtime, "reading output " + info.name);
    void* data = nullptr;
    rt_.check(api_.GetTensorMutableData(value, &data), ErrorCode::Runtime, "reading output " + info.name);
    view.data = data;
    owned.view = view;
  }

  // One RunAsync in flight: the arrays the runtime reads until it completes, and our OrtValues.
  struct AsyncRun {
    AsyncRun(OrtBackend& b, Tensor* o, Done d) : backend(&b), api(&b.api_), owned(o), done(std::move(d)) {}
    ~AsyncRun() {
      for (OrtValue* v : in_values) api->ReleaseValue(v);
      for (OrtValue* v : out_values)  // ours over out= buffers, and made ones not handed to the caller
        if (v) api->ReleaseValue(v);
    }
    OrtBackend* backend;
    const JbOrtApi* api;  // the runtime's, alive for the process (the backend may go inside `done`)
    Tensor* owned;
    Done done;
    std::vector<TensorView> inputs, outputs;
    std::vector<int32_t> index;
    std::vector<const char*> out_names;
    std::vector<OrtValue*> in_values;
    std::vector<OrtValue*> out_values;
    // Released before RunAsync, acquired first by the completion: the hand-over the runtime's own queue
    // makes, stated where a thread sanitizer sees it (the runtime is not instrumented).
    std::atomic<bool> handed{false};
  };

  // The end of a RunAsync, on a runtime thread: nothing may escape, no Python may run without the GIL
  // (`done` takes it if it needs it). The backend's own work comes first: `done` may release it.
  static void complete_run_async(void* user_data, OrtValue** values, size_t, OrtStatus* status) noexcept {
    std::unique_ptr<AsyncRun> run(static_cast<AsyncRun*>(user_data));
    (void)run->handed.load(std::memory_order_acquire);
    g_in_run_async_completion = true;
    std::exception_ptr error;
    try {
      run->backend->finish_run_async(*run, values, status);
    } catch (...) {
      error = std::current_exception();
    }
    Done done = std::move(run->done);
    run.reset();
    try {
      done(error);
    } catch (...) {
    }
    g_in_run_async_completion = false;
  }

  // What run does after Run, for a RunAsync: the allocated outputs to the caller, pass-through out= filled.
  void finish_run_async(AsyncRun& run, OrtValue** values, OrtStatus* status) {
    rt_.check(status, ErrorCode::Runtime, "running the model");
    const size_t n = run.outputs.size();
    for (size_t i = 0; i < n; ++i)
      if (run.outputs[i].data == nullptr) {
        run.owned[i].holder.reset(values[i], api_.ReleaseValue);
        values[i] = nullptr;  // the Tensor has it now
      }
    for (size_t i = 0; i < n; ++i) {
      const int32_t k = run.index[i];
      if (run.outputs[i].data == nullptr)
        adopt(static_cast<OrtValue*>(run.owned[i].holder.get()), outputs_[k], run.outputs[i], run.owned[i]);
      else if (const int j = passthrough_[k]; j >= 0) fill_passthrough(outputs_[k].name, run.outputs[i], run.inputs[j]);
    }
  }

  // RunAsync runs on the session's intra-op pool and is refused when that pool has fewer than 2 threads
  // (ONNX Runtime 1.16 to 1.31: intra_op_threads=1, or a default on a one-core machine). Asked once at
  // open, with a run of no outputs: refused at once (then the worker pool serves this session), or started
  // and failed in the pool ("at least one output"), which is awaited.
  bool probe_run_async() {
    struct Probe {
      std::mutex mutex;
      std::condition_variable done_cv;
      bool done = false;
      std::atomic<const JbOrtApi*> api;  // the hand-over to the runtime's thread (see AsyncRun::handed)
    } probe;
    probe.api.store(&api_, std::memory_order_release);
    auto on_done = [](void* user_data, OrtValue**, size_t, OrtStatus* status) {
      auto* p = static_cast<Probe*>(user_data);
      const JbOrtApi* api = p->api.load(std::memory_order_acquire);
      if (status) api->ReleaseStatus(status);
      std::lock_guard<std::mutex> lock(p->mutex);
      p->done = true;
      p->done_cv.notify_one();
    };
    OrtStatus* refused = api_.RunAsync(session_, run_options_, nullptr, nullptr, 0, nullptr, 0, nullptr, on_done, &probe);
    if (refused != nullptr) {
      const std::string line = std::string("run_async of this session uses the worker pool: ONNX Runtime's RunAsync "
                                           "refuses it (") + api_.GetErrorMessage(refused) + ")";
      api_.ReleaseStatus(refused);
      log_message(JB_LOG_VERBOSE, "async", line.c_str());
      return false;
    }
    std::unique_lock<std::mutex> lock(probe.mutex);
    probe.done_cv.wait(lock, [&] { return probe.done; });
    return true;
  }

  OrtRuntime& rt_;
  const JbOrtApi& api_;
  const std::string name_ = "onnxruntime";
  OrtSession* session_ = nullptr;
  OrtRunOptions* run_options_ = nullptr;
  std::vector<TensorInfo> inputs_, outputs_;
  std::vector<std::string> input_name_storage_, output_name_storage_;
  std::vector<const char*> input_names_, output_names_;
  mutable std::mutex cache_mutex_;
  std::atomic<uint64_t> tensors_wrapped_{0};
  std::vector<BoundValue> cache_inputs_, cache_outputs_;
  std::vector<std::string> providers_;  // what the session got, in order, "cpu" last
  std::vector<int> passthrough_;  // per output: the input it is (same name), or -1
  bool async_native_ = false;     // RunAsync serves run_async (probe_run_async)
};

}  // namespace

std::unique_ptr<Backend> open_onnxruntime(const std::string& path, const void* bytes, size_t size,
                                          const SessionOptions& options) {
  return std::make_unique<OrtBackend>(path, bytes, size, options);
}

OnnxRuntimeInfo onnxruntime_info(const std::string& library) {
  OrtRuntime& rt = OrtRuntime::get(library);
  OnnxRuntimeInfo info;
  info.path = rt.path();
  info.version = rt.version();
  info.api_version = rt.api_version();
  info.build_info = rt.build_info();
  info.providers = rt.providers();
  return info;
}

}  // namespace jb
