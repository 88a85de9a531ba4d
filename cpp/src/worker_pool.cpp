// WorkerPool: threads started on demand up to a fixed size, one queue, fork-aware.
#include "worker_pool.hpp"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace jb {

unsigned default_async_threads() {
  if (const char* env = std::getenv("JUNO_BRIDGE_ASYNC_THREADS"); env && std::atoi(env) > 0)
    return static_cast<unsigned>(std::atoi(env));
  return std::max(2u, std::thread::hardware_concurrency());
}

WorkerPool::WorkerPool(unsigned threads, const char* name) : size_(std::max(1u, threads)), name_(name) {}

WorkerPool::~WorkerPool() { stop(); }

std::shared_ptr<WorkerPool::Crew> WorkerPool::crew() {
  std::lock_guard<std::mutex> lock(crew_mutex_);
  if (stopped_) return nullptr;
  if (crew_ == nullptr || crew_->pid != getpid()) {
    if (crew_ != nullptr) {  // the parent's crew is left as it is, unreachable
      new std::shared_ptr<Crew>(std::move(crew_));  // never released here (see Crew)
      started_.store(0);
    }
    crew_ = std::make_shared<Crew>(getpid(), name_);
  }
  return crew_;
}

void WorkerPool::submit(std::function<void()> task) {
  const std::shared_ptr<Crew> crew_now = crew();
  if (crew_now == nullptr) return task();  // stopped: the task still runs, here (its run's `done` is owed)
  Crew& c = *crew_now;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    c.queue.push_back(std::move(task));
    // A thread is started only when none is idle: a pool that serves one run at a time keeps one thread.
    if (c.idle < c.queue.size() && c.threads.size() < size_) {
      c.threads.emplace_back([crew_now] { serve(*crew_now); });
      started_.fetch_add(1);
      return;  // the new thread takes the task
    }
  }
  c.ready.notify_one();
}

void WorkerPool::serve(Crew& c) {
  pthread_setname_np(pthread_self(), c.name);  // what top -H, gdb and /proc/<pid>/task/*/comm show
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(c.mutex);
      ++c.idle;
      c.ready.wait(lock, [&c] { return !c.queue.empty() || c.stopping; });
      --c.idle;
      if (c.queue.empty()) return;  // stopping, nothing left
      task = std::move(c.queue.front());
      c.queue.pop_front();
    }
    task();  // never throws: run_async's task catches everything
  }
}

void WorkerPool::stop() noexcept {
  std::shared_ptr<Crew> c;
  {
    std::lock_guard<std::mutex> lock(crew_mutex_);
    stopped_ = true;
    c = crew_;
    if (c == nullptr || c->pid != getpid()) return;  // none started here, or already stopped
    crew_ = nullptr;                                 // this call owns it now
  }
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(c->mutex);
    c->stopping = true;
    threads.swap(c->threads);
  }
  c->ready.notify_all();
  bool from_own_thread = false;
  for (auto& t : threads) from_own_thread |= t.get_id() == std::this_thread::get_id();
  for (auto& t : threads) from_own_thread ? t.detach() : t.join();
  // Detached (stop() from one of its threads): the crew goes with the last of them.
}

}  // namespace jb
