// What the TensorFlow plugin needs from a SavedModel's MetaGraphDef, read from its protobuf bytes.
//
// TensorFlow's C API loads a SavedModel and hands back the serialized MetaGraphDef, but offers no
// signature lookup. Linking protobuf for a dozen messages would tie the plugin to TensorFlow's own
// protobuf build, so this is a small reader of the wire format for the few fields needed:
//   MetaGraphDef.meta_info_def(1).tensorflow_version(5), MetaGraphDef.signature_def(5) map<string, SignatureDef>,
//   SignatureDef.inputs(1)/outputs(2) map<string, TensorInfo>, SignatureDef.method_name(3),
//   TensorInfo.name(1)/dtype(2)/tensor_shape(3), TensorShapeProto.dim(2)/unknown_rank(3), Dim.size(1);
// and, for the order of a signature's inputs (tf_input_order.cpp), the function calls:
//   MetaGraphDef.graph_def(2): GraphDef.node(1), GraphDef.library(2).function(1): FunctionDef.signature(1)
//   (OpDef.name(1), OpDef.input_arg(2).name(1)), FunctionDef.node_def(3); NodeDef.op(2)/input(3)/attr(5),
//   attr "f": AttrValue.func(10).name(1);
//   MetaGraphDef.object_graph_def(7).concrete_functions(2) map<string, SavedConcreteFunction>:
//   SavedConcreteFunction.canonicalized_input_signature(3), a StructuredValue (tuple 52, list 51, dict 53,
//   named tuple 54 of PairValue.value(2), tensor spec 33, bounded tensor spec 35, composite type spec 34).
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

// A node that calls a function (PartitionedCall, StatefulPartitionedCall), in the graph or in a function.
struct FunctionCall {
  std::string function;             // its attr "f"
  std::vector<std::string> inputs;  // as written: "op", "op:1", "arg", "node:output:0", "^control"
};

// A FunctionDef, the parts the input order needs: its arguments in order and the calls it makes.
struct FunctionBody {
  std::vector<std::string> args;
  std::vector<FunctionCall> calls;
};

// How a saved concrete function takes its tensors (its canonicalized input signature).
struct InputStructure {
  size_t tensors = 0;     // tensor arguments, nested ones counted
  std::string unordered;  // "" when they come in an order the function's author wrote; else why not
};

struct MetaGraphInfo {
  std::string tensorflow_version;  // of the TensorFlow that wrote the model
  std::map<std::string, SignatureDef> signatures;
  std::vector<FunctionCall> graph_calls;                      // the graph's own function calls
  std::map<std::string, FunctionBody> functions;              // the graph's function library
  std::map<std::string, InputStructure> concrete_functions;  // the object graph's (TensorFlow 2)
};

// Parses a serialized MetaGraphDef; throws std::invalid_argument when the bytes are not one.
MetaGraphInfo parse_meta_graph(std::string_view bytes);

// The order of a signature's inputs as its model defined them (tf_input_order.cpp).
struct InputOrder {
  std::vector<size_t> order;  // indices into SignatureDef::inputs: the defined order, else key order
  std::string unordered;      // "" when the order is defined; else why there is none
};
InputOrder input_order(const MetaGraphInfo& meta, const SignatureDef& signature);

}  // namespace jb::tf_plugin
