// Session: backend choice, and the checks every backend shares, done before any backend sees a tensor.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string_view>
#include <thread>

#include "backend.hpp"
#include "juno_bridge/backends.hpp"
#include "platform.hpp"
#include "plugin_loader.hpp"

namespace jb {

namespace {

// Digits only: strtol would take " 2", "+2" and "2 " as well, and a typo should not pass as a number.
int parse_int(const std::string& key, const std::string& value) {
  const bool digits = !value.empty() && value.size() <= 7 &&
                      value.find_first_not_of("0123456789") == std::string::npos;
  const long v = digits ? std::strtol(value.c_str(), nullptr, 10) : -1;
  if (v < 0 || v > 1 << 20)
    throw Error(ErrorCode::InvalidArgument, "option '" + key + "' needs a non-negative integer; got '" + value + "'");
  return static_cast<int>(v);
}

bool parse_flag(const std::string& key, const std::string& value) {
  if (value != "0" && value != "1")
    throw Error(ErrorCode::InvalidArgument, "option '" + key + "' is 0 or 1; got '" + value + "'");
  return value == "1";
}

// "cuda,cpu" -> {"cuda", "cpu"}: at least one name, none empty, none twice.
std::vector<std::string> parse_providers(const std::string& value) {
  std::vector<std::string> names;
  for (size_t start = 0; start < value.size();) {
    const size_t comma = std::min(value.find(',', start), value.size());
    const std::string item = value.substr(start, comma - start);
    start = comma + 1;
    if (item.empty())
      throw Error(ErrorCode::InvalidArgument, "option 'providers': an empty name in '" + value + "'");
    if (std::find(names.begin(), names.end(), item) != names.end())
      throw Error(ErrorCode::InvalidArgument, "option 'providers': '" + item + "' named twice in '" + value + "'");
    names.push_back(item);
  }
  if (names.empty() || value.back() == ',')
    throw Error(ErrorCode::InvalidArgument, "option 'providers' needs one or more names (e.g. 'cuda,cpu'); got '" +
                                                value + "'");
  return names;
}

std::string known_names(const std::vector<TensorInfo>& infos) {
  std::string s;
  for (const auto& i : infos) s += (s.empty() ? "'" : ", '") + i.name + "'";
  return s.empty() ? "none" : s;
}

}  // namespace

const char* const kSessionOptionNames[] = {"backend",  "intra_op_threads", "inter_op_threads", "optimization",
                                           "providers", "onnxruntime",     "log_level",        "execution_mode",
                                           "global_thread_pool", "require_providers", "shared", "async_runs",
                                           "bfloat16_as_uint16"};

void SessionOptions::set(const std::string& key, const std::string& value) {
  if (key.rfind(kConfigPrefix, 0) == 0) {
    if (key.size() == kConfigPrefix.size())
      throw Error(ErrorCode::InvalidArgument, "option '" + key + "' names no entry: config.<key>");
    config[key.substr(kConfigPrefix.size())] = value;
  } else if (key == "backend") backend = value;
  else if (key == "intra_op_threads") intra_op_threads = parse_int(key, value);
  else if (key == "inter_op_threads") inter_op_threads = parse_int(key, value);
  else if (key == "optimization") optimization = value;
  else if (key == "onnxruntime") onnxruntime = value;
  else if (key == "log_level") log_level = value;
  else if (key == "execution_mode") execution_mode = value;
  else if (key == "global_thread_pool") global_thread_pool = parse_flag(key, value);
  else if (key == "require_providers") require_providers = parse_flag(key, value);
  else if (key == "shared") shared = parse_flag(key, value);
  else if (key == "bfloat16_as_uint16") bfloat16_as_uint16 = parse_flag(key, value);
  else if (key == "async_runs") {
    if (value != "auto" && value != "native" && value != "pool")
      throw Error(ErrorCode::InvalidArgument, "option 'async_runs' must be auto, native or pool, got '" + value + "'");
    async_runs = value;
  }
  else if (key == "providers") providers = parse_providers(value);
  else if (key.empty()) {
    throw Error(ErrorCode::InvalidArgument, "option key must not be empty");
  } else {
    config[key] = value;  // a backend-specific entry; the backend that opens the model checks its name
  }
}

std::string session_option_names() {
  std::string names;
  for (const char* n : kSessionOptionNames) names += (names.empty() ? "" : ", ") + std::string(n);
  return names;
}

void reject_option(const std::string& key, const std::string& backend, const std::string& own) {
  throw Error(ErrorCode::InvalidArgument, "unknown option '" + key + "' for the " + backend + " backend; the options are " +
                                              session_option_names() + ", and the " + backend + " backend's own: " + own);
}

// The model name "default": the project's default model (vertex and energy), shipped in the Python package
// beside this library (juno_bridge/lib/../demo/models/default.onnx). Any other name is itself.
static std::string resolve_model_name(const std::string& model) {
  if (model != "default") return model;
  const std::string path = this_library_dir() + "/../demo/models/default.onnx";
  if (!file_exists(path))
    throw Error(ErrorCode::ModelLoad, "the model name 'default' is the juno_bridge package's default model, " + path +
                                          ", which this installation lacks (a CMake install of the C++ library alone "
                                          "has no models: pass the model's path)");
  return path;
}

std::unique_ptr<Backend> open_backend(const std::string& model, const void* bytes, size_t size,
                                      const SessionOptions& options) {
  const BackendInfo* backend =
      options.backend.empty() ? &backend_for_model(model, bytes != nullptr) : find_backend(options.backend);
  // A name outside the registry may still be a plugin of a site's own (libjuno_bridge_<name>.so).
  if (backend == nullptr) return open_plugin(options.backend, model, bytes, size, options);
  // Said before the runtime is asked: its own message names the file twice, in two sentences.
  if (backend->plugin.empty() && bytes == nullptr && !file_exists(model))
    throw Error(ErrorCode::ModelLoad, "model file '" + model + "' does not exist (ONNX Runtime: NO_SUCHFILE)",
                3 /* ORT_NO_SUCHFILE, kept as the runtime's code */);
  if (backend->plugin.empty()) return open_onnxruntime(model, bytes, size, options);
  return open_plugin(backend->plugin, model, bytes, size, options);
}

namespace {

std::atomic<int64_t> backends_open{0};
std::atomic<uint64_t> next_backend_id{1};

// What makes two opens the same backend session: the model (a file by its resolved path, size and
// modification time, so a rewritten file is a new model; bytes by size and hash; any other name, such
// as python:module:f, as written) and every option but `shared` and `bfloat16_as_uint16` (the Session's
// own). Built by concatenation, never through iostreams: a stream formats through the global locale,
// whose facets a library linked to another libstdc++ (a static one, under -static-libstdc++) must not touch.
std::string share_key(const std::string& model, const void* bytes, size_t size, const SessionOptions& o) {
  using std::to_string;
  std::string key;
  if (bytes != nullptr) {
    key = "bytes:" + to_string(size) + ':' +
          to_string(std::hash<std::string_view>{}({static_cast<const char*>(bytes), size}));
  } else {
    std::error_code ec;
    const auto canonical = std::filesystem::canonical(model, ec);
    const auto status = std::filesystem::status(canonical, ec);
    if (!ec && std::filesystem::exists(status)) {
      const auto mtime = std::filesystem::last_write_time(canonical, ec).time_since_epoch().count();
      const auto bytes_on_disk = std::filesystem::is_regular_file(status) ? std::filesystem::file_size(canonical, ec) : 0;
      key = "file:" + canonical.string() + ':' + to_string(bytes_on_disk) + ':' + to_string(mtime);
    } else {
      key = "name:" + model;
    }
  }
  // The default ONNX Runtime may come from the environment: part of the key too.
  const char* env_ort = o.onnxruntime.empty() ? std::getenv("JUNO_BRIDGE_ONNXRUNTIME") : nullptr;
  key += '\n' + o.backend + '\n' + to_string(o.intra_op_threads) + ',' + to_string(o.inter_op_threads) + ',' +
         o.optimization + ',' + o.onnxruntime + ',' + (env_ort ? env_ort : "") + ',' + o.log_level + ',' +
         o.execution_mode + ',' + to_string(o.global_thread_pool) + ',' + to_string(o.require_providers) + ',' +
         o.async_runs;
  for (const auto& p : o.providers) key += "\np:" + p;
  for (const auto& [k, v] : o.config) key += "\nc:" + k + '=' + v;
  return key;
}

// The process's shared backend sessions. Each key has its own entry and lock, so opening one model
// does not wait for another model's load, while two opens of the same model load it once.
struct ShareEntry {
  std::mutex mutex;
  std::weak_ptr<Backend> backend;
};

std::shared_ptr<ShareEntry> share_entry(const std::string& key) {
  static std::mutex mutex;
  static auto* entries = new std::map<std::string, std::shared_ptr<ShareEntry>>;  // lives for the process
  std::lock_guard<std::mutex> lock(mutex);
  // Forget the models no Session uses any more. An entry only this map holds (copies are made under this
  // lock) is one no thread is opening: only then is its weak_ptr read, under the entry's own lock, which
  // orders the read after the last open's write (TSan: use_count() alone is a relaxed load).
  for (auto it = entries->begin(); it != entries->end();) {
    bool unused = false;
    if (it->second.use_count() == 1) {
      std::lock_guard<std::mutex> entry_lock(it->second->mutex);  // free: no other thread holds the entry
      unused = it->second->backend.expired();
    }
    it = unused ? entries->erase(it) : std::next(it);
  }
  auto& entry = (*entries)[key];
  if (!entry) entry = std::make_shared<ShareEntry>();
  return entry;
}

std::shared_ptr<Backend> open_shared(const std::string& model, const void* bytes, size_t size,
                                     const SessionOptions& options) {
  if (!options.shared) return open_backend(model, bytes, size, options);
  const std::shared_ptr<ShareEntry> entry = share_entry(share_key(model, bytes, size, options));
  std::lock_guard<std::mutex> lock(entry->mutex);
  if (std::shared_ptr<Backend> existing = entry->backend.lock()) return existing;
  std::shared_ptr<Backend> backend = open_backend(model, bytes, size, options);
  entry->backend = backend;
  return backend;
}

}  // namespace

Backend::Backend() : id_(next_backend_id.fetch_add(1)) { backends_open.fetch_add(1); }
Backend::~Backend() { backends_open.fetch_sub(1); }
int64_t open_backend_count() noexcept { return backends_open.load(); }

// close() may come from one thread while others run: it raises `closed`, then waits until no call is in
// flight before it frees the backend. A call counts itself in, then looks at `closed` (both seq_cst, so
// either the call sees the flag or close() sees the count), and counts itself out when it returns.
struct Session::Gate {
  std::atomic<bool> closed{false};
  std::atomic<int64_t> in_flight{0};
  std::mutex mutex;  // serialises close() and its wait
  std::condition_variable idle;
};

class Session::InFlight {
 public:
  // `keep_gate`: for a run whose completion may destroy the Session (run_async), the gate lives until
  // this call has left it.
  explicit InFlight(const Session& s, bool keep_gate = false)
      : gate_(s.gate_.get()), kept_(keep_gate ? s.gate_ : nullptr) {
    if (gate_ == nullptr) throw Error(ErrorCode::InvalidArgument, "the session is closed");
    gate_->in_flight.fetch_add(1);
    if (gate_->closed.load()) {
      leave();
      throw Error(ErrorCode::InvalidArgument, "the session is closed");
    }
  }
  ~InFlight() { leave(); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  void leave() noexcept {
    if (gate_->in_flight.fetch_sub(1) == 1 && gate_->closed.load()) {
      std::lock_guard<std::mutex> lock(gate_->mutex);  // close() waits under this mutex: no lost wake-up
      gate_->idle.notify_all();
    }
  }
  Gate* gate_;
  std::shared_ptr<Gate> kept_;
};

Session::Session(std::shared_ptr<Backend> backend, const SessionOptions& options)
    : gate_(std::make_shared<Gate>()), backend_(std::move(backend)), bfloat16_as_uint16_(options.bfloat16_as_uint16) {
  all_outputs_.resize(backend_->outputs().size());
  for (size_t i = 0; i < all_outputs_.size(); ++i) all_outputs_[i] = static_cast<int32_t>(i);
}

Session::Session(const std::string& model, const SessionOptions& options)
    : Session(open_shared(resolve_model_name(model), nullptr, 0, options), options) {}

Session Session::from_bytes(const void* data, size_t size, const SessionOptions& options) {
  if (data == nullptr) throw Error(ErrorCode::InvalidArgument, "model bytes are NULL");
  if (size == 0) throw Error(ErrorCode::ModelLoad, "model bytes are empty (0 bytes)");
  return Session(open_shared("", data, size, options), options);
}

Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    close();  // the session this one was: its runs in flight finish first
    gate_ = std::move(other.gate_);
    backend_ = std::move(other.backend_);
    all_outputs_ = std::move(other.all_outputs_);
    bfloat16_as_uint16_ = other.bfloat16_as_uint16_;
  }
  return *this;
}
Session::~Session() { close(); }

