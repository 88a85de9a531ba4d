// Option staging=pinned from C++, without Python, where the sanitizer builds can see it: the echo plugin
// optechopinasync (option_echo_plugin.cpp with -DECHO_PINNED -DECHO_ASYNC, on $JUNO_BRIDGE_PLUGIN_PATH)
// hands pinned-labelled memory of its own, so the core stages every pageable host array through it.
//
//   staging_cpp
//
// Checks: y = 2x for sizes below and above the one where a copy is split over threads; the plugin reads x
// from a pinned block, never the caller's memory; run_async copies before it returns and back before
// `done`; 4 threads mixing run and run_async on one session each get their own result; close() waits for
// them, and a run after it is refused. Prints PASS/FAIL lines, then "N passed, M failed".
#include <atomic>
#include <cstdio>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "checks.hpp"
#include "juno_bridge/session.hpp"

namespace {

using jb_test::check;

constexpr int64_t kSplit = (int64_t{4} << 20) / 4;  // staging.cpp's split size, in floats

bool twice(const std::vector<float>& x, const std::vector<float>& y) {
  for (size_t i = 0; i < x.size(); ++i)
    if (y[i] != 2 * x[i]) return false;
  return true;
}

// One run of n elements, synchronous or not; true when y = 2x and the plugin read x elsewhere.
bool one_run(jb::Session& s, int64_t n, bool async, float value) {
  std::vector<float> x(static_cast<size_t>(n), value), y(static_cast<size_t>(n), -1.0f);
  const int64_t shape[1] = {n};
  jb::TensorView in(x.data(), jb::DType::Float32, shape, 1), out(y.data(), jb::DType::Float32, shape, 1);
  const int32_t index = 0;
  if (async) {
    std::promise<std::exception_ptr> done;
    s.run_async(&in, 1, &index, &out, nullptr, 1, [&done](std::exception_ptr e) { done.set_value(e); });
    std::fill(x.begin(), x.end(), -1.0f);  // staged already: the run reads its own copy
    if (done.get_future().get()) return false;
    std::fill(x.begin(), x.end(), value);
  } else {
    s.run(&in, 1, &index, &out, nullptr, 1);
  }
  return twice(x, y);
}

}  // namespace

int main() {
  jb::SessionOptions options;
  options.backend = "optechopinasync";
  options.staging = "pinned";
  jb::Session s("anything", options);

  for (int64_t n : {int64_t{1}, int64_t{1000}, kSplit - 1, kSplit, 3 * kSplit + 17}) {
    check(one_run(s, n, false, 1.5f), "run, " + std::to_string(n) + " floats: y = 2x");
    check(one_run(s, n, true, 2.5f), "run_async, " + std::to_string(n) + " floats: y = 2x, x free at once");
  }
  std::vector<float> x(16, 1.0f);
  std::vector<float> y(16);
  const int64_t shape[1] = {16};
  jb::TensorView in(x.data(), jb::DType::Float32, shape, 1), out(y.data(), jb::DType::Float32, shape, 1);
  s.run(&in, 1, &out, 1);
  const jb::SessionStats st = s.stats();
  check(st.input_addresses.size() == 1 && st.input_addresses[0] != x.data(),
        "the plugin read x from a block of the session's, not the caller's memory");
  check(st.inputs_staged == 11, "11 inputs staged, got " + std::to_string(st.inputs_staged));

  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i)
        if (!one_run(s, 1 + (t * 40 + i) * 7919 % (kSplit + 100), (i + t) % 2 == 0, static_cast<float>(t * 100 + i)))
          bad.fetch_add(1);
    });
  for (auto& t : threads) t.join();
  check(bad.load() == 0, "4 threads, 160 runs and run_asyncs on one session: every result its own");

  s.close();
  bool refused = false;
  try {
    s.run(&in, 1, &out, 1);
  } catch (const jb::Error& e) {
    refused = std::string(e.what()).find("closed") != std::string::npos;
  }
  check(refused, "a run after close() is refused");

  jb::SessionOptions cpu;
  cpu.staging = "pinned";
  cpu.backend = "optecho";
  bool refused_cpu = false;
  try {
    jb::Session plain("anything", cpu);
  } catch (const jb::Error& e) {
    refused_cpu = e.code() == jb::ErrorCode::InvalidArgument &&
                  std::string(e.what()).find("option staging=pinned") != std::string::npos;
  }
  check(refused_cpu, "staging=pinned refused for a backend with no pinned memory (optecho)");
  return jb_test::summary();
}
