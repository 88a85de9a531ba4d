// The ONNX Runtime backend (ort_backend.hpp), running with outputs ONNX Runtime allocates on the GPU
// (SessionOptions::output_device "cuda"): Run allocates every output it is not given in host memory, so
// such runs go through an IO binding, with those outputs bound to the CUDA provider's device memory.
#include "ort_backend.hpp"

namespace jb {

// One binding per run: binding copies host inputs to the GPU at bind time, so it cannot be reused for the
// next event's values. Outputs the caller gave stay bound to their own memory; the rest are allocated by
// the runtime and come back in the order bound, which is the order of out_values.
void OrtBackend::run_with_binding(OrtValue* const* in_values, size_t num_inputs, const char* const* out_names,
                                  OrtValue** out_values, size_t num_outputs) {
  OrtIoBinding* binding = nullptr;
  rt_.check(api_.CreateIoBinding(session_, &binding), ErrorCode::Runtime, "creating an IO binding");
  std::unique_ptr<OrtIoBinding, void (*)(OrtIoBinding*)> guard(binding, api_.ReleaseIoBinding);
  for (size_t i = 0; i < num_inputs; ++i)
    rt_.check(api_.BindInput(binding, input_names_[i], in_values[i]), ErrorCode::Input,
              std::string("binding input ") + input_names_[i]);
  for (size_t i = 0; i < num_outputs; ++i) {
    if (out_values[i] != nullptr)
      rt_.check(api_.BindOutput(binding, out_names[i], out_values[i]), ErrorCode::Input,
                std::string("binding output ") + out_names[i]);
    else
      rt_.check(api_.BindOutputToDevice(binding, out_names[i], cuda_memory_.get()), ErrorCode::Runtime,
                std::string("binding output ") + out_names[i] + " to the GPU");
  }
  rt_.check(api_.RunWithBinding(session_, run_options_, binding), ErrorCode::Runtime, "running the model");

  OrtAllocator* allocator = rt_.allocator();
  OrtValue** values = nullptr;
  size_t count = 0;
  rt_.check(api_.GetBoundOutputValues(binding, allocator, &values, &count), ErrorCode::Runtime,
            "reading the bound outputs");
  // Each returned value is a reference of its own, the array the allocator's: all released here but the
  // runtime-allocated outputs, which run() hands to their owners.
  const bool complete = count == num_outputs;
  for (size_t i = 0; i < count; ++i) {
    if (complete && out_values[i] == nullptr) out_values[i] = values[i];
    else api_.ReleaseValue(values[i]);
  }
  if (values != nullptr) api_.AllocatorFree(allocator, values);
  if (!complete)
    throw Error(ErrorCode::Runtime, "ONNX Runtime's IO binding returned " + std::to_string(count) +
                                        " outputs for the " + std::to_string(num_outputs) + " bound");
}

// Where a runtime-allocated value lies, from its memory info: "Cuda" memory on its device, pinned host
// memory, or host memory.
Device OrtBackend::device_of(const OrtValue* value, const std::string& name) const {
  const OrtMemoryInfo* info = nullptr;
  const char* kind = nullptr;
  int id = 0;
  const std::string what = "reading where output " + name + " lies";
  rt_.check(api_.GetTensorMemoryInfo(value, &info), ErrorCode::Runtime, what);
  rt_.check(api_.MemoryInfoGetName(info, &kind), ErrorCode::Runtime, what);
  rt_.check(api_.MemoryInfoGetId(info, &id), ErrorCode::Runtime, what);
  const std::string k = kind ? kind : "";
  if (k == "Cuda") return Device::cuda(id);
  if (k == "CudaPinned") return Device::cuda_pinned();
  return Device::cpu();
}

}  // namespace jb
