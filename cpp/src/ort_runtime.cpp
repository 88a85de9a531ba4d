#include "ort_runtime.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>

#include "log.hpp"
#include "platform.hpp"

#ifndef JB_BUILD_ONNXRUNTIME
#define JB_BUILD_ONNXRUNTIME ""
#endif

namespace jb {

const char* ort_error_name(int code) {
  static const char* const names[] = {"OK", "FAIL", "INVALID_ARGUMENT", "NO_SUCHFILE", "NO_MODEL",
                                      "ENGINE_ERROR", "RUNTIME_EXCEPTION", "INVALID_PROTOBUF",
                                      "MODEL_LOADED", "NOT_IMPLEMENTED", "INVALID_GRAPH", "EP_FAIL"};
  return code >= 0 && code < 12 ? names[code] : "UNKNOWN";
}

namespace {

// Where to look when no library was named: the onnxruntime wheel in the same site-packages as this
// package (juno_bridge/lib/ -> site-packages/onnxruntime/capi/), then the wheel seen at build time.
std::vector<std::string> default_candidates() {
  std::vector<std::string> candidates;
  const std::string capi = this_library_dir() + "/../../onnxruntime/capi";
  for (const auto& file : list_files(capi, "libonnxruntime.so.1.")) candidates.push_back(file);
  if (std::string(JB_BUILD_ONNXRUNTIME).size() > 0) candidates.push_back(JB_BUILD_ONNXRUNTIME);
  candidates.push_back("libonnxruntime.so.1");  // the system loader's search path
  return candidates;
}

// ONNX Runtime 1.x has offered C API version == its minor version since 1.3.
uint32_t api_version_from_release(const std::string& release) {
  unsigned major = 0, minor = 0;
  if (std::sscanf(release.c_str(), "%u.%u", &major, &minor) == 2 && major == 1) return minor;
  return JB_ORT_API_VERSION_DECLARED;
}

}  // namespace

OrtRuntime::OrtRuntime(const std::string& path) : path_(path) {
  std::string error;
  handle_ = open_library(path, error);
  if (handle_ == nullptr)
    throw Error(ErrorCode::BackendUnavailable, "cannot load the ONNX Runtime library '" + path + "': " + error);
  auto get_api_base = reinterpret_cast<OrtGetApiBaseFn>(find_symbol(handle_, "OrtGetApiBase"));
  if (get_api_base == nullptr)
    throw Error(ErrorCode::BackendUnavailable,
                "'" + path + "' is not an ONNX Runtime library: it does not export OrtGetApiBase");
  const OrtApiBase* base = get_api_base();
  if (base == nullptr || base->GetApi == nullptr || base->GetVersionString == nullptr)
    throw Error(ErrorCode::BackendUnavailable, "'" + path + "': OrtGetApiBase() returned no usable API base");
  const char* release = base->GetVersionString();
  version_ = release ? release : "unknown";

  // Ask for the highest version we declare, starting from what the release should offer, and fall back.
  uint32_t first = std::min<uint32_t>(JB_ORT_API_VERSION_DECLARED, api_version_from_release(version_));
  const OrtApi* table = nullptr;
  for (uint32_t v = first; v >= JB_ORT_API_VERSION_MINIMUM && table == nullptr; --v) {
    table = base->GetApi(v);
    if (table != nullptr) api_version_ = v;
  }
  if (table == nullptr) {
    const std::string minimum = std::to_string(JB_ORT_API_VERSION_MINIMUM);
    throw Error(ErrorCode::BackendUnavailable,
                "ONNX Runtime " + version_ + " at '" + path + "' is too old: juno-bridge needs C API version " +
                    minimum + " or newer (ONNX Runtime 1." + minimum +
                    " or later), and this library offers at most version " +
                    std::to_string(api_version_from_release(version_)));
  }
  jb_ort_bind(table, &api_);
  check(api_.CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &cpu_memory_), ErrorCode::BackendUnavailable,
        "creating CPU memory info");
  if (OrtStatus* status = api_.GetAllocatorWithDefaultOptions(&allocator_)) {
    api_.ReleaseMemoryInfo(cpu_memory_);
    fail(status, ErrorCode::BackendUnavailable, "getting the allocator");
  }
}

// Runs at process exit (the runtimes live in a function-local static); the library is never unloaded,
// so its functions are still there.
OrtRuntime::~OrtRuntime() {
  if (cpu_memory_ != nullptr) api_.ReleaseMemoryInfo(cpu_memory_);
}

