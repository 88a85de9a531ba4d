// JunoBridgeSvc: one jb::Runtime for the algorithms of one task or, shared (SharedElem), of several.
#include "juno_bridge/sniper/JunoBridgeSvc.h"

#include <SniperKernel/SharedElemFactory.h>
#include <SniperKernel/SvcFactory.h>

#include <exception>

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
    runtime_ = std::make_unique<jb::Runtime>(m_asyncThreads);
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
  std::unique_ptr<jb::Runtime> runtime;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    runtime.swap(runtime_);
  }
  if (runtime) runtime->close();  // waits for the runs in flight, closes the sessions an algorithm left open
  return true;
}

std::unique_ptr<jb::Session> RuntimeSvc::open(const std::string& model, const jb::SessionOptions& options) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!runtime_)
    throw jb::Error(jb::ErrorCode::Runtime, m_tag + " '" + m_name + "' is not initialized (or was finalized)");
  return std::make_unique<jb::Session>(model, options, *runtime_);
}

}  // namespace jb::sniper
