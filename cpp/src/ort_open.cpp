// The ONNX Runtime backend (ort_backend.hpp), opening: the OrtSession made with the session options and
// the execution providers (the first wanted one that initialises, CPU last), and the backend's life.
#include <algorithm>
#include <optional>

#include "juno_bridge/juno_bridge.h"
#include "log.hpp"
#include "onnx_model_bytes.hpp"
#include "ort_backend.hpp"

namespace jb {
namespace {

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

}  // namespace

OrtBackend::OrtBackend(const std::string& path, const void* bytes, size_t size, const SessionOptions& options)
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
  // RunAsync only when asked for (SessionOptions::async_runs): on the CPU the core's pool serves more runs
  // (measured in the README, Python, on run_async).
  // RunAsync allocates outputs in host memory: outputs on the GPU (output_device) are run by the pool.
  async_native_ = options.async_runs == "native" && !output_on_device_ && probe_run_async();
}

OrtBackend::~OrtBackend() {
  for (auto* cache : {&cache_inputs_, &cache_outputs_})
    for (auto& b : *cache)
      if (b.value) api_.ReleaseValue(b.value);
  if (pinned_allocator_) api_.ReleaseAllocator(pinned_allocator_);  // every block is freed: each held this backend
  if (!g_in_run_async_completion) {
    api_.ReleaseSession(session_);
    return;
  }
  // Releasing the session joins its intra-op threads, this one among them: another thread does it.
  // The function itself, not the runtime object: the task may run while the process exits.
  submit_to_worker_pool([release = api_.ReleaseSession, session = session_] { release(session); });
}

void OrtBackend::configure(OrtSessionOptions* so, const SessionOptions& o) {
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
void OrtBackend::open_session(const std::string& path, const void* bytes, size_t size, const SessionOptions& options) {
  refuse_external_data_without_a_path(bytes, size, options);
  std::string asked;
  bool asks_cuda = false;  // "cuda", "CUDA" and "CUDAExecutionProvider" name the same one
  for (const auto& p : options.providers) {
    asked += (asked.empty() ? "" : ",") + p;
    asks_cuda = asks_cuda || short_provider_name(p) == "cuda";
  }
  if (options.cuda_graph && !asks_cuda)
    throw Error(ErrorCode::InvalidArgument,
                "option 'cuda_graph' is for ONNX Runtime's CUDA provider, and the "
                "session asks for providers " +
                    asked + ": open it with providers cuda,cpu");
  if (options.output_device == "cuda" && !asks_cuda)
    throw Error(ErrorCode::InvalidArgument,
                "option output_device=cuda needs ONNX Runtime's CUDA provider, and the "
                "session asks for providers " +
                    asked + ": open it with providers cuda,cpu");
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
      append_providers(so, use, options.cuda_graph);
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
  describe_devices();
  if (options.output_device == "cuda" && devices_.empty()) {
    api_.ReleaseSession(session_);
    session_ = nullptr;
    std::string why;
    for (const auto& [provider, reason] : skipped) why += "; " + provider + " was skipped: " + reason;
    throw Error(ErrorCode::BackendUnavailable,
                "option output_device=cuda: the CUDA provider is not in use, so outputs cannot be allocated in "
                "GPU memory (juno-bridge never hands host memory where GPU memory was asked for)" +
                    why);
  }
  output_on_device_ = options.output_device == "cuda";
  if (options.cuda_graph && devices_.empty())
    log_message(JB_LOG_WARNING, "providers",
                "option cuda_graph: the CUDA provider is not in use, so the session "
                "runs without CUDA graphs");
}

// The CUDA provider computes on device 0 (no device_id is set): its memory is taken in place, and pinned
// host memory is described as pinned, so that ONNX Runtime copies it to the GPU without staging it.
void OrtBackend::describe_devices() {
  if (std::find(providers_.begin(), providers_.end(), "cuda") == providers_.end()) return;
  OrtMemoryInfo* info = nullptr;
  rt_.check(api_.CreateMemoryInfo("Cuda", OrtDeviceAllocator, 0, OrtMemTypeDefault, &info),
            ErrorCode::BackendUnavailable, "describing CUDA device memory");
  cuda_memory_ = {info, api_.ReleaseMemoryInfo};
  rt_.check(api_.CreateMemoryInfo("CudaPinned", OrtDeviceAllocator, 0, OrtMemTypeCPUOutput, &info),
            ErrorCode::BackendUnavailable, "describing CUDA pinned host memory");
  pinned_memory_ = {info, api_.ReleaseMemoryInfo};
  devices_.push_back(Device::cuda(0));
}

void OrtBackend::create_session(const std::string& path, const void* bytes, size_t size, OrtSessionOptions* so,
                                OrtEnv* env) {
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
void OrtBackend::refuse_external_data_without_a_path(const void* bytes, size_t size, const SessionOptions& options) {
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
std::vector<std::string> OrtBackend::provider_candidates(
    const SessionOptions& options, std::vector<std::pair<std::string, std::string>>& skipped) const {
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
std::string OrtBackend::short_provider_name(const std::string& full) {
  std::string s = full.substr(0, full.find("ExecutionProvider"));
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  return s;
}

void OrtBackend::append_providers(OrtSessionOptions* so, const std::vector<std::string>& providers, bool cuda_graph) {
  for (const auto& full : providers) {
    const std::string name = short_provider_name(full);
    if (full == "CUDAExecutionProvider") {
      OrtCUDAProviderOptionsV2* cuda = nullptr;
      rt_.check(api_.CreateCUDAProviderOptions(&cuda), ErrorCode::BackendUnavailable, "creating CUDA options");
      std::unique_ptr<OrtCUDAProviderOptionsV2, void (*)(OrtCUDAProviderOptionsV2*)> guard(
          cuda, api_.ReleaseCUDAProviderOptions);
      if (cuda_graph) {
        const char* key = "enable_cuda_graph";
        const char* on = "1";
        rt_.check(api_.UpdateCUDAProviderOptions(cuda, &key, &on, 1), ErrorCode::BackendUnavailable,
                  "enabling CUDA graphs (option cuda_graph)");
      }
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
