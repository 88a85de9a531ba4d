// Runtime::State: what a runtime owns, shared with its Sessions (which may outlive the Runtime object).
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "juno_bridge/runtime.hpp"
#include "share_cache.hpp"
#include "worker_pool.hpp"

namespace jb {

struct SessionGate;

struct Runtime::State {
  explicit State(int async_threads);
  explicit State(Executor executor);

  // Runs `task` (which must not throw) by the runtime's executor: its pool, the calling thread, or the
  // caller's executor (if that throws, the task runs here; a task runs once however often it is called).
  void submit(Task task);
  // Counts a newly opened Session in, so that close() closes it; throws once the runtime is closed.
  void enrol(const std::shared_ptr<SessionGate>& gate);
  void check_open() const;
  void close() noexcept;

  // run_async's completions whose `done` has not returned: close() waits for them as well, since a `done`
  // may use what the caller frees once close() returns (all but the ones it is itself called from).
  void completion_started() noexcept;
  void completion_ended() noexcept;
  struct InsideCompletion {  // marks the calling thread as running a `done` of `state` for close()
    explicit InsideCompletion(const State* state) noexcept;
    ~InsideCompletion();
    const State* previous;
    int previous_depth;
  };

  ShareCache cache;
  const char* kind;  // "pool", "caller", "executor"
  std::unique_ptr<WorkerPool> pool;
  Executor executor;

  mutable std::mutex mutex;
  bool closed = false;
  std::vector<std::weak_ptr<SessionGate>> gates;  // the Sessions opened in this runtime

  std::mutex completion_mutex;
  std::condition_variable completions_done;
  int64_t completions = 0;
};

}  // namespace jb
