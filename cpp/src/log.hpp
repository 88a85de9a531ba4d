// One sink for the log lines the backends write (ONNX Runtime's own log): the caller's callback, or
// stderr, at one process-wide level (jb_set_log_level / jb_set_log_callback in juno_bridge.h).
#pragma once

#include <cstdint>

namespace jb {

int32_t log_level() noexcept;  // a jb_log_level: lines below it are dropped
void log_message(int32_t level, const char* source, const char* message) noexcept;

// Called with the new level whenever jb_set_log_level changes it (a runtime that filters on its side
// too follows it). Listeners live for the process.
void add_log_level_listener(void (*listener)(void* context, int32_t level), void* context);

}  // namespace jb
