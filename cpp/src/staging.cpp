// Option staging=pinned (staging.hpp): host arrays through pinned blocks of the Session's own.
#include "staging.hpp"

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

#include "juno_bridge/juno_bridge.h"
#include "log.hpp"

namespace jb {

namespace {

constexpr size_t kSplitFrom = size_t{4} << 20;  // a copy this large is split over threads...
constexpr size_t kMinChunk = size_t{1} << 20;   // ...into parts of at least this
constexpr size_t kBlocksKept = 2;               // per tensor: a run and the next one's (run_async)

// ONNX Runtime's spelling of a provider: "cuda", "CUDA" and "CUDAExecutionProvider" name the same one.
bool asks_cuda(const SessionOptions& options) {
  for (std::string p : options.providers) {
    p = p.substr(0, p.find("ExecutionProvider"));
    std::transform(p.begin(), p.end(), p.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (p == "cuda") return true;
  }
  return false;
}

}  // namespace

std::shared_ptr<Stager> Stager::open(Backend& backend, const SessionOptions& options) {
  if (options.staging != "pinned") return nullptr;
  const Backend::HostMemory probe = backend.allocate_host(1);
  if (probe.device.kind == DeviceKind::CUDAPinned) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    return std::make_shared<Stager>(backend, std::min(cores, 8u) - 1);
  }
  const auto got = backend.providers();
  if (asks_cuda(options) && std::find(got.begin(), got.end(), "cuda") == got.end()) {
    log_message(JB_LOG_WARNING, "providers",
                "option staging=pinned: the CUDA provider is not in use, so host arrays are read where they lie");
    return nullptr;
  }
  std::string providers;
  for (const auto& p : got) providers += (providers.empty() ? "" : ",") + p;
  throw Error(ErrorCode::InvalidArgument,
              "option staging=pinned copies host arrays through pinned memory for a session that copies its inputs "
              "to a GPU, and this session (backend " +
                  backend.name() + (providers.empty() ? "" : ", providers " + providers) +
                  ") computes from host memory, which it reads in place: open it with providers cuda,cpu (ONNX "
                  "Runtime) or a model on a GPU (torch), or leave staging off");
}

Stager::Stager(Backend& backend, unsigned copy_threads)
    : backend_(backend),
      free_(backend.inputs().size() + backend.outputs().size()),
      copy_threads_(copy_threads),
      copiers_(std::max(1u, copy_threads), "jb-stage") {}

// Host memory not known to be pinned. A view into one of the backend's pinned blocks (Session::empty's, which
// a numpy array over it calls host memory) is labelled pinned instead, for the backend.
bool Stager::pageable(TensorView& v) const {
  if (v.device.kind != DeviceKind::CPU || v.nbytes() == 0) return false;
  if (!backend_.in_pinned_block(v)) return true;
  v.device = Device::cuda_pinned();
  return false;
}

Stager::Lease Stager::stage(const TensorView* inputs, size_t num_inputs, const int32_t* output_index,
                            const TensorView* outputs, size_t num_outputs) {
  Lease lease(shared_from_this());
  lease.inputs_.assign(inputs, inputs + num_inputs);
  lease.outputs_.assign(outputs, outputs + num_outputs);
  auto take = [&](size_t slot, TensorView& view) {
    Block block = acquire(slot, view.nbytes());
    view.data = block.holder.get();
    view.device = block.device;
    lease.held_.push_back({slot, std::move(block)});
  };
  uint64_t staged = 0, bytes = 0;
  for (size_t i = 0; i < num_inputs; ++i) {
    TensorView& v = lease.inputs_[i];
    if (!pageable(v)) continue;
    const void* caller = v.data;
    take(i, v);
    copy(v.data, caller, v.nbytes());
    ++staged;
    bytes += v.nbytes();
  }
  for (size_t i = 0; i < num_outputs; ++i) {
    TensorView& v = lease.outputs_[i];
    if (v.data == nullptr || !pageable(v)) continue;  // allocated by the backend, or taken where it lies
    lease.copy_back_.emplace_back(i, v);
    take(num_inputs + static_cast<size_t>(output_index[i]), v);
  }
  inputs_staged_.fetch_add(staged, std::memory_order_relaxed);
  bytes_staged_.fetch_add(bytes, std::memory_order_relaxed);
  return lease;
}

void Stager::Lease::finish(TensorView* caller_outputs) {
  uint64_t bytes = 0;
  for (const auto& [i, caller] : copy_back_) {
    stager_->copy(caller.data, outputs_[i].data, caller.nbytes());
    bytes += caller.nbytes();
  }
  stager_->bytes_staged_.fetch_add(bytes, std::memory_order_relaxed);
  for (size_t i = 0; caller_outputs != nullptr && i < outputs_.size(); ++i)
    if (caller_outputs[i].data == nullptr) caller_outputs[i] = outputs_[i];
}

Stager::Lease::~Lease() {
  if (stager_ == nullptr) return;  // moved from
  for (Held& h : held_) stager_->give_back(h.slot, std::move(h.block));
}

Stager::Block Stager::acquire(size_t slot, size_t nbytes) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& kept = free_[slot];
    for (size_t k = kept.size(); k-- > 0;)  // the last given back first: the block the last run used
      if (kept[k].capacity >= nbytes) {
        Block b = std::move(kept[k]);
        kept.erase(kept.begin() + static_cast<std::ptrdiff_t>(k));
        return b;
      }
  }
  Backend::HostMemory m = backend_.host_memory(nbytes);
  return {std::move(m.holder), nbytes, m.device};
}

