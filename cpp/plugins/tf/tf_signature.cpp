// A protobuf wire-format reader for the MetaGraphDef fields listed in tf_signature.hpp.
#include "tf_signature.hpp"

#include <algorithm>

namespace jb::tf_plugin {
namespace {

// One message's bytes; next() yields each field in turn (field number, wire type, payload).
class Reader {
 public:
  explicit Reader(std::string_view bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  bool next(uint32_t& field, uint32_t& wire) {
    if (p_ == end_) return false;
    uint64_t tag = varint();
    field = static_cast<uint32_t>(tag >> 3);
    wire = static_cast<uint32_t>(tag & 7);
    if (field == 0) throw std::invalid_argument("field number 0");
    return true;
  }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) throw std::invalid_argument("truncated varint");
      const auto byte = static_cast<uint8_t>(*p_++);
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
    }
    throw std::invalid_argument("varint longer than 10 bytes");
  }

  std::string_view bytes() {
    const uint64_t n = varint();
    if (n > static_cast<uint64_t>(end_ - p_)) throw std::invalid_argument("length-delimited field past the end");
    std::string_view s(p_, static_cast<size_t>(n));
    p_ += n;
    return s;
  }

  void skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); return;
      case 1: advance(8); return;
      case 2: bytes(); return;
      case 5: advance(4); return;
      default: throw std::invalid_argument("unsupported wire type " + std::to_string(wire));
    }
  }

 private:
  void advance(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) throw std::invalid_argument("fixed-size field past the end");
    p_ += n;
  }
  const char* p_;
  const char* end_;
};

// The payload of a length-delimited field, or an error naming what was expected.
std::string_view expect_bytes(Reader& r, uint32_t wire, const char* what) {
  if (wire != 2) throw std::invalid_argument(std::string(what) + " is not length-delimited");
  return r.bytes();
}

uint64_t expect_varint(Reader& r, uint32_t wire, const char* what) {
  if (wire != 0) throw std::invalid_argument(std::string(what) + " is not a varint");
  return r.varint();
}

void parse_shape(std::string_view bytes, SignatureTensor& t) {
  Reader r(bytes);
  t.rank_known = true;
  for (uint32_t f, w; r.next(f, w);) {
    if (f == 2) {  // Dim
      Reader dim(expect_bytes(r, w, "TensorShapeProto.dim"));
      int64_t size = 0;
      for (uint32_t g, x; dim.next(g, x);) {
        if (g == 1) size = static_cast<int64_t>(expect_varint(dim, x, "Dim.size"));
        else dim.skip(x);
      }
      t.shape.push_back(size < 0 ? -1 : size);
    } else if (f == 3) {
      if (expect_varint(r, w, "TensorShapeProto.unknown_rank")) t.rank_known = false;
    } else {
      r.skip(w);
    }
  }
  if (!t.rank_known) t.shape.clear();
}

SignatureTensor parse_tensor_info(std::string key, std::string_view bytes) {
  SignatureTensor t;
  t.key = std::move(key);
  Reader r(bytes);
  for (uint32_t f, w; r.next(f, w);) {
    if (f == 1) t.tensor_name = std::string(expect_bytes(r, w, "TensorInfo.name"));
    else if (f == 2) t.tf_dtype = static_cast<int32_t>(expect_varint(r, w, "TensorInfo.dtype"));
    else if (f == 3) parse_shape(expect_bytes(r, w, "TensorInfo.tensor_shape"), t);
    else r.skip(w);
  }
  return t;
}

// A map<string, Message> entry: key = 1, value = 2.
std::pair<std::string, std::string_view> map_entry(std::string_view bytes, const char* what) {
  Reader r(bytes);
  std::string key;
  std::string_view value;
  for (uint32_t f, w; r.next(f, w);) {
    if (f == 1) key = std::string(expect_bytes(r, w, what));
    else if (f == 2) value = expect_bytes(r, w, what);
    else r.skip(w);
  }
  return {key, value};
}

