// What the bridge must know of an ONNX model given as bytes before ONNX Runtime parses it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace jb {

// A tensor whose data lie in a file beside the model (TensorProto.data_location EXTERNAL).
struct ExternalTensor {
  std::string name;      // the tensor's name ("" if the model gives none)
  std::string location;  // its external_data "location" entry, relative to the model's file
};

// The first tensor of the model (initializers, sparse initializers, Constant attributes, subgraphs)
// that keeps its data in an external file; nullopt when none does, or when the bytes are not a model
// this reader can walk (then ONNX Runtime gives its own error). Reads only field headers of the
// protobuf wire format: no payload is copied.
std::optional<ExternalTensor> find_external_tensor(const void* bytes, size_t size);

}  // namespace jb
