// jb-sniper-tasks: SNiPER tasks built in C++, each running its event loop on a std::thread of its own,
// the way a multi-threaded framework drives them (SNiPER's own TBB driver is not public). For the tests
// (outputs, threads) and `juno-bridge bench` (events/s, the cost of one algorithm per event).
//
//   jb-sniper-tasks EVENTS MODEL [--tasks N] [--alg reco|bare|empty|none] [--service] [--async-threads N]
//                   [--threads N] [--out DIR] [--repeat R] [--fixed N]
//
// Every task: HitsReaderAlg over EVENTS (an HDF5 hits file), then --alg: reco (JunoBridgeAlg on MODEL,
// the default), bare (Session::run alone on the store's pmt, into buffers made once: the C++ loop
// JunoBridgeAlg is compared with), empty (an algorithm that does nothing: SNiPER's own cost of one more
// algorithm) or none.
// --service: one JunoBridgeSvc, shared by every task (SNiPER's SharedElem), owns the runtime the
// algorithms open their sessions in (--async-threads: its pool size; 0: the caller's thread); without it
// they use the process default runtime. --threads: ONNX Runtime's intra-op threads (1). --out DIR: each
// task's outputs, DIR/task<i>.<key>.bin (the raw bytes, events in order). --repeat R: the whole job R
// times, the fastest reported. --fixed N: N events of one fixed pmt instead of the reader (EVENTS unread).
//
// Prints one JSON line: tasks, events (per task), seconds (wall time of the runs, the fastest), event_us
// (the median time from one event's start to the next in task 0, the fastest), threads_before (the
// process's threads before any task exists, once a session of MODEL has been opened and closed, so that
// the backend's process-wide threads are counted here), threads_peak (the most seen while the tasks ran: sampled
// by the main thread and at every task's first events), threads_after (after the tasks are deleted),
// harness_threads (the threads this program starts), pool_threads (the service's pool threads started),
// backend_sessions (the most backend sessions open in the service's runtime, else in the process, seen
// from the tasks). Errors: stderr, exit status 1.
#include <juno_bridge/sniper/JunoBridgeSvc.h>
#include <juno_bridge/sniper/TensorStore.h>
#include <juno_bridge/hits.hpp>
#include <juno_bridge/session.hpp>

#include <SniperKernel/AlgBase.h>
#include <SniperKernel/AlgFactory.h>
#include <SniperKernel/Sniper.h>
#include <SniperKernel/SniperLog.h>
#include <SniperKernel/SvcBase.h>
#include <SniperKernel/Task.h>

#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "jb-sniper-tasks: %s\n", message.c_str());
  std::exit(1);
}

int thread_count() {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  int n = 0;
  while (const dirent* e = readdir(dir))
    if (e->d_name[0] != '.') ++n;
  closedir(dir);
  return n;
}

void note_max(std::atomic<int64_t>& peak, int64_t n) {
  int64_t seen = peak.load();
  while (n > seen && !peak.compare_exchange_weak(seen, n)) {
  }
}

std::atomic<int64_t> g_threads_peak{0}, g_pool_threads{0}, g_backends{0};
jb::sniper::RuntimeSvc* g_service = nullptr;  // --service

void note_threads() { note_max(g_threads_peak, thread_count()); }

