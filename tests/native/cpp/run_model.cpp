// A C++ program over juno-bridge's C++ API, built against the installed package (g++ with
// `juno-bridge config` flags, or CMake with find_package) and run without Python.
//
//   run_model_cpp MODEL BATCH
//
// MODEL takes x float32 [batch, F] and gives float32 outputs whose dynamic dims are the batch (the
// model tests/native/test_programs.py writes). Opens it the way a framework algorithm would in
// initialize(), runs it into caller buffers as execute() would, and shows jb::Error for bad inputs;
// then the providers it got, a second Session sharing the backend session, and 100 run_async in flight
// (on the process default runtime's pool, and through ONNX Runtime's RunAsync).
// Prints the same "values ..." and PASS/FAIL lines as run_model.c, then "N passed, M failed".
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>
#include <vector>

#include "checks.hpp"
#include "juno_bridge/session.hpp"

namespace {

using jb_test::check;

void print_output(const char* how, const std::string& name, const jb::TensorView& v) {
  std::printf("values %s %s ", how, name.c_str());
  for (int32_t d = 0; d < v.rank; ++d) std::printf("%s%lld", d ? "," : "", static_cast<long long>(v.shape[d]));
  if (v.rank == 0) std::printf("-");
  const float* data = static_cast<const float*>(v.data);
  for (int64_t i = 0; i < v.num_elements(); ++i) std::printf(" %a", static_cast<double>(data[i]));
  std::printf("\n");
}

// Runs `bad` expecting a jb::Error of `code` whose message names `name` (when not empty).
template <class F>
void expect_error(F&& bad, jb::ErrorCode code, const std::string& name, const std::string& what) {
  try {
    bad();
    check(false, what + " was accepted");
  } catch (const jb::Error& e) {
    const std::string message = e.what();
    check(e.code() == code && (name.empty() || message.find("'" + name + "'") != std::string::npos),
          what + " -> jb::Error code " + std::to_string(static_cast<int>(e.code())) + ": " + message);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL BATCH\n", argv[0]);
    return 2;
  }
  const std::string model = argv[1];
  const int64_t batch = std::atoll(argv[2]);
  try {
    jb::SessionOptions options;
    options.intra_op_threads = 1;  // the framework owns the threads
    jb::Session session(model, options);

    for (const auto& info : session.inputs())
      std::printf("input %s %s %s\n", info.name.c_str(), jb::dtype_name(info.dtype), info.shape_string().c_str());
    for (const auto& info : session.outputs())
      std::printf("output %s %s %s\n", info.name.c_str(), jb::dtype_name(info.dtype), info.shape_string().c_str());
    const jb::TensorInfo& x_info = session.inputs().at(0);
    if (!check(session.inputs().size() == 1 && x_info.dtype == jb::DType::Float32 && x_info.shape.size() == 2,
               "the model takes one float32 input of rank 2"))
      return 1;
    const int64_t features = x_info.shape[1];

    // Buffers made once, as in initialize(); input values as in run_model.c: ((37 i) mod 101) / 16 - 3.
    std::vector<float> x(static_cast<size_t>(batch * features));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 37) % 101) / 16.0f - 3.0f;
    std::vector<jb::TensorView> inputs{jb::TensorView::of(x.data(), {batch, features})};

    std::vector<std::vector<float>> buffers;
    std::vector<jb::TensorView> outputs;
    for (const auto& info : session.outputs()) {
      std::vector<int64_t> dims = info.shape;
      for (auto& d : dims) d = d < 0 ? batch : d;
      jb::TensorView view(nullptr, jb::DType::Float32, dims.data(), dims.size());
      buffers.emplace_back(static_cast<size_t>(view.num_elements()));
      view.data = buffers.back().data();
      outputs.push_back(view);
    }

    // execute(): written in place, nothing allocated.
    session.run(inputs, outputs);
    for (size_t i = 0; i < outputs.size(); ++i) print_output("caller", session.outputs()[i].name, outputs[i]);
    check(true, "Session::run into caller buffers");

    // The convenience form: outputs allocated by the runtime, kept alive by jb::Tensor.
    std::vector<jb::Tensor> allocated = session.run(inputs);
    for (size_t i = 0; i < allocated.size(); ++i) {
      const int64_t n = outputs[i].num_elements();  // 0 for an empty batch: no memory to compare
      const bool same = allocated[i].view.num_elements() == n &&
                        (n == 0 || std::memcmp(allocated[i].view.data, outputs[i].data, outputs[i].nbytes()) == 0);
      check(same && (n == 0 || allocated[i].view.data != outputs[i].data),
            "runtime-allocated output '" + session.outputs()[i].name + "' is bitwise the same, in its own memory");
      print_output("runtime", session.outputs()[i].name, allocated[i].view);
    }

    // Bad inputs throw jb::Error naming the input; the session stays usable.
    std::vector<double> wrong_type(x.size());
    std::vector<jb::TensorView> bad{jb::TensorView::of(wrong_type.data(), {batch, features})};
    expect_error([&] { session.run(bad, outputs); }, jb::ErrorCode::InputType, x_info.name, "float64 input");
    bad = {jb::TensorView::of(x.data(), {batch, features - 1})};
    expect_error([&] { session.run(bad, outputs); }, jb::ErrorCode::Input, x_info.name, "input with a short last dim");
    expect_error([&] { session.input_index("no_such_input"); }, jb::ErrorCode::Input, "no_such_input", "unknown input name");
    session.run(inputs, outputs);
    check(true, "the session runs again after the errors");

