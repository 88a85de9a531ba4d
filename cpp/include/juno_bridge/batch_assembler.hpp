// BatchAssembler: per-event callers, batched inference. It keeps B event slots in one [B, C, N] float32
// buffer from Session::empty (pinned host memory where the session copies it to a GPU), hands out the next slot, runs a
// Session when all B are filled (or on flush) and returns each event's rows of the outputs, without copying them.
//
// One assembler per framework stream: it is not safe to share between threads (the Session is).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "juno_bridge/hits.hpp"
#include "juno_bridge/session.hpp"

namespace jb {

class JB_API BatchAssembler {
 public:
  struct EventResult {
    uint64_t event_id;        // in the order slots were handed out, from 0
    std::vector<Tensor> rows;  // rows[k]: output k's row for this event (shape without the batch dim)
  };

  // The session's only input must be float32 [B, C, N] with B dynamic or equal to batch_size. The
  // session must outlive the assembler.
  BatchAssembler(Session& session, int64_t batch_size, int64_t channels = 2, int64_t num_pmts = kLargePmts,
                 float empty = 0.0f);
  BatchAssembler(const BatchAssembler&) = delete;
  BatchAssembler& operator=(const BatchAssembler&) = delete;

  // The next free slot, a [C, N] view into the batch buffer, for the caller to fill before submit().
  TensorView next_slot(uint64_t* event_id = nullptr);
  // Marks the handed-out slot filled; when all B are, runs the session and returns their results.
  std::vector<EventResult> submit();
  // next_slot + scatter_hits + submit: one event from its hits.
  std::vector<EventResult> add(const TensorView& pmt_ids, const TensorView& npe, const TensorView& time);
  // Runs the filled slots now (a partial batch; padded with empty events when B is fixed by the model).
  std::vector<EventResult> flush();

  int64_t batch_size() const noexcept { return batch_size_; }
  size_t pending() const noexcept { return static_cast<size_t>(filled_); }
  const TensorView& batch() const noexcept { return buffer_.view; }  // the whole [B, C, N] buffer
  uint64_t runs() const noexcept { return runs_; }

 private:
  std::vector<EventResult> run_filled();

  Session& session_;
  int64_t batch_size_, channels_, num_pmts_;
  float empty_;
  bool fixed_batch_;  // the model fixes B: partial batches are padded
  float* slots() const noexcept { return buffer_.data<float>(); }

  Tensor buffer_;  // the batch's memory (Session::empty): [B, C, N], on the device it said
  int64_t filled_ = 0;
  bool handed_out_ = false;
  uint64_t next_event_ = 0, runs_ = 0;
};

}  // namespace jb
