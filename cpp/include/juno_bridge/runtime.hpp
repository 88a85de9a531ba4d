// jb::Runtime: what Sessions share, owned by whoever creates it (a framework's service, a test).
//
// A runtime holds the cache of shared backend sessions (Sessions of the same model and options opened in
// one runtime share one backend session; two runtimes never share) and the executor that runs
// Session::run_async's work: a worker pool of its own of a given size, the caller's thread (size 0), or
// the caller's executor (a TBB arena, a SNiPER task's thread). The process default runtime
// (Runtime::process_default(), what a Session opened without one uses) keeps a pool sized by
// $JUNO_BRIDGE_ASYNC_THREADS, default the number of cores and at least 2, and lives for the process.
//
// ONNX Runtime allows one environment per process: its environment, its global thread pools
// (SessionOptions::global_thread_pool) and the log sink (juno_bridge.h's jb_set_log_callback) stay
// process-wide, shared by every runtime.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "juno_bridge/error.hpp"

namespace jb {

class JB_API Runtime {
 public:
  using Task = std::function<void()>;
  // Arranges for task() to run once, on any thread, soon; it must not run it inline when the caller
  // cannot block (it may, but run_async then returns only after the run). Never throws.
  using Executor = std::function<void(Task task)>;

  // async_threads: the size of the runtime's worker pool (threads start on first use); 0 runs the
  // asynchronous work on the thread that calls run_async, before it returns; -1 the process default's
  // rule ($JUNO_BRIDGE_ASYNC_THREADS, else the number of cores, at least 2).
  explicit Runtime(int async_threads = -1);
  // The caller's executor runs the asynchronous work; the runtime starts no thread.
  explicit Runtime(Executor executor);
  ~Runtime();  // close()
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // The runtime of Sessions opened without one. Never destroyed; a forked child gets fresh pool threads.
  static Runtime& process_default();

  // Refuses new Sessions, waits for the runs in flight of this runtime's Sessions (asynchronous ones
  // included, until their `done` has returned), then closes those Sessions (a later call on one throws
  // "the session is closed") and stops the pool's threads. Safe from any thread, more than once, and from
  // a `done` of its own (which it then does not wait for).
  void close() noexcept;
  bool is_open() const noexcept;

  // Backend sessions open in this runtime now (a shared one counts once).
  int64_t open_backend_count() const noexcept;
  // "pool" (the runtime's threads), "caller" (size 0) or "executor" (the caller's).
  const char* executor_kind() const noexcept;
  // The pool's size ("pool"), else 0; and the pool threads started so far.
  int async_threads() const noexcept;
  int started_threads() const noexcept;

  struct State;  // shared with the runtime's Sessions, which may outlive the Runtime object (runtime.cpp)
  const std::shared_ptr<State>& state() const noexcept { return state_; }

 private:
  std::shared_ptr<State> state_;
};

}  // namespace jb
