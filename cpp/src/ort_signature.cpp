// The ONNX Runtime backend (ort_backend.hpp), what the model declares: its inputs and outputs (names,
// element types, shapes, dimension names; the full type of what is not a tensor) and its metadata.
#include <optional>

#include "ort_backend.hpp"

namespace jb {

std::string element_type_name(ONNXTensorElementDataType t) {
  // The element types numpy shares have the same numbers as DType: the one table spells them.
  if (const DTypeFacts* f = dtype_facts(static_cast<DType>(t))) return f->onnx;
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING: return "string";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_COMPLEX64: return "complex64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_COMPLEX128: return "complex128";
    default: return "element type " + std::to_string(static_cast<int>(t));
  }
}

ModelMetadata OrtBackend::metadata() const {
  OrtModelMetadata* md = nullptr;
  rt_.check(api_.SessionGetModelMetadata(session_, &md), ErrorCode::Runtime, "reading model metadata");
  std::unique_ptr<OrtModelMetadata, void (*)(OrtModelMetadata*)> guard(md, api_.ReleaseModelMetadata);
  ModelMetadata result;
  OrtAllocator* alloc = rt_.allocator();
  // Each getter hands over a string from the allocator: copy it, free it.
  auto take = [&](OrtStatus* status, char** value, const char* what) {
    rt_.check(status, ErrorCode::Runtime, what);
    std::string s = *value ? *value : "";
    if (*value) api_.AllocatorFree(alloc, *value);
    *value = nullptr;
    return s;
  };
  char* value = nullptr;
  result.producer_name = take(api_.ModelMetadataGetProducerName(md, alloc, &value), &value, "reading producer");
  result.graph_name = take(api_.ModelMetadataGetGraphName(md, alloc, &value), &value, "reading graph name");
  result.domain = take(api_.ModelMetadataGetDomain(md, alloc, &value), &value, "reading domain");
  result.description = take(api_.ModelMetadataGetDescription(md, alloc, &value), &value, "reading description");
  rt_.check(api_.ModelMetadataGetVersion(md, &result.version), ErrorCode::Runtime, "reading model version");

  char** keys = nullptr;
  int64_t num_keys = 0;
  rt_.check(api_.ModelMetadataGetCustomMetadataMapKeys(md, alloc, &keys, &num_keys), ErrorCode::Runtime,
            "reading custom metadata keys");
  for (int64_t i = 0; i < num_keys; ++i) {
    OrtStatus* status = api_.ModelMetadataLookupCustomMetadataMap(md, alloc, keys[i], &value);
    result.custom[keys[i]] = take(status, &value, "reading custom metadata");
    api_.AllocatorFree(alloc, keys[i]);
  }
  if (keys) api_.AllocatorFree(alloc, keys);
  return result;
}

// ONNX's full spelling of a type, as onnxruntime's Python API writes it: "tensor(float)",
// "seq(map(int64,tensor(float)))" (a classifier's ZipMap output), "optional(tensor(float))". Names the
// type of what the bridge cannot pass in its messages.
std::string OrtBackend::type_string(const OrtTypeInfo* type_info, const std::string& what, int depth) {
  const std::string reading = "reading the type of " + what;
  ONNXType kind = ONNX_TYPE_UNKNOWN;
  rt_.check(api_.GetOnnxTypeFromTypeInfo(type_info, &kind), ErrorCode::ModelLoad, reading);
  using Owned = std::unique_ptr<OrtTypeInfo, void (*)(OrtTypeInfo*)>;  // an inner type handed to us
  auto inner = [&](const char* prefix, OrtTypeInfo* contained, const std::string& before = "") {
    Owned guard(contained, api_.ReleaseTypeInfo);
    if (contained == nullptr || depth >= 32) return std::string(prefix);  // 32: no real type nests deeper
    return std::string(prefix) + "(" + before + type_string(contained, what, depth + 1) + ")";
  };
  switch (kind) {
    case ONNX_TYPE_TENSOR:
    case ONNX_TYPE_SPARSETENSOR: {
      const char* prefix = kind == ONNX_TYPE_TENSOR ? "tensor" : "sparse_tensor";
      const OrtTensorTypeAndShapeInfo* tensor = nullptr;
      rt_.check(api_.CastTypeInfoToTensorInfo(type_info, &tensor), ErrorCode::ModelLoad, reading);
      ONNXTensorElementDataType element = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
      if (tensor == nullptr) return prefix;
      rt_.check(api_.GetTensorElementType(tensor, &element), ErrorCode::ModelLoad, reading);
      return std::string(prefix) + "(" + element_type_name(element) + ")";
    }
    case ONNX_TYPE_SEQUENCE: {
      const OrtSequenceTypeInfo* sequence = nullptr;
      OrtTypeInfo* element = nullptr;
      rt_.check(api_.CastTypeInfoToSequenceTypeInfo(type_info, &sequence), ErrorCode::ModelLoad, reading);
      if (sequence) rt_.check(api_.GetSequenceElementType(sequence, &element), ErrorCode::ModelLoad, reading);
      return inner("seq", element);
    }
    case ONNX_TYPE_MAP: {
      const OrtMapTypeInfo* map = nullptr;
      ONNXTensorElementDataType key = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
      OrtTypeInfo* value = nullptr;
      rt_.check(api_.CastTypeInfoToMapTypeInfo(type_info, &map), ErrorCode::ModelLoad, reading);
      if (map == nullptr) return "map";
      rt_.check(api_.GetMapKeyType(map, &key), ErrorCode::ModelLoad, reading);
      rt_.check(api_.GetMapValueType(map, &value), ErrorCode::ModelLoad, reading);
      return inner("map", value, element_type_name(key) + ",");
    }
    case ONNX_TYPE_OPTIONAL: {
      const OrtOptionalTypeInfo* optional = nullptr;
      OrtTypeInfo* contained = nullptr;
      rt_.check(api_.CastTypeInfoToOptionalTypeInfo(type_info, &optional), ErrorCode::ModelLoad, reading);
      if (optional) rt_.check(api_.GetOptionalContainedTypeInfo(optional, &contained), ErrorCode::ModelLoad, reading);
      return inner("optional", contained);
    }
    case ONNX_TYPE_OPAQUE: return "opaque";
    default: return "unknown";
  }
}

