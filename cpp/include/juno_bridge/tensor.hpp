// DType, TensorView (caller memory, never copied), TensorInfo (a model's input or output) and Tensor
// (an output the backend allocated, kept alive by its holder).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "juno_bridge/error.hpp"
#include "juno_bridge/juno_bridge.h"

namespace jb {

// The numbers are ONNX's TensorProto.DataType values, so the ONNX backend passes them through.
enum class DType : int32_t {
  Undefined = JB_DTYPE_UNDEFINED, Float32 = JB_DTYPE_FLOAT32, UInt8 = JB_DTYPE_UINT8, Int8 = JB_DTYPE_INT8,
  UInt16 = JB_DTYPE_UINT16, Int16 = JB_DTYPE_INT16, Int32 = JB_DTYPE_INT32, Int64 = JB_DTYPE_INT64,
  Bool = JB_DTYPE_BOOL, Float16 = JB_DTYPE_FLOAT16, Float64 = JB_DTYPE_FLOAT64, UInt32 = JB_DTYPE_UINT32,
  UInt64 = JB_DTYPE_UINT64, BFloat16 = JB_DTYPE_BFLOAT16,
};

// The one table of element types: bytes per element, numpy's spelling, ONNX's spelling (the element in
// "tensor(float)"). Header-only, so the plugins, which never link the core, read the same table.
struct DTypeFacts {
  DType dtype;
  size_t size;
  const char* name;  // numpy: "float32", "bool", ...
  const char* onnx;  // ONNX: "float", "double", "bool", ...
};

inline constexpr DTypeFacts kDTypes[] = {
    {DType::Float32, 4, "float32", "float"},   {DType::UInt8, 1, "uint8", "uint8"},
    {DType::Int8, 1, "int8", "int8"},          {DType::UInt16, 2, "uint16", "uint16"},
    {DType::Int16, 2, "int16", "int16"},       {DType::Int32, 4, "int32", "int32"},
    {DType::Int64, 8, "int64", "int64"},       {DType::Bool, 1, "bool", "bool"},
    {DType::Float16, 2, "float16", "float16"}, {DType::Float64, 8, "float64", "double"},
    {DType::UInt32, 4, "uint32", "uint32"},    {DType::UInt64, 8, "uint64", "uint64"},
    {DType::BFloat16, 2, "bfloat16", "bfloat16"},  // numpy's spelling is ml_dtypes' (ml_dtypes.bfloat16)
};

// The table's row for `dtype`; nullptr for Undefined or an unknown value.
constexpr const DTypeFacts* dtype_facts(DType dtype) noexcept {
  for (const auto& f : kDTypes)
    if (f.dtype == dtype) return &f;
  return nullptr;
}
constexpr size_t dtype_size(DType dtype) noexcept {  // 0 for Undefined or an unknown value
  const DTypeFacts* f = dtype_facts(dtype);
  return f ? f->size : 0;
}
constexpr const char* dtype_name(DType dtype) noexcept {  // "undefined" for Undefined or an unknown value
  const DTypeFacts* f = dtype_facts(dtype);
  return f ? f->name : "undefined";
}
// The type as ONNX spells a tensor of it, "tensor(float)"; every backend describes its tensors so.
inline std::string onnx_type_name(DType dtype) {
  const DTypeFacts* f = dtype_facts(dtype);
  return std::string("tensor(") + (f ? f->onnx : "undefined") + ")";
}
// DType from numpy's spelling ("float32"); Undefined when unknown.
inline DType dtype_from_name(const std::string& name) noexcept {
  for (const auto& f : kDTypes)
    if (name == f.name) return f.dtype;
  return DType::Undefined;
}

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }
template <> constexpr DType dtype_of<int8_t>() { return DType::Int8; }
template <> constexpr DType dtype_of<int16_t>() { return DType::Int16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::Int32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::UInt8; }
template <> constexpr DType dtype_of<uint16_t>() { return DType::UInt16; }
template <> constexpr DType dtype_of<uint32_t>() { return DType::UInt32; }
template <> constexpr DType dtype_of<uint64_t>() { return DType::UInt64; }
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }

constexpr int kMaxRank = JB_MAX_RANK;

// Where a view's memory lies (jb_device_kind). CUDAPinned is host memory the GPU copies from directly.
enum class DeviceKind : int32_t { CPU = JB_DEVICE_CPU, CUDA = JB_DEVICE_CUDA, CUDAPinned = JB_DEVICE_CUDA_PINNED };

struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int32_t id = 0;  // the CUDA device's ordinal; 0 for host memory

  static constexpr Device cpu() noexcept { return {}; }
  static constexpr Device cuda(int32_t id = 0) noexcept { return {DeviceKind::CUDA, id}; }
  static constexpr Device cuda_pinned() noexcept { return {DeviceKind::CUDAPinned, 0}; }
  // Host memory, which every backend reads.
  constexpr bool host() const noexcept { return kind == DeviceKind::CPU || kind == DeviceKind::CUDAPinned; }
  constexpr bool known() const noexcept { return host() || (kind == DeviceKind::CUDA && id >= 0); }
  friend constexpr bool operator==(Device a, Device b) noexcept { return a.kind == b.kind && a.id == b.id; }
  friend constexpr bool operator!=(Device a, Device b) noexcept { return !(a == b); }
  // "cpu", "cuda:0", "cuda_pinned"; "device kind 7" for a kind no one defined.
  std::string name() const {
    switch (kind) {
      case DeviceKind::CPU: return "cpu";
      case DeviceKind::CUDA: return "cuda:" + std::to_string(id);
      case DeviceKind::CUDAPinned: return "cuda_pinned";
    }
    return "device kind " + std::to_string(static_cast<int32_t>(kind));
  }
};

