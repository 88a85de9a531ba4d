#include "python_gil.hpp"

#include <dlfcn.h>

namespace jb::sniper {
namespace {

struct PythonApi {
  int (*is_initialized)() = nullptr;
  int (*gil_check)() = nullptr;
  void* (*save_thread)() = nullptr;
  void (*restore_thread)(void*) = nullptr;

  PythonApi() {
    is_initialized = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "Py_IsInitialized"));
    gil_check = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "PyGILState_Check"));
    save_thread = reinterpret_cast<void* (*)()>(dlsym(RTLD_DEFAULT, "PyEval_SaveThread"));
    restore_thread = reinterpret_cast<void (*)(void*)>(dlsym(RTLD_DEFAULT, "PyEval_RestoreThread"));
  }
  bool present() const { return is_initialized && gil_check && save_thread && restore_thread; }
};

// Looked up on each call until Python shows up (a plugin may start the interpreter later), then kept.
const PythonApi* python_api() {
  static const PythonApi* found = nullptr;
  if (found == nullptr) {
    static PythonApi api;
    if (!api.present()) api = PythonApi();
    if (api.present()) found = &api;
  }
  return found;
}

}  // namespace

GilRelease::GilRelease(bool enabled) {
  if (!enabled) return;
  const PythonApi* py = python_api();
  // Py_IsInitialized first: before it, PyGILState_Check answers 1 whatever the thread holds.
  if (py != nullptr && py->is_initialized() && py->gil_check()) state_ = py->save_thread();
}

GilRelease::~GilRelease() {
  if (state_ != nullptr) python_api()->restore_thread(state_);
}

}  // namespace jb::sniper
