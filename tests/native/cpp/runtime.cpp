// jb::Runtime from C++, built against the installed package and run without Python.
//
//   runtime_cpp MODEL
//
// MODEL takes x float32 [batch, 8] and gives y [batch, 4] and s [batch] (helpers/native_build.py's
// write_mlp_model). Checks: sharing inside one runtime and not across; each executor kind runs run_async's
// work where it says (a pool of N threads, the calling thread, the caller's executor); the threads the
// process has (/proc/self/task) grow by no more than the pool's size; close() waits for the runs in flight
// and closes the runtime's Sessions; results equal a plain synchronous run bit for bit.
// Prints PASS/FAIL lines, then "N passed, M failed".
#include <dirent.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "checks.hpp"
#include "juno_bridge/runtime.hpp"
#include "juno_bridge/session.hpp"

namespace {

using jb_test::check;

int thread_count() {
  int n = 0;
  if (DIR* dir = opendir("/proc/self/task")) {
    while (dirent* e = readdir(dir)) n += e->d_name[0] != '.';
    closedir(dir);
  }
  return n;
}

// Threads named as the runtime's pool names its own.
int pool_thread_count() {
  int n = 0;
  if (DIR* dir = opendir("/proc/self/task")) {
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      const std::string path = std::string("/proc/self/task/") + e->d_name + "/comm";
      char name[32] = {};
      if (FILE* f = std::fopen(path.c_str(), "r")) {
        n += std::fgets(name, sizeof name, f) != nullptr && std::strncmp(name, "jb-async", 8) == 0;
        std::fclose(f);
      }
    }
    closedir(dir);
  }
  return n;
}

constexpr int64_t kBatch = 16, kFeatures = 8, kOutputs = 4;

struct Buffers {
  std::vector<float> x = std::vector<float>(kBatch * kFeatures), y = std::vector<float>(kBatch * kOutputs),
                     s = std::vector<float>(kBatch);
  explicit Buffers(int seed) {
    for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 37 + seed) % 101) / 16.0f - 3.0f;
  }
  std::vector<jb::TensorView> inputs() { return {jb::TensorView(x.data(), jb::DType::Float32, {kBatch, kFeatures})}; }
  std::vector<jb::TensorView> outputs() {
    return {jb::TensorView(y.data(), jb::DType::Float32, {kBatch, kOutputs}),
            jb::TensorView(s.data(), jb::DType::Float32, {kBatch})};
  }
};

const int32_t kAllOutputs[] = {0, 1};

