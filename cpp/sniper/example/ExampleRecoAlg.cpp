// What a JUNO algorithm on juno-bridge looks like: the event model's data in, the model's results out.
// Here the "event model" is a pattern made from the event number, and the results go back into the
// store as "example_energy" (a real one would write its event model's reconstructed objects).
#include <juno_bridge/sniper/ModelAlg.h>

#include <SniperKernel/AlgFactory.h>

class ExampleRecoAlg : public jb::sniper::ModelAlg {
 public:
  using ModelAlg::ModelAlg;

 protected:
  bool fillInputs(jb::sniper::TensorStore& store) override {
    float* pmt = store.create<float>("pmt", {1, 2, 17612});
    for (int64_t i = 0; i < 17612; ++i) {
      pmt[i] = static_cast<float>((i * 7 + event_) % 5);         // nPE
      pmt[17612 + i] = static_cast<float>((i + 3 * event_) % 11);  // first-hit time
    }
    ++event_;
    return true;
  }

  bool consumeOutputs(jb::sniper::TensorStore& store) override {
    const auto& energy = store.at("energy", jb::DType::Float32, {1});
    *store.create<float>("example_energy", {1}) = *static_cast<const float*>(energy.data);
    return true;
  }

 private:
  int64_t event_ = 0;
};

DECLARE_ALGORITHM(ExampleRecoAlg);
