// A small "offline framework" event loop in the style of SNiPER: an algorithm with properties,
// initialize() / execute() once per event / finalize(), driven by a loop over an event file.
// The algorithm turns each event's sparse LPMT hits into its slot of a batch buffer and runs the
// model through jb::BatchAssembler, so per-event execute() calls get batched inference. The model is
// whatever the path names: model.onnx, model.pt2/.pt, or python:package.module:callable.
//
//   jb-framework-host MODEL EVENTS_FILE RESULTS_FILE [BATCH] [THREADS]
//
// EVENTS_FILE (written by juno_bridge.demo): "JBHITS01", uint64 events, uint64 hits, int64 offsets
// [events + 1], int32 pmt ids [hits], float32 nPE [hits], float32 first-hit times [hits].
// RESULTS_FILE: for each event, every output's row (float32), outputs in the session's order.
// Prints one JSON line: events, seconds in the event loop, events per second, the output names in order.
#include <juno_bridge/batch_assembler.hpp>
#include <juno_bridge/session.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

struct EventFile {
  std::vector<int64_t> offsets;
  std::vector<int32_t> pmt;
  std::vector<float> npe, time;
  size_t size() const { return offsets.empty() ? 0 : offsets.size() - 1; }
};

template <class T>
void read_array(std::ifstream& in, std::vector<T>& v, uint64_t n, const char* what) {
  v.resize(n);
  if (!in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * sizeof(T))))
    throw std::runtime_error(std::string("events file ends inside the ") + what + " array");
}

EventFile read_events(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open events file '" + path + "'");
  char magic[8];
  uint64_t events = 0, hits = 0;
  in.read(magic, 8);
  in.read(reinterpret_cast<char*>(&events), 8);
  in.read(reinterpret_cast<char*>(&hits), 8);
  if (!in || std::memcmp(magic, "JBHITS01", 8) != 0)
    throw std::runtime_error("'" + path + "' is not a juno-bridge events file (JBHITS01)");
  EventFile f;
  read_array(in, f.offsets, events + 1, "offsets");
  read_array(in, f.pmt, hits, "pmt id");
  read_array(in, f.npe, hits, "nPE");
  read_array(in, f.time, hits, "time");
  if (f.offsets.front() != 0 || f.offsets.back() != static_cast<int64_t>(hits))
    throw std::runtime_error("events file offsets do not cover the hits");
  return f;
}

// The algorithm a framework would schedule: properties set before initialize().
class ReconstructionAlg {
 public:
  std::string model;
  int64_t batch_size = 64;
  int threads = 1;

  bool initialize() {
    jb::SessionOptions options;
    options.intra_op_threads = threads;  // the framework owns the cores
    session_.emplace(model, options);
    for (const auto& o : session_->outputs()) output_names_.push_back(o.name);
    assembler_.emplace(*session_, batch_size);
    return true;
  }

  // One event: its hits become a slot of the batch; a full batch runs the model.
  bool execute(const int32_t* pmt, const float* npe, const float* time, int64_t hits) {
    auto done = assembler_->add(jb::TensorView::of(pmt, {hits}), jb::TensorView::of(npe, {hits}),
                                jb::TensorView::of(time, {hits}));
    collect(done);
    return true;
  }

  bool finalize() {
    collect(assembler_->flush());
    assembler_.reset();
    session_.reset();
    return true;
  }

  const std::vector<float>& results() const { return results_; }
  // The order of each event's rows in results(): the session's outputs (backends order them differently).
  const std::vector<std::string>& output_names() const { return output_names_; }

 private:
  void collect(const std::vector<jb::BatchAssembler::EventResult>& done) {
    for (const auto& event : done)
      for (const auto& row : event.rows) {
        const float* p = row.data<float>();
        results_.insert(results_.end(), p, p + row.view.num_elements());
      }
  }

  std::optional<jb::Session> session_;
  std::optional<jb::BatchAssembler> assembler_;
  std::vector<float> results_;
  std::vector<std::string> output_names_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: " << argv[0] << " MODEL EVENTS_FILE RESULTS_FILE [BATCH] [THREADS]\n";
    return 2;
  }
  try {
    const EventFile events = read_events(argv[2]);
    ReconstructionAlg alg;
    alg.model = argv[1];
    if (argc > 4) alg.batch_size = std::stoll(argv[4]);
    if (argc > 5) alg.threads = std::stoi(argv[5]);
    if (!alg.initialize()) return 1;

    const auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < events.size(); ++i) {
      const int64_t begin = events.offsets[i], hits = events.offsets[i + 1] - begin;
      alg.execute(events.pmt.data() + begin, events.npe.data() + begin, events.time.data() + begin, hits);
    }
    alg.finalize();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    std::ofstream out(argv[3], std::ios::binary);
    out.write(reinterpret_cast<const char*>(alg.results().data()),
              static_cast<std::streamsize>(alg.results().size() * sizeof(float)));
    if (!out) throw std::runtime_error(std::string("cannot write results to '") + argv[3] + "'");
    std::string names;
    for (const auto& n : alg.output_names()) names += (names.empty() ? "\"" : ", \"") + n + "\"";
    std::printf("{\"events\": %zu, \"seconds\": %.6f, \"events_per_s\": %.1f, \"outputs\": [%s]}\n", events.size(),
                seconds, events.size() / seconds, names.c_str());
    return 0;
  } catch (const jb::Error& e) {
    std::cerr << "jb-framework-host: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "jb-framework-host: " << e.what() << "\n";
    return 1;
  }
}