SignatureDef parse_signature_def(std::string_view bytes) {
  SignatureDef s;
  Reader r(bytes);
  for (uint32_t f, w; r.next(f, w);) {
    if (f == 1 || f == 2) {
      auto [key, value] = map_entry(expect_bytes(r, w, "SignatureDef.inputs/outputs"), "SignatureDef entry");
      (f == 1 ? s.inputs : s.outputs).push_back(parse_tensor_info(std::move(key), value));
    } else if (f == 3) {
      s.method_name = std::string(expect_bytes(r, w, "SignatureDef.method_name"));
    } else {
      r.skip(w);
    }
  }
  auto by_key = [](const SignatureTensor& a, const SignatureTensor& b) { return a.key < b.key; };
  std::sort(s.inputs.begin(), s.inputs.end(), by_key);
  std::sort(s.outputs.begin(), s.outputs.end(), by_key);
  return s;
}

// NodeDef: the call it makes, when it is a function call (false otherwise).
bool parse_call(std::string_view bytes, FunctionCall& call) {
  Reader r(bytes);
  std::string op;
  for (uint32_t f, w; r.next(f, w);) {
    if (f == 2) {
      op = std::string(expect_bytes(r, w, "NodeDef.op"));
    } else if (f == 3) {
      call.inputs.emplace_back(expect_bytes(r, w, "NodeDef.input"));
    } else if (f == 5) {
      auto [key, value] = map_entry(expect_bytes(r, w, "NodeDef.attr"), "NodeDef.attr entry");
      if (key != "f") continue;
      Reader attr(value);
      for (uint32_t g, x; attr.next(g, x);) {
        if (g != 10) {
          attr.skip(x);
          continue;
        }
        Reader func(expect_bytes(attr, x, "AttrValue.func"));
        for (uint32_t h, y; func.next(h, y);) {
          if (h == 1) call.function = std::string(expect_bytes(func, y, "NameAttrList.name"));
          else func.skip(y);
        }
      }
    } else {
      r.skip(w);
    }
  }
  return (op == "PartitionedCall" || op == "StatefulPartitionedCall") && !call.function.empty();
}

void parse_graph(std::string_view bytes, MetaGraphInfo& info) {
  Reader r(bytes);
  for (uint32_t f, w; r.next(f, w);) {
    if (f == 1) {
      FunctionCall call;
      if (parse_call(expect_bytes(r, w, "GraphDef.node"), call)) info.graph_calls.push_back(std::move(call));
    } else if (f == 2) {
      Reader library(expect_bytes(r, w, "GraphDef.library"));
      for (uint32_t g, x; library.next(g, x);) {
        if (g != 1) {
          library.skip(x);
          continue;
        }
        Reader def(expect_bytes(library, x, "FunctionDefLibrary.function"));
        std::string name;
        FunctionBody body;
        for (uint32_t h, y; def.next(h, y);) {
          if (h == 1) {  // OpDef
            Reader op(expect_bytes(def, y, "FunctionDef.signature"));
            for (uint32_t k, z; op.next(k, z);) {
              if (k == 1) {
                name = std::string(expect_bytes(op, z, "OpDef.name"));
              } else if (k == 2) {
                Reader arg(expect_bytes(op, z, "OpDef.input_arg"));
                std::string arg_name;
                for (uint32_t m, v; arg.next(m, v);) {
                  if (m == 1) arg_name = std::string(expect_bytes(arg, v, "ArgDef.name"));
                  else arg.skip(v);
                }
                body.args.push_back(std::move(arg_name));
              } else {
                op.skip(z);
              }
            }
          } else if (h == 3) {
            FunctionCall call;
            if (parse_call(expect_bytes(def, y, "FunctionDef.node_def"), call)) body.calls.push_back(std::move(call));
          } else {
            def.skip(y);
          }
        }
        info.functions[name] = std::move(body);
      }
    } else {
      r.skip(w);
    }
  }
}

