#include "juno_bridge/batch_assembler.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>

namespace jb {

BatchAssembler::BatchAssembler(Session& session, int64_t batch_size, int64_t channels, int64_t num_pmts, float empty)
    : session_(session), batch_size_(batch_size), channels_(channels), num_pmts_(num_pmts), empty_(empty) {
  if (batch_size < 1 || channels < 1 || num_pmts < 1)
    throw Error(ErrorCode::InvalidArgument, "BatchAssembler: batch_size, channels and num_pmts must be >= 1, got " +
                                                std::to_string(batch_size) + ", " + std::to_string(channels) + ", " +
                                                std::to_string(num_pmts));
  const auto& inputs = session.inputs();
  if (inputs.size() != 1)
    throw Error(ErrorCode::Input, "BatchAssembler: the model must take one input [B, C, N]; it takes " +
                                      std::to_string(inputs.size()));
  const TensorInfo& in = inputs[0];
  const int64_t want[3] = {batch_size, channels, num_pmts};
  bool fits = in.dtype == DType::Float32 && in.rank_known && in.shape.size() == 3;
  for (size_t d = 0; fits && d < 3; ++d) fits = in.shape[d] < 0 || in.shape[d] == want[d];
  if (!fits)
    throw Error(ErrorCode::Input, "BatchAssembler: input '" + in.name + "' is " + dtype_name(in.dtype) + " " +
                                      in.shape_string() + "; the assembler fills float32 " + shape_string(want, 3));
  fixed_batch_ = in.shape[0] >= 0;
  buffer_ = session.empty(DType::Float32, {batch_size, channels, num_pmts});
}

TensorView BatchAssembler::next_slot(uint64_t* event_id) {
  if (handed_out_)
    throw Error(ErrorCode::InvalidArgument, "BatchAssembler: the slot handed out last has not been submitted");
  handed_out_ = true;
  if (event_id) *event_id = next_event_;
  return TensorView(slots() + filled_ * channels_ * num_pmts_, DType::Float32, {channels_, num_pmts_})
      .on(buffer_.view.device);
}

std::vector<BatchAssembler::EventResult> BatchAssembler::submit() {
  if (!handed_out_) throw Error(ErrorCode::InvalidArgument, "BatchAssembler: submit() without next_slot()");
  handed_out_ = false;
  ++filled_;
  ++next_event_;
  return filled_ == batch_size_ ? run_filled() : std::vector<EventResult>{};
}

std::vector<BatchAssembler::EventResult> BatchAssembler::add(const TensorView& pmt_ids, const TensorView& npe,
                                                             const TensorView& time) {
  TensorView slot = next_slot();
  try {
    scatter_hits(pmt_ids, npe, time, slot, empty_);
  } catch (...) {
    handed_out_ = false;  // the bad event takes no slot
    throw;
  }
  return submit();
}

std::vector<BatchAssembler::EventResult> BatchAssembler::flush() {
  if (handed_out_) throw Error(ErrorCode::InvalidArgument, "BatchAssembler: flush() while a slot is handed out");
  return filled_ ? run_filled() : std::vector<EventResult>{};
}

std::vector<BatchAssembler::EventResult> BatchAssembler::run_filled() {
  const int64_t n = filled_;
  const uint64_t first_event = next_event_ - static_cast<uint64_t>(n);
  filled_ = 0;  // whatever happens, the assembler takes new events afterwards
  const size_t slot_floats = static_cast<size_t>(channels_ * num_pmts_);
  int64_t run_batch = n;
  if (fixed_batch_ && n < batch_size_) {
    std::fill(slots() + n * slot_floats, slots() + batch_size_ * slot_floats, empty_);
    run_batch = batch_size_;
  }
  TensorView input = TensorView(slots(), DType::Float32, {run_batch, channels_, num_pmts_}).on(buffer_.view.device);
  std::vector<Tensor> outputs = session_.run(std::vector<TensorView>{input});
  ++runs_;
  const auto& infos = session_.outputs();
  std::vector<EventResult> results(static_cast<size_t>(n));
  for (int64_t e = 0; e < n; ++e) results[e].event_id = first_event + static_cast<uint64_t>(e);
  for (size_t k = 0; k < outputs.size(); ++k) {
    const TensorView& v = outputs[k].view;
    if (v.rank < 1 || v.shape[0] != run_batch)
      throw Error(ErrorCode::Runtime, "BatchAssembler: output '" + infos[k].name + "' has shape " +
                                          shape_string(v.shape, v.rank) + "; expected the batch of " +
                                          std::to_string(run_batch) + " first");
    const size_t row_bytes = v.nbytes() / static_cast<size_t>(run_batch);
    for (int64_t e = 0; e < n; ++e) {
      Tensor row;
      row.view = TensorView(static_cast<char*>(v.data) + e * row_bytes, v.dtype, v.shape + 1,
                            static_cast<size_t>(v.rank - 1));
      row.holder = outputs[k].holder;  // the row shares the batch output's memory
      results[e].rows.push_back(std::move(row));
    }
  }
  return results;
}

}  // namespace jb
