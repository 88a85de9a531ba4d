// jb::Runtime: the shared backend sessions and the executor of asynchronous runs, owned by the caller.
#include <algorithm>
#include <atomic>
#include <set>
#include <string>

#include "runtime_state.hpp"
#include "session_gate.hpp"

namespace jb {

Runtime::State::State(int async_threads) : kind(async_threads == 0 ? "caller" : "pool") {
  if (async_threads < -1)
    throw Error(ErrorCode::InvalidArgument,
                "async_threads must be -1 (the default), 0 (the calling thread) or a pool size; got " +
                    std::to_string(async_threads));
  if (async_threads != 0)
    pool = std::make_unique<WorkerPool>(async_threads < 0 ? default_async_threads() : unsigned(async_threads));
}

Runtime::State::State(Executor e) : kind("executor"), executor(std::move(e)) {
  if (!executor) throw Error(ErrorCode::InvalidArgument, "the runtime's executor is empty");
}

void Runtime::State::submit(Task task) {
  if (pool) return pool->submit(std::move(task));
  if (!executor) return task();
  // The caller's executor may run the task and then throw, or throw without running it: either way the
  // task runs exactly once.
  auto once = std::make_shared<std::atomic<bool>>(false);
  auto shared_task = std::make_shared<Task>(std::move(task));
  Task guarded = [once, shared_task] {
    if (!once->exchange(true)) (*shared_task)();
  };
  try {
    executor(guarded);
  } catch (...) {
    guarded();
  }
}

void Runtime::State::check_open() const {
  std::lock_guard<std::mutex> lock(mutex);
  if (closed) throw Error(ErrorCode::InvalidArgument, "the runtime is closed: it opens no more sessions");
}

void Runtime::State::enrol(const std::shared_ptr<SessionGate>& gate) {
  std::lock_guard<std::mutex> lock(mutex);
  if (closed) throw Error(ErrorCode::InvalidArgument, "the runtime is closed: it opens no more sessions");
  gates.erase(std::remove_if(gates.begin(), gates.end(), [](const auto& g) { return g.expired(); }), gates.end());
  gates.push_back(gate);
}

namespace {

// The runtime whose `done` this thread is running, and how many of its completions are nested here.
thread_local const Runtime::State* inside_completion = nullptr;
thread_local int inside_depth = 0;

}  // namespace

Runtime::State::InsideCompletion::InsideCompletion(const State* state) noexcept
    : previous(inside_completion), previous_depth(inside_depth) {
  inside_depth = state == inside_completion ? inside_depth + 1 : 1;
  inside_completion = state;
}

Runtime::State::InsideCompletion::~InsideCompletion() {
  inside_completion = previous;
  inside_depth = previous_depth;
}

void Runtime::State::completion_started() noexcept {
  std::lock_guard<std::mutex> lock(completion_mutex);
  ++completions;
}

void Runtime::State::completion_ended() noexcept {
  std::lock_guard<std::mutex> lock(completion_mutex);
  --completions;
  completions_done.notify_all();  // close() may wait for 0, or for the ones its own thread is in
}

void Runtime::State::close() noexcept {
  std::vector<std::weak_ptr<SessionGate>> open;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (closed) return;
    closed = true;
    open.swap(gates);
  }
  for (const auto& weak : open)
    if (auto gate = weak.lock()) gate->close();  // waits for that Session's runs in flight
  {
    // Then for their completions: a run leaves flight before its `done` is called (which may close the
    // Session), and close() must not return while a `done` still runs, but for those this thread is in.
    const int64_t own = inside_completion == this ? inside_depth : 0;
    std::unique_lock<std::mutex> lock(completion_mutex);
    completions_done.wait(lock, [&] { return completions <= own; });
  }
  if (pool) pool->stop();
}

Runtime::Runtime(int async_threads) : state_(std::make_shared<State>(async_threads)) {}
Runtime::Runtime(Executor executor) : state_(std::make_shared<State>(std::move(executor))) {}
Runtime::~Runtime() { close(); }

Runtime& Runtime::process_default() {
  static Runtime* runtime = new Runtime(-1);  // never destroyed: a run may still finish during process exit
  return *runtime;
}

void Runtime::close() noexcept {
  if (this == &process_default()) return;  // lives for the process
  state_->close();
}

bool Runtime::is_open() const noexcept {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return !state_->closed;
}

int64_t Runtime::open_backend_count() const noexcept {
  std::vector<std::shared_ptr<SessionGate>> gates;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    for (const auto& weak : state_->gates)
      if (auto gate = weak.lock()) gates.push_back(std::move(gate));
  }
  std::set<const Backend*> backends;
  for (const auto& gate : gates) {
    std::lock_guard<std::mutex> lock(gate->mutex);
    if (gate->backend) backends.insert(gate->backend.get());
  }
  return static_cast<int64_t>(backends.size());
}

// The process default's pool, for a backend's work that must not run on its own threads (backend.hpp).
void submit_to_worker_pool(std::function<void()> task) { Runtime::process_default().state()->submit(std::move(task)); }

const char* Runtime::executor_kind() const noexcept { return state_->kind; }
int Runtime::async_threads() const noexcept { return state_->pool ? int(state_->pool->size()) : 0; }
int Runtime::started_threads() const noexcept { return state_->pool ? state_->pool->started() : 0; }

}  // namespace jb
