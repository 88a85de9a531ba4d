// JunoBridgeSvc: one jb::Runtime for the algorithms of one task or, shared (SharedElem), of several.
#include "juno_bridge/sniper/JunoBridgeSvc.h"

#include <SniperKernel/AlgBase.h>
#include <SniperKernel/ExecUnit.h>
#include <SniperKernel/SharedElemFactory.h>
#include <SniperKernel/SniperJSON.h>
#include <SniperKernel/SvcFactory.h>

#include <exception>
#include <vector>

DECLARE_SERVICE(JunoBridgeSvc);
DECLARE_CAN_BE_SHARED(JunoBridgeSvc);

namespace jb::sniper {

RuntimeSvc::RuntimeSvc(const std::string& name) : SvcBase(name) { declProp("AsyncThreads", m_asyncThreads); }

RuntimeSvc::~RuntimeSvc() { RuntimeSvc::finalize(); }

bool RuntimeSvc::initialize() {
  if (m_asyncThreads < -1) {
    LogError << m_tag << " '" << m_name << "': AsyncThreads must be -1 (the process default's rule), 0 (the "
             << "calling thread) or a pool size; got " << m_asyncThreads << std::endl;
    return false;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  try {
    runtime_ = std::make_shared<jb::Runtime>(m_asyncThreads);
  } catch (const std::exception& e) {
    LogError << m_tag << " '" << m_name << "': " << e.what() << std::endl;
    return false;
  }
  LogInfo << "runtime with "
          << (m_asyncThreads == 0 ? std::string("no async threads (the calling thread)")
                                  : std::to_string(runtime_->async_threads()) + " async thread(s)")
          << std::endl;
  return true;
}

bool RuntimeSvc::finalize() {
  std::shared_ptr<jb::Runtime> runtime;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    runtime.swap(runtime_);
  }
  // Waits for the runs in flight and closes the sessions an algorithm left open, whoever else still holds
  // the runtime (a Python SessionAlg's jb.Runtime: it then refuses new sessions).
  if (runtime) runtime->close();
  return true;
}

std::unique_ptr<jb::Session> RuntimeSvc::open(const std::string& model, const jb::SessionOptions& options) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!runtime_)
    throw jb::Error(jb::ErrorCode::Runtime, m_tag + " '" + m_name + "' is not initialized (or was finalized)");
  return std::make_unique<jb::Session>(model, options, *runtime_);
}

std::shared_ptr<jb::Runtime> RuntimeSvc::shared_runtime() {
  std::lock_guard<std::mutex> lock(mutex_);
  return runtime_;
}

// The JunoBridgeSvc an algorithm opens its session in: the one named `name` in its task or a task above;
// for an empty name, the one its task (else the nearest task above with any) has, if any. nullptr: none.
RuntimeSvc* find_service(AlgBase* alg, const std::string& name) {
  for (ExecUnit* task = alg->getParent(); task != nullptr; task = task->getParent()) {
    if (!name.empty()) {
      SvcBase* svc = task->findSvc(name);
      if (svc == nullptr) continue;
      if (auto* ours = dynamic_cast<RuntimeSvc*>(svc)) return ours;
      throw Error(ErrorCode::InvalidArgument, "the property Service names '" + name + "', a " + svc->tag() +
                                                  " of task '" + task->objName() + "', not a JunoBridgeSvc");
    }
    // A task lists its services only in its JSON form: "<type>/<name>", or "[i]:<type>/<name>" when shared.
    std::vector<RuntimeSvc*> found;
    std::string names;
    const SniperJSON json = task->json();
    const SniperJSON& services = json["services"];
    for (auto it = services.vec_begin(); it != services.vec_end(); ++it) {
      const std::string id = (*it)["identifier"].get<std::string>();
      const std::string svc_name = id.substr(id.rfind('/') + 1);
      if (auto* ours = dynamic_cast<RuntimeSvc*>(task->findSvc(svc_name))) {
        found.push_back(ours);
        names += (names.empty() ? "" : ", ") + svc_name;
      }
    }
    if (found.size() > 1)
      throw Error(ErrorCode::InvalidArgument, "task '" + task->objName() + "' has " + std::to_string(found.size()) +
                                                  " JunoBridgeSvc (" + names + "): name one with the property Service");
    if (found.size() == 1) return found.front();
  }
  return nullptr;
}

}  // namespace jb::sniper
