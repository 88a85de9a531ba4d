// The ONNX Runtime backend: one OrtSession over the C API, run on the caller's buffers. Internal to the
// core: backend.hpp's open_onnxruntime makes it. Its parts, one file each:
//   ort_open.cpp       opening the session: options, execution providers, creation; the backend's life
//   ort_signature.cpp  the model's inputs, outputs and metadata
//   ort_run.cpp        the cached OrtValues over the caller's buffers, and run
//   ort_io_binding.cpp runs whose outputs ONNX Runtime allocates on the GPU (output_device=cuda)
//   ort_run_async.cpp  run_async through ONNX Runtime's RunAsync, and its completion
//   ort_pinned.cpp     pinned host memory for inputs (allocate_host) where the CUDA provider is active
//
// Zero-copy: every tensor reaches ONNX Runtime as an OrtValue made by CreateTensorWithDataAsOrtValue
// over the caller's memory. Those OrtValues are cached per input/output and reused while the caller
// passes the same buffer (the per-event loop of a framework), so the steady state allocates nothing.
// The cache belongs to whichever thread holds its lock; a thread that finds it busy makes temporary
// OrtValues instead, so many threads can run one session at once (OrtSession::Run is thread-safe).
//
// Asynchronous runs use ONNX Runtime's RunAsync where the session allows it (see probe_run_async in
// ort_run_async.cpp): the run and its completion happen on a thread of the session's intra-op pool.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "backend.hpp"
#include "ort_runtime.hpp"

namespace jb {

// Set on a runtime thread while it completes a RunAsync: a session released there (the completion's
// callback may close the last Session of a model) must not release its own thread pool from inside it.
extern thread_local bool g_in_run_async_completion;  // ort_run_async.cpp

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

// ONNX's name of an element type ("float", "string", "element type 42"); ort_signature.cpp.
std::string element_type_name(ONNXTensorElementDataType t);

// The element types numpy and ONNX share map onto DType with the same number; the rest are Undefined.
inline DType to_dtype(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_COMPLEX64:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_COMPLEX128:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED: return DType::Undefined;
    default: return dtype_size(static_cast<DType>(t)) ? static_cast<DType>(t) : DType::Undefined;
  }
}

// An OrtValue over caller memory, remembered with the view it was made for.
struct BoundValue {
  const void* data = nullptr;
  DType dtype = DType::Undefined;
  int32_t rank = -1;
  int64_t shape[kMaxRank] = {};
  Device device;
  OrtValue* value = nullptr;
  const void* runtime_address = nullptr;  // what the runtime reports as the tensor's data

  bool matches(const TensorView& v) const {
    return value != nullptr && v.data == data && v.dtype == dtype && v.rank == rank && v.device == device &&
           std::memcmp(v.shape, shape, sizeof(int64_t) * static_cast<size_t>(rank)) == 0;
  }
};

class OrtBackend final : public Backend {
 public:
  // ort_open.cpp
  OrtBackend(const std::string& path, const void* bytes, size_t size, const SessionOptions& options);
  ~OrtBackend() override;

  const std::string& name() const override { return name_; }
  std::vector<std::string> providers() const override { return providers_; }
  const std::vector<Device>& devices() const override { return devices_; }
  const std::vector<TensorInfo>& inputs() const override { return inputs_; }
  const std::vector<TensorInfo>& outputs() const override { return outputs_; }

  ModelMetadata metadata() const override;  // ort_signature.cpp

  // ort_run.cpp
  SessionStats stats() const override;
  void run(const TensorView* inputs, size_t num_inputs, const int32_t* output_index, TensorView* outputs,
           Tensor* owned, size_t num_outputs) override;

  // ort_pinned.cpp: pinned host memory where the CUDA provider is active
  HostMemory allocate_host(size_t nbytes) override;

  // ort_run_async.cpp
  bool async_native() const override { return async_native_; }
  void run_async(const TensorView* inputs, size_t num_inputs, const int32_t* output_index, const TensorView* outputs,
                 Tensor* owned, size_t num_outputs, Done done) override;

 private:
  // ort_open.cpp
  void configure(OrtSessionOptions* so, const SessionOptions& o);
  void open_session(const std::string& path, const void* bytes, size_t size, const SessionOptions& options);
  void create_session(const std::string& path, const void* bytes, size_t size, OrtSessionOptions* so, OrtEnv* env);
  static void refuse_external_data_without_a_path(const void* bytes, size_t size, const SessionOptions& options);
  std::vector<std::string> provider_candidates(const SessionOptions& options,
                                               std::vector<std::pair<std::string, std::string>>& skipped) const;
  static std::string short_provider_name(const std::string& full);
  void append_providers(OrtSessionOptions* so, const std::vector<std::string>& providers, bool cuda_graph);
  void describe_devices();

  // ort_signature.cpp
  std::string type_string(const OrtTypeInfo* type_info, const std::string& what, int depth);
  TensorInfo describe(OrtTypeInfo* type_info, std::string name);
  void read_signature();

  // ort_run.cpp
  OrtValue* make_value(const TensorView& view);
  void rebind(BoundValue& slot, const TensorView& view);
  void fill_passthrough(const std::string& name, const TensorView& out, const TensorView& in);
  void adopt(OrtValue* value, const TensorInfo& info, TensorView& view, Tensor& owned);

  // ort_io_binding.cpp
  void run_with_binding(OrtValue* const* in_values, size_t num_inputs, const char* const* out_names,
                        OrtValue** out_values, size_t num_outputs);
  Device device_of(const OrtValue* value, const std::string& name) const;

  // ort_pinned.cpp
  OrtAllocator* pinned_allocator();

  // ort_run_async.cpp
  struct AsyncRun;
  static void complete_run_async(void* user_data, OrtValue** values, size_t, OrtStatus* status) noexcept;
  void finish_run_async(AsyncRun& run, OrtValue** values, OrtStatus* status);
  bool probe_run_async();

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
  std::vector<Device> devices_;         // the GPU the CUDA provider computes on, when it is active
  // How caller memory is described to ONNX Runtime, per device the session takes (describe_devices).
  std::unique_ptr<OrtMemoryInfo, void (*)(OrtMemoryInfo*)> cuda_memory_{nullptr, nullptr},
      pinned_memory_{nullptr, nullptr};
  // Pinned host memory (allocate_host): the CUDA provider's allocator, asked for once.
  std::mutex allocator_mutex_;
  OrtAllocator* pinned_allocator_ = nullptr;
  bool pinned_asked_ = false;
  std::vector<int> passthrough_;  // per output: the input it is (same name), or -1
  bool async_native_ = false;     // RunAsync serves run_async (probe_run_async)
  bool output_on_device_ = false;  // output_device=cuda: allocated outputs are bound to cuda_memory_
};

}  // namespace jb