// From a task's thread, while its algorithms are initialized (so the shared service's runtime exists).
void note_runtime() {
  note_threads();
  if (g_service != nullptr && g_service->runtime() != nullptr) {
    note_max(g_pool_threads, g_service->runtime()->started_threads());
    note_max(g_backends, g_service->runtime()->open_backend_count());
  } else {
    note_max(g_backends, jb::open_backend_count());
  }
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// First in every task: when each event starts, and the thread count at the first events.
class EventClockAlg : public AlgBase {
 public:
  explicit EventClockAlg(const std::string& name) : AlgBase(name) {}
  bool initialize() override {
    starts.clear();
    starts.reserve(1 << 16);
    return true;
  }
  bool execute() override {
    if (starts.size() < 2) note_runtime();
    starts.push_back(Clock::now());
    seen = static_cast<int64_t>(starts.size());
    return true;
  }
  bool finalize() override {  // the first algorithm, finalized last: the task's service is still there
    note_runtime();
    return true;
  }
  std::vector<Clock::time_point> starts;
  std::atomic<int64_t> seen{0};  // starts.size(), for the main thread
};
DECLARE_ALGORITHM(EventClockAlg);

// Instead of the reader (--fixed N): one event's pmt, made at the first event and kept (the loop without
// the read and the scatter, to time what follows it to a fraction of a microsecond).
class FixedEventAlg : public AlgBase {
 public:
  explicit FixedEventAlg(const std::string& name) : AlgBase(name) {}
  bool initialize() override { return true; }
  bool execute() override {
    auto& store = jb::sniper::TensorStore::of(this);
    if (store.contains("pmt")) return true;
    float* pmt = store.create<float>("pmt", {1, 2, jb::kLargePmts});
    for (int64_t i = 0; i < 2 * jb::kLargePmts; ++i) pmt[i] = static_cast<float>((i * 37) % 101) / 16.0f;
    return true;
  }
  bool finalize() override { return true; }
};
DECLARE_ALGORITHM(FixedEventAlg);

// Does nothing: what one more algorithm costs in SNiPER itself.
class EmptyAlg : public AlgBase {
 public:
  explicit EmptyAlg(const std::string& name) : AlgBase(name) {}
  bool initialize() override { return true; }
  bool execute() override { return true; }
  bool finalize() override { return true; }
};
DECLARE_ALGORITHM(EmptyAlg);

// The least an algorithm can do to run the model: Session::run on the store's pmt into buffers made
// once (the C++ loop JunoBridgeAlg is compared with, at the same place in the same task).
class BareSessionAlg : public AlgBase {
 public:
  explicit BareSessionAlg(const std::string& name) : AlgBase(name) {
    declProp("Model", m_model);
    declProp("Threads", m_threads);
  }
  bool initialize() override {
    jb::SessionOptions options;
    options.intra_op_threads = m_threads;
    session_ = std::make_unique<jb::Session>(m_model, options);
    store_ = &jb::sniper::TensorStore::of(this);
    for (const auto& o : session_->outputs()) {
      std::vector<int64_t> shape = o.shape;
      for (auto& d : shape) d = d < 0 ? 1 : d;  // batch 1
      const jb::TensorView& v = store_->create("bare_" + o.name, o.dtype, shape);
      out_.push_back(v);
    }
    return true;
  }
  bool execute() override {
    const jb::TensorView& in = store_->at("pmt");
    session_->run(&in, 1, out_.data(), out_.size());
    return true;
  }
  bool finalize() override {
    session_.reset();
    return true;
  }

 private:
  std::string m_model;
  int m_threads = 1;
  std::unique_ptr<jb::Session> session_;
  jb::sniper::TensorStore* store_ = nullptr;
  std::vector<jb::TensorView> out_;
};
DECLARE_ALGORITHM(BareSessionAlg);

// Last in a task with --out: the bytes of every store tensor named in Keys, appended per event.
class CollectAlg : public AlgBase {
 public:
  explicit CollectAlg(const std::string& name) : AlgBase(name) { declProp("Keys", m_keys); }
  bool initialize() override {
    store_ = &jb::sniper::TensorStore::of(this);
    return true;
  }
  bool execute() override {
    for (const auto& k : m_keys) {
      const jb::TensorView& v = store_->at(k);
      const char* p = static_cast<const char*>(v.data);
      bytes[k].insert(bytes[k].end(), p, p + v.nbytes());
    }
    return true;
  }
  bool finalize() override { return true; }
  std::map<std::string, std::vector<char>> bytes;

 private:
  std::vector<std::string> m_keys;
  jb::sniper::TensorStore* store_ = nullptr;
};
DECLARE_ALGORITHM(CollectAlg);

struct Options {
  std::string events, model, alg = "reco", out;
  int tasks = 1, async_threads = -1, threads = 1, repeat = 1, fixed = 0;
  bool service = false;
};

int parse_int(const char* text, const char* what, int minimum) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || v < minimum)
    fail(std::string(what) + " must be an integer >= " + std::to_string(minimum) + "; got '" + text + "'");
  return static_cast<int>(v);
}

