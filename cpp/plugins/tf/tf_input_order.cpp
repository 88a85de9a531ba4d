// The order of a signature's inputs as the model defined it.
//
// A SignatureDef maps names to tensors: a protobuf map, with no order. A TensorFlow 2 SavedModel keeps
// the order elsewhere: each signature input is a placeholder that feeds the signature's wrapper
// function (a keyword-only function, arguments sorted by name), which passes them on to the function
// the author wrote, in the order of its arguments (a Keras model's inputs, a tf.function's
// input_signature), and that function's canonicalized input signature says how they were structured.
// Following the placeholders through the two calls gives each input's position among the author's
// arguments. Where that path is not there (a TensorFlow 1 graph) or the author gave no order (a dict
// of inputs, keyword arguments), the inputs have none: key order, and `unordered` says why.
#include <algorithm>
#include <numeric>

#include "tf_signature.hpp"

namespace jb::tf_plugin {
namespace {

// "name" and "name:0" are the same tensor; "name:1" is not.
std::string_view without_port0(std::string_view ref) {
  if (ref.size() > 2 && ref.substr(ref.size() - 2) == ":0") ref.remove_suffix(2);
  return ref;
}

// The one call whose inputs hold every one of `refs`, and each one's position among its inputs.
const FunctionCall* one_call(const std::vector<FunctionCall>& calls, const std::vector<std::string>& refs,
                             std::vector<size_t>& positions) {
  for (const auto& call : calls) {
    positions.clear();
    for (const auto& ref : refs) {
      auto at = std::find_if(call.inputs.begin(), call.inputs.end(),
                             [&](const std::string& in) { return without_port0(in) == without_port0(ref); });
      if (at == call.inputs.end()) break;
      positions.push_back(static_cast<size_t>(at - call.inputs.begin()));
    }
    if (positions.size() == refs.size()) return &call;
  }
  return nullptr;
}

}  // namespace

InputOrder input_order(const MetaGraphInfo& meta, const SignatureDef& signature) {
  InputOrder result;
  const size_t n = signature.inputs.size();
  result.order.resize(n);
  std::iota(result.order.begin(), result.order.end(), size_t{0});
  if (n < 2) return result;  // one input or none: any order is the order

  const char* no_path = "its inputs do not reach a saved function as arguments (a TensorFlow 1 graph, or a "
                        "signature not made from a tf.function)";
  // The placeholders -> the signature's wrapper function, which names them as its arguments.
  std::vector<std::string> refs;
  for (const auto& input : signature.inputs) refs.push_back(input.tensor_name);
  std::vector<size_t> positions;
  const FunctionCall* outer = one_call(meta.graph_calls, refs, positions);
  auto wrapper = outer ? meta.functions.find(outer->function) : meta.functions.end();
  if (wrapper == meta.functions.end()) {
    result.unordered = no_path;
    return result;
  }
  std::vector<std::string> args;
  for (size_t p : positions) {
    if (p >= wrapper->second.args.size()) {
      result.unordered = no_path;
      return result;
    }
    args.push_back(wrapper->second.args[p]);
  }
  // The wrapper's arguments -> the author's function, in the order of its arguments.
  const FunctionCall* inner = one_call(wrapper->second.calls, args, positions);
  auto structure = inner ? meta.concrete_functions.find(inner->function) : meta.concrete_functions.end();
  if (structure == meta.concrete_functions.end()) {
    result.unordered = no_path;
    return result;
  }
  if (!structure->second.unordered.empty()) {
    result.unordered = structure->second.unordered;
    return result;
  }
  std::vector<size_t> sorted = positions;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end() || sorted.back() >= structure->second.tensors) {
    result.unordered = no_path;  // not n distinct tensor arguments of the function: nothing to trust
    return result;
  }
  std::sort(result.order.begin(), result.order.end(), [&](size_t a, size_t b) { return positions[a] < positions[b]; });
  return result;
}

}  // namespace jb::tf_plugin
