// jb::sniper::ModelAlg: a SNiPER algorithm that runs one juno-bridge model on tensors of the task's
// TensorStore; JunoBridgeAlg is it as is, JUNO code derives from it and fills in two hooks.
//
// Properties: Model (any model string juno-bridge opens), Inputs / Outputs (model tensor -> store key;
// a tensor not listed uses its own name), Threads (intra-op, 1), InterOpThreads (0: the backend's
// default), Providers (["cpu"]), Backend ("" = by the model), ReleaseGIL (true: the GIL is released
// around each run when this thread holds it, so Python threads go on during task.run()), Service (the
// JunoBridgeSvc whose runtime opens the session: "" = the task's JunoBridgeSvc, or the nearest task
// above's, when there is one (two in one task: name one), else the process default runtime; a name =
// that service, which must exist).
//
// Per event: fillInputs(store) -> the model reads its inputs from the store and writes its outputs
// into store tensors in place (same addresses every event while shapes stay) -> consumeOutputs(store).
// Any error is reported with LogError carrying juno-bridge's message and execute returns false, which
// ends the job (SNiPER stops at the first failing execute; juno_bridge.sniper.run(task) raises then).
//
// A complete package (this algorithm, its CMakeLists, a Python and a JSON job) is installed with the
// component: `juno-bridge config --examples-dir`/sniper.
//
//   #include <juno_bridge/sniper/ModelAlg.h>
//   #include <SniperKernel/AlgFactory.h>   // DECLARE_ALGORITHM
//
//   class MyReco : public jb::sniper::ModelAlg {
//    public:
//     using ModelAlg::ModelAlg;
//    protected:
//     bool fillInputs(jb::sniper::TensorStore& store) override {
//       float* pmt = store.create<float>("pmt", {1, 2, 17612});
//       ...  // from the event model
//       return true;
//     }
//     bool consumeOutputs(jb::sniper::TensorStore& store) override {
//       const float* v = static_cast<const float*>(store.at("vertex").data);
//       ...  // into the event model
//       return true;
//     }
//   };
//   DECLARE_ALGORITHM(MyReco);
#pragma once
#include <juno_bridge/session.hpp>
#include <juno_bridge/sniper/TensorStore.h>

#include <SniperKernel/AlgBase.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace jb::sniper {

class RuntimeSvc;

class ModelAlg : public AlgBase {
 public:
  explicit ModelAlg(const std::string& name);
  ~ModelAlg() override;

  bool initialize() override;
  bool execute() override;
  bool finalize() override;

  // The open session (nullptr before initialize and after finalize).
  const Session* session() const { return session_.get(); }
  // Store key of a model input / output.
  const std::string& inputKey(const std::string& model_input) const;
  const std::string& outputKey(const std::string& model_output) const;

 protected:
  // JUNO code: put this event's inputs into the store (return false, after LogError, to fail it).
  virtual bool fillInputs(TensorStore& store);
  // JUNO code: read the outputs from the store into the event model.
  virtual bool consumeOutputs(TensorStore& store);

  std::string m_model;
  std::map<std::string, std::string> m_inputs, m_outputs;
  int m_threads = 1;
  int m_interOpThreads = 0;
  std::vector<std::string> m_providers{"cpu"};
  std::string m_staging = "off";  // SessionOptions::staging: "pinned" stages pageable store tensors on a GPU
  std::string m_backend;
  bool m_releaseGIL = true;
  std::string m_service;

 private:
  void runModel();
  void prepareOutputs();
  const StoredTensor* entry(size_t slot, const std::string& key);
  std::string where() const;  // "JunoBridgeAlg 'reco' (model.onnx)" for messages
  void allocateInputs();      // the store makes this algorithm's inputs in memory from its session
  void releaseInputs();       // ... no longer (finalize, destruction)

  std::unique_ptr<Session> session_;
  RuntimeSvc* service_ = nullptr;      // whose runtime opened session_ (nullptr: the process default)
  TensorStore* store_ = nullptr;
  std::weak_ptr<TensorStore> store_alive_;  // the same store, to release allocators only while it exists
  std::vector<std::string> in_keys_, out_keys_;
  std::vector<TensorView> in_, out_;
  std::vector<Tensor> owned_;
  std::vector<int32_t> index_;      // 0..outputs-1
  std::vector<bool> adopt_;          // outputs the backend allocates (shape unknown before the run)
  std::vector<TensorView> last_in_;  // input dtypes and shapes the output tensors were made for
  std::vector<const StoredTensor*> entries_;  // store entries of in_keys_ then out_keys_ (null: look up)
  uint64_t erasures_ = 0;                     // the store's erasures() when entries_ were found
};

}  // namespace jb::sniper

// The generic algorithm: `task.createAlg("JunoBridgeAlg/reco")`.
class JunoBridgeAlg : public jb::sniper::ModelAlg {
 public:
  using ModelAlg::ModelAlg;
};
