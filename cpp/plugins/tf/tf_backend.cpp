// The TensorFlow backend plugin (libjuno_bridge_tf.so): SavedModels through TensorFlow's C API
// (TF_LoadSessionFromSavedModel, TF_SessionRun), through the plugin table of plugin.h.
//
// Zero-copy: TF_NewTensor keeps the caller's pointer only when it is 64-byte aligned; otherwise it
// copies silently and calls the deallocator at once. Where malloc puts a numpy array decides which, so
// an unaligned input is copied by us, always, into aligned memory the session keeps for the next runs
// (said once per session in the log, counted in SessionStats.inputs_staged); config copy_unaligned=0
// refuses it instead, with the fix (juno_bridge.empty). The deallocator never frees: the caller owns
// the memory, or the session does. The stats hook reports where TensorFlow read.
// Outputs are always allocated by TensorFlow: handed over as the TF_Tensor itself (no copy), or
// copied once into a caller's buffer.
// Threads: TF_SetConfig with a serialized ConfigProto. inter_op_threads 0 (unset) means -1, ops on
// the caller's thread: fastest for small models and right for a framework that owns its threads.
// TensorFlow itself is bound at run time (tf_library.hpp): any release from 2.16 on, no build-time link.
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "juno_bridge/plugin_sdk.hpp"
#include "tf_library.hpp"
#include "tf_signature.hpp"

namespace jb::tf_plugin {
namespace {

// TensorFlow's functions, bound by load_tensorflow before the first model opens.
const JbTfApi& tf = tensorflow().api;

using StatusPtr = std::unique_ptr<TF_Status, decltype(tf.TF_DeleteStatus)>;
using TensorPtr = std::unique_ptr<TF_Tensor, decltype(tf.TF_DeleteTensor)>;
StatusPtr new_status() { return StatusPtr(tf.TF_NewStatus(), tf.TF_DeleteStatus); }

// TensorFlow's DataType numbers -> jb_dtype (ONNX numbering); 0 for types juno-bridge cannot pass.
int32_t to_jb_dtype(int32_t tf_dtype) {
  switch (tf_dtype) {
    case TF_FLOAT: return JB_DTYPE_FLOAT32;
    case TF_DOUBLE: return JB_DTYPE_FLOAT64;
    case TF_INT32: return JB_DTYPE_INT32;
    case TF_UINT8: return JB_DTYPE_UINT8;
    case TF_INT16: return JB_DTYPE_INT16;
    case TF_INT8: return JB_DTYPE_INT8;
    case TF_INT64: return JB_DTYPE_INT64;
    case TF_BOOL: return JB_DTYPE_BOOL;
    case TF_UINT16: return JB_DTYPE_UINT16;
    case TF_HALF: return JB_DTYPE_FLOAT16;
    case TF_UINT32: return JB_DTYPE_UINT32;
    case TF_UINT64: return JB_DTYPE_UINT64;
    case TF_BFLOAT16: return JB_DTYPE_BFLOAT16;
    default: return JB_DTYPE_UNDEFINED;
  }
}

// ONNX's spelling, as the onnxruntime backend reports types, so every backend describes alike.
std::string type_name(int32_t tf_dtype) {
  if (int32_t jb = to_jb_dtype(tf_dtype); jb != JB_DTYPE_UNDEFINED) return plugin::onnx_type_name(jb);
  switch (tf_dtype) {
    case TF_STRING: return "tensor(string)";
    case TF_COMPLEX64: return "tensor(complex64)";
    case TF_COMPLEX128: return "tensor(complex128)";
    case TF_RESOURCE: return "tensorflow resource";
    case TF_VARIANT: return "tensorflow variant";
    default: return "tensorflow DataType " + std::to_string(tf_dtype);
  }
}

jb_status status_of(TF_Code code) {
  // By the time TensorFlow runs, the core has checked what it knows: an invalid argument then is a
  // tensor the model's own checks refused.
  return code == TF_INVALID_ARGUMENT ? JB_ERROR_INPUT : JB_ERROR_RUNTIME;
}

void never_free(void*, size_t, void*) {}  // the caller owns input memory, whether TensorFlow copied or not

// A ConfigProto with the two thread counts: intra_op_parallelism_threads = 2, inter_op = 5 (int32,
// so a negative value is its 64-bit two's complement as a varint).
std::string config_proto(int intra, int inter) {
  std::string out;
  auto field = [&](uint32_t number, int32_t value) {
    out.push_back(static_cast<char>(number << 3));
    uint64_t v = static_cast<uint64_t>(static_cast<int64_t>(value));
    do {
      uint8_t byte = v & 0x7f;
      v >>= 7;
      out.push_back(static_cast<char>(v ? byte | 0x80 : byte));
    } while (v);
  };
  if (intra) field(2, intra);
  if (inter) field(5, inter);
  return out;
}

struct Info {
  SignatureTensor sig;
  TF_Output port{nullptr, 0};
  int32_t dtype = JB_DTYPE_UNDEFINED;
  std::string type;

