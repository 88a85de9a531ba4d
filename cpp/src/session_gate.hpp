// What closes a Session: its closing flag, the count of its calls in flight, and the backend session it
// holds. Shared by the Session, its asynchronous runs (whose completion may destroy the Session) and its
// runtime (whose close() closes it).
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "backend.hpp"
#include "staging.hpp"

namespace jb {

// close() may come from one thread while others run: it raises `closed`, then waits until no call is in
// flight before it frees the backend. A call counts itself in, then looks at `closed` (both seq_cst, so
// either the call sees the flag or close() sees the count), and counts itself out when it returns.
struct SessionGate {
  std::atomic<bool> closed{false};
  std::atomic<int64_t> in_flight{0};
  std::mutex mutex;  // serialises close() and its wait; guards `backend` once open
  std::condition_variable idle;
  std::shared_ptr<Backend> backend;  // a shared backend session lives on while other Sessions use it
  std::shared_ptr<Stager> stager;    // option staging=pinned: this Session's pinned blocks, else none

  void close() noexcept {
    std::unique_lock<std::mutex> lock(mutex);
    closed.store(true);
    idle.wait(lock, [this] { return in_flight.load() == 0; });
    if (stager) stager->close();  // its blocks hold the backend
    stager.reset();
    backend.reset();
  }
};

class Session::InFlight {
 public:
  // `keep_gate`: for a run whose completion may destroy the Session (run_async), the gate lives until
  // this call has left it.
  explicit InFlight(const Session& s, bool keep_gate = false)
      : gate_(s.gate_.get()), kept_(keep_gate ? s.gate_ : nullptr) {
    if (gate_ == nullptr) throw Error(ErrorCode::InvalidArgument, "the session is closed");
    gate_->in_flight.fetch_add(1);
    if (gate_->closed.load()) {
      leave();
      throw Error(ErrorCode::InvalidArgument, "the session is closed");
    }
  }
  ~InFlight() { leave(); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  void leave() noexcept {
    if (gate_->in_flight.fetch_sub(1) == 1 && gate_->closed.load()) {
      std::lock_guard<std::mutex> lock(gate_->mutex);  // close() waits under this mutex: no lost wake-up
      gate_->idle.notify_all();
    }
  }
  SessionGate* gate_;
  std::shared_ptr<SessionGate> kept_;
};

}  // namespace jb
