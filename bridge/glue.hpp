// What the Cython module calls: the core's entry points wrapped so that no C++ exception crosses into
// Cython. Each returns 0 or a jb_status and fills `status`, which _core.pyx turns into the matching
// Python exception in one place (raise_status).
#pragma once

#include <Python.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>
#include <string>

#include "juno_bridge/runtime.hpp"
#include "juno_bridge/session.hpp"

namespace jb {

struct Status {
  int code = 0;
  int backend_code = 0;
  std::string message;
};

// The exception in flight into `status` by the core's one translator (error.hpp).
inline int fail_with_current(Status* status) noexcept {
  status->code = status_of_current_exception(JB_ERROR_RUNTIME, status->message, status->backend_code);
  return status->code;
}

#define JB_GUARD(body)                 \
  try {                                \
    body;                              \
    return 0;                          \
  } catch (...) {                      \
    return fail_with_current(status);  \
  }

inline int set_option(SessionOptions* options, const std::string& key, const std::string& value, Status* status) noexcept {
  JB_GUARD(options->set(key, value))
}

// `runtime`: nullptr for the process default.
inline int open_session(const std::string& model, const SessionOptions& options, Runtime* runtime,
                        std::shared_ptr<Session>* out, Status* status) noexcept {
  JB_GUARD(*out = std::make_shared<Session>(model, options, runtime ? *runtime : Runtime::process_default()))
}

inline int open_session_bytes(const char* data, size_t size, const SessionOptions& options, Runtime* runtime,
                              std::shared_ptr<Session>* out, Status* status) noexcept {
  JB_GUARD(*out = std::make_shared<Session>(
               Session::from_bytes(data, size, options, runtime ? *runtime : Runtime::process_default())))
}

inline int make_runtime(int async_threads, std::unique_ptr<Runtime>* out, Status* status) noexcept {
  JB_GUARD(*out = std::make_unique<Runtime>(async_threads))
}

// A Python executor: `call(executor, task)` hands the task to it (taking ownership of `task` whatever
// happens) and returns 0, or -1 when the executor raised; then the runtime runs the task itself.
using ExecutorCall = int (*)(void* executor, Runtime::Task* task);  // never throws (Cython's noexcept)
inline int make_runtime_with_executor(ExecutorCall call, void* executor, std::unique_ptr<Runtime>* out,
                                      Status* status) noexcept {
  JB_GUARD(*out = std::make_unique<Runtime>([call, executor](Runtime::Task task) {
    if (call(executor, new Runtime::Task(std::move(task))) != 0)
      throw Error(ErrorCode::Runtime, "the runtime's executor raised");
  }))
}

inline void run_task(Runtime::Task* task) noexcept { (*task)(); }

// Copies: the Session's runtime may close it on another thread at any time.
inline int session_signature(const Session& session, std::vector<TensorInfo>* inputs, std::vector<TensorInfo>* outputs,
                             std::string* backend, Status* status) noexcept {
  JB_GUARD(*inputs = session.inputs(); *outputs = session.outputs(); *backend = session.backend_name())
}

inline int session_metadata(const Session& session, ModelMetadata* out, Status* status) noexcept {
  JB_GUARD(*out = session.metadata())
}

inline int session_stats(const Session& session, SessionStats* out, Status* status) noexcept {
  JB_GUARD(*out = session.stats())
}

inline int session_empty(const Session& session, DType dtype, const std::vector<int64_t>& shape, Tensor* out,
                         Status* status) noexcept {
  JB_GUARD(*out = session.empty(dtype, shape))
}

inline int run_session(Session& session, const jb_tensor_view* inputs, size_t num_inputs, const int32_t* output_index,
                       jb_tensor_view* outputs, Tensor* owned, size_t num_outputs, Status* status) noexcept {
  JB_GUARD(session.run(from_c(inputs), num_inputs, output_index, from_c(outputs), owned, num_outputs))
}

// One call of Session.run or run_async as the core takes it, filled by bridge/_calls.pxi: the views of
// the caller's arrays (inputs in model order, outputs as requested; inline room for a few, which is most
// calls, and the heap beyond), the outputs' index, the Tensors that receive the outputs the runtime
// allocates, and the temporary arrays over buffer-protocol objects the views point into. A local of
// Session.run (nothing allocated per call) or a member of run_async's _Call; made and destroyed with the
// GIL held, since it holds the temporaries.
class CallViews {
 public:
  static constexpr size_t kInline = 4;

  jb_tensor_view* inputs = nullptr;
  jb_tensor_view* outputs = nullptr;
  const int32_t* output_index = nullptr;
  Tensor* owned = nullptr;  // null: every output goes into the caller's buffer
  size_t num_inputs = 0;
  size_t num_outputs = 0;
  PyObject* temporaries = nullptr;  // a list, made on first need, or null

