// Host memory for inputs on a session that computes on a GPU: page-locked blocks from the CUDA provider's
// own pinned allocator (ONNX Runtime's "CudaPinned"), which the GPU reads by DMA at the bus's speed, where
// pageable memory is staged by the driver at a fraction of it. The core remembers the blocks
// (Backend::host_memory), so that a view into one is described to ONNX Runtime as pinned however the
// caller labelled it (a numpy array over it says host memory).
#include <algorithm>
#include <string>

#include "juno_bridge/juno_bridge.h"
#include "log.hpp"
#include "ort_backend.hpp"

namespace jb {

Backend::HostMemory OrtBackend::allocate_host(size_t nbytes) {
  OrtAllocator* allocator = pinned_allocator();
  if (allocator == nullptr) return Backend::allocate_host(nbytes);
  void* p = nullptr;
  rt_.check(api_.AllocatorAlloc(allocator, std::max<size_t>(nbytes, 1), &p), ErrorCode::Runtime,
            "allocating " + std::to_string(nbytes) + " bytes of pinned host memory");
  if (p == nullptr)
    throw Error(ErrorCode::Runtime, "allocating " + std::to_string(nbytes) + " bytes of pinned host memory: no memory");
  // The allocator lives in the session: the block keeps the backend alive until it is freed.
  std::shared_ptr<Backend> self = shared_from_this();
  return {std::shared_ptr<void>(p,
                                [this, allocator, self](void* q) {
                                  if (OrtStatus* s = api_.AllocatorFree(allocator, q)) api_.ReleaseStatus(s);
                                }),
          Device::cuda_pinned()};
}

// The CUDA provider's pinned allocator, asked for once; none without the CUDA provider, or where the
// session has none (then allocate_host hands plain host memory, and says so in the log).
OrtAllocator* OrtBackend::pinned_allocator() {
  if (!pinned_memory_) return nullptr;
  std::lock_guard<std::mutex> lock(allocator_mutex_);
  if (!pinned_asked_) {
    pinned_asked_ = true;
    OrtAllocator* allocator = nullptr;
    if (OrtStatus* s = api_.CreateAllocator(session_, pinned_memory_.get(), &allocator)) {
      const std::string message = std::string("no pinned host memory from the CUDA provider (") +
                                  api_.GetErrorMessage(s) +
                                  "): Session.empty hands plain host memory, which the GPU reads more slowly";
      log_message(JB_LOG_WARNING, "onnxruntime", message.c_str());
      api_.ReleaseStatus(s);
    }
    pinned_allocator_ = allocator;
  }
  return pinned_allocator_;
}

}  // namespace jb
