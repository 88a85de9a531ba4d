// The interface every backend implements. Session does the checks that are the same for all backends
// (dtype, rank, fixed dims, NULL, overlap) before calling run, so a backend only does its own work.
#pragma once

#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "juno_bridge/session.hpp"

namespace jb {

// Owned by shared_ptr (the sessions of a model share it), which a backend may extend to memory it hands out.
class Backend : public std::enable_shared_from_this<Backend> {
 public:
  Backend();           // counts itself in open_backend_count() and takes the next id
  virtual ~Backend();
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;
  uint64_t id() const noexcept { return id_; }
  virtual const std::string& name() const = 0;
  virtual std::vector<std::string> providers() const { return {}; }
  virtual const std::vector<TensorInfo>& inputs() const = 0;
  virtual const std::vector<TensorInfo>& outputs() const = 0;
  virtual ModelMetadata metadata() const = 0;
  virtual SessionStats stats() const { return {}; }
  // The GPUs run() computes on, reading and writing their memory in place (none: host memory only);
  // fixed at open, so run's checks read it without a copy.
  virtual const std::vector<Device>& devices() const {
    static const std::vector<Device> none;
    return none;
  }
  bool takes(Device device) const {
    if (device.host()) return true;
    for (Device d : devices())
      if (d == device) return true;
    return false;
  }
  // `nbytes` of host memory (64-byte aligned, uninitialised) for inputs the caller fills, as run() reads
  // them fastest: page-locked where it copies inputs to a GPU (device cuda_pinned), so that the copy runs
  // at the bus's speed; plain host memory otherwise (this default). Freed with the holder's last copy,
  // which must not outlive the backend (Session::empty keeps it alive).
  struct HostMemory {
    std::shared_ptr<void> holder;  // holder.get() is the memory
    Device device;
  };
  virtual HostMemory allocate_host(size_t nbytes);
  // allocate_host's memory as the core hands it out (Session::empty, staging): a pinned block is
  // remembered while it lives, so that a view into it is known as pinned however the caller labelled it
  // (a numpy array over it says host memory). The block holds this backend.
  HostMemory host_memory(size_t nbytes);
  bool in_pinned_block(const TensorView& view) const;
  // inputs: every model input in model order, already checked. outputs[i] is model output
  // output_index[i]; when outputs[i].data is nullptr the backend allocates it and sets owned[i].
  // Must be safe to call from many threads at once.
  virtual void run(const TensorView* inputs, size_t num_inputs, const int32_t* output_index,
                   TensorView* outputs, Tensor* owned, size_t num_outputs) = 0;

  // The backend's own asynchronous call, where it has one for this session (decided at open): then
  // Session::run_async uses run_async below instead of the runtime's executor.
  virtual bool async_native() const { return false; }
  // Starts the run (arguments as for run, already checked; the arrays are copied, what they point at
  // stays alive until `done`) and returns. `done` is called exactly once, on a thread of the backend's,
  // with nullptr or the run's exception, after the backend's last use of itself in this run (`done` may
  // release the backend). When it throws, the run has not started and `done` is never called.
  using Done = std::function<void(std::exception_ptr error)>;
  virtual void run_async(const TensorView* inputs, size_t num_inputs, const int32_t* output_index,
                         const TensorView* outputs, Tensor* owned, size_t num_outputs, Done done);

 private:
  const uint64_t id_;
  mutable std::mutex pinned_mutex_;
  std::map<uintptr_t, size_t> pinned_blocks_;  // host_memory's pinned blocks alive: address -> size
};

// Opens `model` (a path, or the bytes when `bytes` is non-null) with the backend named in options or
// chosen from the model's name.
std::unique_ptr<Backend> open_backend(const std::string& model, const void* bytes, size_t size,
                                      const SessionOptions& options);

// The model name "default" as the package's default model file; any other name as it is.
std::string resolve_model_name(const std::string& model);

// "backend, intra_op_threads, ...": the options every backend shares, for messages.
std::string session_option_names();

// Refuses a backend-specific option (SessionOptions::config) that `backend` does not take, naming it,
// the shared options and `own`, the backend's own ones.
[[noreturn]] void reject_option(const std::string& key, const std::string& backend, const std::string& own);

// Queues `task` on the process default runtime's worker pool (runtime.cpp); it must not throw. A
// backend's completion thread uses it for work that must not run there (releasing its own thread pool).
void submit_to_worker_pool(std::function<void()> task);

std::unique_ptr<Backend> open_onnxruntime(const std::string& path, const void* bytes, size_t size,
                                          const SessionOptions& options);

}  // namespace jb
