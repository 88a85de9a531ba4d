// The ONNX Runtime backend (ort_backend.hpp), asynchronous runs: run_async through ONNX Runtime's
// RunAsync, its completion on a thread of the session's intra-op pool, and the probe at open that tells
// whether this session's RunAsync can be used.
#include <condition_variable>

#include "juno_bridge/juno_bridge.h"
#include "log.hpp"
#include "ort_backend.hpp"

namespace jb {

thread_local bool g_in_run_async_completion = false;  // see ort_backend.hpp

// One RunAsync in flight: the arrays the runtime reads until it completes, and our OrtValues.
struct OrtBackend::AsyncRun {
  AsyncRun(OrtBackend& b, Tensor* o, Done d) : backend(&b), api(&b.api_), owned(o), done(std::move(d)) {}
  ~AsyncRun() {
    for (OrtValue* v : in_values) api->ReleaseValue(v);
    for (OrtValue* v : out_values)  // ours over out= buffers, and made ones not handed to the caller
      if (v) api->ReleaseValue(v);
  }
  OrtBackend* backend;
  const JbOrtApi* api;  // the runtime's, alive for the process (the backend may go inside `done`)
  Tensor* owned;
  Done done;
  std::vector<TensorView> inputs, outputs;
  std::vector<int32_t> index;
  std::vector<const char*> out_names;
  std::vector<OrtValue*> in_values;
  std::vector<OrtValue*> out_values;
  // Released before RunAsync, acquired first by the completion: the hand-over the runtime's own queue
  // makes, stated where a thread sanitizer sees it (the runtime is not instrumented).
  std::atomic<bool> handed{false};
};

void OrtBackend::run_async(const TensorView* inputs, size_t num_inputs, const int32_t* output_index,
                           const TensorView* outputs, Tensor* owned, size_t num_outputs, Done done) {
  auto run = std::make_unique<AsyncRun>(*this, owned, std::move(done));
  run->inputs.assign(inputs, inputs + num_inputs);
  run->outputs.assign(outputs, outputs + num_outputs);
  run->index.assign(output_index, output_index + num_outputs);
  run->in_values.reserve(num_inputs);
  for (size_t i = 0; i < num_inputs; ++i) run->in_values.push_back(make_value(inputs[i]));
  run->out_values.assign(num_outputs, nullptr);
  for (size_t i = 0; i < num_outputs; ++i) {
    run->out_names.push_back(output_names_[output_index[i]]);
    if (outputs[i].data) run->out_values[i] = make_value(outputs[i]);
  }
  // Once RunAsync has it, the run may complete and release this backend before RunAsync returns: after
  // the call, only locals.
  const OrtRuntime& rt = rt_;
  auto* run_async_fn = api_.RunAsync;
  OrtSession* session = session_;
  const OrtRunOptions* options = run_options_;
  const char* const* in_names = input_names_.data();
  OrtValue** in_values = run->in_values.data();
  const char* const* out_names = run->out_names.data();
  OrtValue** out_values = run->out_values.data();
  AsyncRun* handed = run.get();
  handed->handed.store(true, std::memory_order_release);
  OrtStatus* refused = run_async_fn(session, options, in_names, in_values, num_inputs, out_names, num_outputs,
                                    out_values, &complete_run_async, handed);
  if (refused == nullptr) {
    run.release();  // the runtime calls complete_run_async with it
    return;
  }
  rt.check(refused, ErrorCode::Runtime, "starting the model asynchronously");
}

// The end of a RunAsync, on a runtime thread: nothing may escape, no Python may run without the GIL
// (`done` takes it if it needs it). The backend's own work comes first: `done` may release it.
void OrtBackend::complete_run_async(void* user_data, OrtValue** values, size_t, OrtStatus* status) noexcept {
  std::unique_ptr<AsyncRun> run(static_cast<AsyncRun*>(user_data));
  (void)run->handed.load(std::memory_order_acquire);
  g_in_run_async_completion = true;
  std::exception_ptr error;
  try {
    run->backend->finish_run_async(*run, values, status);
  } catch (...) {
    error = std::current_exception();
  }
  Done done = std::move(run->done);
  run.reset();
  try {
    done(error);
  } catch (...) {
  }
  g_in_run_async_completion = false;
}

// What run does after Run, for a RunAsync: the allocated outputs to the caller, pass-through out= filled.
void OrtBackend::finish_run_async(AsyncRun& run, OrtValue** values, OrtStatus* status) {
  rt_.check(status, ErrorCode::Runtime, "running the model");
  const size_t n = run.outputs.size();
  for (size_t i = 0; i < n; ++i)
    if (run.outputs[i].data == nullptr) {
      run.owned[i].holder.reset(values[i], api_.ReleaseValue);
      values[i] = nullptr;  // the Tensor has it now
    }
  for (size_t i = 0; i < n; ++i) {
    const int32_t k = run.index[i];
    if (run.outputs[i].data == nullptr)
      adopt(static_cast<OrtValue*>(run.owned[i].holder.get()), outputs_[k], run.outputs[i], run.owned[i]);
    else if (const int j = passthrough_[k]; j >= 0) fill_passthrough(outputs_[k].name, run.outputs[i], run.inputs[j]);
  }
}

// RunAsync runs on the session's intra-op pool and is refused when that pool has fewer than 2 threads
// (ONNX Runtime 1.16 to 1.31: intra_op_threads=1, or a default on a one-core machine). Asked once at
// open, with a run of no outputs: refused at once (then the worker pool serves this session), or started
// and failed in the pool ("at least one output"), which is awaited.
bool OrtBackend::probe_run_async() {
  struct Probe {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    std::atomic<const JbOrtApi*> api;  // the hand-over to the runtime's thread (see AsyncRun::handed)
  } probe;
  probe.api.store(&api_, std::memory_order_release);
  auto on_done = [](void* user_data, OrtValue**, size_t, OrtStatus* status) {
    auto* p = static_cast<Probe*>(user_data);
    const JbOrtApi* api = p->api.load(std::memory_order_acquire);
    if (status) api->ReleaseStatus(status);
    std::lock_guard<std::mutex> lock(p->mutex);
    p->done = true;
    p->done_cv.notify_one();
  };
  OrtStatus* refused = api_.RunAsync(session_, run_options_, nullptr, nullptr, 0, nullptr, 0, nullptr, on_done, &probe);
  if (refused != nullptr) {
    const std::string line = std::string("run_async of this session uses the worker pool: ONNX Runtime's RunAsync "
                                         "refuses it (") + api_.GetErrorMessage(refused) + ")";
    api_.ReleaseStatus(refused);
    log_message(JB_LOG_VERBOSE, "async", line.c_str());
    return false;
  }
  std::unique_lock<std::mutex> lock(probe.mutex);
  probe.done_cv.wait(lock, [&] { return probe.done; });
  return true;
}

}  // namespace jb
