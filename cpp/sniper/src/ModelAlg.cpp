// ModelAlg / JunoBridgeAlg: one juno-bridge session per algorithm, inputs and outputs in the store.
#include "juno_bridge/sniper/ModelAlg.h"

#include "juno_bridge/sniper/JunoBridgeSvc.h"

#include "python_gil.hpp"

#include <SniperKernel/AlgFactory.h>

#include <algorithm>
#include <exception>

DECLARE_ALGORITHM(JunoBridgeAlg);

namespace jb::sniper {
namespace {

bool same_tensors(const std::vector<TensorView>& a, const std::vector<TensorView>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].dtype != b[i].dtype || a[i].rank != b[i].rank) return false;
    for (int32_t d = 0; d < a[i].rank; ++d)
      if (a[i].shape[d] != b[i].shape[d]) return false;
  }
  return true;
}

std::string names(const std::vector<TensorInfo>& infos) {
  std::string s;
  for (const auto& i : infos) s += (s.empty() ? "" : ", ") + i.name;
  return s;
}

// Every key of `mapping` names one of `infos`, else an error naming the known tensors.
void check_mapping(const std::map<std::string, std::string>& mapping, const std::vector<TensorInfo>& infos,
                   const char* property, const char* kind) {
  for (const auto& kv : mapping) {
    bool known = false;
    for (const auto& i : infos) known = known || i.name == kv.first;
    if (!known)
      throw Error(ErrorCode::InvalidArgument, std::string(property) + " names the model " + kind + " '" + kv.first +
                                                  "', which the model does not have; its " + kind + "s: " +
                                                  names(infos));
  }
}

const std::string& key_of(const std::map<std::string, std::string>& mapping, const std::string& name) {
  auto it = mapping.find(name);
  return it == mapping.end() ? name : it->second;
}

}  // namespace

ModelAlg::ModelAlg(const std::string& name) : AlgBase(name) {
  declProp("Model", m_model);
  declProp("Inputs", m_inputs);
  declProp("Outputs", m_outputs);
  declProp("Threads", m_threads);
  declProp("InterOpThreads", m_interOpThreads);
  declProp("Providers", m_providers);
  declProp("Staging", m_staging);
  declProp("Backend", m_backend);
  declProp("ReleaseGIL", m_releaseGIL);
  declProp("Service", m_service);
}

ModelAlg::~ModelAlg() {
  releaseInputs();
  if (session_) session_->close();
}

std::string ModelAlg::where() const { return m_tag + " '" + m_name + "' (" + m_model + ")"; }

const std::string& ModelAlg::inputKey(const std::string& model_input) const { return key_of(m_inputs, model_input); }
const std::string& ModelAlg::outputKey(const std::string& model_output) const {
  return key_of(m_outputs, model_output);
}

bool ModelAlg::fillInputs(TensorStore&) { return true; }
bool ModelAlg::consumeOutputs(TensorStore&) { return true; }

bool ModelAlg::initialize() {
  try {
    if (m_model.empty()) throw Error(ErrorCode::InvalidArgument, "the property Model is not set");
    SessionOptions options;
    options.backend = m_backend;
    options.intra_op_threads = m_threads;
    options.inter_op_threads = m_interOpThreads;
    options.providers = m_providers;
    options.staging = m_staging;
    if (m_interOpThreads > 1) options.execution_mode = "parallel";
    // The task's JunoBridgeSvc (or the one Service names) owns the runtime; without one, the process
    // default runtime does (jobs written before the service).
    RuntimeSvc* service = find_service(this, m_service);
    if (service == nullptr && !m_service.empty())
      throw Error(ErrorCode::InvalidArgument,
                  "the property Service names '" + m_service + "', which neither this task nor a task above it has");
    {
      GilRelease unlocked(m_releaseGIL);  // a python: model takes the GIL itself
      session_ = service ? service->open(m_model, options) : std::make_unique<Session>(m_model, options);
    }
    service_ = service;
    GilRelease::find_python();
    check_mapping(m_inputs, session_->inputs(), "Inputs", "input");
    check_mapping(m_outputs, session_->outputs(), "Outputs", "output");
    const std::shared_ptr<TensorStore> store = TensorStore::shared(this);
    store_ = store.get();
    store_alive_ = store;
    in_keys_.clear();
    out_keys_.clear();
    for (const auto& i : session_->inputs()) in_keys_.push_back(inputKey(i.name));
    allocateInputs();
    for (const auto& o : session_->outputs()) out_keys_.push_back(outputKey(o.name));
    in_.assign(in_keys_.size(), TensorView());
    out_.assign(out_keys_.size(), TensorView());
    owned_.assign(out_keys_.size(), Tensor());
    adopt_.assign(out_keys_.size(), false);
    index_.resize(out_keys_.size());
    for (size_t o = 0; o < index_.size(); ++o) index_[o] = static_cast<int32_t>(o);
    last_in_.clear();
    entries_.assign(in_keys_.size() + out_keys_.size(), nullptr);
    erasures_ = store_->erasures();
  } catch (const std::exception& e) {
    LogError << where() << ": " << e.what() << std::endl;
    releaseInputs();
    session_.reset();
    return false;
  }
  const SessionStats stats = session_->stats();
  LogInfo << "opened " << m_model << " on " << session_->backend_name()
          << (service_ ? " in the runtime of " + service_->objName() : std::string()) << std::endl;
  if (stats.backend_users > 1)  // SessionOptions' default share: same model and options, one backend session
    LogInfo << "shares backend session " << stats.backend_id << " with " << stats.backend_users - 1
            << " other open session(s) of the same model and options" << (service_ ? " in that runtime" : "")
            << std::endl;
  return true;
}