void Session::close() noexcept {
  if (!gate_) return;  // moved from
  std::unique_lock<std::mutex> lock(gate_->mutex);
  gate_->closed.store(true);
  gate_->idle.wait(lock, [this] { return gate_->in_flight.load() == 0; });
  backend_.reset();  // a shared backend session lives on while other Sessions use it
}

bool Session::is_open() const noexcept { return gate_ && !gate_->closed.load(); }

const std::vector<TensorInfo>& Session::inputs() const {
  InFlight call(*this);
  return backend_->inputs();
}
const std::vector<TensorInfo>& Session::outputs() const {
  InFlight call(*this);
  return backend_->outputs();
}
ModelMetadata Session::metadata() const {
  InFlight call(*this);
  return backend_->metadata();
}
const std::string& Session::backend_name() const {
  InFlight call(*this);
  return backend_->name();
}

std::vector<std::string> Session::providers() const {
  InFlight call(*this);
  return backend_->providers();
}

SessionStats Session::stats() const {
  InFlight call(*this);
  SessionStats s = backend_->stats();
  s.backend_id = backend_->id();
  s.backend_users = backend_.use_count();
  return s;
}

size_t Session::input_index(std::string_view name) const {
  InFlight call(*this);
  const auto& infos = backend_->inputs();
  for (size_t i = 0; i < infos.size(); ++i)
    if (infos[i].name == name) return i;
  throw Error(ErrorCode::Input, "unknown input '" + std::string(name) + "'; the model's inputs are " + known_names(infos));
}

