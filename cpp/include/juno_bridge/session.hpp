// jb::Session: an opened model behind one interface, whatever runs it (ONNX Runtime, a plugin).
//
// Typical framework use: open in initialize(), run per event in execute() on the same buffers
// (nothing is allocated per call when outputs are given), close in finalize() or by scope.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "juno_bridge/error.hpp"
#include "juno_bridge/runtime.hpp"
#include "juno_bridge/tensor.hpp"

namespace jb {

struct JB_API SessionOptions {
  std::string backend;            // "" chooses by the model: *.onnx -> onnxruntime
  int intra_op_threads = 0;       // 0: the backend's default
  int inter_op_threads = 0;
  std::string optimization = "all";           // disable | basic | extended | all
  std::vector<std::string> providers{"cpu"};  // in order of preference; "cpu" is always available
  std::string onnxruntime;        // ONNX Runtime library to load; "" = $JUNO_BRIDGE_ONNXRUNTIME or the wheel's
  std::string log_level = "warning";          // verbose | info | warning | error | fatal
  std::string execution_mode = "sequential";  // sequential | parallel (inter-op threads need parallel)
  bool global_thread_pool = false;  // share ONNX Runtime's process-wide thread pools (many sessions)
  // providers is an order of preference: the first that initialises is used and each one skipped is
  // logged (source "providers"); with require_providers a provider that cannot be used is an error.
  bool require_providers = false;
  // Sessions of the same model (same file, or same bytes) with the same options share one backend
  // session in the process, reference-counted: it dies with its last Session. false: a session of its own.
  bool shared = true;
  // How run_async runs: "native" through the backend's own asynchronous call where it has one (ONNX
  // Runtime's RunAsync, which needs 2+ intra-op threads; a plugin's run_async, e.g. Triton's
  // async_infer), "pool" by the session's runtime's executor (runtime.hpp), "auto" native except for ONNX
  // Runtime on the CPU, whose RunAsync is slower there than the pool (measured: README "Python").
  std::string async_runs = "auto";
  // bfloat16 tensors as uint16 arrays of their bits, for callers with no bfloat16 type (numpy without
  // ml_dtypes): a uint16 view is taken for a bfloat16 input or output buffer, and the bfloat16 outputs the
  // backend allocates come back labelled uint16. Without it a uint16 view of a bfloat16 tensor is refused.
  bool bfloat16_as_uint16 = false;
  // ONNX Runtime's CUDA provider: the first run is captured as a CUDA graph, later runs replay it (far less
  // launch overhead at small batches). The shapes and the buffers' addresses must stay those of the first
  // run (a bound run: Binding, or the same TensorViews each event), inputs and outputs in CUDA memory.
  // Needs the cuda provider among `providers`; where it is skipped the session runs without graphs.
  bool cuda_graph = false;
  // Where the outputs the backend allocates (those given no buffer) lie: "cpu" (host memory, the default)
  // or "cuda" (on the GPU the model runs on; the Tensor's view says cuda:N). "cuda" needs ONNX Runtime's
  // CUDA provider in use, or a plugin that declares the option (torch) running the model on a GPU: any
  // other session is refused, never given host memory.
  std::string output_device = "cpu";
  // How host arrays reach a session that copies its inputs to a GPU: "off" (the default) hands the
  // caller's memory to the backend as it is; "pinned" copies each pageable host input into a pinned block
  // of the Session's own (and writes each pageable out= output there, then copies it back), so that the
  // GPU reads it by DMA at the bus's speed instead of through the driver's small staging buffer. Large
  // copies are split over a few threads. Memory already pinned (Session::empty) or on a device passes as
  // it is; SessionStats counts what was staged. Needs a backend with pinned memory (ONNX Runtime's CUDA
  // provider in use, a plugin's model on a GPU); where the CUDA provider was asked for and skipped the
  // session runs without staging (logged), any other session is refused. The Session's own option.
  std::string staging = "off";
  // Backend-specific entries, checked by the backend that opens the model: a plugin's own options
  // ("num_runners", "signature"), refused by name unless the plugin declares them; or ONNX Runtime
  // session config entries, whose keys are "<area>.<name>" ("session.intra_op.allow_spinning").
  std::map<std::string, std::string> config;