  jb_tensor_info c_info() const {
    jb_tensor_info i{};
    i.name = sig.key.c_str();
    i.dtype = dtype;
    i.rank = sig.rank_known ? static_cast<int32_t>(sig.shape.size()) : -1;
    i.shape = sig.shape.data();
    i.dim_names = nullptr;
    i.type_name = type.c_str();
    return i;
  }
};

struct Options {
  int intra = 0, inter = -1;
  std::string signature = "serving_default";
  std::vector<std::string> tags{"serve"};
  bool copy_unaligned = true;  // false: an unaligned input is an error
  std::string tensorflow;  // the libtensorflow_cc.so.2 (or its folder) to bind; "" = the default
};

// The core passes only the names in kOptions.
Options parse_options(const plugin::Options& given) {
  Options o;
  for (const auto& [key, value] : given.pairs()) {
    if (key == "intra_op_threads") o.intra = plugin::parse_count("tf", key, value, 0);
    else if (key == "inter_op_threads") {
      const int n = plugin::parse_count("tf", key, value, 0);
      o.inter = n == 0 ? -1 : n;  // unset: the caller's thread (TensorFlow's -1)
    }
    else if (key == "signature") o.signature = value;
    else if (key == "tags") {
      o.tags.clear();
      for (size_t start = 0, end; start <= value.size(); start = end + 1) {
        end = value.find(',', start);
        if (end == std::string::npos) end = value.size();
        if (end > start) o.tags.push_back(value.substr(start, end - start));
      }
    } else if (key == "copy_unaligned") {
      if (value != "0" && value != "1")
        throw Error(JB_ERROR_INVALID_ARGUMENT, "tf backend: option 'copy_unaligned' is '0' or '1'; got '" + value + "'");
      o.copy_unaligned = value == "1";
    } else if (key == "tensorflow") {
      o.tensorflow = value;
    }
  }
  return o;
}

// Aligned memory of the session's own for the inputs TensorFlow cannot read in place, kept for the
// next runs: one block per run in flight (a Session serves many threads), grown when a run needs
// more, never shrunk, freed with the session.
class StagingPool {
 public:
  struct Block {
    void* data = nullptr;
    size_t size = 0;
    ~Block() { std::free(data); }
  };

  // A block of `bytes` or more for one run; it goes back to the pool when the lease ends.
  class Lease {
   public:
    Lease(StagingPool& pool, size_t bytes, size_t alignment) : pool_(pool), block_(pool.take(bytes, alignment)) {}
    ~Lease() { pool_.give_back(std::move(block_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    char* data() const { return static_cast<char*>(block_->data); }

   private:
    StagingPool& pool_;
    std::unique_ptr<Block> block_;
  };

 private:
  std::unique_ptr<Block> take(size_t bytes, size_t alignment) {
    std::unique_ptr<Block> block;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!free_.empty()) {
        block = std::move(free_.back());
        free_.pop_back();
      }
    }
    if (!block) block = std::make_unique<Block>();
    if (block->size < bytes) {
      const size_t size = (bytes + alignment - 1) / alignment * alignment;
      void* data = std::aligned_alloc(alignment, size);
      if (data == nullptr)
        throw Error(JB_ERROR_RUNTIME, "tf backend: cannot allocate " + std::to_string(size) +
                                          " bytes of aligned memory to stage unaligned inputs in");
      std::free(block->data);
      block->data = data;
      block->size = size;
    }
    return block;
  }