size_t Session::output_index(std::string_view name) const {
  InFlight call(*this);
  const auto& infos = backend_->outputs();
  for (size_t i = 0; i < infos.size(); ++i)
    if (infos[i].name == name) return i;
  throw Error(ErrorCode::Input,
              "unknown output '" + std::string(name) + "'; the model's outputs are " + known_names(infos));
}

namespace {

// The model states nothing about this tensor (plugin.h): only the backend can check it.
bool declares_nothing(const TensorInfo& info) {
  return info.dtype == DType::Undefined && !info.rank_known && info.type_name == "unknown";
}

// An output of a type the bridge cannot pass, requested: what it is, and what the caller can run instead.
[[noreturn]] void refuse_output_type(const TensorInfo& info, const std::vector<TensorInfo>& infos) {
  std::string passable;
  for (const auto& i : infos)
    if (i.dtype != DType::Undefined || declares_nothing(i)) passable += (passable.empty() ? "'" : ", '") + i.name + "'";
  std::string why = "output '" + info.name + "' is of type " + info.type_name +
                    ", which juno-bridge does not pass (tensors of numeric and bool types only); " +
                    (passable.empty() ? "the model has no output it can pass"
                                      : "run only the outputs it can pass, by name: outputs=[" + passable + "] in Python");
  if (info.type_name.rfind("seq(map(", 0) == 0)
    why += "; a sequence of maps is a classifier's ZipMap: convert the model with zipmap=False (skl2onnx: "
           "options={id(model): {'zipmap': False}}) for a tensor of probabilities";
  throw Error(ErrorCode::Unsupported, why);
}

// The checks one tensor must pass against what the model declares; `role` is "input" or "output".
// `bits_as_bfloat16`: option bfloat16_as_uint16, a uint16 view passes for a bfloat16 tensor.
void check_view(const TensorView& v, const TensorInfo& info, const char* role, bool bits_as_bfloat16) {
  const bool unknown = declares_nothing(info);
  if (unknown) {
    if (dtype_size(v.dtype) == 0)
      throw Error(ErrorCode::InputType, std::string(role) + " '" + info.name + "': unknown dtype code " +
                                            std::to_string(static_cast<int>(v.dtype)));
  } else if (info.dtype == DType::Undefined)
    throw Error(ErrorCode::Unsupported, std::string(role) + " '" + info.name + "' is of type " + info.type_name +
                                            "; juno-bridge passes tensors of numeric and bool types only");
  else if (info.dtype == DType::BFloat16 && v.dtype == DType::UInt16 && !bits_as_bfloat16)
    throw Error(ErrorCode::InputType, std::string(role) + " '" + info.name +
                                          "': expected dtype bfloat16, got uint16; uint16 is taken as the bits of "
                                          "bfloat16 only with the option bfloat16_as_uint16=1 (Python: Session(..., "
                                          "bfloat16_as_uint16=True)), else pass bfloat16 (numpy: ml_dtypes.bfloat16)");
  else if (v.dtype != info.dtype && !(info.dtype == DType::BFloat16 && v.dtype == DType::UInt16))
    throw Error(ErrorCode::InputType, std::string(role) + " '" + info.name + "': expected dtype " +
                                          dtype_name(info.dtype) + ", got " + dtype_name(v.dtype));
  if (v.rank < 0 || v.rank > kMaxRank)
    throw Error(ErrorCode::Input, std::string(role) + " '" + info.name + "': invalid rank " + std::to_string(v.rank));
  if (info.rank_known) {
    if (static_cast<size_t>(v.rank) != info.shape.size())
      throw Error(ErrorCode::Input, std::string(role) + " '" + info.name + "': expected rank " +
                                        std::to_string(info.shape.size()) + " " + info.shape_string() + ", got rank " +
                                        std::to_string(v.rank) + " " + shape_string(v.shape, v.rank));
    for (int32_t d = 0; d < v.rank; ++d)
      if (info.shape[d] >= 0 && v.shape[d] != info.shape[d])
        throw Error(ErrorCode::Input, std::string(role) + " '" + info.name + "': expected shape " +
                                          info.shape_string() + ", got " + shape_string(v.shape, v.rank) +
                                          " (dim " + std::to_string(d) + ")");
  }
  int64_t elements = 1;
  for (int32_t d = 0; d < v.rank; ++d) {
    if (v.shape[d] < 0)
      throw Error(ErrorCode::Input, std::string(role) + " '" + info.name + "': negative dim in shape " +
                                        shape_string(v.shape, v.rank));
    if (v.shape[d] != 0 && elements > INT64_MAX / 16 / v.shape[d])
      throw Error(ErrorCode::Input, std::string(role) + " '" + info.name + "': shape " +
                                        shape_string(v.shape, v.rank) + " is too large");
    elements *= v.shape[d];
  }
  if (v.data == nullptr && elements > 0)
    throw Error(ErrorCode::InvalidArgument, std::string(role) + " '" + info.name + "': data pointer is NULL");
  if (reinterpret_cast<uintptr_t>(v.data) % dtype_size(v.dtype) != 0)
    throw Error(ErrorCode::Input, std::string(role) + " '" + info.name + "': data at " +
                                      std::to_string(reinterpret_cast<uintptr_t>(v.data)) + " is not aligned to its " +
                                      std::to_string(dtype_size(v.dtype)) + "-byte elements");
}

}  // namespace

