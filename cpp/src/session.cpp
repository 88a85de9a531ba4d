// Session: opening in a runtime, the calls in flight and closing, and the runs (their checks are in
// tensor_checks.cpp, the asynchronous work goes to the runtime's executor).
#include "juno_bridge/session.hpp"

#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "backend.hpp"
#include "runtime_state.hpp"
#include "session_gate.hpp"
#include "tensor_checks.hpp"

namespace jb {

Session::Session(std::shared_ptr<Backend> backend, const SessionOptions& options,
                 std::shared_ptr<Runtime::State> runtime)
    : gate_(std::make_shared<SessionGate>()),
      backend_(backend.get()),
      runtime_(std::move(runtime)),
      bfloat16_as_uint16_(options.bfloat16_as_uint16) {
  gate_->stager = Stager::open(*backend, options);
  gate_->backend = std::move(backend);
  all_outputs_.resize(backend_->outputs().size());
  for (size_t i = 0; i < all_outputs_.size(); ++i) all_outputs_[i] = static_cast<int32_t>(i);
  runtime_->enrol(gate_);
}

namespace {

std::shared_ptr<Backend> open_in(Runtime::State& runtime, const std::string& model, const void* bytes, size_t size,
                                 const SessionOptions& options) {
  runtime.check_open();
  return runtime.cache.open(model, bytes, size, options);
}

}  // namespace

Session::Session(const std::string& model, const SessionOptions& options)
    : Session(model, options, Runtime::process_default()) {}

Session::Session(const std::string& model, const SessionOptions& options, Runtime& runtime)
    : Session(open_in(*runtime.state(), resolve_model_name(model), nullptr, 0, options), options, runtime.state()) {}

Session Session::from_bytes(const void* data, size_t size, const SessionOptions& options) {
  return from_bytes(data, size, options, Runtime::process_default());
}

Session Session::from_bytes(const void* data, size_t size, const SessionOptions& options, Runtime& runtime) {
  if (data == nullptr) throw Error(ErrorCode::InvalidArgument, "model bytes are NULL");
  if (size == 0) throw Error(ErrorCode::ModelLoad, "model bytes are empty (0 bytes)");
  return Session(open_in(*runtime.state(), "", data, size, options), options, runtime.state());
}

Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    close();  // the session this one was: its runs in flight finish first
    gate_ = std::move(other.gate_);
    backend_ = other.backend_;
    runtime_ = std::move(other.runtime_);
    all_outputs_ = std::move(other.all_outputs_);
    bfloat16_as_uint16_ = other.bfloat16_as_uint16_;
  }
  return *this;
}
Session::~Session() { close(); }

void Session::close() noexcept {
  if (gate_) gate_->close();  // (moved from: no gate)
}

bool Session::is_open() const noexcept { return gate_ && !gate_->closed.load(); }

const std::vector<TensorInfo>& Session::inputs() const {
  InFlight call(*this);
  return backend_->inputs();
}
const std::vector<TensorInfo>& Session::outputs() const {
  InFlight call(*this);
  return backend_->outputs();
}
ModelMetadata Session::metadata() const {
  InFlight call(*this);
  return backend_->metadata();
}
const std::string& Session::backend_name() const {
  InFlight call(*this);
  return backend_->name();
}

std::vector<std::string> Session::providers() const {
  InFlight call(*this);
  return backend_->providers();
}

std::vector<Device> Session::devices() const {
  InFlight call(*this);
  std::vector<Device> all{Device::cpu()};
  for (Device d : backend_->devices()) all.push_back(d);
  return all;
}

bool Session::takes(Device device) const {
  InFlight call(*this);
  return backend_->takes(device);
}

SessionStats Session::stats() const {
  InFlight call(*this);
  SessionStats s = backend_->stats();
  if (gate_->stager) gate_->stager->count(s);
  s.backend_id = backend_->id();
  s.backend_users = gate_->backend.use_count();
  return s;
}

Tensor Session::empty(DType dtype, const std::vector<int64_t>& shape) const {
  if (dtype_size(dtype) == 0)
    throw Error(ErrorCode::InvalidArgument,
                std::string("Session::empty: dtype ") + dtype_name(dtype) + " has no element size");
  if (shape.size() > static_cast<size_t>(kMaxRank))
    throw Error(ErrorCode::InvalidArgument, "Session::empty: rank " + std::to_string(shape.size()) +
                                                " is above the maximum of " + std::to_string(kMaxRank));
  TensorView view(nullptr, dtype, shape.data(), shape.size());
  int64_t bytes = dtype_size(dtype);
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(bytes, d, &bytes))
      throw Error(ErrorCode::InvalidArgument, "Session::empty: shape " + shape_string(shape.data(), view.rank) +
                                                  (d < 0 ? " has a negative dim" : " is too large"));
  InFlight call(*this);
  Backend::HostMemory memory = backend_->host_memory(static_cast<size_t>(bytes));
  view.data = memory.holder.get();
  view.device = memory.device;
  return Tensor{view, std::move(memory.holder)};
}