  void give_back(std::unique_ptr<Block> block) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(std::move(block));
  }
  std::mutex mutex_;
  std::vector<std::unique_ptr<Block>> free_;
};

// "0x7f..." for messages.
std::string address_string(const void* p) {
  char text[32];
  std::snprintf(text, sizeof text, "%p", p);
  return text;
}

class Model : public plugin::ModelBase<Info> {
 public:
  Model(const std::string& path, const Options& options) : path_(path), options_(options) {
    struct stat st {};
    if (::stat((path + "/saved_model.pb").c_str(), &st) != 0 && ::stat((path + "/saved_model.pbtxt").c_str(), &st) != 0)
      throw Error(JB_ERROR_MODEL_LOAD, "cannot open SavedModel '" + path + "': " +
                                             (::stat(path.c_str(), &st) == 0 ? "the directory has no saved_model.pb"
                                                                              : "no such directory"));
    graph_ = tf.TF_NewGraph();
    try {
      load();
      describe();
    } catch (...) {
      release();  // a constructor that throws runs no destructor
      throw;
    }
    seal();
  }

  ~Model() { release(); }


  static Model* open(const std::string& model, const void* bytes, size_t, const plugin::Options& options) {
    if (bytes != nullptr)
      throw Error(JB_ERROR_UNSUPPORTED, "tf backend: a SavedModel is a directory; open it from its path");
    const Options parsed = parse_options(options);
    try {
      load_tensorflow(parsed.tensorflow);
    } catch (const TfUnavailable& e) {
      throw Error(JB_ERROR_BACKEND_UNAVAILABLE, std::string("tf backend: ") + e.what());
    }
    std::string path = model;
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    return new Model(path, parsed);
  }

  void run(const jb_tensor_view* in, const int32_t* output_index, jb_tensor_view* out, jb_plugin_owned* owned,
           size_t num_outputs) {
    const size_t num_inputs = inputs_.size();
    const size_t alignment = tensorflow().alignment;  // TF_NewTensor's condition for keeping the pointer
    // The unaligned inputs, each at an aligned offset of one block of the session's staging memory.
    size_t staged_bytes = 0;
    uint64_t staged = 0;
    for (size_t i = 0; i < num_inputs; ++i) {
      const size_t len = plugin::nbytes(in[i]);
      if (len == 0 || reinterpret_cast<uintptr_t>(in[i].data) % alignment == 0) continue;
      if (!options_.copy_unaligned) refuse_unaligned(in[i], inputs_[i], alignment);
      staged_bytes += (len + alignment - 1) / alignment * alignment;
      ++staged;
    }
    std::optional<StagingPool::Lease> staging;  // before the tensors over it, so it outlives them
    if (staged) {
      staging.emplace(staging_, staged_bytes, alignment);
      count_staged(staged);
      if (!warned_unaligned_.exchange(true)) warn_staged(in, alignment);
    }
    std::vector<TensorPtr> tensors;
    std::vector<TF_Tensor*> values(num_inputs);
    std::vector<TF_Output> feeds(num_inputs), fetches(num_outputs);
    tensors.reserve(num_inputs);
    uint64_t wrapped = 0;
    char* room = staging ? staging->data() : nullptr;
    for (size_t i = 0; i < num_inputs; ++i) {
      tensors.emplace_back(wrap_input(in[i], inputs_[i], alignment, room, wrapped));
      values[i] = tensors.back().get();
      feeds[i] = inputs_[i].port;
      read_input_at(i, tf.TF_TensorData(values[i]));
    }
    count_wrapped(wrapped);
    for (size_t i = 0; i < num_outputs; ++i) fetches[i] = outputs_[output_index[i]].port;
    std::vector<TF_Tensor*> results(num_outputs, nullptr);
    auto status = new_status();
    tf.TF_SessionRun(session_, nullptr, feeds.data(), values.data(), static_cast<int>(num_inputs), fetches.data(),
                     results.data(), static_cast<int>(num_outputs), nullptr, 0, nullptr, status.get());
    // Every result gets an owner first, so an error below leaks nothing.
    std::vector<TensorPtr> kept;
    for (TF_Tensor* t : results) kept.emplace_back(t, tf.TF_DeleteTensor);
    if (tf.TF_GetCode(status.get()) != TF_OK)
      throw Error(status_of(tf.TF_GetCode(status.get())), "TensorFlow: " + std::string(tf.TF_Message(status.get())));
    for (size_t i = 0; i < num_outputs; ++i) deliver(std::move(kept[i]), outputs_[output_index[i]], values, out[i],
                                                     owned[i]);
  }

