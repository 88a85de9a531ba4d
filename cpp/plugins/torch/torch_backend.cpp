// The libtorch backend plugin (libjuno_bridge_torch.so): AOTInductor packages (.pt2) and TorchScript
// modules (.pt) through the plugin table of plugin.h. The only translation unit that includes torch.
//
// Zero-copy: each input reaches torch as at::from_blob over the caller's memory (the stats hook
// reports the address torch read). Torch runs a whole model into memory it allocates itself, so an
// output is either handed over as that torch tensor (no copy, the tensor is the holder) or, when the
// caller gives a buffer, written into it once.
// Threads: intra_op_threads calls at::set_num_threads, which sets torch's one process-wide pool: the
// last session opened with a non-zero value decides for every torch session in the process (and for
// Python torch in the same process). inter_op_threads is not used (these models fork no work).
// Every run is in c10::InferenceMode (no autograd bookkeeping).
#include <ATen/Parallel.h>
#include <caffe2/serialize/in_memory_adapter.h>
#include <caffe2/serialize/inline_container.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>

#include "juno_bridge/plugin_sdk.hpp"
#include "torch_cpu_check.hpp"
#include "torch_package_checks.hpp"
#include "torch_signature.hpp"

namespace jb::torch_plugin {
namespace {

// c10::Error's what() carries a C++ backtrace; the bridge's messages carry the error alone.
template <class F>
auto without_backtrace(jb_status status, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const c10::Error& e) {
    throw Error(status, e.what_without_backtrace());
  }
}

std::optional<at::ScalarType> to_scalar_type(int32_t dtype) {
  switch (dtype) {
    case JB_DTYPE_FLOAT32: return at::kFloat;
    case JB_DTYPE_UINT8: return at::kByte;
    case JB_DTYPE_INT8: return at::kChar;
    case JB_DTYPE_UINT16: return at::kUInt16;
    case JB_DTYPE_INT16: return at::kShort;
    case JB_DTYPE_INT32: return at::kInt;
    case JB_DTYPE_INT64: return at::kLong;
    case JB_DTYPE_BOOL: return at::kBool;
    case JB_DTYPE_FLOAT16: return at::kHalf;
    case JB_DTYPE_FLOAT64: return at::kDouble;
    case JB_DTYPE_UINT32: return at::kUInt32;
    case JB_DTYPE_UINT64: return at::kUInt64;
    case JB_DTYPE_BFLOAT16: return at::kBFloat16;
    default: return std::nullopt;
  }
}

int32_t to_jb_dtype(at::ScalarType t) {
  for (int32_t d : {JB_DTYPE_FLOAT32, JB_DTYPE_UINT8, JB_DTYPE_INT8, JB_DTYPE_UINT16, JB_DTYPE_INT16, JB_DTYPE_INT32,
                    JB_DTYPE_INT64, JB_DTYPE_BOOL, JB_DTYPE_FLOAT16, JB_DTYPE_FLOAT64, JB_DTYPE_UINT32, JB_DTYPE_UINT64,
                    JB_DTYPE_BFLOAT16})
    if (to_scalar_type(d) == t) return d;
  return JB_DTYPE_UNDEFINED;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The number of leaves of a serialized pytree spec (torch.utils._pytree JSON): each leaf is a node
// whose "type" is null. Used only for packages without our signature.
size_t pytree_leaves(const std::string& spec) {
  size_t n = 0;
  for (size_t at = spec.find("\"type\": null"); at != std::string::npos; at = spec.find("\"type\": null", at + 1)) ++n;
  return n;
}

// A tensor's description as the plugin table hands it out; the pointers live as long as the model.
struct Info {
  TensorSignature sig;
  bool known = false;  // false: the model states nothing about this tensor
  std::vector<const char*> dim_name_ptrs;
  std::string type_name;

  void finish() {
    for (const auto& n : sig.dim_names) dim_name_ptrs.push_back(n.empty() ? nullptr : n.c_str());
    // ONNX's spelling, as the onnxruntime backend reports it, so both backends describe alike.
    type_name = known ? plugin::onnx_type_name(sig.dtype) : "unknown";
  }
  jb_tensor_info c_info() const {
    jb_tensor_info i{};
    i.name = sig.name.c_str();
    i.dtype = known ? sig.dtype : JB_DTYPE_UNDEFINED;
    i.rank = known ? static_cast<int32_t>(sig.shape.size()) : -1;
    i.shape = sig.shape.data();
    i.dim_names = dim_name_ptrs.data();
    i.type_name = type_name.c_str();
    return i;
  }
};

class Model : public plugin::ModelBase<Info> {
 public:
  // `device`: where a TorchScript module runs (option device; "" the CPU); a package runs where it was
  // compiled for, and may only be asked for that.
  // `outputs_on_device`: option output_device=cuda, the outputs it allocates stay on the model's GPU.
  Model(const std::string& path, const void* bytes, size_t size, int num_runners, const std::string& device,
        bool outputs_on_device)
      : path_(path), outputs_on_device_(outputs_on_device) {
    if (bytes == nullptr && !std::ifstream(path).good())
      throw Error(JB_ERROR_MODEL_LOAD, "cannot open model '" + path + "': no such file or not readable");
    std::string signature_text;
    if (bytes == nullptr && ends_with(path, ".pt2")) {
      signature_text = open_package(num_runners);
      if (!device.empty() && at::Device(device) != device_)
        throw Error(JB_ERROR_INVALID_ARGUMENT, "option device='" + device + "': '" + path_ + "' was compiled for " +
                                                   device_.str() +
                                                   ", and a compiled package runs only there: "
                                                   "export it for that device (juno_bridge.export_torch)");
    } else {
      signature_text = open_torchscript(bytes, size);
      if (!device.empty()) move_module(device);
    }
    if (outputs_on_device_ && !device_.is_cuda())
      throw Error(JB_ERROR_INVALID_ARGUMENT, "option output_device=cuda: '" + path_ +
                                                 "' runs on the CPU, so its outputs lie in host memory (a .pt: "
                                                 "option device='cuda'; a .pt2: export it for CUDA)");
    describe(signature_text);
    seal();
  }

  // Concurrent runs of one .pt2 each need a model instance (activations only; weights are shared).
  static Model* open(const std::string& path, const void* bytes, size_t size, const plugin::Options& options) {
    int intra = 0;
    int runners = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 8u));
    std::string device;
    bool outputs_on_device = false;  // the core checked the value: cpu or cuda
    for (const auto& [key, value] : options.pairs()) {
      if (key == "intra_op_threads") intra = plugin::parse_count("torch", key, value, 0);
      else if (key == "num_runners") runners = std::max(1, plugin::parse_count("torch", key, value, runners));
      else if (key == "device") device = parse_device(value);
      else if (key == "output_device") outputs_on_device = value == "cuda";
    }
    if (intra > 0) at::set_num_threads(intra);
    return without_backtrace(JB_ERROR_MODEL_LOAD,
                             [&] { return new Model(path, bytes, size, runners, device, outputs_on_device); });
  }

