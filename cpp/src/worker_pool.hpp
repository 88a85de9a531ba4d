// A fixed set of threads serving one queue: the executor of a runtime that has a pool (runtime.hpp).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace jb {

class WorkerPool {
 public:
  // `name`: what the threads are called (pthread_setname_np: top -H, gdb), at most 15 characters.
  explicit WorkerPool(unsigned threads, const char* name = "jb-async");
  ~WorkerPool();  // stop()
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task` (it must not throw); starts one more thread while there are fewer than the pool's size
  // and no idle one. In a forked child, the parent's threads do not exist: a new set starts.
  void submit(std::function<void()> task);
  // Runs the queued tasks, then ends and joins the threads (detached instead when called from one of
  // them); a later submit runs its task on the caller's thread.
  void stop() noexcept;

  unsigned size() const noexcept { return size_; }
  int started() const noexcept { return started_.load(); }

 private:
  // The queue and threads of one process, shared by its threads: it goes with the last of them (or with
  // stop(), once they are joined). A forked child leaves its parent's behind (never destroyed there: the
  // parent's threads still hold it in the child's copy of memory, and its mutex may have been held at the
  // fork) and makes its own.
  struct Crew {
    Crew(pid_t p, const char* n) : pid(p), name(n) {}
    const pid_t pid;
    const char* const name;
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<std::function<void()>> queue;
    std::vector<std::thread> threads;
    unsigned idle = 0;
    bool stopping = false;
  };
  std::shared_ptr<Crew> crew();  // nullptr once stopped
  static void serve(Crew& crew);

  const unsigned size_;
  const char* const name_;
  std::atomic<int> started_{0};
  std::mutex crew_mutex_;
  std::shared_ptr<Crew> crew_;
  bool stopped_ = false;
};

// $JUNO_BRIDGE_ASYNC_THREADS, else the number of cores, at least 2: the process default runtime's pool.
unsigned default_async_threads();

}  // namespace jb