size_t Session::input_index(std::string_view name) const {
  InFlight call(*this);
  const auto& infos = backend_->inputs();
  for (size_t i = 0; i < infos.size(); ++i)
    if (infos[i].name == name) return i;
  throw Error(ErrorCode::Input, "unknown input '" + std::string(name) + "'; the model's inputs are " + known_names(infos));
}

size_t Session::output_index(std::string_view name) const {
  InFlight call(*this);
  const auto& infos = backend_->outputs();
  for (size_t i = 0; i < infos.size(); ++i)
    if (infos[i].name == name) return i;
  throw Error(ErrorCode::Input,
              "unknown output '" + std::string(name) + "'; the model's outputs are " + known_names(infos));
}

void Session::run(const TensorView* inputs, size_t num_inputs, const int32_t* output_index, TensorView* outputs,
                  Tensor* owned, size_t num_outputs) {
  InFlight call(*this);
  run_open(inputs, num_inputs, output_index, outputs, owned, num_outputs);
}

void Session::run_open(const TensorView* inputs, size_t num_inputs, const int32_t* output_index,
                       TensorView* outputs, Tensor* owned, size_t num_outputs) {
  check_call(inputs, num_inputs, output_index, outputs, owned, num_outputs);
  Stager* stager = gate_->stager.get();  // stable while in flight
  if (!bfloat16_as_uint16_ && stager == nullptr)
    return backend_->run(inputs, num_inputs, output_index, outputs, owned, num_outputs);
  std::vector<TensorView> in16, out16;  // option bfloat16_as_uint16: the relabelled views
  const TensorView* in = inputs;
  TensorView* out = outputs;
  if (bfloat16_as_uint16_) {
    in16 = bits_as_bfloat16(inputs, num_inputs, backend_->inputs(), nullptr);
    out16 = bits_as_bfloat16(outputs, num_outputs, backend_->outputs(), output_index);
    in = in16.data();
    out = out16.data();
  }
  if (stager != nullptr) {
    Stager::Lease lease = stager->stage(in, num_inputs, output_index, out, num_outputs);
    backend_->run(lease.inputs(), num_inputs, output_index, lease.outputs(), owned, num_outputs);
    lease.finish(out);
  } else {
    backend_->run(in, num_inputs, output_index, out, owned, num_outputs);
  }
  if (!bfloat16_as_uint16_) return;
  for (size_t i = 0; i < num_outputs; ++i) {
    if (outputs[i].data == nullptr) outputs[i] = out[i];  // allocated by the backend
    bfloat16_as_bits(outputs[i]);
    if (owned != nullptr) bfloat16_as_bits(owned[i].view);
  }
}

const char* Session::async_mode() const {
  InFlight call(*this);
  return backend_->async_native() ? "native" : "pool";
}

namespace {

// The end of one run_async: out of flight first (`done` may close or destroy the Session), then `done`,
// whose exceptions have nowhere to go. The in-flight mark lives only here, so the caller of run_async
// holds none of it once the backend has the run.
template <class InFlight>
struct Completion {
  Completion(std::unique_ptr<InFlight> c, Session::RunCallback d, std::shared_ptr<Runtime::State> r)
      : call(std::move(c)), done(std::move(d)), runtime(std::move(r)) {
    runtime->completion_started();
  }
  ~Completion() {
    if (!invoked) runtime->completion_ended();  // never started
  }
  Completion(const Completion&) = delete;
  Completion& operator=(const Completion&) = delete;

  void operator()(std::exception_ptr error) {
    invoked = true;
    call.reset();
    {
      Runtime::State::InsideCompletion mark(runtime.get());
      try {
        done(error);
      } catch (...) {
      }
    }
    runtime->completion_ended();  // the runtime's close() waits for this too
  }

  std::unique_ptr<InFlight> call;
  Session::RunCallback done;
  std::shared_ptr<Runtime::State> runtime;
  bool invoked = false;
};

}  // namespace