  void run(const jb_tensor_view* in, const int32_t* output_index, jb_tensor_view* out, jb_plugin_owned* owned,
           size_t num_outputs) {
    without_backtrace(JB_ERROR_RUNTIME, [&] { run_model(in, output_index, out, owned, num_outputs); });
  }

  // A package compiled for CUDA computes on its GPU and reads and writes that GPU's memory in place.
  std::vector<Device> devices() const {
    if (!device_.is_cuda()) return {};
    return {Device::cuda(device_.index())};
  }

  // Session.empty: pinned host memory (torch's own pinned allocator) where the model runs on a GPU, so the
  // copy of a host input to it runs at the bus's speed; none of its own on the CPU.
  plugin::HostBlock allocate_host(size_t nbytes) {
    plugin::HostBlock block;
    if (!device_.is_cuda() || nbytes == 0) return block;
    auto* pinned =
        new at::Tensor(at::empty({static_cast<int64_t>(nbytes)}, at::TensorOptions(at::kByte).pinned_memory(true)));
    block.data = pinned->data_ptr();
    block.device = Device::cuda_pinned();
    block.owned = {pinned, [](void* h) { delete static_cast<at::Tensor*>(h); }};
    return block;
  }

 private:
  void run_model(const jb_tensor_view* in, const int32_t* output_index, jb_tensor_view* out, jb_plugin_owned* owned,
                 size_t num_outputs) {
    const size_t num_inputs = inputs_.size();
    check_dims(in, output_index, out, num_outputs);
    c10::InferenceMode guard;
    std::vector<at::Tensor> tensors;
    tensors.reserve(num_inputs);
    for (size_t i = 0; i < num_inputs; ++i) {
      auto type = to_scalar_type(in[i].dtype);
      if (!type) throw Error(JB_ERROR_INPUT_TYPE, "input '" + inputs_[i].sig.name + "': dtype code " +
                                                        std::to_string(in[i].dtype) + " has no torch equivalent");
      // from_blob wants a mutable pointer; torch only reads inputs of an inference-mode model.
      tensors.push_back(at::from_blob(in[i].data, at::IntArrayRef(in[i].shape, in[i].rank),
                                      at::TensorOptions(*type).device(where(in[i]))));
      read_input_at(i, tensors.back().const_data_ptr());
      // A package compiled for CUDA reads device memory: a host array is copied in (and outputs out), memory
      // on its GPU is read in place (the core hands it only that GPU's: devices()).
      if (device_.is_cuda() && !tensors.back().is_cuda()) tensors.back() = tensors.back().to(device_);
    }
    count_wrapped(num_inputs);
    std::vector<at::Tensor> results = package_ ? run_package(tensors) : run_torchscript(std::move(tensors));
    if (results.size() != outputs_.size())
      throw Error(JB_ERROR_RUNTIME, "the model returned " + std::to_string(results.size()) + " tensor(s), its " +
                                          "signature declares " + std::to_string(outputs_.size()));
    bool into_gpu = false;  // a copy into GPU memory, or an output left there: complete before run returns
    for (size_t i = 0; i < num_outputs; ++i) {
      deliver(results[output_index[i]], output_index[i], in, num_inputs, out[i], owned[i]);
      into_gpu = into_gpu || out[i].device == JB_DEVICE_CUDA;
    }
    if (into_gpu) torch::cuda::synchronize(device_.index());
  }