Options parse(int argc, char** argv) {
  if (argc < 3)
    fail(
        "usage: jb-sniper-tasks EVENTS MODEL [--tasks N] [--alg reco|bare|empty|none] [--service] "
        "[--async-threads N] [--threads N] [--out DIR] [--repeat R] [--fixed N]");
  Options o;
  o.events = argv[1];
  o.model = argv[2];
  for (int i = 3; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) fail(a + " needs a value");
      return argv[++i];
    };
    if (a == "--tasks") o.tasks = parse_int(value(), "--tasks", 1);
    else if (a == "--alg") o.alg = value();
    else if (a == "--service") o.service = true;
    else if (a == "--async-threads") o.async_threads = parse_int(value(), "--async-threads", 0);
    else if (a == "--threads") o.threads = parse_int(value(), "--threads", 1);
    else if (a == "--out") o.out = value();
    else if (a == "--repeat") o.repeat = parse_int(value(), "--repeat", 1);
    else if (a == "--fixed") o.fixed = parse_int(value(), "--fixed", 3);
    else fail("unknown option '" + a + "'");
  }
  if (o.alg != "reco" && o.alg != "bare" && o.alg != "empty" && o.alg != "none")
    fail("--alg must be reco, bare, empty or none; got '" + o.alg + "'");
  if (o.async_threads >= 0 && !o.service) fail("--async-threads sizes the service's pool: it needs --service");
  return o;
}

void set(DLElement* element, const std::string& key, const std::string& json) {
  Property* p = element->property(key);
  if (p == nullptr) fail(element->objName() + " has no property " + key);
  p->set(json);
}

struct Job {
  std::vector<std::unique_ptr<Task>> tasks;
  std::vector<EventClockAlg*> clocks;
  std::vector<CollectAlg*> collectors;
};

Job build(const Options& o, SvcBase* service) {
  Job job;
  for (int t = 0; t < o.tasks; ++t) {
    auto task = std::make_unique<Task>("task" + std::to_string(t));
    task->setEvtMax(o.fixed > 0 ? o.fixed : -1);
    task->setLogLevel(3);
    if (service != nullptr && task->addSvc(service) == nullptr) fail("cannot add the service to a task");
    job.clocks.push_back(dynamic_cast<EventClockAlg*>(task->createAlg("EventClockAlg/clock")));
    if (o.fixed > 0) task->createAlg("FixedEventAlg/fixed");
    else set(task->createAlg("HitsReaderAlg/reader"), "Files", "[" + json_string(o.events) + "]");
    if (o.alg == "reco") {
      AlgBase* reco = task->createAlg("JunoBridgeAlg/reco");
      set(reco, "Model", json_string(o.model));
      set(reco, "Threads", std::to_string(o.threads));
    } else if (o.alg == "bare") {
      AlgBase* bare = task->createAlg("BareSessionAlg/bare");
      set(bare, "Model", json_string(o.model));
      set(bare, "Threads", std::to_string(o.threads));
    } else if (o.alg == "empty") {
      task->createAlg("EmptyAlg/empty");
    }
    if (!o.out.empty()) {
      auto* collect = dynamic_cast<CollectAlg*>(task->createAlg("CollectAlg/collect"));
      set(collect, "Keys",
          o.alg == "reco"   ? R"(["vertex", "energy"])"
          : o.alg == "bare" ? R"(["bare_vertex", "bare_energy"])"
                            : R"(["pmt"])");
      job.collectors.push_back(collect);
    }
    job.tasks.push_back(std::move(task));
  }
  return job;
}

