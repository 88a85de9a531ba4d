// The calling thread's last error: what the C ABI reports and what plugins set through the host.
#pragma once

#include <string>

#include "juno_bridge/error.hpp"

namespace jb {

struct LastError {
  jb_status status = JB_OK;
  int backend_code = 0;
  std::string message;
};

LastError& last_error();  // thread-local
void set_last_error(jb_status status, int backend_code, const char* message);
void clear_last_error();
// Records the exception in flight (status_of_current_exception) as this thread's last error; call it
// only inside a catch block of a C entry point. Returns the status it recorded.
jb_status set_last_error_from_current_exception() noexcept;

// A C entry point's answer to a NULL pointer argument: the thread's last error names it.
inline jb_status null_argument(const char* name) {
  set_last_error(JB_ERROR_INVALID_ARGUMENT, 0, (std::string("argument '") + name + "' is NULL").c_str());
  return JB_ERROR_INVALID_ARGUMENT;
}

// The body of a C entry point: the last error cleared, then set from any exception the body throws.
template <class F>
jb_status guarded(F&& body) noexcept {
  clear_last_error();
  try {
    body();
    return JB_OK;
  } catch (...) {
    return set_last_error_from_current_exception();
  }
}

}  // namespace jb
