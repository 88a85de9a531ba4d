// The checks every backend shares, done before any backend sees a tensor: counts, dtypes, ranks, fixed
// dims, NULL, alignment and overlap; and the bfloat16_as_uint16 relabelling.
#include "tensor_checks.hpp"

#include <cstdint>
#include <string>

#include "backend.hpp"

namespace jb {

std::string known_names(const std::vector<TensorInfo>& infos) {
  std::string s;
  for (const auto& i : infos) s += (s.empty() ? "'" : ", '") + i.name + "'";
  return s.empty() ? "none" : s;
}

namespace {

// The model states nothing about this tensor (plugin.h): only the backend can check it.
bool declares_nothing(const TensorInfo& info) {
  return info.dtype == DType::Undefined && !info.rank_known && info.type_name == "unknown";
}

// An output of a type the bridge cannot pass, requested: what it is, and what the caller can run instead.
[[noreturn]] void refuse_output_type(const TensorInfo& info, const std::vector<TensorInfo>& infos) {
  std::string passable;
  for (const auto& i : infos)
    if (i.dtype != DType::Undefined || declares_nothing(i)) passable += (passable.empty() ? "'" : ", '") + i.name + "'";
  std::string why = "output '" + info.name + "' is of type " + info.type_name +
                    ", which juno-bridge does not pass (tensors of numeric and bool types only); " +
                    (passable.empty() ? "the model has no output it can pass"
                                      : "run only the outputs it can pass, by name: outputs=[" + passable + "] in Python");
  if (info.type_name.rfind("seq(map(", 0) == 0)
    why += "; a sequence of maps is a classifier's ZipMap: convert the model with zipmap=False (skl2onnx: "
           "options={id(model): {'zipmap': False}}) for a tensor of probabilities";
  throw Error(ErrorCode::Unsupported, why);
}

// Memory the backend computes from in place, or an error naming where it is and what the session takes.
void check_device(const TensorView& v, const TensorInfo& info, const char* role, const Backend& backend) {
  if (v.device.kind == DeviceKind::CPU || backend.takes(v.device)) return;
  const std::string what = std::string(role) + " '" + info.name + "': ";
  if (!v.device.known())
    throw Error(ErrorCode::Input, what + (v.device.kind == DeviceKind::CUDA
                                              ? "cuda device id " + std::to_string(v.device.id) + ", expected >= 0"
                                              : "unknown " + v.device.name() + " (cpu 0, cuda 1, cuda_pinned 2)"));
  std::string takes = "host memory";
  for (Device d : backend.devices()) takes += " and " + d.name() + " memory";
  std::string providers;
  for (const auto& p : backend.providers()) providers += (providers.empty() ? ", providers " : ",") + p;
  const std::string where = "the buffer is in " + v.device.name() + " memory, but this session computes from ";
  throw Error(ErrorCode::Input, what + where + takes + " (backend " + backend.name() + providers +
                                    "); juno-bridge never copies between devices: pass memory the session takes, "
                                    "or open the session where the buffer is (ONNX Runtime: providers cuda,cpu)");
}

// The checks one tensor must pass against what the model declares; `role` is "input" or "output".
// `bits_as_bfloat16`: option bfloat16_as_uint16, a uint16 view passes for a bfloat16 tensor.
void check_view(const TensorView& v, const TensorInfo& info, const char* role, bool bits_as_bfloat16,
                const Backend& backend) {
  const bool unknown = declares_nothing(info);
  if (unknown) {
    if (dtype_size(v.dtype) == 0)
      throw Error(ErrorCode::InputType, std::string(role) + " '" + info.name + "': unknown dtype code " +
                                            std::to_string(static_cast<int>(v.dtype)));
  } else if (info.dtype == DType::Undefined)
    throw Error(ErrorCode::Unsupported, std::string(role) + " '" + info.name + "' is of type " + info.type_name +
                                            "; juno-bridge passes tensors of numeric and bool types only");
  else if (info.dtype == DType::BFloat16 && v.dtype == DType::UInt16 && !bits_as_bfloat16)
    throw Error(ErrorCode::InputType, std::string(role) + " '" + info.name +
                                          "': expected dtype bfloat16, got uint16; uint16 is taken as the bits of "
                                          "bfloat16 only with the option bfloat16_as_uint16=1 (Python: Session(..., "
                                          "bfloat16_as_uint16=True)), else pass bfloat16 (numpy: ml_dtypes.bfloat16)");
  else if (v.dtype != info.dtype && !(info.dtype == DType::BFloat16 && v.dtype == DType::UInt16))
    throw Error(ErrorCode::InputType, std::string(role) + " '" + info.name + "': expected dtype " +
                                          dtype_name(info.dtype) + ", got " + dtype_name(v.dtype));
  if (v.rank < 0 || v.rank > kMaxRank)
    throw Error(ErrorCode::Input, std::string(role) + " '" + info.name + "': invalid rank " + std::to_string(v.rank));
  if (info.rank_known) {
    if (static_cast<size_t>(v.rank) != info.shape.size())
      throw Error(ErrorCode::Input, std::string(role) + " '" + info.name + "': expected rank " +
                                        std::to_string(info.shape.size()) + " " + info.shape_string() + ", got rank " +
                                        std::to_string(v.rank) + " " + shape_string(v.shape, v.rank));
    for (int32_t d = 0; d < v.rank; ++d)
      if (info.shape[d] >= 0 && v.shape[d] != info.shape[d])
        throw Error(ErrorCode::Input, std::string(role) + " '" + info.name + "': expected shape " +
                                          info.shape_string() + ", got " + shape_string(v.shape, v.rank) +
                                          " (dim " + std::to_string(d) + ")");
  }
  int64_t elements = 1;
  for (int32_t d = 0; d < v.rank; ++d) {
    if (v.shape[d] < 0)
      throw Error(ErrorCode::Input, std::string(role) + " '" + info.name + "': negative dim in shape " +
                                        shape_string(v.shape, v.rank));
    // Overflow by the multiplication itself: no division on this per-call path.
    if (__builtin_mul_overflow(elements, v.shape[d], &elements) || elements > INT64_MAX / 16)
      throw Error(ErrorCode::Input, std::string(role) + " '" + info.name + "': shape " +
                                        shape_string(v.shape, v.rank) + " is too large");
  }
  check_device(v, info, role, backend);
  if (v.data == nullptr && elements > 0)
    throw Error(ErrorCode::InvalidArgument, std::string(role) + " '" + info.name + "': data pointer is NULL");
  const size_t element_size = dtype_size(v.dtype);  // 1, 2, 4 or 8: a mask, not a modulo
  if ((reinterpret_cast<uintptr_t>(v.data) & (element_size - 1)) != 0)
    throw Error(ErrorCode::Input, std::string(role) + " '" + info.name + "': data at " +
                                      std::to_string(reinterpret_cast<uintptr_t>(v.data)) + " is not aligned to its " +
                                      std::to_string(dtype_size(v.dtype)) + "-byte elements");
}

}  // namespace

void Session::check_inputs(const TensorView* inputs, size_t num_inputs) const {
  const auto& infos = backend_->inputs();
  if (num_inputs != infos.size())
    throw Error(ErrorCode::Input, "the model takes " + std::to_string(infos.size()) + " input(s) (" +
                                      known_names(infos) + "), got " + std::to_string(num_inputs));
  if (num_inputs && inputs == nullptr) throw Error(ErrorCode::InvalidArgument, "inputs array is NULL");
  for (size_t i = 0; i < num_inputs; ++i) check_view(inputs[i], infos[i], "input", bfloat16_as_uint16_, *backend_);
}

void Session::check_outputs(const TensorView* inputs, size_t num_inputs, const int32_t* output_index,
                            const TensorView* outputs, size_t num_outputs) const {
  const auto& infos = backend_->outputs();
  // A run that asks for nothing is a caller's mistake, not a failure of the backend (ONNX Runtime refuses it).
  if (num_outputs == 0)
    throw Error(ErrorCode::InvalidArgument, "no output requested; the model's outputs are " + known_names(infos));
  if (outputs == nullptr || output_index == nullptr)
    throw Error(ErrorCode::InvalidArgument, "outputs or output_index array is NULL");
  for (size_t i = 0; i < num_outputs; ++i) {
    const int32_t k = output_index[i];
    if (k < 0 || static_cast<size_t>(k) >= infos.size())
      throw Error(ErrorCode::InvalidArgument, "output index " + std::to_string(k) + " out of range; the model has " +
                                                  std::to_string(infos.size()) + " output(s)");
    for (size_t j = 0; j < i; ++j)
      if (output_index[j] == k) throw Error(ErrorCode::Input, "output '" + infos[k].name + "' requested twice");
    if (infos[k].dtype == DType::Undefined && !declares_nothing(infos[k])) refuse_output_type(infos[k], infos);
    if (outputs[i].data == nullptr) continue;  // the backend allocates it
    check_view(outputs[i], infos[k], "output", bfloat16_as_uint16_, *backend_);
    for (size_t j = 0; j < num_inputs; ++j)
      if (views_overlap(outputs[i], inputs[j]))
        throw Error(ErrorCode::Input, "output '" + infos[k].name + "' buffer overlaps input '" +
                                          backend_->inputs()[j].name + "'");
    for (size_t j = 0; j < i; ++j)
      if (outputs[j].data && views_overlap(outputs[i], outputs[j]))
        throw Error(ErrorCode::Input, "output '" + infos[k].name + "' buffer overlaps output '" +
                                          infos[output_index[j]].name + "'");
  }
}

void Session::check_call(const TensorView* inputs, size_t num_inputs, const int32_t* output_index,
                         const TensorView* outputs, const Tensor* owned, size_t num_outputs) const {
  check_inputs(inputs, num_inputs);
  check_outputs(inputs, num_inputs, output_index, outputs, num_outputs);
  if (owned == nullptr)
    for (size_t i = 0; i < num_outputs; ++i)
      if (outputs[i].data == nullptr)
        throw Error(ErrorCode::InvalidArgument, "output '" + backend_->outputs()[output_index[i]].name +
                                                    "' has no buffer and no Tensor to receive one");
}

std::vector<TensorView> bits_as_bfloat16(const TensorView* views, size_t n, const std::vector<TensorInfo>& infos,
                                         const int32_t* index) {
  std::vector<TensorView> relabelled(views, views + n);
  for (size_t i = 0; i < n; ++i)
    if (relabelled[i].dtype == DType::UInt16 && infos[index ? index[i] : i].dtype == DType::BFloat16)
      relabelled[i].dtype = DType::BFloat16;
  return relabelled;
}

void bfloat16_as_bits(TensorView& view) {
  if (view.dtype == DType::BFloat16) view.dtype = DType::UInt16;
}

}  // namespace jb