  // Sets an option from its string form, the spelling the C ABI and the Python keywords share.
  // "config.<key>" sets config[<key>] (Python's config= dict); any other key that is not one of the
  // fields above also goes into config, under its own name.
  void set(const std::string& key, const std::string& value);
  static constexpr std::string_view kConfigPrefix = "config.";
};

struct ModelMetadata {
  std::string producer_name, graph_name, domain, description;
  int64_t version = 0;
  std::map<std::string, std::string> custom;
};

// Counters that let tests prove the zero-copy promise from outside.
struct SessionStats {
  uint64_t tensors_wrapped = 0;  // runtime tensor objects made over caller memory since open
  uint64_t inputs_staged = 0;    // inputs copied into memory not the caller's since open (TensorFlow: unaligned
                                 // ones; option staging=pinned: pageable ones)
  uint64_t bytes_staged = 0;     // option staging=pinned: the bytes copied through its pinned blocks (in and back)
  std::vector<const void*> input_addresses;  // per input, where the runtime reads it (last bound)
  uint64_t backend_id = 0;    // the backend session behind this Session (shared ones have the same id)
  int64_t backend_users = 0;  // the open Sessions that use that backend session (and, on a GPU session,
                              // the Session::empty blocks alive, each of which keeps it loaded)
};

// Backend sessions open in the process now (a shared one counts once).
JB_API int64_t open_backend_count() noexcept;

class Backend;
struct SessionGate;

class JB_API Session {
 public:
  // Opens `model` in the process default runtime, or in `runtime` (runtime.hpp), whose shared backend
  // sessions and executor it then uses; the Session may outlive the Runtime object, closed with it.
  explicit Session(const std::string& model, const SessionOptions& options = {});
  Session(const std::string& model, const SessionOptions& options, Runtime& runtime);
  // Opens a model held in memory (the bytes of an .onnx file); `backend` in options names the kind.
  static Session from_bytes(const void* data, size_t size, const SessionOptions& options = {});
  static Session from_bytes(const void* data, size_t size, const SessionOptions& options, Runtime& runtime);

  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();  // close()s: waits for the runs in flight, asynchronous ones included

  // Releases the model once the runs in flight on other threads have finished; a call that starts
  // after it throws jb::Error "the session is closed". Safe to call from any thread, more than once.
  void close() noexcept;
  bool is_open() const noexcept;

  // The references returned by inputs(), outputs() and backend_name() are valid until close().
  const std::vector<TensorInfo>& inputs() const;
  const std::vector<TensorInfo>& outputs() const;
  ModelMetadata metadata() const;
  const std::string& backend_name() const;
  // The execution providers the backend uses, in order of preference ("cuda", "cpu"); empty for a
  // backend that has no such notion.
  std::vector<std::string> providers() const;
  // The memory run() reads and writes in place: host memory (Device::cpu(), pinned or not) first, then the
  // GPUs the backend computes on (ONNX Runtime with the CUDA provider active: its device). A view on any
  // other device is refused, naming these: never copied.
  std::vector<Device> devices() const;
  bool takes(Device device) const;
  SessionStats stats() const;
  // An uninitialised host tensor for the caller to fill with inputs, in the memory this session reads
  // fastest: page-locked where it copies inputs to a GPU (ONNX Runtime's CUDA provider: view.device is
  // Device::cuda_pinned(), and the copy runs at the bus's speed, not through the driver's staging), plain
  // 64-byte-aligned host memory otherwise. The memory outlives close(); a GPU session's model stays
  // loaded until the last such tensor is released. Throws for an unknown dtype, a negative dim, or a rank
  // or size past the limits.
  Tensor empty(DType dtype, const std::vector<int64_t>& shape) const;
  size_t input_index(std::string_view name) const;   // throws naming the known inputs
  size_t output_index(std::string_view name) const;

