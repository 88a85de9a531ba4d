// One loaded ONNX Runtime library: its function table, its process-wide environment and CPU memory
// info. Loaded once per library path with dlopen and never unloaded (its thread pools outlive any
// session that could tell when unloading is safe).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "ort_abi.h"
#include "juno_bridge/error.hpp"

namespace jb {

class OrtRuntime {
 public:
  // The runtime for `library` ("" = $JUNO_BRIDGE_ONNXRUNTIME, then the onnxruntime wheel beside this
  // package, then the one found at build time, then the system loader's libonnxruntime.so.1).
  static OrtRuntime& get(const std::string& library);
  ~OrtRuntime();
  OrtRuntime(const OrtRuntime&) = delete;
  OrtRuntime& operator=(const OrtRuntime&) = delete;

  const JbOrtApi& api() const { return api_; }
  uint32_t api_version() const { return api_version_; }
  const std::string& path() const { return path_; }
  const std::string& version() const { return version_; }
  std::string build_info() const;
  std::vector<std::string> providers() const;

  // The environment, created on first use (one per process); global thread pools are fixed by the first
  // caller. Its log goes to jb's log sink, at jb's log level (log.hpp), followed when that changes.
  OrtEnv* env(bool global_thread_pool, int intra_op_threads, int inter_op_threads);
  const OrtMemoryInfo* cpu_memory() const { return cpu_memory_; }
  OrtAllocator* allocator() const { return allocator_; }

  // Throws jb::Error(code) built from a failed status (and releases it); does nothing on NULL. The
  // const char* form keeps the hot path free of std::string construction.
  void check(OrtStatus* status, ErrorCode code, const char* context) const {
    if (status != nullptr) fail(status, code, context);
  }
  void check(OrtStatus* status, ErrorCode code, const std::string& context) const {
    if (status != nullptr) fail(status, code, context.c_str());
  }
  [[noreturn]] void fail(OrtStatus* status, ErrorCode code, const char* context) const;

 private:
  explicit OrtRuntime(const std::string& path);
  std::string path_, version_;
  void* handle_ = nullptr;
  JbOrtApi api_{};
  uint32_t api_version_ = 0;
  std::mutex env_mutex_;
  OrtEnv* env_ = nullptr;
  bool env_global_pools_ = false;
  OrtMemoryInfo* cpu_memory_ = nullptr;
  OrtAllocator* allocator_ = nullptr;
};

// ONNX Runtime's name for an error code ("INVALID_PROTOBUF").
const char* ort_error_name(int code);

}  // namespace jb