  // Option device: "cpu", "cuda" (device 0) or "cuda:N", spelled as torch spells a device.
  static std::string parse_device(const std::string& value) {
    const bool cuda = value.rfind("cuda", 0) == 0;
    const std::string index = value.size() > 5 && value[4] == ':' ? value.substr(5) : "";
    const bool digits = !index.empty() && index.size() < 4 &&
                        std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (value == "cpu" || value == "cuda") return value == "cuda" ? "cuda:0" : value;
    if (cuda && digits) return value;
    throw Error(JB_ERROR_INVALID_ARGUMENT, "torch: option 'device' must be cpu, cuda or cuda:N, got '" + value + "'");
  }

  // A TorchScript module moved to `device` (parse_device's spelling), where host inputs are copied to and
  // outputs from, and whose GPU memory it reads and writes in place (devices()).
  void move_module(const std::string& device) {
    const at::Device where(device);
    if (where.is_cuda()) {
      if (!torch::cuda::is_available())
        throw Error(JB_ERROR_BACKEND_UNAVAILABLE, "option device='" + device +
                                                      "': no CUDA device is available to "
                                                      "this libtorch (torch " +
                                                      TORCH_VERSION + ")");
      if (where.index() >= static_cast<c10::DeviceIndex>(torch::cuda::device_count()))
        throw Error(JB_ERROR_BACKEND_UNAVAILABLE, "option device='" + device + "': this machine has " +
                                                      std::to_string(torch::cuda::device_count()) + " CUDA device(s)");
    }
    module_->to(where);
    device_ = where;
  }