void Session::run_async(const TensorView* inputs, size_t num_inputs, const int32_t* output_index,
                        const TensorView* outputs, Tensor* owned, size_t num_outputs, RunCallback done) {
  if (!done) throw Error(ErrorCode::InvalidArgument, "run_async needs a completion callback");
  std::vector<TensorView> in, out;  // option bfloat16_as_uint16: the relabelled views (the backend copies them)
  if (bfloat16_as_uint16_) {
    done = [done = std::move(done), owned, num_outputs](std::exception_ptr error) {
      for (size_t i = 0; owned != nullptr && i < num_outputs; ++i) bfloat16_as_bits(owned[i].view);
      done(error);
    };
  }
  auto completion = std::make_shared<Completion<InFlight>>(std::make_unique<InFlight>(*this, true), std::move(done),
                                                           runtime_);  // in flight until done
  check_call(inputs, num_inputs, output_index, outputs, owned, num_outputs);
  if (bfloat16_as_uint16_) {
    in = bits_as_bfloat16(inputs, num_inputs, backend_->inputs(), nullptr);
    out = bits_as_bfloat16(outputs, num_outputs, backend_->outputs(), output_index);
    inputs = in.data();
    outputs = out.data();
  }
  std::shared_ptr<Stager::Lease> lease;  // option staging=pinned: inputs copied now, while the caller waits
  if (Stager* stager = gate_->stager.get()) {
    lease = std::make_shared<Stager::Lease>(stager->stage(inputs, num_inputs, output_index, outputs, num_outputs));
    inputs = lease->inputs();
    outputs = lease->outputs();
  }
  // The backend's work done: staged out= outputs back in the caller's buffers (still in flight), then the end.
  auto finish = [completion, lease](std::exception_ptr error) mutable {
    if (lease && !error) lease->finish(nullptr);
    lease.reset();
    (*completion)(error);
  };
  if (backend_->async_native()) {
    try {
      backend_->run_async(inputs, num_inputs, output_index, outputs, owned, num_outputs, finish);
    } catch (...) {
      // Not started: that is the run's error, reported as any other, from a pool thread (never from
      // inside run_async, where the caller may hold what `done` takes).
      runtime_->submit([finish, error = std::current_exception()]() mutable { finish(error); });
    }
    return;
  }
  struct Job {
    std::vector<TensorView> inputs, outputs;
    std::vector<int32_t> index;
  };
  auto job = std::make_shared<Job>(Job{{inputs, inputs + num_inputs}, {outputs, outputs + num_outputs},
                                       {output_index, output_index + num_outputs}});
  Backend* backend = backend_;  // alive while the call is in flight
  runtime_->submit([finish, job, backend, owned]() mutable {
    std::exception_ptr error;
    try {
      backend->run(job->inputs.data(), job->inputs.size(), job->index.data(), job->outputs.data(), owned,
                   job->outputs.size());
    } catch (...) {
      error = std::current_exception();
    }
    finish(error);
  });
}

void Session::run(const TensorView* inputs, size_t num_inputs, TensorView* outputs, size_t num_outputs) {
  InFlight call(*this);
  if (num_outputs != all_outputs_.size())
    throw Error(ErrorCode::Input, "the model has " + std::to_string(all_outputs_.size()) + " output(s) (" +
                                      known_names(backend_->outputs()) + "), got " + std::to_string(num_outputs) +
                                      " output buffer(s)");
  // A zero-element output needs no memory, only a non-NULL address. The caller's views are never
  // written: such outputs run from a copy of the views (rare, so the fast path stays allocation-free).
  bool needs_address = false;
  for (size_t i = 0; i < num_outputs; ++i)
    if (outputs != nullptr && outputs[i].data == nullptr) {
      if (outputs[i].num_elements() != 0)
        throw Error(ErrorCode::InvalidArgument, "output '" + backend_->outputs()[i].name + "': data pointer is NULL");
      needs_address = true;
    }
  if (!needs_address) return run_open(inputs, num_inputs, all_outputs_.data(), outputs, nullptr, num_outputs);
  static char empty_output;
  std::vector<TensorView> views(outputs, outputs + num_outputs);
  for (auto& v : views)
    if (v.data == nullptr) v.data = &empty_output;
  run_open(inputs, num_inputs, all_outputs_.data(), views.data(), nullptr, num_outputs);
}

std::vector<Tensor> Session::run(const std::vector<TensorView>& inputs) {
  InFlight call(*this);
  std::vector<TensorView> views(all_outputs_.size());
  std::vector<Tensor> owned(all_outputs_.size());
  run_open(inputs.data(), inputs.size(), all_outputs_.data(), views.data(), owned.data(), views.size());
  return owned;
}

}  // namespace jb
