// A backend plugin's table as this core reads it, loaded once per process (plugin_table.cpp).
#pragma once

#include <string>

#include "juno_bridge/plugin.h"

namespace jb {

// A plugin's table as this core reads it: the fields its struct_size covers, the rest NULL.
struct PluginTable {
  jb_plugin_api api{};
  bool declares_options = false;  // ABI 2 tables declare none: they get every option, as before
};

// The started plugin `name`, from $JUNO_BRIDGE_PLUGIN_PATH or the core's directory; it stays loaded for the
// process. Throws why not (absent, not a plugin, refused to start, an ABI this core does not read).
const PluginTable* load_plugin(const std::string& name);

// Throws the error the plugin recorded for this thread (or a generic one if it recorded none).
[[noreturn]] void throw_plugin_error(jb_status status, const std::string& plugin);

}  // namespace jb
