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

}  // namespace jb