void Stager::give_back(size_t slot, Block block) {
  Block dropped;  // freed after the lock is let go
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) {
    dropped = std::move(block);
    return;
  }
  auto& kept = free_[slot];
  kept.push_back(std::move(block));
  if (kept.size() > kBlocksKept) {
    auto smallest = std::min_element(kept.begin(), kept.end(),
                                     [](const Block& a, const Block& b) { return a.capacity < b.capacity; });
    dropped = std::move(*smallest);
    kept.erase(smallest);
  }
}

void Stager::close() {
  std::vector<std::vector<Block>> dropped;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    dropped.swap(free_);
  }
}

void Stager::count(SessionStats& stats) const {
  stats.inputs_staged += inputs_staged_.load(std::memory_order_relaxed);
  stats.bytes_staged += bytes_staged_.load(std::memory_order_relaxed);
}

void Stager::copy(void* to, const void* from, size_t nbytes) {
  const size_t parts = nbytes < kSplitFrom ? 1 : std::min<size_t>(copy_threads_ + 1, nbytes / kMinChunk);
  if (parts <= 1) {
    std::memcpy(to, from, nbytes);
    return;
  }
  struct Left {
    std::mutex mutex;
    std::condition_variable zero;
    size_t parts;
  };
  auto left = std::make_shared<Left>();
  left->parts = parts - 1;
  const size_t step = (nbytes / parts + 63) / 64 * 64;  // cache-line borders between the parts
  auto* dst = static_cast<char*>(to);
  const auto* src = static_cast<const char*>(from);
  for (size_t k = 1; k < parts; ++k) {
    const size_t begin = std::min(nbytes, k * step), end = k + 1 == parts ? nbytes : std::min(nbytes, begin + step);
    auto part = [left, d = dst + begin, s = src + begin, n = end - begin] {
      std::memcpy(d, s, n);
      std::lock_guard<std::mutex> lock(left->mutex);
      if (--left->parts == 0) left->zero.notify_one();
    };
    try {
      copiers_.submit(part);
    } catch (...) {  // no thread to be had: this one copies that part too
      part();
    }
  }
  std::memcpy(dst, src, std::min(nbytes, step));
  std::unique_lock<std::mutex> lock(left->mutex);
  left->zero.wait(lock, [&] { return left->parts == 0; });
}

}  // namespace jb
