// jb::Error: the one exception type of the C++ API; its code maps 1:1 onto jb_status and the
// Python exception classes.
#pragma once

#include <new>
#include <stdexcept>
#include <string>

#include "juno_bridge/juno_bridge.h"

namespace jb {

enum class ErrorCode : int {
  InvalidArgument = JB_ERROR_INVALID_ARGUMENT,
  Input = JB_ERROR_INPUT,
  InputType = JB_ERROR_INPUT_TYPE,
  ModelLoad = JB_ERROR_MODEL_LOAD,
  BackendUnavailable = JB_ERROR_BACKEND_UNAVAILABLE,
  Runtime = JB_ERROR_RUNTIME,
  Unsupported = JB_ERROR_UNSUPPORTED,
};

class JB_API Error : public std::runtime_error {
 public:
  // backend_code: the backend's own error code (ONNX Runtime's OrtErrorCode), 0 when none.
  Error(ErrorCode code, const std::string& message, int backend_code = 0)
      : std::runtime_error(message), code_(code), backend_code_(backend_code) {}
  Error(jb_status status, const std::string& message, int backend_code = 0)
      : Error(static_cast<ErrorCode>(status), message, backend_code) {}
  ErrorCode code() const noexcept { return code_; }
  int backend_code() const noexcept { return backend_code_; }

 private:
  ErrorCode code_;
  int backend_code_;
};

// The one translation of the exception in flight into a status, for every C entry point (the C ABI,
// the Cython glue, the plugins' tables): a jb::Error keeps its code, message and backend code; anything
// else becomes `fallback` with its text. Header-only, so the plugins, which never link the core, use
// this very function. Call it only inside a catch block.
inline jb_status status_of_current_exception(jb_status fallback, std::string& message, int& backend_code) noexcept {
  backend_code = 0;
  try {
    try {
      throw;
    } catch (const Error& e) {
      backend_code = e.backend_code();
      message = e.what();
      return static_cast<jb_status>(e.code());
    } catch (const std::bad_alloc&) {
      message = "out of memory";
    } catch (const std::exception& e) {
      message = e.what();
    } catch (...) {
      message = "unknown C++ exception (not derived from std::exception)";
    }
  } catch (...) {
    message.clear();  // assigning the text ran out of memory
  }
  return fallback;
}

}  // namespace jb
