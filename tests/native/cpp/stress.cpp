// Threaded stress of the C++ Session and the C ABI: many threads on shared sessions (results bitwise
// equal to serial runs), close() while runs are in flight, open/close churn, run_async through ONNX
// Runtime's RunAsync with the Session destroyed by its last completion. Any crash, wrong number or
// unexpected error fails it; a sanitizer build (tests/native/sanitize.sh) runs the same program.
//
//   stress MODEL [shared|close|churn|async|once ...]   (default: shared close churn async)
// MODEL: x float32 [batch, 8] -> y float32 [batch, 4], s float32 [batch] (tests' write_mlp_model).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "juno_bridge/juno_bridge.h"
#include "juno_bridge/session.hpp"

namespace {

constexpr int64_t kFeatures = 8, kOutputs = 4;
const int kThreads = std::getenv("STRESS_THREADS") ? std::atoi(std::getenv("STRESS_THREADS")) : 8;
const int kScale = std::getenv("STRESS_SCALE") ? std::atoi(std::getenv("STRESS_SCALE")) : 1;

std::mutex failure_mutex;
std::atomic<int> failures{0};

void fail(const std::string& what) {
  std::lock_guard<std::mutex> lock(failure_mutex);
  if (failures.fetch_add(1) < 20) std::fprintf(stderr, "FAIL %s\n", what.c_str());
}

// One event batch and the outputs a serial run gave for it.
struct Event {
  int64_t batch;
  std::vector<float> x, y, s;
};

std::vector<float> values(int64_t n, unsigned seed) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(((37 * (i + seed)) % 101) / 16.0 - 3.0);
  return v;
}

void run_event(jb::Session& s, const Event& e, std::vector<float>& y, std::vector<float>& sum) {
  y.resize(static_cast<size_t>(e.batch * kOutputs));
  sum.resize(static_cast<size_t>(e.batch));
  std::vector<jb::TensorView> in{jb::TensorView::of(e.x.data(), {e.batch, kFeatures})};
  std::vector<jb::TensorView> out{jb::TensorView::of(y.data(), {e.batch, kOutputs}),
                                  jb::TensorView::of(sum.data(), {e.batch})};
  s.run(in, out);
}

std::vector<Event> make_events(jb::Session& s, int n) {
  std::vector<Event> events;
  std::mt19937 rng(11);
  for (int i = 0; i < n; ++i) {
    Event e;
    e.batch = 1 + static_cast<int64_t>(rng() % 32);
    e.x = values(e.batch * kFeatures, static_cast<unsigned>(i));
    run_event(s, e, e.y, e.s);
    events.push_back(std::move(e));
  }
  return events;
}

bool same(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

bool is_closed_error(const jb::Error& e) {
  return e.code() == jb::ErrorCode::InvalidArgument && std::string(e.what()).find("the session is closed") != std::string::npos;
}

// Many threads on one session, random batch sizes: every result bitwise equal to the serial one.
void shared(const std::string& model) {
  jb::Session s(model, [] { jb::SessionOptions o; o.intra_op_threads = 1; return o; }());
  const auto events = make_events(s, 32);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      std::vector<float> y, sum;
      for (int i = 0; i < 200 * kScale; ++i) {
        const Event& e = events[rng() % events.size()];
        try {
          run_event(s, e, y, sum);
          if (!same(y, e.y) || !same(sum, e.s)) fail("shared: thread " + std::to_string(t) + " got other numbers");
        } catch (const std::exception& ex) {
          fail(std::string("shared: ") + ex.what());
        }
      }
    });
  for (auto& th : threads) th.join();
}

// close() while threads run: each run either completes with the right numbers or throws "the session
// is closed"; close() returns only after the runs in flight are done; later calls all throw.
void close_during_runs(const std::string& model) {
  std::mt19937 rng(5);
  for (int round = 0; round < 20 * kScale; ++round) {
    jb::Session s(model, [] { jb::SessionOptions o; o.intra_op_threads = 1; return o; }());
    const auto events = make_events(s, 4);
    std::atomic<int> started{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        std::vector<float> y, sum;
        started.fetch_add(1);
        for (int i = 0;; ++i) {
          const Event& e = events[(t + i) % events.size()];
          try {
            run_event(s, e, y, sum);
            if (!same(y, e.y) || !same(sum, e.s)) fail("close: a run before close gave other numbers");
            if (i % 3 == 0) (void)s.inputs().size(), (void)s.metadata(), (void)s.backend_name();
          } catch (const jb::Error& ex) {
            if (!is_closed_error(ex)) fail(std::string("close: unexpected error: ") + ex.what());
            return;
          } catch (const std::exception& ex) {
            fail(std::string("close: unexpected exception: ") + ex.what());
            return;
          }
        }
      });
    while (started.load() < kThreads) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    std::thread second([&] { s.close(); });  // two closers at once: both return, the model goes once
    s.close();
    second.join();
    if (s.is_open()) fail("close: is_open() after close()");
    for (auto& th : threads) th.join();
    std::vector<float> y, sum;
    try {
      run_event(s, events[0], y, sum);
      fail("close: a run after close() did not throw");
    } catch (const jb::Error& ex) {
      if (!is_closed_error(ex)) fail(std::string("close: after close: ") + ex.what());
    }
  }
}