TensorInfo OrtBackend::describe(OrtTypeInfo* type_info, std::string name) {
  std::unique_ptr<OrtTypeInfo, void (*)(OrtTypeInfo*)> guard(type_info, api_.ReleaseTypeInfo);
  TensorInfo info;
  info.name = std::move(name);
  ONNXType kind = ONNX_TYPE_UNKNOWN;
  rt_.check(api_.GetOnnxTypeFromTypeInfo(type_info, &kind), ErrorCode::ModelLoad, "reading type of " + info.name);
  if (kind != ONNX_TYPE_TENSOR) {
    info.type_name = type_string(type_info, info.name, 0);
    info.rank_known = false;
    return info;
  }
  const OrtTensorTypeAndShapeInfo* tensor = nullptr;
  rt_.check(api_.CastTypeInfoToTensorInfo(type_info, &tensor), ErrorCode::ModelLoad, "reading " + info.name);
  ONNXTensorElementDataType element = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  rt_.check(api_.GetTensorElementType(tensor, &element), ErrorCode::ModelLoad, "reading " + info.name);
  info.dtype = to_dtype(element);
  info.type_name = "tensor(" + element_type_name(element) + ")";
  size_t rank = 0;
  rt_.check(api_.GetDimensionsCount(tensor, &rank), ErrorCode::ModelLoad, "reading " + info.name);
  info.shape.resize(rank);
  std::vector<const char*> symbols(rank, nullptr);
  rt_.check(api_.GetDimensions(tensor, info.shape.data(), rank), ErrorCode::ModelLoad, "reading " + info.name);
  rt_.check(api_.GetSymbolicDimensions(tensor, symbols.data(), rank), ErrorCode::ModelLoad, "reading " + info.name);
  for (size_t d = 0; d < rank; ++d) {
    if (info.shape[d] < 0) info.shape[d] = -1;
    if (symbols[d] && *symbols[d]) info.dim_names.emplace_back(symbols[d]);
    else info.dim_names.emplace_back(std::nullopt);
  }
  // The C API reports an unknown rank as rank 0; leave such a tensor's rank to the runtime to check.
  info.rank_known = rank > 0;
  return info;
}

void OrtBackend::read_signature() {
  OrtAllocator* alloc = rt_.allocator();
  auto read = [&](bool is_input, std::vector<TensorInfo>& infos, std::vector<std::string>& names) {
    size_t count = 0;
    rt_.check(is_input ? api_.SessionGetInputCount(session_, &count) : api_.SessionGetOutputCount(session_, &count),
              ErrorCode::ModelLoad, "counting model inputs/outputs");
    for (size_t i = 0; i < count; ++i) {
      char* name = nullptr;
      rt_.check(is_input ? api_.SessionGetInputName(session_, i, alloc, &name)
                         : api_.SessionGetOutputName(session_, i, alloc, &name),
                ErrorCode::ModelLoad, "reading input/output names");
      names.emplace_back(name);
      api_.AllocatorFree(alloc, name);
      OrtTypeInfo* type_info = nullptr;
      rt_.check(is_input ? api_.SessionGetInputTypeInfo(session_, i, &type_info)
                         : api_.SessionGetOutputTypeInfo(session_, i, &type_info),
                ErrorCode::ModelLoad, "reading the type of " + names.back());
      infos.push_back(describe(type_info, names.back()));
    }
  };
  read(true, inputs_, input_name_storage_);
  read(false, outputs_, output_name_storage_);
  for (const auto& n : input_name_storage_) input_names_.push_back(n.c_str());
  for (const auto& n : output_name_storage_) output_names_.push_back(n.c_str());
}

}  // namespace jb