    // Devices: pinned host memory is host memory; CUDA memory is refused naming where it is.
    check(session.devices() == std::vector<jb::Device>{jb::Device::cpu()} && session.takes(jb::Device::cuda_pinned()) &&
              !session.takes(jb::Device::cuda(0)),
          "Session::devices() is host memory alone, which takes pinned memory too");
    std::vector<jb::TensorView> pinned{jb::TensorView::of(x.data(), {batch, features}).on(jb::Device::cuda_pinned())};
    session.run(pinned, outputs);
    check(true, "a run from pinned host memory");
    std::vector<jb::TensorView> on_gpu{jb::TensorView::of(x.data(), {batch, features}).on(jb::Device::cuda(1))};
    expect_error([&] { session.run(on_gpu, outputs); }, jb::ErrorCode::Input, x_info.name, "an input in cuda:1 memory");

    // Session::empty: memory the session reads fastest (host memory here, pinned on a GPU session), filled
    // in place and read where it lies, outliving close().
    jb::Tensor staged = session.empty(jb::DType::Float32, {batch, features});
    std::memcpy(staged.view.data, x.data(), x.size() * sizeof(float));
    session.run(std::vector<jb::TensorView>{staged.view}, outputs);
    const std::vector<const void*> read_at = session.stats().input_addresses;  // none from a triton:// model
    check(staged.view.device == jb::Device::cpu() && reinterpret_cast<uintptr_t>(staged.view.data) % 64 == 0 &&
              (read_at.empty() || read_at[0] == staged.view.data),
          "Session::empty gives aligned host memory, read where it lies");
    expect_error([&] { session.empty(jb::DType::Float32, {-1}); }, jb::ErrorCode::InvalidArgument, "",
                 "Session::empty with a negative dim");

    // Production behaviour: the providers it got, one backend session per model, asynchronous runs.
    const bool onnxruntime = session.backend_name() == "onnxruntime";  // a triton:// model has no providers here
    check(session.providers() == (onnxruntime ? std::vector<std::string>{"cpu"} : std::vector<std::string>{}),
          "Session::providers() is what the backend got");
    {
      jb::Session again(model, options);
      check(again.stats().backend_id == session.stats().backend_id && session.stats().backend_users == 2,
            "a second Session of the same model and options shares the backend session");
      jb::SessionOptions own = options;
      own.shared = false;
      check(jb::Session(model, own).stats().backend_id != session.stats().backend_id, "shared = false opens its own");
    }
    check(session.stats().backend_users == 1, "closing the other Session leaves this one's backend");

    // 100 runs in flight, each into its own buffers (alive until its callback), equal to run(): on this
    // session (ONNX Runtime with one intra-op thread: the worker pool; triton://: the Triton client's
    // async_infer) and, for ONNX Runtime, on one with two intra-op threads (its RunAsync).
    auto in_flight_equal_run = [&](jb::Session& s, const std::string& mode) {
      check(s.async_mode() == mode, "Session::async_mode() is " + mode);
      const int in_flight = 100;
      std::vector<std::vector<std::vector<float>>> async_buffers(in_flight);
      std::vector<std::vector<jb::TensorView>> async_views(in_flight);
      std::vector<int32_t> all_outputs;
      for (size_t k = 0; k < outputs.size(); ++k) all_outputs.push_back(static_cast<int32_t>(k));
      std::atomic<int> remaining{in_flight}, errors{0};
      std::promise<void> all_done;
      for (int r = 0; r < in_flight; ++r) {
        for (const auto& view : outputs) {
          async_buffers[r].emplace_back(static_cast<size_t>(view.num_elements()) + 1);  // +1: never NULL
          jb::TensorView v = view;
          v.data = async_buffers[r].back().data();
          async_views[r].push_back(v);
        }
        s.run_async(inputs.data(), inputs.size(), all_outputs.data(), async_views[r].data(), nullptr, outputs.size(),
                    [&](std::exception_ptr error) {
                      if (error) errors++;
                      if (--remaining == 0) all_done.set_value();
                    });
      }
      all_done.get_future().wait();
      bool same = errors == 0;
      for (int r = 0; r < in_flight; ++r)
        for (size_t k = 0; k < outputs.size(); ++k)
          same = same && std::memcmp(async_views[r][k].data, outputs[k].data, outputs[k].nbytes()) == 0;
      check(same, "100 Session::run_async calls in flight (" + mode + ") give bitwise what run gives");
    };
    in_flight_equal_run(session, onnxruntime ? "pool" : "native");
    if (onnxruntime) {
      jb::SessionOptions two = options;
      two.intra_op_threads = 2;
      two.async_runs = "native";
      jb::Session native(model, two);
      in_flight_equal_run(native, "native");
    }

    session.close();
    expect_error([&] { session.run(inputs, outputs); }, jb::ErrorCode::InvalidArgument, "", "run after close");
    static_cast<float*>(staged.view.data)[0] = 1.0f;  // still the caller's (ASan: no use after free)
    check(true, "Session::empty's memory outlives close()");
  } catch (const jb::Error& e) {
    std::fprintf(stderr, "juno-bridge error %d: %s\n", static_cast<int>(e.code()), e.what());
    return 1;
  }
  return jb_test::summary();
}