  // Every input and every output in model order; outputs are the caller's buffers, written in place.
  void run(const TensorView* inputs, size_t num_inputs, TensorView* outputs, size_t num_outputs);
  void run(const std::vector<TensorView>& inputs, std::vector<TensorView>& outputs) {
    run(inputs.data(), inputs.size(), outputs.data(), outputs.size());
  }

  // The general form: outputs[i] is model output output_index[i]; an output whose data is nullptr is
  // allocated by the backend, filled into outputs[i] and kept alive by owned[i] (owned may be nullptr
  // when every output has caller memory). An allocated output that the model passes straight through
  // from an input points at that input's memory: keep the input alive as long as the output.
  void run(const TensorView* inputs, size_t num_inputs, const int32_t* output_index, TensorView* outputs,
           Tensor* owned, size_t num_outputs);

  // Convenience: every output allocated by the backend.
  std::vector<Tensor> run(const std::vector<TensorView>& inputs);

  // Asynchronous run, the general form above: checks the call now (a bad one throws here), starts it and
  // returns. It runs through the backend's own asynchronous call where the session has one (async_mode()
  // "native": ONNX Runtime's RunAsync, on the session's intra-op threads), else by its runtime's executor
  // (runtime.hpp: the process default's is a pool of $JUNO_BRIDGE_ASYNC_THREADS threads, default the
  // number of cores, at least 2). `done` is called once, on a thread of the backend's or of the executor's
  // (the caller's own, inside run_async, for a runtime of 0 threads), with nullptr or the run's exception;
  // it must not block long (it may hold a runtime thread) and its exceptions are dropped. The Session
  // counts the run in flight until then (close() and the destructor wait for it), and `done` may close the Session.
  // The view and index arrays are copied; what they point at is not: the input and output buffers, and
  // `owned` (an allocated output appears in owned[i].view, outputs[i] is left as given), must stay alive
  // and untouched until `done` is called.
  using RunCallback = std::function<void(std::exception_ptr error)>;
  // How run_async runs for this session, decided at open: "native" (the backend's own asynchronous
  // call) or "pool" (the runtime's executor: backends without one, ONNX Runtime sessions whose intra-op
  // pool has fewer than 2 threads, which its RunAsync refuses).
  const char* async_mode() const;
  void run_async(const TensorView* inputs, size_t num_inputs, const int32_t* output_index, const TensorView* outputs,
                 Tensor* owned, size_t num_outputs, RunCallback done);

 private:
  Session(std::shared_ptr<Backend> backend, const SessionOptions& options, std::shared_ptr<Runtime::State> runtime);
  class InFlight;  // marks one call as running, so close() waits for it (session_gate.hpp)
  // run() after the session is known open and counted in flight.
  void run_open(const TensorView* inputs, size_t num_inputs, const int32_t* output_index, TensorView* outputs,
                Tensor* owned, size_t num_outputs);
  void check_call(const TensorView* inputs, size_t num_inputs, const int32_t* output_index,
                  const TensorView* outputs, const Tensor* owned, size_t num_outputs) const;
  void check_inputs(const TensorView* inputs, size_t num_inputs) const;
  void check_outputs(const TensorView* inputs, size_t num_inputs, const int32_t* output_index,
                     const TensorView* outputs, size_t num_outputs) const;

  // The closing flag, the count of calls in flight and the backend session (shared with the other
  // Sessions of the same model and options in the runtime): shared with run_async completions, which may
  // outlive the Session, and with the runtime, whose close() closes the Session.
  std::shared_ptr<SessionGate> gate_;
  Backend* backend_ = nullptr;                // gate_->backend, used only while counted in flight
  std::shared_ptr<Runtime::State> runtime_;   // its executor runs run_async's work
  std::vector<int32_t> all_outputs_;  // 0..n-1, so the fast path needs no index array per call
  bool bfloat16_as_uint16_ = false;   // SessionOptions::bfloat16_as_uint16: this Session's, not the backend's
};

// Facts about an ONNX Runtime library (the default one when `library` is empty).
struct OnnxRuntimeInfo {
  std::string path, version, build_info;
  uint32_t api_version = 0;
  std::vector<std::string> providers;
};
JB_API OnnxRuntimeInfo onnxruntime_info(const std::string& library = "");

}  // namespace jb