 private:
  void load() {
    auto status = new_status();
    std::unique_ptr<TF_SessionOptions, decltype(tf.TF_DeleteSessionOptions)> opts(tf.TF_NewSessionOptions(),
                                                                                   tf.TF_DeleteSessionOptions);
    const std::string config = config_proto(options_.intra, options_.inter);
    tf.TF_SetConfig(opts.get(), config.data(), config.size(), status.get());
    if (tf.TF_GetCode(status.get()) != TF_OK)
      throw Error(JB_ERROR_INVALID_ARGUMENT, "tf backend: thread options refused: " + std::string(tf.TF_Message(status.get())));
    std::vector<const char*> tags;
    for (const auto& t : options_.tags) tags.push_back(t.c_str());
    std::unique_ptr<TF_Buffer, decltype(tf.TF_DeleteBuffer)> meta(tf.TF_NewBuffer(), tf.TF_DeleteBuffer);
    session_ = tf.TF_LoadSessionFromSavedModel(opts.get(), nullptr, path_.c_str(), tags.data(),
                                            static_cast<int>(tags.size()), graph_, meta.get(), status.get());
    if (tf.TF_GetCode(status.get()) != TF_OK || session_ == nullptr)
      throw Error(JB_ERROR_MODEL_LOAD, "cannot load SavedModel '" + path_ + "': " + tf.TF_Message(status.get()));
    try {
      meta_ = parse_meta_graph(std::string_view(static_cast<const char*>(meta->data), meta->length));
    } catch (const std::invalid_argument& e) {
      throw Error(JB_ERROR_MODEL_LOAD, "SavedModel '" + path_ + "': its MetaGraphDef is unreadable: " + e.what());
    }
  }

  void describe() {
    auto it = meta_.signatures.find(options_.signature);
    if (it == meta_.signatures.end()) {
      std::string known;
      for (const auto& [name, sig] : meta_.signatures)
        if (name != "__saved_model_init_op") known += (known.empty() ? "'" : ", '") + name + "'";
      throw Error(JB_ERROR_MODEL_LOAD, "SavedModel '" + path_ + "' has no signature '" + options_.signature +
                                             "'; its signatures are " + (known.empty() ? "none" : known) +
                                             " (choose one with config={'signature': NAME})");
    }
    const SignatureDef& sig = it->second;
    if (sig.outputs.empty())
      throw Error(JB_ERROR_MODEL_LOAD, "SavedModel '" + path_ + "': signature '" + options_.signature +
                                             "' has no outputs");
    // Inputs in the order the model's function takes them; where it has none, by key, and a caller
    // must name them (the Python Session refuses a sequence then, reading custom.input_order).
    const InputOrder order = input_order(meta_, sig);
    for (size_t i : order.order) inputs_.push_back(resolve(sig.inputs[i], "input"));
    for (const auto& s : sig.outputs) outputs_.push_back(resolve(s, "output"));
    add_metadata("custom.input_order", order.unordered.empty() ? "positional" : "names only");
    if (!order.unordered.empty())
      add_metadata("custom.input_order_note", "signature '" + options_.signature + "' gives its inputs no order: " +
                                                  order.unordered);
    add_metadata("producer_name", "tensorflow");
    add_metadata("description", "TensorFlow SavedModel");
    add_metadata("custom.signature", options_.signature);
    add_metadata("custom.method_name", sig.method_name);
    add_metadata("custom.tensorflow_version", tf.TF_Version());
    add_metadata("custom.tensorflow_library", tensorflow().path);
    add_metadata("custom.saved_by_tensorflow", meta_.tensorflow_version);
    for (const auto& i : inputs_) add_metadata("custom.tensor." + i.sig.key, i.sig.tensor_name);
    for (const auto& o : outputs_) add_metadata("custom.tensor." + o.sig.key, o.sig.tensor_name);
  }