double median_event_us(const std::vector<Clock::time_point>& starts) {
  std::vector<double> d;
  for (size_t i = 1; i + 1 < starts.size(); ++i)  // the last start is the reader's stop
    d.push_back(std::chrono::duration<double, std::micro>(starts[i] - starts[i - 1]).count());
  if (d.empty()) return 0.0;
  std::nth_element(d.begin(), d.begin() + d.size() / 2, d.end());
  return d[d.size() / 2];
}

}  // namespace

int run(const Options& o) {
  if (o.alg == "reco" || o.alg == "bare") {
    // The backend's process-wide threads (ONNX Runtime's environment keeps one) exist before any task:
    // a session of the model, opened and closed in a runtime of its own, brings them first.
    jb::Runtime first(0);
    jb::SessionOptions options;
    options.intra_op_threads = o.threads;
    jb::Session(o.model, options, first).close();
  }
  const int threads_before = thread_count();
  g_threads_peak = threads_before;

  SvcBase* service = nullptr;
  if (o.service) {
    // SNiPER's SharedElem: one instance, owned by SNiPER, added to every task; initialized by the first
    // task that initializes and finalized by the last.
    service = dynamic_cast<SvcBase*>(Sniper::create("SharedElem<JunoBridgeSvc>/JunoBridgeSvc"));
    g_service = dynamic_cast<jb::sniper::RuntimeSvc*>(service);
    if (g_service == nullptr) fail("cannot create a shared JunoBridgeSvc");
    if (o.async_threads >= 0) set(service, "AsyncThreads", std::to_string(o.async_threads));
  }

  double best_s = 0.0, event_us = 0.0;
  int64_t events = 0;
  for (int r = 0; r < o.repeat; ++r) {
    Job job = build(o, service);
    std::atomic<int> failed{0}, finished{0};
    std::vector<std::thread> threads;
    const auto start = Clock::now();
    for (auto& task : job.tasks)
      threads.emplace_back([&failed, &finished, t = task.get()] {
        if (!t->run()) ++failed;
        ++finished;
      });
    while (finished < o.tasks) {  // the thread count, sampled while the tasks run
      note_threads();
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    for (auto& th : threads) th.join();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (failed) fail(std::to_string(failed.load()) + " task(s) failed (their log says why)");
    if (r == 0 || seconds < best_s) {
      best_s = seconds;
      event_us = median_event_us(job.clocks[0]->starts);
    }
    // With the reader, the last start is the one its stop ends.
    events = static_cast<int64_t>(job.clocks[0]->starts.size()) - (o.fixed > 0 ? 0 : 1);
    if (!o.out.empty() && r == 0)
      for (size_t t = 0; t < job.collectors.size(); ++t)
        for (const auto& kv : job.collectors[t]->bytes) {
          const std::string path = o.out + "/task" + std::to_string(t) + "." + kv.first + ".bin";
          std::ofstream f(path, std::ios::binary);
          f.write(kv.second.data(), static_cast<std::streamsize>(kv.second.size()));
          if (!f) fail("cannot write " + path);
        }
  }
  std::printf(
      "{\"tasks\": %d, \"events\": %lld, \"seconds\": %.6f, \"event_us\": %.3f, \"threads_before\": %d, "
      "\"threads_peak\": %lld, \"threads_after\": %d, \"harness_threads\": %d, \"pool_threads\": %lld, "
      "\"backend_sessions\": %lld}\n",
      o.tasks, static_cast<long long>(events), best_s, event_us, threads_before,
      static_cast<long long>(g_threads_peak.load()), thread_count(), o.tasks,
      static_cast<long long>(g_pool_threads.load()), static_cast<long long>(g_backends.load()));
  return 0;
}

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {  // a model that does not open, a property SNiPER refuses
    fail(e.what());
  }
}
