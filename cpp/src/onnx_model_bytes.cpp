// A reader of the protobuf wire format just deep enough to find tensors with external data in ONNX model
// bytes. ONNX Runtime resolves such data against the model's path, and a model from bytes has none: it
// then looks in the working directory, failing or (with graph optimisation off) reading whatever file of
// that name is there. The bridge refuses such bytes itself, the same way wherever it runs.
#include "onnx_model_bytes.hpp"

#include <cstdint>

namespace jb {
namespace {

// Field numbers of onnx.proto.
constexpr uint32_t kModelGraph = 7;
constexpr uint32_t kGraphNode = 1, kGraphInitializer = 5, kGraphSparseInitializer = 15;
constexpr uint32_t kNodeAttribute = 5;
constexpr uint32_t kAttributeTensor = 5, kAttributeGraph = 6, kAttributeTensors = 10, kAttributeGraphs = 11,
                   kAttributeSparseTensor = 22, kAttributeSparseTensors = 23;
constexpr uint32_t kSparseValues = 1, kSparseIndices = 2;
constexpr uint32_t kTensorName = 8, kTensorExternalData = 13, kTensorDataLocation = 14;
constexpr uint32_t kEntryKey = 1, kEntryValue = 2;
constexpr uint64_t kDataLocationExternal = 1;
constexpr int kMaxGraphDepth = 64;  // subgraphs of If/Loop/Scan nest; bytes that nest deeper are not a model

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

struct Field {
  uint32_t number = 0;
  uint32_t wire = 0;
  uint64_t varint = 0;           // a varint field's value
  const uint8_t* data = nullptr;  // a length-delimited field's bytes
  size_t length = 0;
};

// The fields of one message, in order; stops at the end or at the first malformed field (bad()).
class Message {
 public:
  Message(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}

  bool next(Field& f) {
    if (p_ == end_) return false;
    uint64_t tag = 0;
    if (!varint(tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX) return fail();
    f.number = static_cast<uint32_t>(tag >> 3);
    f.wire = static_cast<uint32_t>(tag & 7);
    switch (f.wire) {
      case kVarint: return varint(f.varint) || fail();
      case kFixed64: return skip(8);
      case kFixed32: return skip(4);
      case kLengthDelimited: {
        uint64_t length = 0;
        if (!varint(length) || length > static_cast<uint64_t>(end_ - p_)) return fail();
        f.data = p_;
        f.length = static_cast<size_t>(length);
        p_ += length;
        return true;
      }
      default: return fail();  // groups (deprecated) and invalid wire types: not ONNX
    }
  }
  bool bad() const { return bad_; }

 private:
  bool varint(uint64_t& value) {
    value = 0;
    for (int shift = 0; shift < 64 && p_ != end_; shift += 7) {
      const uint8_t byte = *p_++;
      value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return true;
    }
    return false;
  }
  bool skip(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return fail();
    p_ += n;
    return true;
  }
  bool fail() {
    bad_ = true;
    p_ = end_;
    return false;
  }

  const uint8_t* p_;
  const uint8_t* end_;
  bool bad_ = false;
};

// Walks a model's messages; `found` is the first external tensor, `bad` that the bytes are not a model.
class Walk {
 public:
  std::optional<ExternalTensor> found;
  bool bad = false;

  void model(const uint8_t* data, size_t size) {
    each(data, size, [&](const Field& f) {
      if (f.number == kModelGraph && f.wire == kLengthDelimited) graph(f.data, f.length, 0);
    });
  }

 private:
  // Calls `visit` on each field until an external tensor is found or the bytes turn out malformed.
  template <class Visit>
  void each(const uint8_t* data, size_t size, Visit visit) {
    Message m(data, size);
    Field f;
    while (!found && !bad && m.next(f)) visit(f);
    bad = bad || m.bad();
  }

  void graph(const uint8_t* data, size_t size, int depth) {
    if (depth > kMaxGraphDepth) {
      bad = true;
      return;
    }
    each(data, size, [&](const Field& f) {
      if (f.wire != kLengthDelimited) return;
      if (f.number == kGraphInitializer) tensor(f.data, f.length);
      else if (f.number == kGraphSparseInitializer) sparse(f.data, f.length);
      else if (f.number == kGraphNode) node(f.data, f.length, depth);
    });
  }

  void node(const uint8_t* data, size_t size, int depth) {
    each(data, size, [&](const Field& f) {
      if (f.number != kNodeAttribute || f.wire != kLengthDelimited) return;
      each(f.data, f.length, [&](const Field& a) {
        if (a.wire != kLengthDelimited) return;
        if (a.number == kAttributeTensor || a.number == kAttributeTensors) tensor(a.data, a.length);
        else if (a.number == kAttributeSparseTensor || a.number == kAttributeSparseTensors) sparse(a.data, a.length);
        else if (a.number == kAttributeGraph || a.number == kAttributeGraphs) graph(a.data, a.length, depth + 1);
      });
    });
  }

  void sparse(const uint8_t* data, size_t size) {
    each(data, size, [&](const Field& f) {
      if ((f.number == kSparseValues || f.number == kSparseIndices) && f.wire == kLengthDelimited) tensor(f.data, f.length);
    });
  }

  void tensor(const uint8_t* data, size_t size) {
    ExternalTensor t;
    bool external = false;
    each(data, size, [&](const Field& f) {
      if (f.number == kTensorDataLocation && f.wire == kVarint) external = f.varint == kDataLocationExternal;
      else if (f.number == kTensorName && f.wire == kLengthDelimited) t.name.assign(f.data, f.data + f.length);
      else if (f.number == kTensorExternalData && f.wire == kLengthDelimited) {
        std::string key, value;
        each(f.data, f.length, [&](const Field& e) {
          if (e.wire != kLengthDelimited) return;
          if (e.number == kEntryKey) key.assign(e.data, e.data + e.length);
          else if (e.number == kEntryValue) value.assign(e.data, e.data + e.length);
        });
        if (key == "location") t.location = value;
      }
    });
    if (external && !bad) found = std::move(t);
  }
};

}  // namespace

std::optional<ExternalTensor> find_external_tensor(const void* bytes, size_t size) {
  if (bytes == nullptr) return std::nullopt;
  Walk walk;
  walk.model(static_cast<const uint8_t*>(bytes), size);
  if (walk.bad) return std::nullopt;
  return walk.found;
}

}  // namespace jb