// Open/close churn: each thread opens its own sessions (C++ API and C ABI in turn), runs, closes.
void churn(const std::string& model) {
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 6 * kScale; ++i) {
        try {
          if ((t + i) % 2 == 0) {
            jb::Session s(model);
            auto events = make_events(s, 1);
            std::vector<float> y, sum;
            run_event(s, events[0], y, sum);
            if (!same(y, events[0].y)) fail("churn: C++ run gave other numbers");
            if (i % 4 == 0) s.close();  // else by the destructor
          } else {
            jb_session* s = nullptr;
            if (jb_session_open(model.c_str(), nullptr, &s) != JB_OK) {
              fail(std::string("churn: open: ") + jb_last_error_message());
              continue;
            }
            std::vector<float> x = values(2 * kFeatures, 1), y(2 * kOutputs), sum(2);
            jb_tensor_view in{x.data(), JB_DTYPE_FLOAT32, 2, {2, kFeatures}, JB_DEVICE_CPU, 0};
            jb_tensor_view out[2] = {{y.data(), JB_DTYPE_FLOAT32, 2, {2, kOutputs}, JB_DEVICE_CPU, 0},
                                     {sum.data(), JB_DTYPE_FLOAT32, 1, {2}, JB_DEVICE_CPU, 0}};
            if (jb_session_run(s, &in, 1, out, 2) != JB_OK) fail(std::string("churn: C run: ") + jb_last_error_message());
            jb_session_close(s);
          }
        } catch (const std::exception& ex) {
          fail(std::string("churn: ") + ex.what());
        }
      }
    });
  for (auto& th : threads) th.join();
}

// run_async through RunAsync (two intra-op threads), many in flight from several threads, each into its
// own buffers: every result bitwise equal to the serial one. The last completion of a round destroys the
// Session on the runtime's thread, while the threads that started runs may still be returning.
void async_runs(const std::string& model) {
  const int per_thread = 16 * kScale;
  for (int round = 0; round < 8; ++round) {
    jb::SessionOptions o;
    o.intra_op_threads = 2;
    o.shared = false;
    o.async_runs = "native";
    auto* session = new jb::Session(model, o);
    if (std::string(session->async_mode()) != "native") fail("async: the session's async_mode is not native");
    const auto events = make_events(*session, 8);
    struct Call {
      const Event* event = nullptr;
      std::vector<float> y, s;
      std::vector<jb::TensorView> in, out;
    };
    std::vector<Call> calls(static_cast<size_t>(kThreads * per_thread));
    std::atomic<int> remaining{static_cast<int>(calls.size())};
    std::promise<void> all_done;
    const int32_t both[2] = {0, 1};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < per_thread; ++i) {
          Call& c = calls[static_cast<size_t>(t * per_thread + i)];
          c.event = &events[static_cast<size_t>(t + i) % events.size()];
          const int64_t b = c.event->batch;
          c.y.resize(static_cast<size_t>(b * kOutputs));
          c.s.resize(static_cast<size_t>(b));
          c.in = {jb::TensorView::of(c.event->x.data(), {b, kFeatures})};
          c.out = {jb::TensorView::of(c.y.data(), {b, kOutputs}), jb::TensorView::of(c.s.data(), {b})};
          try {
            session->run_async(c.in.data(), 1, both, c.out.data(), nullptr, 2, [&](std::exception_ptr error) {
              if (error) fail("async: a run failed");
              else if (!same(c.y, c.event->y) || !same(c.s, c.event->s)) fail("async: a run gave other numbers");
              if (--remaining == 0) {
                delete session;  // on the runtime's thread
                all_done.set_value();
              }
            });
          } catch (const std::exception& ex) {
            fail(std::string("async: ") + ex.what());
          }
        }
      });
    for (auto& th : threads) th.join();
    all_done.get_future().wait();
  }
}

// One open, run, close: what a leak check at exit looks at.
void once(const std::string& model) {
  jb::Session s(model);
  auto events = make_events(s, 1);
  (void)events;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL [shared|close|churn|async|once ...]\n", argv[0]);
    return 2;
  }
  const std::string model = argv[1];
  std::vector<std::string> scenarios(argv + 2, argv + argc);
  if (scenarios.empty()) scenarios = {"shared", "close", "churn", "async"};
  for (const auto& name : scenarios) {
    const auto start = std::chrono::steady_clock::now();
    const int before = failures.load();
    if (name == "shared") shared(model);
    else if (name == "close") close_during_runs(model);
    else if (name == "churn") churn(model);
    else if (name == "async") async_runs(model);
    else if (name == "once") once(model);
    else {
      std::fprintf(stderr, "unknown scenario '%s'\n", name.c_str());
      return 2;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%s %s (%d threads, %.2f s)\n", failures.load() == before ? "PASS" : "FAIL", name.c_str(), kThreads,
                seconds);
  }
  return failures.load() ? 1 : 0;
}
