// Option staging=pinned: host arrays on a session that copies its inputs to a GPU go through pinned
// blocks of the Session's own. The GPU reads pinned memory by DMA at the bus's speed; pageable memory the
// driver copies through a small pinned buffer of its own, at a fraction of it (measured on an H200: 20.7
// ms pageable, 2.6 ms pinned for a [1024, 2, 17612] float32 batch). A pageable input is copied into a
// block before the run, a pageable out= buffer is written in a block and copied back after it. Views in
// pinned memory already (Session::empty's, a pinned torch tensor) or on a device pass as they are (a view
// into one of the backend's pinned blocks labelled pinned, whatever the caller said).
//
// Large copies are split over a few threads of the stager's own: one thread copies host memory at about
// 10 GB/s, the memory system several times that. Each tensor of the model keeps the blocks it used, so a
// framework's per-event runs reuse the same block (and the backend's cached wrapper of it) every event.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "backend.hpp"
#include "worker_pool.hpp"

namespace jb {

class Stager : public std::enable_shared_from_this<Stager> {
 public:
  // A stager for `backend`'s session when `options` ask for one: nullptr for staging=off, and where the
  // CUDA provider was asked for and skipped (logged); refused where the backend has no pinned memory.
  static std::shared_ptr<Stager> open(Backend& backend, const SessionOptions& options);
  Stager(Backend& backend, unsigned copy_threads);

  struct Block {
    std::shared_ptr<void> holder;  // host_memory's: it holds the backend
    size_t capacity = 0;
    Device device;
  };

  // One run's views, the pageable ones replaced by blocks (inputs filled); the blocks go back to the
  // stager when it ends. Made by stage(); used while the backend (and the caller's buffers) live.
  class Lease {
   public:
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    const TensorView* inputs() const { return inputs_.data(); }
    TensorView* outputs() { return outputs_.data(); }
    // After a run that succeeded: the staged out= outputs copied back into the caller's buffers, and
    // where `caller_outputs` is given, the outputs the backend allocated written into it (those whose data
    // is nullptr there, as the synchronous run reports them).
    void finish(TensorView* caller_outputs);

   private:
    friend class Stager;
    explicit Lease(std::shared_ptr<Stager> stager) : stager_(std::move(stager)) {}
    struct Held {
      size_t slot;
      Block block;
    };
    std::shared_ptr<Stager> stager_;
    std::vector<TensorView> inputs_, outputs_;
    std::vector<Held> held_;
    std::vector<std::pair<size_t, TensorView>> copy_back_;  // output i: the caller's out= buffer
  };

  // Arguments as the backend's run takes them, already checked.
  Lease stage(const TensorView* inputs, size_t num_inputs, const int32_t* output_index, const TensorView* outputs,
              size_t num_outputs);
  // Adds what was staged since open to `stats` (inputs_staged, bytes_staged).
  void count(SessionStats& stats) const;
  // The Session is closed: the blocks kept for later runs are freed now, those of runs still ending then.
  void close();

 private:
  bool pageable(TensorView& v) const;
  Block acquire(size_t slot, size_t nbytes);
  void give_back(size_t slot, Block block);
  void copy(void* to, const void* from, size_t nbytes);

  Backend& backend_;
  std::mutex mutex_;
  std::vector<std::vector<Block>> free_;  // per slot (input i, then num_inputs + output k): blocks to reuse
  bool closed_ = false;
  std::atomic<uint64_t> inputs_staged_{0}, bytes_staged_{0};
  const unsigned copy_threads_;  // helpers of a large copy, besides the caller's own thread
  WorkerPool copiers_;
};

}  // namespace jb
