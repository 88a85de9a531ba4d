// Which backend opens a model: the model name "default", the registry's choice by file name or the
// `backend` option, and a site's own plugin; and what every Backend shares (its id, the open count, host memory).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

#include "backend.hpp"
#include "juno_bridge/backends.hpp"
#include "platform.hpp"
#include "plugin_loader.hpp"

namespace jb {

namespace {

std::atomic<int64_t> backends_open{0};
std::atomic<uint64_t> next_backend_id{1};

}  // namespace

Backend::Backend() : id_(next_backend_id.fetch_add(1)) { backends_open.fetch_add(1); }
Backend::~Backend() { backends_open.fetch_sub(1); }
int64_t open_backend_count() noexcept { return backends_open.load(); }

void Backend::run_async(const TensorView*, size_t, const int32_t*, const TensorView*, Tensor*, size_t, Done) {
  throw Error(ErrorCode::Unsupported, "backend '" + name() + "' has no asynchronous call of its own");
}

Backend::HostMemory Backend::allocate_host(size_t nbytes) {
  const size_t rounded = (std::max<size_t>(nbytes, 1) + 63) / 64 * 64;  // aligned_alloc wants a multiple
  void* p = std::aligned_alloc(64, rounded);
  if (p == nullptr)
    throw Error(ErrorCode::Runtime, "out of memory allocating " + std::to_string(nbytes) + " bytes of host memory");
  return {std::shared_ptr<void>(p, &std::free), Device::cpu()};
}

Backend::HostMemory Backend::host_memory(size_t nbytes) {
  HostMemory memory = allocate_host(nbytes);
  if (memory.device.kind != DeviceKind::CUDAPinned) return memory;
  const auto start = reinterpret_cast<uintptr_t>(memory.holder.get());
  {
    std::lock_guard<std::mutex> lock(pinned_mutex_);
    pinned_blocks_[start] = std::max<size_t>(nbytes, 1);
  }
  // Forgotten before it is freed, while this backend is surely alive (the block holds it).
  void* data = memory.holder.get();
  memory.holder =
      std::shared_ptr<void>(data, [self = shared_from_this(), inner = std::move(memory.holder)](void* p) mutable {
        {
          std::lock_guard<std::mutex> lock(self->pinned_mutex_);
          self->pinned_blocks_.erase(reinterpret_cast<uintptr_t>(p));
        }
        inner.reset();
      });
  return memory;
}

bool Backend::in_pinned_block(const TensorView& view) const {
  std::lock_guard<std::mutex> lock(pinned_mutex_);
  if (pinned_blocks_.empty()) return false;
  const auto start = reinterpret_cast<uintptr_t>(view.data);
  auto it = pinned_blocks_.upper_bound(start);
  if (it == pinned_blocks_.begin()) return false;
  --it;
  return start - it->first + view.nbytes() <= it->second;
}

// The model name "default": the project's default model (vertex and energy), shipped in the Python package
// beside this library (juno_bridge/lib/../demo/models/default.onnx). Any other name is itself.
std::string resolve_model_name(const std::string& model) {
  if (model != "default") return model;
  const std::string path = this_library_dir() + "/../demo/models/default.onnx";
  if (!file_exists(path))
    throw Error(ErrorCode::ModelLoad, "the model name 'default' is the juno_bridge package's default model, " + path +
                                          ", which this installation lacks (a CMake install of the C++ library alone "
                                          "has no models: pass the model's path)");
  return path;
}

std::unique_ptr<Backend> open_backend(const std::string& model, const void* bytes, size_t size,
                                      const SessionOptions& options) {
  const BackendInfo* backend =
      options.backend.empty() ? &backend_for_model(model, bytes != nullptr) : find_backend(options.backend);
  // A name outside the registry may still be a plugin of a site's own (libjuno_bridge_<name>.so).
  if (backend == nullptr) return open_plugin(options.backend, model, bytes, size, options);
  // Said before the runtime is asked: its own message names the file twice, in two sentences.
  if (backend->plugin.empty() && bytes == nullptr && !file_exists(model))
    throw Error(ErrorCode::ModelLoad, "model file '" + model + "' does not exist (ONNX Runtime: NO_SUCHFILE)",
                3 /* ORT_NO_SUCHFILE, kept as the runtime's code */);
  if (backend->plugin.empty()) return open_onnxruntime(model, bytes, size, options);
  return open_plugin(backend->plugin, model, bytes, size, options);
}

}  // namespace jb