void Session::check_inputs(const TensorView* inputs, size_t num_inputs) const {
  const auto& infos = backend_->inputs();
  if (num_inputs != infos.size())
    throw Error(ErrorCode::Input, "the model takes " + std::to_string(infos.size()) + " input(s) (" +
                                      known_names(infos) + "), got " + std::to_string(num_inputs));
  if (num_inputs && inputs == nullptr) throw Error(ErrorCode::InvalidArgument, "inputs array is NULL");
  for (size_t i = 0; i < num_inputs; ++i) check_view(inputs[i], infos[i], "input", bfloat16_as_uint16_);
}

void Session::check_outputs(const TensorView* inputs, size_t num_inputs, const int32_t* output_index,
                            const TensorView* outputs, size_t num_outputs) const {
  const auto& infos = backend_->outputs();
  // A run that asks for nothing is a caller's mistake, not a failure of the backend (ONNX Runtime refuses it).
  if (num_outputs == 0)
    throw Error(ErrorCode::InvalidArgument, "no output requested; the model's outputs are " + known_names(infos));
  if (outputs == nullptr || output_index == nullptr)
    throw Error(ErrorCode::InvalidArgument, "outputs or output_index array is NULL");
  for (size_t i = 0; i < num_outputs; ++i) {
    const int32_t k = output_index[i];
    if (k < 0 || static_cast<size_t>(k) >= infos.size())
      throw Error(ErrorCode::InvalidArgument, "output index " + std::to_string(k) + " out of range; the model has " +
                                                  std::to_string(infos.size()) + " output(s)");
    for (size_t j = 0; j < i; ++j)
      if (output_index[j] == k) throw Error(ErrorCode::Input, "output '" + infos[k].name + "' requested twice");
    if (infos[k].dtype == DType::Undefined && !declares_nothing(infos[k])) refuse_output_type(infos[k], infos);
    if (outputs[i].data == nullptr) continue;  // the backend allocates it
    check_view(outputs[i], infos[k], "output", bfloat16_as_uint16_);
    for (size_t j = 0; j < num_inputs; ++j)
      if (views_overlap(outputs[i], inputs[j]))
        throw Error(ErrorCode::Input, "output '" + infos[k].name + "' buffer overlaps input '" +
                                          backend_->inputs()[j].name + "'");
    for (size_t j = 0; j < i; ++j)
      if (outputs[j].data && views_overlap(outputs[i], outputs[j]))
        throw Error(ErrorCode::Input, "output '" + infos[k].name + "' buffer overlaps output '" +
                                          infos[output_index[j]].name + "'");
  }
}

