// jb::Error: the one exception type of the C++ API; its code maps 1:1 onto jb_status and the
// Python exception classes.
#pragma once

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

class Error : public std::runtime_error {
 public:
  // backend_code: the backend's own error code (ONNX Runtime's OrtErrorCode), 0 when none.
  Error(ErrorCode code, const std::string& message, int backend_code = 0)
      : std::runtime_error(message), code_(code), backend_code_(backend_code) {}
  ErrorCode code() const noexcept { return code_; }
  int backend_code() const noexcept { return backend_code_; }

 private:
  ErrorCode code_;
  int backend_code_;
};

}  // namespace jb
