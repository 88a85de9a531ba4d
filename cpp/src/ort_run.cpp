// The ONNX Runtime backend (ort_backend.hpp), running: the caller's buffers wrapped as OrtValues (cached
// per input and output while the buffer stays the same), Run, and the outputs handed back.
#include "ort_backend.hpp"

namespace jb {

SessionStats OrtBackend::stats() const {
  SessionStats s;
  s.tensors_wrapped = tensors_wrapped_.load();
  std::lock_guard<std::mutex> lock(cache_mutex_);
  for (const auto& b : cache_inputs_) s.input_addresses.push_back(b.runtime_address);
  return s;
}

void OrtBackend::run(const TensorView* inputs, size_t num_inputs, const int32_t* output_index, TensorView* outputs,
                     Tensor* owned, size_t num_outputs) {
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

  bool allocates_on_device = false;  // only output_device=cuda runs look: the CPU path stays as it was
  for (size_t i = 0; output_on_device_ && i < num_outputs; ++i) allocates_on_device |= outputs[i].data == nullptr;
  if (allocates_on_device)
    run_with_binding(in_values.data(), num_inputs, out_names.data(), out_values.data(), num_outputs);
  else
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

OrtValue* OrtBackend::make_value(const TensorView& view) {
  static char empty_tensor_storage;  // ONNX Runtime wants a non-NULL pointer even for zero elements
  void* data = view.data ? view.data : &empty_tensor_storage;
  // Host memory is pinned when the caller says so or when it lies in a block of allocate_host's.
  const bool pinned = pinned_memory_ && (view.device.kind == DeviceKind::CUDAPinned ||
                                         (view.device.kind == DeviceKind::CPU && in_pinned_block(view)));
  const OrtMemoryInfo* where = view.device.kind == DeviceKind::CUDA ? cuda_memory_.get()
                               : pinned                             ? pinned_memory_.get()
                                                                    : rt_.cpu_memory();
  OrtValue* value = nullptr;
  rt_.check(api_.CreateTensorWithDataAsOrtValue(where, data, view.nbytes(), view.shape, static_cast<size_t>(view.rank),
                                                static_cast<ONNXTensorElementDataType>(view.dtype), &value),
            ErrorCode::Input, "wrapping a tensor");
  tensors_wrapped_.fetch_add(1, std::memory_order_relaxed);
  return value;
}

void OrtBackend::rebind(BoundValue& slot, const TensorView& view) {
  OrtValue* value = make_value(view);
  if (slot.value) api_.ReleaseValue(slot.value);
  slot.value = value;
  void* address = nullptr;
  rt_.check(api_.GetTensorMutableData(value, &address), ErrorCode::Runtime, "reading a wrapped tensor");
  slot.runtime_address = address;
  slot.data = view.data;
  slot.dtype = view.dtype;
  slot.rank = view.rank;
  slot.device = view.device;
  std::memcpy(slot.shape, view.shape, sizeof(int64_t) * static_cast<size_t>(view.rank));
}

// An out= buffer for an output that is an input: the one case where writing the output means copying.
void OrtBackend::fill_passthrough(const std::string& name, const TensorView& out, const TensorView& in) {
  if (!out.device.host() || !in.device.host())
    throw Error(ErrorCode::Unsupported, "output '" + name +
                                            "' is the model's input of that name passed through, "
                                            "which juno-bridge copies on the host only; got the input in " +
                                            in.device.name() + " memory and the output in " + out.device.name() +
                                            " memory: leave the output out of the run (it is the input)");
  if (out.rank != in.rank || std::memcmp(out.shape, in.shape, sizeof(int64_t) * static_cast<size_t>(in.rank)) != 0)
    throw Error(ErrorCode::Input, "output '" + name + "' is the model's input of that name passed through, so its "
                                  "buffer must have the input's shape " + shape_string(in.shape, in.rank) +
                                  ", got " + shape_string(out.shape, out.rank));
  std::memcpy(out.data, in.data, in.nbytes());
}

// Hands a runtime-allocated output to the caller without a copy: the Tensor holds the OrtValue.
void OrtBackend::adopt(OrtValue* value, const TensorInfo& info, TensorView& view, Tensor& owned) {
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
  // Run allocates in host memory (it copies from the GPU there); a bound run where it was bound, as a rule,
  // but an output bound to a device the session lacks lands in host memory: its own memory info tells.
  view.device = output_on_device_ ? device_of(value, info.name) : Device::cpu();
  owned.view = view;
}

}  // namespace jb