void Session::run(const TensorView* inputs, size_t num_inputs, const int32_t* output_index, TensorView* outputs,
                  Tensor* owned, size_t num_outputs) {
  InFlight call(*this);
  run_open(inputs, num_inputs, output_index, outputs, owned, num_outputs);
}

void Session::check_call(const TensorView* inputs, size_t num_inputs, const int32_t* output_index,
                         const TensorView* outputs, const Tensor* owned, size_t num_outputs) const {
  check_inputs(inputs, num_inputs);
  check_outputs(inputs, num_inputs, output_index, outputs, num_outputs);
  if (owned == nullptr)
    for (size_t i = 0; i < num_outputs; ++i)
      if (outputs[i].data == nullptr)
        throw Error(ErrorCode::InvalidArgument, "output '" + backend_->outputs()[output_index[i]].name +
                                                    "' has no buffer and no Tensor to receive one");
}

namespace {

// Option bfloat16_as_uint16: the backend sees bfloat16 where the caller's uint16 views hold its bits (the
// same memory, relabelled in a copy of the view array), and the caller sees uint16 where the backend made
// a bfloat16 output.
std::vector<TensorView> bits_as_bfloat16(const TensorView* views, size_t n, const std::vector<TensorInfo>& infos,
                                         const int32_t* index) {
  std::vector<TensorView> relabelled(views, views + n);
  for (size_t i = 0; i < n; ++i)
    if (relabelled[i].dtype == DType::UInt16 && infos[index ? index[i] : i].dtype == DType::BFloat16)
      relabelled[i].dtype = DType::BFloat16;
  return relabelled;
}

void bfloat16_as_bits(TensorView& view) {
  if (view.dtype == DType::BFloat16) view.dtype = DType::UInt16;
}

}  // namespace