// Runs `n` run_async on `session`, waits for all, and says whether each result equals `expected`.
bool run_many_async(jb::Session& session, int n, const Buffers& expected, std::vector<std::thread::id>* done_on) {
  std::vector<Buffers> buffers(n, Buffers(1));
  std::mutex mutex;
  std::condition_variable cv;
  int finished = 0;
  bool all_ok = true;
  for (auto& b : buffers) {
    auto in = b.inputs();
    auto out = b.outputs();
    session.run_async(in.data(), in.size(), kAllOutputs, out.data(), nullptr, out.size(), [&](std::exception_ptr e) {
      std::lock_guard<std::mutex> lock(mutex);
      all_ok &= e == nullptr;
      if (done_on) done_on->push_back(std::this_thread::get_id());
      ++finished;
      cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mutex);
  cv.wait(lock, [&] { return finished == n; });
  for (const auto& b : buffers) all_ok &= b.y == expected.y && b.s == expected.s;
  return all_ok;
}

// A small executor of the caller's own: one thread, one queue (as a framework's task queue would be).
class CallerExecutor {
 public:
  CallerExecutor() : thread_([this] { serve(); }) {}
  ~CallerExecutor() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void submit(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(task));
      ++submitted_;
    }
    cv_.notify_all();
  }
  std::thread::id id() const { return thread_.get_id(); }
  int submitted() {
    std::lock_guard<std::mutex> lock(mutex_);
    return submitted_;
  }

 private:
  void serve() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  int submitted_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODEL\n", argv[0]);
    return 2;
  }
  const std::string model = argv[1];
  // The counts below are of our threads: a sanitizer runtime may start a helper thread of its own at the
  // process's first thread creation (TSan does), so one thread is created and joined before any count.
  std::thread([] {}).join();
  jb::SessionOptions one_thread;
  one_thread.intra_op_threads = 1;
  one_thread.async_runs = "pool";

  Buffers expected(1);
  {
    jb::Session plain(model, one_thread);
    auto in = expected.inputs();
    auto out = expected.outputs();
    plain.run(in, out);
  }

  // Sharing: inside one runtime, one backend session; across runtimes, none.
  {
    jb::Runtime a(1), b(1);
    jb::Session a1(model, one_thread, a), a2(model, one_thread, a), b1(model, one_thread, b);
    jb::Session d1(model, one_thread);  // the process default runtime
    check(a1.stats().backend_id == a2.stats().backend_id, "two Sessions of one runtime share a backend session");
    check(a1.stats().backend_id != b1.stats().backend_id, "two runtimes do not share");
    check(d1.stats().backend_id != a1.stats().backend_id, "the process default does not share with a runtime");
    check(a.open_backend_count() == 1 && b.open_backend_count() == 1, "each runtime counts its own backend session");
    check(a1.stats().backend_users == 2, "backend_users counts the Sessions of that runtime");
  }

  // A pool of 2: its threads start on first use, no more than 2, and run the work.
  {
    const int before = thread_count();
    jb::Runtime pool(2);
    check(pool.started_threads() == 0 && thread_count() == before, "a pool starts no thread before the first run");
    jb::Session session(model, one_thread, pool);
    std::vector<std::thread::id> done_on;
    check(run_many_async(session, 64, expected, &done_on), "pool: 64 run_async equal the synchronous run");
    const int during = thread_count();
    check(pool.started_threads() >= 1 && pool.started_threads() <= 2,
          "pool: at most 2 threads started (" + std::to_string(pool.started_threads()) + ")");
    check(during - before <= 2,
          "pool: the process has at most 2 more threads (" + std::to_string(during - before) + ")");
    check(pool_thread_count() == pool.started_threads(),
          "pool: its threads are named jb-async (" + std::to_string(pool_thread_count()) + ")");
    bool off_main = true;
    for (auto id : done_on) off_main &= id != std::this_thread::get_id();
    check(off_main, "pool: done is called on the pool's threads");
    pool.close();
    check(thread_count() == before && pool_thread_count() == 0, "pool: close() joins its threads");
  }

  // Size 0: the work runs on the calling thread, before run_async returns.
  {
    const int before = thread_count();
    jb::Runtime inline_runtime(0);
    check(std::strcmp(inline_runtime.executor_kind(), "caller") == 0, "size 0 is the 'caller' executor");
    jb::Session session(model, one_thread, inline_runtime);
    std::vector<std::thread::id> done_on;
    check(run_many_async(session, 8, expected, &done_on), "caller: 8 run_async equal the synchronous run");
    bool here = done_on.size() == 8;
    for (auto id : done_on) here &= id == std::this_thread::get_id();
    check(here, "caller: done is called on the calling thread");
    check(thread_count() == before, "caller: no thread started");
  }

  // The caller's executor: it receives every task and runs them on its own thread.
  {
    CallerExecutor executor;
    const int before = thread_count();
    jb::Runtime runtime([&executor](jb::Runtime::Task task) { executor.submit(std::move(task)); });
    check(std::strcmp(runtime.executor_kind(), "executor") == 0, "an executor runtime says so");
    jb::Session session(model, one_thread, runtime);
    std::vector<std::thread::id> done_on;
    check(run_many_async(session, 32, expected, &done_on), "executor: 32 run_async equal the synchronous run");
    check(executor.submitted() == 32, "executor: received 32 tasks (" + std::to_string(executor.submitted()) + ")");
    bool there = done_on.size() == 32;
    for (auto id : done_on) there &= id == executor.id();
    check(there, "executor: done is called on the executor's thread");
    check(thread_count() == before, "executor: the runtime started no thread");
  }

  // close(): waits for the runs in flight, then closes the runtime's Sessions; no new ones open.
  {
    CallerExecutor executor;
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    // Holds each task until released, so that runs are in flight when close() starts.
    jb::Runtime runtime([&](jb::Runtime::Task task) {
      executor.submit([released, task = std::move(task)] {
        released.wait();
        task();
      });
    });
    jb::Session session(model, one_thread, runtime);
    Buffers b(1);
    auto in = b.inputs();
    auto out = b.outputs();
    std::atomic<int> done{0};
    // Each `done` takes a while after its run left flight: close() must wait for the `done`s too.
    for (int i = 0; i < 4; ++i)
      session.run_async(in.data(), 1, kAllOutputs, out.data(), nullptr, 2, [&](std::exception_ptr) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        ++done;
      });
    std::thread closer([&] { runtime.close(); });
    for (int i = 0; i < 1000 && runtime.is_open(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    check(!runtime.is_open(), "close(): the runtime refuses new work at once");
    check(done.load() == 0, "close(): the runs are still held");
    release.set_value();
    closer.join();
    check(done.load() == 4, "close(): returned after the 4 runs in flight finished");
    check(!session.is_open(), "close(): the runtime's Session is closed");
    check(runtime.open_backend_count() == 0, "close(): the backend session is released");
    try {
      session.run(in, out);
      check(false, "a closed runtime's Session refuses to run");
    } catch (const jb::Error& e) {
      check(std::string(e.what()).find("the session is closed") != std::string::npos, std::string("run: ") + e.what());
    }
    try {
      jb::Session late(model, one_thread, runtime);
      check(false, "a closed runtime opens no Session");
    } catch (const jb::Error& e) {
      check(std::string(e.what()).find("the runtime is closed") != std::string::npos, std::string("open: ") + e.what());
    }
  }

  // A `done` may close its own runtime (on the pool's thread): no deadlock, and the runtime ends closed.
  {
    jb::Runtime runtime(1);
    jb::Session session(model, one_thread, runtime);
    Buffers b(1);
    auto in = b.inputs();
    auto out = b.outputs();
    std::promise<bool> closed_inside;
    session.run_async(in.data(), 1, kAllOutputs, out.data(), nullptr, 2, [&](std::exception_ptr) {
      runtime.close();
      closed_inside.set_value(!runtime.is_open());
    });
    check(closed_inside.get_future().get() && !session.is_open(), "a done that closes its runtime returns");
  }

  // A Session may outlive its Runtime object: closed with it, destroyed later without harm.
  {
    auto runtime = std::make_unique<jb::Runtime>(1);
    jb::Session session(model, one_thread, *runtime);
    runtime.reset();
    check(!session.is_open(), "a Session outliving its Runtime is closed");
  }

  return jb_test::summary();
}