  // The device of a view's memory, for from_blob.
  static at::Device where(const jb_tensor_view& v) {
    return v.device == JB_DEVICE_CUDA ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(v.device_id))
                                      : at::Device(at::kCPU);
  }

  // Loads an AOTInductor package; returns the signature text it carries ("" when none).
  std::string open_package(int num_runners) {
    std::unordered_map<std::string, std::string> md;
    try {
      md = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(path_, "model");
    } catch (const std::exception& e) {
      throw Error(JB_ERROR_MODEL_LOAD, "'" + path_ + "' is not a readable AOTInductor package (" +
                                             c10_message(e) + "); make one with juno_bridge.export_torch (a " +
                                             "torch.export.save archive holds no compiled code)");
    }
    check_package_device(md);
    if (std::string why = foreign_package_reason(md); !why.empty())
      throw Error(JB_ERROR_MODEL_LOAD, "'" + path_ + "' " + why + ": re-export it on (or for) this machine "
                                         "(juno_bridge.export_torch)");
    std::string signature;
    if (auto it = md.find(kSignatureKey); it != md.end()) signature = it->second;
    try {
      package_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path_, "model", false,
                                                                          static_cast<size_t>(num_runners));
    } catch (const std::exception& e) {
      throw Error(JB_ERROR_MODEL_LOAD, "cannot load AOTInductor package '" + path_ + "': " + c10_message(e));
    }
    for (const auto& [k, v] : md)
      if (k != kSignatureKey) add_metadata("custom." + k, v);
    auto spec = package_->get_call_spec();
    num_inputs_found_ = spec.size() > 0 ? pytree_leaves(spec[0]) : 0;
    num_outputs_found_ = spec.size() > 1 ? pytree_leaves(spec[1]) : 0;
    add_metadata("description", "AOTInductor package (.pt2)");
    return signature;
  }

  // Loads a TorchScript module from a path or from memory; returns its signature text ("" when none).
  std::string open_torchscript(const void* bytes, size_t size) {
    torch::jit::ExtraFilesMap extra{{kSignatureKey, ""}};
    try {
      if (bytes) {
        // torch's own reader over the caller's bytes: no copy, and no std::istream handed to libtorch
        // (under -static-libstdc++ the plugin's iostreams are not libtorch's).
        auto reader = std::make_shared<caffe2::serialize::MemoryReadAdapter>(bytes, static_cast<off_t>(size));
        module_ = torch::jit::load(reader, at::Device(at::kCPU), extra);
      } else {
        module_ = torch::jit::load(path_, at::Device(at::kCPU), extra);
      }
    } catch (const std::exception& e) {
      throw Error(JB_ERROR_MODEL_LOAD, "'" + (bytes ? std::string("<bytes>") : path_) +
                                             "' is not a readable TorchScript module (.pt2 packages must be opened " +
                                             "from a path): " + c10_message(e));
    }
    module_->eval();
    if (!module_->find_method("forward"))
      throw Error(JB_ERROR_MODEL_LOAD, "TorchScript module '" + path_ + "' has no forward method");
    const auto& schema = module_->get_method("forward").function().getSchema();
    for (size_t i = 1; i < schema.arguments().size(); ++i) script_input_names_.push_back(schema.arguments()[i].name());
    num_inputs_found_ = script_input_names_.size();
    num_outputs_found_ = schema.returns().size() == 1 ? count_tensors(schema.returns()[0].type()) : 0;
    add_metadata("description", "TorchScript module (.pt)");
    return extra[kSignatureKey];
  }

  // Tensors in a return type, tuples flattened; 0 when the count is not fixed (lists, dicts).
  static size_t count_tensors(const c10::TypePtr& type) {
    if (type->kind() == c10::TypeKind::TensorType) return 1;
    if (auto tuple = type->cast<c10::TupleType>()) {
      size_t n = 0;
      for (const auto& e : tuple->elements()) {
        size_t k = count_tensors(e);
        if (k == 0) return 0;
        n += k;
      }
      return n;
    }
    return 0;
  }

  static std::string c10_message(const std::exception& e) {
    if (auto c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
    return e.what();
  }

  // Fills inputs_/outputs_ from the signature, or, without one, states what is unknown.
  void describe(const std::string& text) {
    add_metadata("producer_name", "torch");
    add_metadata("custom.torch_version", TORCH_VERSION);
    add_metadata("custom.device", device_.str());  // "cpu", or "cuda:0": a CUDA package, or option device
    if (!text.empty()) {
      try {
        signature_ = parse_signature(text);
      } catch (const std::invalid_argument& e) {
        throw Error(JB_ERROR_MODEL_LOAD,
                      "model '" + path_ + "': its juno_bridge signature is malformed: " + e.what());
      }
      if (signature_.inputs.size() != num_inputs_found_ ||
          (num_outputs_found_ && signature_.outputs.size() != num_outputs_found_))
        throw Error(JB_ERROR_MODEL_LOAD, "model '" + path_ + "': its signature declares " +
                                               std::to_string(signature_.inputs.size()) + " input(s) and " +
                                               std::to_string(signature_.outputs.size()) + " output(s), the model has " +
                                               std::to_string(num_inputs_found_) + " and " +
                                               std::to_string(num_outputs_found_));
      if (package_) name_unnamed_input_dims();
      for (const auto& s : signature_.inputs) inputs_.push_back(Info{s, true, {}, {}});
      for (const auto& s : signature_.outputs) outputs_.push_back(Info{s, true, {}, {}});
      add_metadata("custom.signature", "juno_bridge");
    } else if (package_) {
      // A package made by torch alone: its inputs are checked against the checks compiled into it.
      signature_ = compiled_checks();
      for (const auto& s : signature_.inputs) inputs_.push_back(Info{s, s.dtype != JB_DTYPE_UNDEFINED, {}, {}});
      add_unnamed_outputs();
      add_metadata("custom.signature", "none: input dtypes and shapes are read from the package's compiled input "
                                       "checks (its wrapper source); output dtypes and shapes are unknown");
    } else {
      if (num_outputs_found_ == 0)
        throw Error(JB_ERROR_MODEL_LOAD, "model '" + path_ + "' has no juno_bridge signature and its outputs are " +
                                               "not a fixed number of tensors: export it with juno_bridge.export_torch");
      for (size_t i = 0; i < num_inputs_found_; ++i) {
        Info info;
        info.sig.name = i < script_input_names_.size() ? script_input_names_[i] : "input_" + std::to_string(i);
        inputs_.push_back(std::move(info));
      }
      add_unnamed_outputs();
      add_metadata("custom.signature", "none: input and output dtypes and shapes are unknown; TorchScript's "
                                       "operators check what they receive");
    }
    for (auto& i : inputs_) i.finish();
    for (auto& o : outputs_) o.finish();
  }


  // Named dims agree across inputs and lie in the exported range, and caller outputs fit them, before
  // torch sees anything: an AOTInductor model reads whatever its compiled shapes say.
  void check_dims(const jb_tensor_view* in, const int32_t* output_index, const jb_tensor_view* out,
                  size_t num_outputs) const {
    std::map<std::string, std::pair<int64_t, std::string>> bound;  // dim name -> size, input that set it
    for (size_t i = 0; i < inputs_.size(); ++i) {
      const Info& info = inputs_[i];
      if (!info.known) continue;
      for (size_t d = 0; d < info.sig.dim_names.size(); ++d) {
        const std::string& n = info.sig.dim_names[d];
        if (n.empty()) continue;
        const int64_t v = in[i].shape[d];
        const DimRange& r = signature_.dims.at(n);
        if (v < r.min || v > r.max)
          throw Error(JB_ERROR_INPUT, "input '" + info.sig.name + "': dim " + std::to_string(d) + " ('" + n +
                                            "') is " + std::to_string(v) + ", outside the range [" +
                                            std::to_string(r.min) + ", " + std::to_string(r.max) + "] " + r.source +
                                            (v < r.min ? r.min_note : ""));
        auto [it, fresh] = bound.emplace(n, std::make_pair(v, info.sig.name));
        if (!fresh && it->second.first != v)
          throw Error(JB_ERROR_INPUT, "input '" + info.sig.name + "': dim " + std::to_string(d) + " ('" + n +
                                            "') is " + std::to_string(v) + " but input '" + it->second.second +
                                            "' has " + n + " = " + std::to_string(it->second.first));
      }
    }
    for (size_t i = 0; i < num_outputs; ++i) {
      const Info& info = outputs_[output_index[i]];
      if (!info.known || out[i].data == nullptr) continue;
      for (size_t d = 0; d < info.sig.dim_names.size(); ++d) {
        auto it = bound.find(info.sig.dim_names[d]);
        if (it != bound.end() && out[i].shape[d] != it->second.first)
          throw Error(JB_ERROR_INPUT, "output '" + info.sig.name + "': dim " + std::to_string(d) + " ('" +
                                            it->first + "') must be " + std::to_string(it->second.first) +
                                            " as in input '" + it->second.second + "', got shape " +
                                            shape_string(out[i].shape, out[i].rank));
      }
    }
  }

  // The input checks compiled into the package, as a signature. The package runs its own copy only
  // under AOTI_RUNTIME_CHECK_INPUTS, a process-wide setting that belongs to the user.
  Signature compiled_checks() const {
    const std::string source = archive_record([](const std::string& name) {
      return name.rfind("data/aotinductor/model/", 0) == 0 && ends_with(name, ".cpp");
    }, "AOTInductorModel::run_impl");
    if (source.empty())
      throw Error(JB_ERROR_MODEL_LOAD, "'" + path_ + "' has no juno_bridge signature and keeps no wrapper source "
                                         "to read its input checks from, so its input shapes cannot be checked "
                                         "before its compiled code reads them: export it with "
                                         "juno_bridge.export_torch");
    Signature sig;
    try {
      sig = signature_from_wrapper(source, num_inputs_found_);
    } catch (const std::invalid_argument& e) {
      throw Error(JB_ERROR_MODEL_LOAD, "'" + path_ + "': cannot read the input checks of its wrapper source (" +
                                         e.what() + "): export it with juno_bridge.export_torch");
    }
    const std::string program = archive_record([](const std::string& name) { return name == "models/model.json"; });
    try {
      if (!program.empty()) apply_exported_ranges(sig, program);
    } catch (const std::invalid_argument& e) {
      throw Error(JB_ERROR_MODEL_LOAD, "'" + path_ + "': cannot read its ExportedProgram (models/model.json): " +
                                         e.what());
    }
    return sig;
  }

  // Outputs of a model without a signature: their number as found, named "output" or "output_<i>",
  // dtype and shape unknown.
  void add_unnamed_outputs() {
    for (size_t i = 0; i < num_outputs_found_; ++i) {
      Info info;
      info.sig.name = num_outputs_found_ == 1 ? "output" : "output_" + std::to_string(i);
      outputs_.push_back(std::move(info));
    }
  }

  // A signature's unnamed dynamic input dim ("?") takes its name and range from the compiled checks.
  void name_unnamed_input_dims() {
    bool unnamed = false;
    for (const auto& s : signature_.inputs)
      for (size_t d = 0; d < s.shape.size(); ++d) unnamed |= s.shape[d] < 0 && s.dim_names[d].empty();
    if (!unnamed) return;
    const Signature compiled = compiled_checks();
    for (size_t i = 0; i < signature_.inputs.size(); ++i) {
      auto& s = signature_.inputs[i];
      const auto& c = compiled.inputs[i];
      for (size_t d = 0; d < s.shape.size(); ++d) {
        if (s.shape[d] >= 0 || !s.dim_names[d].empty() || d >= c.shape.size() || c.dim_names[d].empty()) continue;
        s.dim_names[d] = c.dim_names[d];
        signature_.dims.emplace(c.dim_names[d], compiled.dims.at(c.dim_names[d]));
      }
    }
  }

  // The first record of the package whose name (below the archive's top folder) is wanted and whose text
  // holds `contains`; "" when none.
  template <class F>
  std::string archive_record(F wanted, const char* contains = "") const {
    try {
      caffe2::serialize::PyTorchStreamReader reader(path_);
      for (const auto& name : reader.getAllRecords()) {
        if (!wanted(name)) continue;
        auto [data, size] = reader.getRecord(name);
        std::string text(static_cast<const char*>(data.get()), size);
        if (text.find(contains) != std::string::npos) return text;
      }
    } catch (const std::exception&) {
    }
    return "";
  }

  // The device a package was compiled for (AOTI_DEVICE_KEY): the CPU, or CUDA where this libtorch has a
  // GPU; anything else cannot run here, and says why before the loader tries (and fails deep inside).
  void check_package_device(const std::unordered_map<std::string, std::string>& md) {
    const auto it = md.find("AOTI_DEVICE_KEY");
    const std::string device = it == md.end() || it->second.empty() ? "cpu" : it->second;
    if (device == "cpu") return;
    const std::string what = "'" + path_ + "' was compiled for " + (device == "cuda" ? "CUDA" : device) +
                             " (AOTInductor device '" + device + "')";
    if (device != "cuda")
      throw Error(JB_ERROR_BACKEND_UNAVAILABLE, what + "; juno-bridge runs .pt2 packages compiled for the CPU or CUDA");
    if (!torch::cuda::is_available())
      throw Error(JB_ERROR_BACKEND_UNAVAILABLE,
                  what + ", and no CUDA device is available to this libtorch (torch " + TORCH_VERSION +
                      (at::hasCUDA() ? ", built with CUDA: no GPU or driver found" : ", a CPU-only build") +
                      "): open it on a machine with an NVIDIA GPU, or export it again from the module and example "
                      "inputs on the CPU (juno_bridge.export_torch)");
    device_ = at::Device(at::kCUDA, 0);
  }

  // A package's generated input checks (on only where the user set AOTI_RUNTIME_CHECK_INPUTS) report
  // "input_handles[i]: unmatched dtype|dim value|stride ..."; they become our error classes and names.
  std::vector<at::Tensor> run_package(std::vector<at::Tensor>& tensors) {
    try {
      return package_->run(tensors);
    } catch (const std::exception& e) {
      std::string message = c10_message(e);
      while (!message.empty() && std::isspace(static_cast<unsigned char>(message.back()))) message.pop_back();
      jb_status status = JB_ERROR_RUNTIME;
      const std::string tag = "input_handles[";
      if (message.rfind(tag, 0) == 0) {
        size_t close = message.find(']');
        size_t index = std::strtoul(message.c_str() + tag.size(), nullptr, 10);
        if (close != std::string::npos && index < inputs_.size()) {
          status = message.find("dtype") != std::string::npos ? JB_ERROR_INPUT_TYPE : JB_ERROR_INPUT;
          message = "input '" + inputs_[index].sig.name + "'" + message.substr(close + 1) +
                    " (the package's own input check)";
        }
      }
      throw Error(status, message);
    }
  }

  std::vector<at::Tensor> run_torchscript(std::vector<at::Tensor>&& tensors) {
    std::vector<c10::IValue> stack(std::make_move_iterator(tensors.begin()), std::make_move_iterator(tensors.end()));
    c10::IValue result = module_->forward(std::move(stack));
    std::vector<at::Tensor> flat;
    flatten(result, flat);
    return flat;
  }

  static void flatten(const c10::IValue& v, std::vector<at::Tensor>& flat) {
    if (v.isTensor()) flat.push_back(v.toTensor());
    else if (v.isTuple())
      for (const auto& e : v.toTupleRef().elements()) flatten(e, flat);
    else if (v.isTensorList())
      for (const at::Tensor& t : v.toTensorVector()) flat.push_back(t);
    else
      throw Error(JB_ERROR_UNSUPPORTED, "the model returned a " + v.tagKind() + "; juno-bridge passes tensors only");
  }

  // Writes result k into the caller's buffer, or hands the torch tensor over as the output's memory.
  void deliver(at::Tensor result, int32_t k, const jb_tensor_view* in, size_t num_inputs, jb_tensor_view& out,
               jb_plugin_owned& owned) const {
    const Info& info = outputs_[k];
    const int32_t dtype = to_jb_dtype(result.scalar_type());
    if (dtype == JB_DTYPE_UNDEFINED)
      throw Error(JB_ERROR_UNSUPPORTED, "output '" + info.sig.name + "' is torch " +
                                              std::string(c10::toString(result.scalar_type())) +
                                              ", which juno-bridge cannot pass");
    if (result.dim() > JB_MAX_RANK)
      throw Error(JB_ERROR_UNSUPPORTED, "output '" + info.sig.name + "' has rank " + std::to_string(result.dim()));
    if (info.known && dtype != info.sig.dtype)
      throw Error(JB_ERROR_RUNTIME, "output '" + info.sig.name + "': the model produced " + plugin::dtype_name(dtype) +
                                          ", its signature says " + plugin::dtype_name(info.sig.dtype));
    if (out.data != nullptr) {
      if (out.dtype != dtype)
        throw Error(JB_ERROR_INPUT_TYPE, "output '" + info.sig.name + "': expected dtype " + plugin::dtype_name(dtype) +
                                               ", got " + plugin::dtype_name(out.dtype));
      if (!result.sizes().equals(at::IntArrayRef(out.shape, out.rank)))
        throw Error(JB_ERROR_INPUT, "output '" + info.sig.name + "': expected shape " +
                                          shape_string(result.sizes().data(), result.dim()) + ", got " +
                                          shape_string(out.shape, out.rank));
      at::from_blob(out.data, result.sizes(), result.options().device(where(out))).copy_(result);
      return;
    }
    // A CUDA model's output comes back to the host, unless output_device=cuda keeps it on its GPU.
    at::Tensor kept = (outputs_on_device_ ? result : result.to(at::kCPU)).contiguous();
    // An output that is a view of an input would hand the caller's own memory back as "owned".
    const char* p = static_cast<const char*>(kept.const_data_ptr());
    for (size_t j = 0; j < num_inputs; ++j) {
      const char* a = static_cast<const char*>(in[j].data);
      const size_t n = plugin::nbytes(in[j]);
      if (kept.nbytes() && n && p < a + n && a < p + kept.nbytes()) kept = kept.clone();
    }
    auto* holder = new at::Tensor(std::move(kept));
    out.data = holder->data_ptr();
    out.device = holder->is_cuda() ? JB_DEVICE_CUDA : JB_DEVICE_CPU;
    out.device_id = holder->is_cuda() ? holder->device().index() : 0;
    out.dtype = dtype;
    out.rank = static_cast<int32_t>(holder->dim());
    for (int32_t d = 0; d < out.rank; ++d) out.shape[d] = holder->size(d);
    owned.holder = holder;
    owned.release = [](void* h) { delete static_cast<at::Tensor*>(h); };
  }

  std::string path_;
  at::Device device_ = at::kCPU;  // where the model runs: the CPU, or a CUDA package's GPU
  bool outputs_on_device_ = false;  // option output_device=cuda
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> package_;
  std::optional<torch::jit::Module> module_;
  std::vector<std::string> script_input_names_;
  size_t num_inputs_found_ = 0, num_outputs_found_ = 0;
  Signature signature_;
};

constexpr const char* kOptions[] = {"intra_op_threads", "num_runners", "device", "output_device", nullptr};
const jb_plugin_api kApi = plugin::Table<Model>::api("torch", kOptions);

}  // namespace
}  // namespace jb::torch_plugin

extern "C" JB_PLUGIN_EXPORT const jb_plugin_api* jb_plugin_init(const jb_plugin_host* host) {
  return jb::plugin::start(host) ? &jb::torch_plugin::kApi : nullptr;
}