void Session::run_open(const TensorView* inputs, size_t num_inputs, const int32_t* output_index,
                       TensorView* outputs, Tensor* owned, size_t num_outputs) {
  check_call(inputs, num_inputs, output_index, outputs, owned, num_outputs);
  if (!bfloat16_as_uint16_) return backend_->run(inputs, num_inputs, output_index, outputs, owned, num_outputs);
  const auto in = bits_as_bfloat16(inputs, num_inputs, backend_->inputs(), nullptr);
  auto out = bits_as_bfloat16(outputs, num_outputs, backend_->outputs(), output_index);
  backend_->run(in.data(), num_inputs, output_index, out.data(), owned, num_outputs);
  for (size_t i = 0; i < num_outputs; ++i) {
    if (outputs[i].data == nullptr) outputs[i] = out[i];  // allocated by the backend
    bfloat16_as_bits(outputs[i]);
    if (owned != nullptr) bfloat16_as_bits(owned[i].view);
  }
}

namespace {

// The core's worker pool for run_async: a fixed set of threads, started on first use, serving one queue.
// Never destroyed (a run may still finish during process exit); a forked child starts a pool of its own.
class WorkerPool {
 public:
  static WorkerPool& get() {
    static std::mutex mutex;
    static WorkerPool* pool = nullptr;
    std::lock_guard<std::mutex> lock(mutex);
    if (pool == nullptr || pool->pid_ != getpid()) pool = new WorkerPool(threads_wanted());
    return *pool;
  }

