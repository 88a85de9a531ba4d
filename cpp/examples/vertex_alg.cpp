// c++ -std=c++17 -O2 vertex_alg.cpp $(juno-bridge config --cflags --libs) -o vertex_alg && ./vertex_alg
#include <juno_bridge/session.hpp>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

class VertexAlg {  // SNiPER-style: initialize / execute / finalize
 public:
  bool initialize(const std::string& model) {  // "default", "vertex.onnx", "vertex.pt2", "python:pkg.mod:f"
    try {
      jb::SessionOptions opt;
      opt.intra_op_threads = 1;  // the framework owns the threads
      m_session.emplace(model, opt);
    } catch (const jb::Error& e) {  // a missing or broken model, an absent plugin: the message says which
      std::fprintf(stderr, "VertexAlg: %s\n", e.what());
      return false;
    }
    m_in = {jb::TensorView::of(pmt.data(), {1, 2, 17612})};
    m_out = {jb::TensorView::of(m_vertex.data(), {1, 3}), jb::TensorView::of(m_energy.data(), {1})};
    return true;
  }
  bool execute() {  // per event: fill `pmt` (nPE, first-hit time of each PMT), then
    try {
      m_session->run(m_in, m_out);  // nothing allocated, the outputs written in place
    } catch (const jb::Error& e) {  // a shape or dtype the model does not take, a failing run
      std::fprintf(stderr, "VertexAlg: %s\n", e.what());
      return false;
    }
    std::printf("vertex (%.2f, %.2f, %.2f) m, energy %.2f MeV\n", m_vertex[0], m_vertex[1], m_vertex[2], m_energy[0]);
    return true;
  }
  bool finalize() { m_session.reset(); return true; }

  std::vector<float> pmt = std::vector<float>(2 * 17612);  // [1, 2, 17612]: channel 0 nPE, 1 time (ns)

 private:
  std::optional<jb::Session> m_session;
  std::vector<float> m_vertex = std::vector<float>(3), m_energy = std::vector<float>(1);
  std::vector<jb::TensorView> m_in, m_out;
};

int main(int argc, char** argv) {
  VertexAlg alg;
  if (!alg.initialize(argc > 1 ? argv[1] : "default")) return 1;
  for (int event = 0; event < 3; ++event) {  // toy events: 1 PE at 100 ns on every 7th PMT (about 2 MeV)
    for (int i = 0; i < 17612; ++i) {
      const bool fired = i % 7 == event;
      alg.pmt[i] = fired ? 1.0f : 0.0f;
      alg.pmt[17612 + i] = fired ? 100.0f : 0.0f;
    }
    if (!alg.execute()) return 1;
  }
  return alg.finalize() ? 0 : 1;
}
