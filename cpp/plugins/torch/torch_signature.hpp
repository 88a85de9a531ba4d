// The I/O signature juno_bridge.export_torch stores inside a torch model, and its parser.
//
// Torch models carry no reliable statement of their inputs and outputs, so the exporter writes one
// into the model file itself (AOTInductor metadata or a TorchScript extra file, key kSignatureKey),
// where it cannot be lost or go stale beside the model. It is plain text, one record per line, so the
// plugin needs no JSON library:
//
//   juno_bridge.signature 1
//   dim batch 1 1048576            a dynamic dim's name and the range the model was exported for
//   input x float32 batch 8        name, dtype (numpy spelling), dims: a number, a dim name or ?
//   output y float32 batch 4
//
// Inputs that name one dim must agree on its size. An unbounded range ends at 9223372036854775807.
// The format is described for users in the README ("The signature inside a torch model").
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace jb::torch_plugin {

inline constexpr const char* kSignatureKey = "juno_bridge.signature";

struct TensorSignature {
  std::string name;
  int32_t dtype = 0;                     // jb_dtype
  std::vector<int64_t> shape;            // -1 where dynamic
  std::vector<std::string> dim_names;    // "" where fixed or unnamed
};

struct DimRange {
  int64_t min = 0, max = INT64_MAX;
  // Where the range came from, and a note on its lower bound, for messages.
  std::string source = "the model was exported for (its juno_bridge signature)", min_note;
};

struct Signature {
  std::vector<TensorSignature> inputs, outputs;
  std::map<std::string, DimRange> dims;
};

// Parses the text above; throws std::invalid_argument naming the line at fault.
Signature parse_signature(const std::string& text);

}  // namespace jb::torch_plugin