  void submit(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(task));
    }
    ready_.notify_one();
  }

 private:
  explicit WorkerPool(unsigned n) : pid_(getpid()) {
    for (unsigned i = 0; i < n; ++i) std::thread([this] { serve(); }).detach();
  }

  static unsigned threads_wanted() {
    if (const char* env = std::getenv("JUNO_BRIDGE_ASYNC_THREADS"); env && std::atoi(env) > 0)
      return static_cast<unsigned>(std::atoi(env));
    return std::max(2u, std::thread::hardware_concurrency());
  }

  void serve() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return !queue_.empty(); });
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();  // never throws: run_async's task catches everything
    }
  }

  const pid_t pid_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;
};

}  // namespace

void submit_to_worker_pool(std::function<void()> task) { WorkerPool::get().submit(std::move(task)); }

void Backend::run_async(const TensorView*, size_t, const int32_t*, const TensorView*, Tensor*, size_t, Done) {
  throw Error(ErrorCode::Unsupported, "backend '" + name() + "' has no asynchronous call of its own");
}

const char* Session::async_mode() const {
  InFlight call(*this);
  return backend_->async_native() ? "native" : "pool";
}

namespace {

// The end of one run_async: out of flight first (`done` may close or destroy the Session), then `done`,
// whose exceptions have nowhere to go. The in-flight mark lives only here, so the caller of run_async
// holds none of it once the backend has the run.
template <class InFlight>
struct Completion {
  std::unique_ptr<InFlight> call;
  Session::RunCallback done;

  void operator()(std::exception_ptr error) {
    call.reset();
    try {
      done(error);
    } catch (...) {
    }
  }
};

}  // namespace