// Pointer, element type and shape of C-contiguous memory the caller owns. Layout-identical to the C
// ABI's jb_tensor_view, so arrays of either pass through the C ABI without conversion.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::Undefined;
  int32_t rank = 0;
  int64_t shape[kMaxRank] = {};
  Device device;  // host memory unless said otherwise: TensorView::of(p, {B, 8}).on(Device::cuda(0))

  TensorView() = default;
  TensorView(void* data, DType dtype, std::initializer_list<int64_t> dims) : data(data), dtype(dtype) {
    set_shape(dims.begin(), dims.size());
  }
  TensorView(void* data, DType dtype, const int64_t* dims, size_t ndim) : data(data), dtype(dtype) {
    set_shape(dims, ndim);
  }
  template <class T>
  static TensorView of(T* data, std::initializer_list<int64_t> dims) {
    return TensorView(const_cast<std::remove_const_t<T>*>(data), dtype_of<std::remove_const_t<T>>(), dims);
  }

  template <class T>
  static TensorView of(T* data, const std::vector<int64_t>& dims) {
    return TensorView(const_cast<std::remove_const_t<T>*>(data), dtype_of<std::remove_const_t<T>>(), dims.data(),
                      dims.size());
  }

  TensorView& on(Device where) noexcept {
    device = where;
    return *this;
  }

  void set_shape(const int64_t* dims, size_t ndim) {
    if (ndim > static_cast<size_t>(kMaxRank))
      throw Error(ErrorCode::Input, "tensor rank " + std::to_string(ndim) + " exceeds the maximum of " +
                                        std::to_string(kMaxRank));
    rank = static_cast<int32_t>(ndim);
    for (size_t i = 0; i < ndim; ++i) shape[i] = dims[i];
  }
  // -1 when the view describes no countable memory: a rank outside [0, kMaxRank], a negative dim, or
  // a product past INT64_MAX (checked, never wrapped: a wrapped count would pass for a small tensor).
  int64_t num_elements() const noexcept {
    if (rank < 0 || rank > kMaxRank) return -1;
    int64_t n = 1;
    for (int32_t i = 0; i < rank; ++i)
      if (shape[i] < 0 || __builtin_mul_overflow(n, shape[i], &n)) return -1;
    return n;
  }
  // SIZE_MAX when num_elements() is -1 or the byte count does not fit in size_t.
  size_t nbytes() const noexcept {
    const int64_t n = num_elements();
    size_t bytes = 0;
    if (n < 0 || __builtin_mul_overflow(static_cast<size_t>(n), dtype_size(dtype), &bytes)) return SIZE_MAX;
    return bytes;
  }
  std::vector<int64_t> dims() const { return std::vector<int64_t>(shape, shape + rank); }
};

static_assert(std::is_standard_layout<TensorView>::value, "TensorView must mirror jb_tensor_view");
static_assert(sizeof(TensorView) == sizeof(jb_tensor_view), "TensorView must mirror jb_tensor_view");
static_assert(offsetof(TensorView, shape) == offsetof(jb_tensor_view, shape), "TensorView must mirror jb_tensor_view");
static_assert(offsetof(TensorView, device) == offsetof(jb_tensor_view, device) &&
                  offsetof(TensorView, device) + sizeof(int32_t) == offsetof(jb_tensor_view, device_id),
              "TensorView must mirror jb_tensor_view");

// True when the bytes of two views share an address (views of countable memory, see nbytes(), in one
// address space: host memory, or one GPU's).
inline bool views_overlap(const TensorView& a, const TensorView& b) noexcept {
  if (a.device.host() != b.device.host() || (!a.device.host() && a.device != b.device)) return false;
  const auto pa = reinterpret_cast<uintptr_t>(a.data), pb = reinterpret_cast<uintptr_t>(b.data);
  const size_t na = a.nbytes(), nb = b.nbytes();
  return na && nb && na != SIZE_MAX && nb != SIZE_MAX && pa < pb + nb && pb < pa + na;
}

inline jb_tensor_view* as_c(TensorView* v) { return reinterpret_cast<jb_tensor_view*>(v); }
inline const jb_tensor_view* as_c(const TensorView* v) { return reinterpret_cast<const jb_tensor_view*>(v); }
inline TensorView* from_c(jb_tensor_view* v) { return reinterpret_cast<TensorView*>(v); }
inline const TensorView* from_c(const jb_tensor_view* v) { return reinterpret_cast<const TensorView*>(v); }

// A model input or output as the model declares it.
struct JB_API TensorInfo {
  std::string name;
  DType dtype = DType::Undefined;  // Undefined for types the bridge cannot pass: see type_name
  std::vector<int64_t> shape;      // -1 for a dynamic dim
  std::vector<std::optional<std::string>> dim_names;  // symbolic name of each dim, if it has one
  bool rank_known = true;          // false when the model does not state the rank
  std::string type_name;           // ONNX's spelling: "tensor(float)", "seq(tensor(float))", ...

  bool is_dynamic() const {
    for (int64_t d : shape)
      if (d < 0) return true;
    return !rank_known;
  }
  std::string shape_string() const;  // "[B, 2, 17612]" with symbolic names, "?" for unnamed dynamic dims
};

// An output the backend allocated. `view` describes it; `holder` keeps the memory alive (copying a
// Tensor shares the memory, it never copies the data).
struct Tensor {
  TensorView view;
  std::shared_ptr<void> holder;

  template <class T> T* data() const { return static_cast<T*>(view.data); }
  std::vector<int64_t> shape() const { return view.dims(); }
};

// "[2, 17612]": the one spelling of a concrete shape in messages.
inline std::string shape_string(const int64_t* dims, int64_t rank) {
  std::string s = "[";
  for (int64_t i = 0; i < rank; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

}  // namespace jb
