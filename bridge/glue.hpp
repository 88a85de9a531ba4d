// What the Cython module calls: the core's entry points wrapped so that no C++ exception crosses into
// Cython. Each returns 0 or a jb_status and fills `status`, which _core.pyx turns into the matching
// Python exception in one place (raise_status).
#pragma once

#include <memory>
#include <string>

#include "juno_bridge/session.hpp"

namespace jb {

struct Status {
  int code = 0;
  int backend_code = 0;
  std::string message;
};

// The exception in flight into `status` by the core's one translator (error.hpp).
inline int fail_with_current(Status* status) noexcept {
  status->code = status_of_current_exception(JB_ERROR_RUNTIME, status->message, status->backend_code);
  return status->code;
}

#define JB_GUARD(body)                 \
  try {                                \
    body;                              \
    return 0;                          \
  } catch (...) {                      \
    return fail_with_current(status);  \
  }

inline int set_option(SessionOptions* options, const std::string& key, const std::string& value, Status* status) noexcept {
  JB_GUARD(options->set(key, value))
}

inline int open_session(const std::string& model, const SessionOptions& options, std::shared_ptr<Session>* out,
                        Status* status) noexcept {
  JB_GUARD(*out = std::make_shared<Session>(model, options))
}

inline int open_session_bytes(const char* data, size_t size, const SessionOptions& options,
                              std::shared_ptr<Session>* out, Status* status) noexcept {
  JB_GUARD(*out = std::make_shared<Session>(Session::from_bytes(data, size, options)))
}

inline int session_metadata(const Session& session, ModelMetadata* out, Status* status) noexcept {
  JB_GUARD(*out = session.metadata())
}

inline int session_stats(const Session& session, SessionStats* out, Status* status) noexcept {
  JB_GUARD(*out = session.stats())
}

inline int run_session(Session& session, const jb_tensor_view* inputs, size_t num_inputs, const int32_t* output_index,
                       jb_tensor_view* outputs, Tensor* owned, size_t num_outputs, Status* status) noexcept {
  JB_GUARD(session.run(from_c(inputs), num_inputs, output_index, from_c(outputs), owned, num_outputs))
}

// Session::run_async with a C completion (Cython makes no std::function): `done` gets the run's status,
// filled as every entry point here fills it, on the thread that completes the run.
using AsyncDone = void (*)(void* user_data, Status* status);
inline int run_session_async(Session& session, const jb_tensor_view* inputs, size_t num_inputs,
                             const int32_t* output_index, const jb_tensor_view* outputs, Tensor* owned,
                             size_t num_outputs, AsyncDone done, void* user_data, Status* status) noexcept {
  JB_GUARD(session.run_async(from_c(inputs), num_inputs, output_index, from_c(outputs), owned, num_outputs,
                             [done, user_data](std::exception_ptr error) {
                               Status result;
                               if (error) {
                                 try {
                                   std::rethrow_exception(error);
                                 } catch (...) {
                                   fail_with_current(&result);
                                 }
                               }
                               done(user_data, &result);
                             }))
}

inline int get_onnxruntime_info(const std::string& library, OnnxRuntimeInfo* out, Status* status) noexcept {
  JB_GUARD(*out = onnxruntime_info(library))
}

}  // namespace jb