  // The graph operation behind a signature tensor ("op:index").
  Info resolve(const SignatureTensor& s, const char* role) {
    Info info;
    info.sig = s;
    info.dtype = to_jb_dtype(s.tf_dtype);
    info.type = type_name(s.tf_dtype);
    const size_t colon = s.tensor_name.rfind(':');
    const std::string op = s.tensor_name.substr(0, colon);
    info.port.index = colon == std::string::npos ? 0 : std::atoi(s.tensor_name.c_str() + colon + 1);
    info.port.oper = tf.TF_GraphOperationByName(graph_, op.c_str());
    if (info.port.oper == nullptr || info.port.index >= tf.TF_OperationNumOutputs(info.port.oper))
      throw Error(JB_ERROR_MODEL_LOAD, "SavedModel '" + path_ + "': " + role + " '" + s.key + "' names tensor '" +
                                             s.tensor_name + "', which is not in the graph");
    return info;
  }


  [[noreturn]] void refuse_unaligned(const jb_tensor_view& v, const Info& info, size_t alignment) const {
    const auto address = reinterpret_cast<uintptr_t>(v.data);
    throw Error(JB_ERROR_INPUT,
                "input '" + info.sig.key + "': expected data " + std::to_string(alignment) + "-byte aligned, got " +
                    address_string(v.data) + ", " + std::to_string(address % alignment) + " bytes past a " +
                    std::to_string(alignment) + "-byte boundary; TensorFlow reads only aligned inputs in place and "
                    "this session copies none (config copy_unaligned=0): allocate it with "
                    "juno_bridge.empty(shape, dtype) (or any " + std::to_string(alignment) + "-byte aligned buffer), "
                    "or let the session stage it in aligned memory of its own (copy_unaligned=1, the default)");
  }

  void warn_staged(const jb_tensor_view* in, size_t alignment) const {
    for (size_t i = 0; i < inputs_.size(); ++i) {
      const auto address = reinterpret_cast<uintptr_t>(in[i].data);
      if (plugin::nbytes(in[i]) == 0 || address % alignment == 0) continue;
      plugin::log(JB_LOG_WARNING, "tensorflow",
                  "SavedModel '" + path_ + "', input '" + inputs_[i].sig.key + "': data at " +
                      address_string(in[i].data) + " are " + std::to_string(address % alignment) + " bytes past a " +
                      std::to_string(alignment) + "-byte boundary, which TensorFlow does not read in place: this "
                      "session copies unaligned inputs into aligned memory of its own (said once per session; "
                      "SessionStats.inputs_staged counts them). Allocate inputs with juno_bridge.empty(shape, dtype) "
                      "to have them read in place, or refuse the copy with config copy_unaligned=0");
      return;
    }
  }

  // A TF_Tensor over the caller's memory when it is aligned, else over its copy at `room` (the run's
  // staging memory, advanced past it).
  TensorPtr wrap_input(const jb_tensor_view& v, const Info& info, size_t alignment, char*& room,
                       uint64_t& wrapped) const {
    const size_t len = plugin::nbytes(v);
    const auto tf_dtype = static_cast<TF_DataType>(info.sig.tf_dtype);
    TF_Tensor* t = nullptr;
    if (len == 0) {
      t = tf.TF_AllocateTensor(tf_dtype, v.shape, v.rank, 0);
    } else if (reinterpret_cast<uintptr_t>(v.data) % alignment == 0) {
      t = tf.TF_NewTensor(tf_dtype, v.shape, v.rank, v.data, len, &never_free, nullptr);
      if (t && tf.TF_TensorData(t) == v.data) ++wrapped;
    } else {
      std::memcpy(room, v.data, len);
      t = tf.TF_NewTensor(tf_dtype, v.shape, v.rank, room, len, &never_free, nullptr);
      room += (len + alignment - 1) / alignment * alignment;
    }
    if (t == nullptr)
      throw Error(JB_ERROR_RUNTIME, "input '" + info.sig.key + "': TensorFlow could not make a tensor of shape " +
                                          shape_string(v.shape, v.rank));
    return TensorPtr(t, tf.TF_DeleteTensor);
  }