// Output tensors for the current input shapes: static shapes (after naming dims shared with the
// inputs) become store storage written in place; the rest the backend allocates, adopted after the run.
void ModelAlg::prepareOutputs() {
  const auto& ins = session_->inputs();
  const auto& outs = session_->outputs();
  for (size_t o = 0; o < outs.size(); ++o) {
    std::vector<int64_t> shape = outs[o].shape;
    bool known = outs[o].rank_known;
    for (size_t d = 0; known && d < shape.size(); ++d) {
      if (shape[d] >= 0) continue;
      const auto& dim_name = d < outs[o].dim_names.size() ? outs[o].dim_names[d] : std::nullopt;
      for (size_t i = 0; dim_name && shape[d] < 0 && i < ins.size(); ++i)
        for (size_t k = 0; k < ins[i].dim_names.size() && k < static_cast<size_t>(in_[i].rank); ++k)
          if (ins[i].dim_names[k] == dim_name) shape[d] = in_[i].shape[k];
      known = shape[d] >= 0;
    }
    adopt_[o] = !known || outs[o].dtype == DType::Undefined;
    if (!adopt_[o]) store_->create(out_keys_[o], outs[o].dtype, shape);
  }
  last_in_ = in_;
}

// The store entry of `key`, kept between events while the store erases nothing (no lookup by name per event).
const StoredTensor* ModelAlg::entry(size_t slot, const std::string& key) {
  if (erasures_ != store_->erasures()) {
    erasures_ = store_->erasures();
    std::fill(entries_.begin(), entries_.end(), nullptr);
  }
  if (entries_[slot] == nullptr) entries_[slot] = store_->find(key);
  return entries_[slot];
}

void ModelAlg::runModel() {
  for (size_t i = 0; i < in_keys_.size(); ++i) {
    const StoredTensor* t = entry(i, in_keys_[i]);
    if (t == nullptr)
      throw Error(ErrorCode::Input, "model input '" + session_->inputs()[i].name + "' reads store key '" +
                                        in_keys_[i] + "', which the tensor store lacks; it holds " +
                                        store_->names_string());
    in_[i] = t->view;
  }
  if (!same_tensors(in_, last_in_)) prepareOutputs();
  for (size_t o = 0; o < out_keys_.size(); ++o) {
    const StoredTensor* t = adopt_[o] ? nullptr : entry(in_keys_.size() + o, out_keys_[o]);
    out_[o] = t ? t->view : TensorView();  // data nullptr: the backend allocates
    if (!t) adopt_[o] = true;
  }
  {
    GilRelease unlocked(m_releaseGIL);
    session_->run(in_.data(), in_.size(), index_.data(), out_.data(), owned_.data(), out_.size());
  }
  for (size_t o = 0; o < out_keys_.size(); ++o)
    if (adopt_[o]) {
      store_->adopt(out_keys_[o], owned_[o]);
      owned_[o] = Tensor();
    }
}

bool ModelAlg::execute() {
  if (!session_) {
    LogError << where() << ": the session is not open (initialize failed or finalize ran)" << std::endl;
    return false;
  }
  try {
    if (!fillInputs(*store_)) return false;
    runModel();
    return consumeOutputs(*store_);
  } catch (const std::exception& e) {
    LogError << where() << ": " << e.what() << std::endl;
    return false;
  }
}

// The store makes this algorithm's inputs (a reader's create(), from the next event on) in memory from its
// session: pinned host memory where the session copies inputs to a GPU, so the copy runs at the bus's speed
// with no staging copy of ours; plain aligned host memory otherwise, as the store's own.
void ModelAlg::allocateInputs() {
  const bool on_gpu = session_->devices().size() > 1;
  Session* session = session_.get();
  for (const std::string& key : in_keys_) {
    const bool mine = store_->allocate_with(key, m_name, [session](DType dtype, const std::vector<int64_t>& shape) {
      return session->empty(dtype, shape);
    });
    if (on_gpu)
      LogInfo << "store key '" << key << "' is made in "
              << (mine ? "pinned host memory from this session"
                       : "memory from " + store_->allocator_of(key) + "'s session, which reads it first")
              << std::endl;
  }
}

void ModelAlg::releaseInputs() {
  if (const std::shared_ptr<TensorStore> store = store_alive_.lock())
    for (const std::string& key : in_keys_) store->release_allocator(key, m_name);
  store_alive_.reset();
}

bool ModelAlg::finalize() {
  releaseInputs();
  if (session_) {
    GilRelease unlocked(m_releaseGIL);
    session_->close();
    session_.reset();
  }
  service_ = nullptr;
  store_ = nullptr;
  return true;
}

}  // namespace jb::sniper
