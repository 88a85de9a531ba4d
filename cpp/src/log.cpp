#include "log.hpp"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "juno_bridge/juno_bridge.h"
#include "last_error.hpp"

namespace jb {

std::atomic<int32_t> level{JB_LOG_WARNING};  // read on every line: no lock

namespace {



struct Sink {
  std::mutex mutex;
  jb_log_callback callback = nullptr;
  void* user_data = nullptr;
  std::vector<std::pair<void (*)(void*, int32_t), void*>> listeners;
};

Sink& sink() {
  static Sink* s = new Sink;  // never destroyed: runtime threads may still log during process exit
  return *s;
}

const char* level_name(int32_t l) {
  static const char* const names[] = {"verbose", "info", "warning", "error", "fatal"};
  return l >= 0 && l <= JB_LOG_FATAL ? names[l] : "unknown";
}

}  // namespace

int32_t log_level() noexcept { return level.load(std::memory_order_relaxed); }

void log_message(int32_t l, const char* source, const char* message) noexcept {
  if (l < log_level()) return;
  jb_log_callback callback;
  void* user_data;
  {
    std::lock_guard<std::mutex> lock(sink().mutex);
    callback = sink().callback;
    user_data = sink().user_data;
  }
  if (source == nullptr) source = "";
  if (message == nullptr) message = "";
  if (callback != nullptr) return callback(user_data, l, source, message);
  // Every error a runtime logs also reaches the caller as a status or an exception: say it once, there.
  if (l == JB_LOG_ERROR) return;
  std::fprintf(stderr, "juno-bridge [%s] %s: %s\n", source, level_name(l), message);
}

void add_log_level_listener(void (*listener)(void*, int32_t), void* context) {
  std::lock_guard<std::mutex> lock(sink().mutex);
  sink().listeners.emplace_back(listener, context);
}

}  // namespace jb

extern "C" {

void jb_set_log_callback(jb_log_callback callback, void* user_data) {
  std::lock_guard<std::mutex> lock(jb::sink().mutex);
  jb::sink().callback = callback;
  jb::sink().user_data = user_data;
}

jb_status jb_set_log_level(int32_t new_level) {
  jb::clear_last_error();
  if (new_level < JB_LOG_VERBOSE || new_level > JB_LOG_FATAL) {
    const std::string message = "log level must be 0 (verbose) .. 4 (fatal); got " + std::to_string(new_level);
    jb::set_last_error(JB_ERROR_INVALID_ARGUMENT, 0, message.c_str());
    return JB_ERROR_INVALID_ARGUMENT;
  }
  jb::level.store(new_level);
  std::vector<std::pair<void (*)(void*, int32_t), void*>> listeners;
  {
    std::lock_guard<std::mutex> lock(jb::sink().mutex);
    listeners = jb::sink().listeners;
  }
  for (const auto& [listener, context] : listeners) listener(context, new_level);
  return JB_OK;
}

int32_t jb_get_log_level(void) { return jb::log_level(); }

}  // extern "C"
