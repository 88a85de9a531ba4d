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

PythonApi& python_api() {
  static PythonApi api;
  return api;
}

}  // namespace

void GilRelease::find_python() {
  if (!python_api().present()) python_api() = PythonApi();
}

GilRelease::GilRelease(bool enabled) {
  if (!enabled) return;
  const PythonApi& py = python_api();
  // Py_IsInitialized first: before it, PyGILState_Check answers 1 whatever the thread holds.
  if (py.present() && py.is_initialized() && py.gil_check()) state_ = py.save_thread();
}

GilRelease::~GilRelease() {
  if (state_ != nullptr) python_api().restore_thread(state_);
}

}  // namespace jb::sniper
