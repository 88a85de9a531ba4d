// JunoBridgeSvc (jb::sniper::RuntimeSvc): a SNiPER service that owns one jb::Runtime and opens the sessions
// of the task's JunoBridgeAlg / ModelAlg instances in it, so the job, not the process, owns what they
// share: the backend sessions (algorithms of the same model and options share one, in one task or in
// several) and the threads of asynchronous runs.
//
// Property: AsyncThreads (0: asynchronous work runs on the calling thread, no thread is started; N: a
// pool of N threads, started on first use; -1: the process default's rule). The runtime is made at
// initialize and closed at finalize (which waits for the runs in flight and closes the sessions left).
//
// Shared between tasks with SNiPER's SharedElem (one instance, initialized by the first task that
// initializes, finalized by the last):
//   svc = Sniper.create("SharedElem<JunoBridgeSvc>/JunoBridgeSvc")     # Python job
//   task1.addSvc(svc); task2.addSvc(svc)
// or in C++ `Sniper::create(...)` then `task->addSvc(...)`; a JSON job lists it under "SharedElems".
// In one task alone: `task.createSvc("JunoBridgeSvc")`. A JunoBridgeAlg uses the service its property
// Service names, by default the JunoBridgeSvc its task (or the nearest task above) has, else the process
// default runtime.
#pragma once
#include <juno_bridge/runtime.hpp>
#include <juno_bridge/session.hpp>

#include <SniperKernel/SvcBase.h>

class AlgBase;

#include <memory>
#include <mutex>
#include <string>

namespace jb::sniper {

class RuntimeSvc : public SvcBase {
 public:
  explicit RuntimeSvc(const std::string& name);
  ~RuntimeSvc() override;

  bool initialize() override;
  bool finalize() override;

  // A session of `model` in this service's runtime (one backend session per model and options). Safe
  // from any task's thread; throws jb::Error when the service is not initialized or the model fails.
  std::unique_ptr<jb::Session> open(const std::string& model, const jb::SessionOptions& options);
  // The runtime (nullptr before initialize and after finalize).
  jb::Runtime* runtime() const { return runtime_.get(); }
  // The same, held: for a Python algorithm's jb.Runtime, which may outlive the service's finalize (the
  // runtime is closed then all the same).
  std::shared_ptr<jb::Runtime> shared_runtime();

 private:
  int m_asyncThreads = 0;
  std::mutex mutex_;  // guards runtime_ against a task's finalize while another task opens
  std::shared_ptr<jb::Runtime> runtime_;
};

// The JunoBridgeSvc an algorithm opens its session in: the one named `name` in its task or a task above;
// for an empty name, the one its task (else the nearest task above with any) has, if any. nullptr: none.
// Throws jb::Error when `name` is not a JunoBridgeSvc, or when a task has two and none is named.
RuntimeSvc* find_service(AlgBase* alg, const std::string& name);

}  // namespace jb::sniper

// The service as SNiPER knows it: `task.createSvc("JunoBridgeSvc")`, or shared, "SharedElem<JunoBridgeSvc>".
class JunoBridgeSvc : public jb::sniper::RuntimeSvc {
 public:
  using RuntimeSvc::RuntimeSvc;
};