void Session::run_async(const TensorView* inputs, size_t num_inputs, const int32_t* output_index,
                        const TensorView* outputs, Tensor* owned, size_t num_outputs, RunCallback done) {
  if (!done) throw Error(ErrorCode::InvalidArgument, "run_async needs a completion callback");
  std::vector<TensorView> in, out;  // option bfloat16_as_uint16: the relabelled views (the backend copies them)
  if (bfloat16_as_uint16_) {
    done = [done = std::move(done), owned, num_outputs](std::exception_ptr error) {
      for (size_t i = 0; owned != nullptr && i < num_outputs; ++i) bfloat16_as_bits(owned[i].view);
      done(error);
    };
  }
  auto completion = std::make_shared<Completion<InFlight>>(
      Completion<InFlight>{std::make_unique<InFlight>(*this, true), std::move(done)});  // in flight until done
  check_call(inputs, num_inputs, output_index, outputs, owned, num_outputs);
  if (bfloat16_as_uint16_) {
    in = bits_as_bfloat16(inputs, num_inputs, backend_->inputs(), nullptr);
    out = bits_as_bfloat16(outputs, num_outputs, backend_->outputs(), output_index);
    inputs = in.data();
    outputs = out.data();
  }
  if (backend_->async_native()) {
    try {
      backend_->run_async(inputs, num_inputs, output_index, outputs, owned, num_outputs,
                          [completion](std::exception_ptr error) { (*completion)(error); });
    } catch (...) {
      // Not started: that is the run's error, reported as any other, from a pool thread (never from
      // inside run_async, where the caller may hold what `done` takes).
      WorkerPool::get().submit([completion, error = std::current_exception()] { (*completion)(error); });
    }
    return;
  }
  struct Job {
    std::vector<TensorView> inputs, outputs;
    std::vector<int32_t> index;
  };
  auto job = std::make_shared<Job>(Job{{inputs, inputs + num_inputs}, {outputs, outputs + num_outputs},
                                       {output_index, output_index + num_outputs}});
  Backend* backend = backend_.get();  // alive while the call is in flight
  WorkerPool::get().submit([completion, job, backend, owned] {
    std::exception_ptr error;
    try {
      backend->run(job->inputs.data(), job->inputs.size(), job->index.data(), job->outputs.data(), owned,
                   job->outputs.size());
    } catch (...) {
      error = std::current_exception();
    }
    (*completion)(error);
  });
}

void Session::run(const TensorView* inputs, size_t num_inputs, TensorView* outputs, size_t num_outputs) {
  InFlight call(*this);
  if (num_outputs != all_outputs_.size())
    throw Error(ErrorCode::Input, "the model has " + std::to_string(all_outputs_.size()) + " output(s) (" +
                                      known_names(backend_->outputs()) + "), got " + std::to_string(num_outputs) +
                                      " output buffer(s)");
  // A zero-element output needs no memory, only a non-NULL address. The caller's views are never
  // written: such outputs run from a copy of the views (rare, so the fast path stays allocation-free).
  bool needs_address = false;
  for (size_t i = 0; i < num_outputs; ++i)
    if (outputs != nullptr && outputs[i].data == nullptr) {
      if (outputs[i].num_elements() != 0)
        throw Error(ErrorCode::InvalidArgument, "output '" + backend_->outputs()[i].name + "': data pointer is NULL");
      needs_address = true;
    }
  if (!needs_address) return run_open(inputs, num_inputs, all_outputs_.data(), outputs, nullptr, num_outputs);
  static char empty_output;
  std::vector<TensorView> views(outputs, outputs + num_outputs);
  for (auto& v : views)
    if (v.data == nullptr) v.data = &empty_output;
  run_open(inputs, num_inputs, all_outputs_.data(), views.data(), nullptr, num_outputs);
}

std::vector<Tensor> Session::run(const std::vector<TensorView>& inputs) {
  InFlight call(*this);
  std::vector<TensorView> views(all_outputs_.size());
  std::vector<Tensor> owned(all_outputs_.size());
  run_open(inputs.data(), inputs.size(), all_outputs_.data(), views.data(), owned.data(), views.size());
  return owned;
}

}  // namespace jb
