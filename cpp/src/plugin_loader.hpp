// Loads backend plugins (libjuno_bridge_<name>.so) on demand and adapts their C table to Backend.
#pragma once

#include <memory>
#include <string>

#include "backend.hpp"

namespace jb {

std::unique_ptr<Backend> open_plugin(const std::string& name, const std::string& model, const void* bytes,
                                     size_t size, const SessionOptions& options);

// Where the plugin of that name would be loaded from (for `juno-bridge info`); "" when absent.
std::string plugin_path(const std::string& name);

}  // namespace jb
