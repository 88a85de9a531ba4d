// The C ABI of the backend registry (backends.hpp): jb_backend_count and jb_backend_info.
#include <mutex>
#include <set>
#include <string>

#include "juno_bridge/backends.hpp"
#include "juno_bridge/juno_bridge.h"
#include "last_error.hpp"

namespace {

// Strings handed out live for the process: each distinct text is kept once.
const char* interned(const std::string& text) {
  static std::mutex mutex;
  static std::set<std::string> texts;
  std::lock_guard<std::mutex> lock(mutex);
  return texts.insert(text).first->c_str();
}

const char* joined(const std::vector<std::string>& items) {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : ",") + item;
  return interned(text);
}

}  // namespace

extern "C" {

size_t jb_backend_count(void) { return jb::backends().size(); }

jb_status jb_backend_info(size_t index, jb_backend_entry* out) {
  return jb::guarded([&] {
    if (out == nullptr) throw jb::Error(jb::ErrorCode::InvalidArgument, "argument 'out' is NULL");
    const auto& all = jb::backends();
    if (index >= all.size())
      throw jb::Error(jb::ErrorCode::InvalidArgument, "backend index " + std::to_string(index) + " out of range (" +
                                                          std::to_string(all.size()) + " backends)");
    const jb::BackendInfo& b = all[index];
    *out = {interned(b.name),   joined(b.aliases), joined(b.prefixes),
            joined(b.suffixes), interned(b.directory_marker), interned(b.plugin),
            interned(jb::backend_plugin_path(b)), interned(b.extra), interned(b.description)};
  });
}

}  // extern "C"