// Walks a StructuredValue: counts its tensors, and says why they have no written order when they do not.
void walk_structure(std::string_view bytes, InputStructure& s, int depth) {
  if (depth > 64) throw std::invalid_argument("StructuredValue nested deeper than 64");
  Reader r(bytes);
  for (uint32_t f, w; r.next(f, w);) {
    if (f == 33 || f == 35) {  // TensorSpecProto, BoundedTensorSpecProto
      expect_bytes(r, w, "StructuredValue.tensor_spec_value");
      ++s.tensors;
    } else if (f == 34) {
      expect_bytes(r, w, "StructuredValue.type_spec_value");
      if (s.unordered.empty()) s.unordered = "its function takes a composite tensor (ragged, sparse, ...)";
    } else if (f == 51 || f == 52) {  // ListValue, TupleValue: values(1), in order
      Reader seq(expect_bytes(r, w, "StructuredValue.list_value"));
      for (uint32_t g, x; seq.next(g, x);) {
        if (g == 1) walk_structure(expect_bytes(seq, x, "ListValue.values"), s, depth + 1);
        else seq.skip(x);
      }
    } else if (f == 54) {  // NamedTupleValue: values(2) PairValue, in field order
      Reader tuple(expect_bytes(r, w, "StructuredValue.named_tuple_value"));
      for (uint32_t g, x; tuple.next(g, x);) {
        if (g != 2) {
          tuple.skip(x);
          continue;
        }
        auto [key, value] = map_entry(expect_bytes(tuple, x, "NamedTupleValue.values"), "PairValue");
        walk_structure(value, s, depth + 1);
      }
    } else if (f == 53) {  // DictValue: fields(1) map<string, StructuredValue>; TensorFlow flattens it by key
      Reader dict(expect_bytes(r, w, "StructuredValue.dict_value"));
      size_t keys_with_tensors = 0;
      for (uint32_t g, x; dict.next(g, x);) {
        if (g != 1) {
          dict.skip(x);
          continue;
        }
        auto [key, value] = map_entry(expect_bytes(dict, x, "DictValue.fields"), "DictValue entry");
        const size_t before = s.tensors;
        walk_structure(value, s, depth + 1);
        if (s.tensors > before) ++keys_with_tensors;
      }
      if (keys_with_tensors > 1 && s.unordered.empty())
        s.unordered = depth == 1 ? "its function takes them as keyword arguments"
                                 : "its function takes them as a dict (keyed by name)";
    } else {
      r.skip(w);  // None, numbers, strings, shapes, dtypes: no tensor
    }
  }
}

void parse_object_graph(std::string_view bytes, MetaGraphInfo& info) {
  Reader r(bytes);
  for (uint32_t f, w; r.next(f, w);) {
    if (f != 2) {
      r.skip(w);
      continue;
    }
    auto [name, value] =
        map_entry(expect_bytes(r, w, "SavedObjectGraph.concrete_functions"), "concrete_functions entry");
    Reader fn(value);
    InputStructure structure;
    for (uint32_t g, x; fn.next(g, x);) {
      if (g == 3)
        walk_structure(expect_bytes(fn, x, "SavedConcreteFunction.canonicalized_input_signature"), structure, 0);
      else
        fn.skip(x);
    }
    info.concrete_functions[name] = std::move(structure);
  }
}

}  // namespace

MetaGraphInfo parse_meta_graph(std::string_view bytes) {
  MetaGraphInfo info;
  Reader r(bytes);
  for (uint32_t f, w; r.next(f, w);) {
    if (f == 1) {  // MetaInfoDef
      Reader meta(expect_bytes(r, w, "MetaGraphDef.meta_info_def"));
      for (uint32_t g, x; meta.next(g, x);) {
        if (g == 5) info.tensorflow_version = std::string(expect_bytes(meta, x, "MetaInfoDef.tensorflow_version"));
        else meta.skip(x);
      }
    } else if (f == 2) {
      parse_graph(expect_bytes(r, w, "MetaGraphDef.graph_def"), info);
    } else if (f == 5) {
      auto [name, value] = map_entry(expect_bytes(r, w, "MetaGraphDef.signature_def"), "signature_def entry");
      info.signatures[name] = parse_signature_def(value);
    } else if (f == 7) {
      parse_object_graph(expect_bytes(r, w, "MetaGraphDef.object_graph_def"), info);
    } else {
      r.skip(w);
    }
  }
  return info;
}

}  // namespace jb::tf_plugin