  // `inputs`: the run's input tensors, to tell an output that is one of them (TensorFlow passes an
  // input through as itself): over the caller's memory, or over the session's staging memory.
  void deliver(TensorPtr result, const Info& info, const std::vector<TF_Tensor*>& inputs, jb_tensor_view& out,
               jb_plugin_owned& owned) const {
    const int32_t dtype = to_jb_dtype(tf.TF_TensorType(result.get()));
    if (dtype == JB_DTYPE_UNDEFINED)
      throw Error(JB_ERROR_UNSUPPORTED, "output '" + info.sig.key + "' is " + type_name(tf.TF_TensorType(result.get())) +
                                              ", which juno-bridge cannot pass");
    const int rank = tf.TF_NumDims(result.get());
    if (rank > JB_MAX_RANK)
      throw Error(JB_ERROR_UNSUPPORTED, "output '" + info.sig.key + "' has rank " + std::to_string(rank));
    int64_t shape[JB_MAX_RANK];
    for (int d = 0; d < rank; ++d) shape[d] = tf.TF_Dim(result.get(), d);
    const size_t bytes = tf.TF_TensorByteSize(result.get());
    if (out.data != nullptr) {
      if (out.dtype != dtype)
        throw Error(JB_ERROR_INPUT_TYPE, "output '" + info.sig.key + "': the model produced " + info.type +
                                               ", the buffer's dtype code is " + std::to_string(out.dtype));
      if (out.rank != rank || !std::equal(shape, shape + rank, out.shape))
        throw Error(JB_ERROR_INPUT, "output '" + info.sig.key + "': expected shape " + shape_string(shape, rank) +
                                          ", got " + shape_string(out.shape, out.rank));
      if (bytes) std::memcpy(out.data, tf.TF_TensorData(result.get()), bytes);
      return;
    }
    // An output that is an input passed through would hand the caller's own memory (or the session's
    // staging memory, which the next run overwrites) back as "owned".
    const char* p = static_cast<const char*>(tf.TF_TensorData(result.get()));
    for (TF_Tensor* input : inputs) {
      const char* a = static_cast<const char*>(tf.TF_TensorData(input));
      const size_t n = tf.TF_TensorByteSize(input);
      if (bytes && n && p < a + n && a < p + bytes) {
        TF_Tensor* copy = tf.TF_AllocateTensor(tf.TF_TensorType(result.get()), shape, rank, bytes);
        std::memcpy(tf.TF_TensorData(copy), p, bytes);
        result.reset(copy);
        break;
      }
    }
    static char empty_output;  // a zero-element output needs no memory, only a non-NULL address
    out.data = bytes ? tf.TF_TensorData(result.get()) : &empty_output;
    out.dtype = dtype;
    out.rank = rank;
    std::copy(shape, shape + rank, out.shape);
    owned.holder = result.release();
    owned.release = [](void* h) { tf.TF_DeleteTensor(static_cast<TF_Tensor*>(h)); };
  }

  void release() {
    if (session_) {
      auto status = new_status();
      tf.TF_CloseSession(session_, status.get());
      tf.TF_DeleteSession(session_, status.get());
      session_ = nullptr;
    }
    if (graph_) tf.TF_DeleteGraph(graph_);
    graph_ = nullptr;
  }

  std::string path_;
  Options options_;
  TF_Graph* graph_ = nullptr;
  TF_Session* session_ = nullptr;
  MetaGraphInfo meta_;
  StagingPool staging_;
  std::atomic<bool> warned_unaligned_{false};  // the staging warning is said once per session
};

constexpr const char* kOptions[] = {"intra_op_threads", "inter_op_threads", "signature", "tags", "copy_unaligned",
                                     "tensorflow", nullptr};
const jb_plugin_api kApi = plugin::Table<Model>::api("tf", kOptions);

}  // namespace
}  // namespace jb::tf_plugin

extern "C" JB_PLUGIN_EXPORT const jb_plugin_api* jb_plugin_init(const jb_plugin_host* host) {
  if (!jb::plugin::start(host)) return nullptr;
  return &jb::tf_plugin::kApi;  // TensorFlow is bound when the first model opens: its options may name one
}
