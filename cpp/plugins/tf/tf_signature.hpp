// What the TensorFlow plugin needs from a SavedModel's MetaGraphDef, read from its protobuf bytes.
//
// TensorFlow's C API loads a SavedModel and hands back the serialized MetaGraphDef, but offers no
// signature lookup. Linking protobuf for four messages would tie the plugin to TensorFlow's own
// protobuf build, so this is a small reader of the wire format for the few fields needed:
//   MetaGraphDef.meta_info_def(1).tensorflow_version(5), MetaGraphDef.signature_def(5) map<string, SignatureDef>,
//   SignatureDef.inputs(1)/outputs(2) map<string, TensorInfo>, SignatureDef.method_name(3),
//   TensorInfo.name(1)/dtype(2)/tensor_shape(3), TensorShapeProto.dim(2)/unknown_rank(3), Dim.size(1).
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace jb::tf_plugin {

struct SignatureTensor {
  std::string key;          // the signature's name for it, e.g. "x" or "output_0"
  std::string tensor_name;  // the graph tensor, "op_name:index", e.g. "serving_default_x:0"
  int32_t tf_dtype = 0;     // TensorFlow's DataType enum (TF_DataType has the same numbers)
  bool rank_known = false;
  std::vector<int64_t> shape;  // -1 where unknown
};

struct SignatureDef {
  std::string method_name;
  std::vector<SignatureTensor> inputs, outputs;  // ordered by key: protobuf maps have no order
};

struct MetaGraphInfo {
  std::string tensorflow_version;  // of the TensorFlow that wrote the model
  std::map<std::string, SignatureDef> signatures;
};

// Parses a serialized MetaGraphDef; throws std::invalid_argument when the bytes are not one.
MetaGraphInfo parse_meta_graph(std::string_view bytes);

}  // namespace jb::tf_plugin