  CallViews() = default;
  CallViews(const CallViews&) = delete;
  CallViews& operator=(const CallViews&) = delete;
  ~CallViews() { Py_XDECREF(temporaries); }

  jb_tensor_view* input_room(size_t n) {
    num_inputs = n;
    return inputs = room(n, inputs_inline_, inputs_heap_);
  }
  jb_tensor_view* output_room(size_t n) {
    num_outputs = n;
    return outputs = room(n, outputs_inline_, outputs_heap_);
  }
  // Tensors for the outputs the runtime allocates (those whose view has no data), or none.
  void allocate_outputs(bool any) {
    if (any) {
      owned_.resize(num_outputs);
      owned = owned_.data();
    } else {
      owned = nullptr;
    }
  }

 private:
  static jb_tensor_view* room(size_t n, jb_tensor_view* inline_room, std::vector<jb_tensor_view>& heap) {
    if (n <= kInline) return inline_room;
    heap.resize(n);
    return heap.data();
  }
  jb_tensor_view inputs_inline_[kInline];
  jb_tensor_view outputs_inline_[kInline];
  std::vector<jb_tensor_view> inputs_heap_, outputs_heap_;
  std::vector<Tensor> owned_;
};

// A Python thread state kept for the life of a thread that is not Python's own (a runtime's or the worker
// pool's) and completes runs: taking the GIL there then costs what it costs a Python thread, instead of
// making and freeing a thread state per completion (measured, tiny model: 31 -> 18 us per run_async).
// A thread that ends cannot take the GIL to free its state (the thread releasing a runtime's pool may
// hold it while it joins that thread): it leaves it to the next completion, which holds the GIL.
class ThreadStateForCompletions {
 public:
  static void ensure() {
    thread_local ThreadStateForCompletions kept;
    if (kept.tstate_ == nullptr && PyGILState_GetThisThreadState() == nullptr) {
      PyGILState_Ensure();                 // makes the thread state, holding the GIL
      kept.tstate_ = PyEval_SaveThread();  // keeps it, without the GIL
    }
  }

  // With the GIL: frees the states of the threads that have ended since.
  static void free_ended() {
    if (ended_count().load(std::memory_order_acquire) == 0) return;
    std::vector<PyThreadState*> states;
    {
      std::lock_guard<std::mutex> lock(ended_mutex());
      states.swap(ended());
      ended_count().store(0, std::memory_order_release);
    }
    for (PyThreadState* t : states) {
      PyThreadState_Clear(t);
      PyThreadState_Delete(t);
    }
  }

  ~ThreadStateForCompletions() {
    if (tstate_ == nullptr) return;
    std::lock_guard<std::mutex> lock(ended_mutex());
    ended().push_back(tstate_);
    ended_count().fetch_add(1, std::memory_order_release);
  }

 private:
  static std::mutex& ended_mutex() {
    static std::mutex m;
    return m;
  }
  static std::vector<PyThreadState*>& ended() {
    static auto* v = new std::vector<PyThreadState*>;  // never destroyed: threads end during exit too
    return *v;
  }
  static std::atomic<size_t>& ended_count() {
    static std::atomic<size_t> n{0};
    return n;
  }
  PyThreadState* tstate_ = nullptr;
};

// Session::run_async with a C completion (Cython makes no std::function): `done` gets the run's status,
// filled as every entry point here fills it, on the thread that completes the run.
using AsyncDone = void (*)(void* user_data, Status* status);
inline int run_session_async(Session& session, const jb_tensor_view* inputs, size_t num_inputs,
                             const int32_t* output_index, const jb_tensor_view* outputs, Tensor* owned,
                             size_t num_outputs, AsyncDone done, void* user_data, Status* status) noexcept {
  JB_GUARD(session.run_async(from_c(inputs), num_inputs, output_index, from_c(outputs), owned, num_outputs,
                             [done, user_data](std::exception_ptr error) {
                               Status result;
                               if (error) {
                                 try {
                                   std::rethrow_exception(error);
                                 } catch (...) {
                                   fail_with_current(&result);
                                 }
                               }
                               ThreadStateForCompletions::ensure();
                               done(user_data, &result);
                             }))
}

inline void free_ended_thread_states() noexcept { ThreadStateForCompletions::free_ended(); }

inline int get_onnxruntime_info(const std::string& library, OnnxRuntimeInfo* out, Status* status) noexcept {
  JB_GUARD(*out = onnxruntime_info(library))
}

}  // namespace jb