OrtRuntime& OrtRuntime::get(const std::string& library) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<OrtRuntime>> loaded;  // never unloaded, see header

  std::string wanted = library;
  if (wanted.empty())
    if (const char* env = std::getenv("JUNO_BRIDGE_ONNXRUNTIME"); env != nullptr && *env != '\0') wanted = env;

  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = loaded.find(wanted); it != loaded.end()) return *it->second;

  std::unique_ptr<OrtRuntime> runtime;
  if (!wanted.empty()) {
    if (wanted.find('/') != std::string::npos && !file_exists(wanted))
      throw Error(ErrorCode::BackendUnavailable, "ONNX Runtime library '" + wanted + "' does not exist");
    runtime.reset(new OrtRuntime(wanted));
  } else {
    std::string tried;
    for (const auto& candidate : default_candidates()) {
      if (candidate.find('/') != std::string::npos && !file_exists(candidate)) {
        tried += "\n  " + candidate + ": no such file";
        continue;
      }
      try {
        runtime.reset(new OrtRuntime(candidate));
        break;
      } catch (const Error& e) {
        tried += "\n  " + candidate + ": " + e.what();
      }
    }
    if (!runtime)
      throw Error(ErrorCode::BackendUnavailable,
                  "no ONNX Runtime library found; install it (pip install onnxruntime) or name one with "
                  "JUNO_BRIDGE_ONNXRUNTIME or the onnxruntime option. Tried:" + tried);
  }
  return *(loaded[wanted] = std::move(runtime));
}

void OrtRuntime::fail(OrtStatus* status, ErrorCode code, const char* context) const {
  int ort_code = static_cast<int>(api_.GetErrorCode(status));
  std::string message = api_.GetErrorMessage(status);
  api_.ReleaseStatus(status);
  throw Error(code, std::string(context) + ": [ONNX Runtime " + ort_error_name(ort_code) + "] " + message, ort_code);
}

std::string OrtRuntime::build_info() const { return api_.GetBuildInfoString ? api_.GetBuildInfoString() : ""; }

std::vector<std::string> OrtRuntime::providers() const {
  char** names = nullptr;
  int count = 0;
  check(api_.GetAvailableProviders(&names, &count), ErrorCode::BackendUnavailable, "listing execution providers");
  std::vector<std::string> result(names, names + count);
  check(api_.ReleaseAvailableProviders(names, count), ErrorCode::BackendUnavailable, "listing execution providers");
  return result;
}

namespace {

// ONNX Runtime's log, routed into ours (log.hpp): one sink, one level, no line of its own on stderr.
void forward_ort_log(void*, OrtLoggingLevel severity, const char*, const char*, const char*, const char* message) {
  log_message(static_cast<int32_t>(severity), "onnxruntime", message);
}

}  // namespace

OrtEnv* OrtRuntime::env(bool global_thread_pool, int intra_op_threads, int inter_op_threads) {
  std::lock_guard<std::mutex> lock(env_mutex_);
  if (env_ == nullptr) {
    const auto level = static_cast<OrtLoggingLevel>(log_level());
    if (global_thread_pool) {
      OrtThreadingOptions* threading = nullptr;
      check(api_.CreateThreadingOptions(&threading), ErrorCode::BackendUnavailable, "creating threading options");
      std::unique_ptr<OrtThreadingOptions, void (*)(OrtThreadingOptions*)> guard(threading,
                                                                                  api_.ReleaseThreadingOptions);
      check(api_.SetGlobalIntraOpNumThreads(threading, intra_op_threads), ErrorCode::InvalidArgument,
            "setting global intra-op threads");
      check(api_.SetGlobalInterOpNumThreads(threading, inter_op_threads), ErrorCode::InvalidArgument,
            "setting global inter-op threads");
      check(api_.CreateEnvWithCustomLoggerAndGlobalThreadPools(forward_ort_log, nullptr, level, "juno-bridge",
                                                               threading, &env_),
            ErrorCode::BackendUnavailable, "creating the ONNX Runtime environment");
    } else {
      check(api_.CreateEnvWithCustomLogger(forward_ort_log, nullptr, level, "juno-bridge", &env_),
            ErrorCode::BackendUnavailable, "creating the ONNX Runtime environment");
    }
    add_log_level_listener(
        [](void* self, int32_t new_level) {
          auto* rt = static_cast<OrtRuntime*>(self);
          if (OrtStatus* status = rt->api_.UpdateEnvWithCustomLogLevel(rt->env_, static_cast<OrtLoggingLevel>(new_level)))
            rt->api_.ReleaseStatus(status);  // the level of our own sink still applies
        },
        this);
    env_global_pools_ = global_thread_pool;
  } else if (global_thread_pool && !env_global_pools_) {
    // ONNX Runtime allows one environment per process, and its thread pools are fixed when it is made.
    throw Error(ErrorCode::InvalidArgument,
                "global_thread_pool was requested after a session without it created this process's ONNX "
                "Runtime environment; open the first session of the process with global_thread_pool");
  }
  return env_;
}

}  // namespace jb
