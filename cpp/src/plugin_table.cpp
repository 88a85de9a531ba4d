// Finding, loading and starting backend plugins (libjuno_bridge_<name>.so): the host table the core
// offers, and the plugin's table as this core reads it (plugin.h). plugin_loader.cpp adapts a table to
// Backend.
#include "plugin_table.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "juno_bridge/backends.hpp"
#include "last_error.hpp"
#include "log.hpp"
#include "platform.hpp"
#include "plugin_loader.hpp"

namespace jb {
namespace {

const jb_plugin_host& host() {
  static const std::string dir = this_library_dir();
  static const jb_plugin_host host = {JB_PLUGIN_ABI_VERSION, sizeof(jb_plugin_host), &set_last_error, dir.c_str(),
                                      &log_message};
  return host;
}

std::vector<std::string> plugin_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("JUNO_BRIDGE_PLUGIN_PATH"); env && *env) {
    std::string all = env;
    for (size_t start = 0, end; start <= all.size(); start = end + 1) {
      end = all.find(':', start);
      if (end == std::string::npos) end = all.size();
      if (end > start) dirs.push_back(all.substr(start, end - start));
    }
  }
  dirs.push_back(this_library_dir());
  return dirs;
}

}  // namespace

void throw_plugin_error(jb_status status, const std::string& plugin) {
  LastError& e = last_error();
  std::string message = e.message.empty() ? plugin + " backend failed without a message" : e.message;
  int backend_code = e.backend_code;
  jb_status code = status != JB_OK ? status : (e.status != JB_OK ? e.status : JB_ERROR_RUNTIME);
  clear_last_error();
  throw Error(static_cast<ErrorCode>(code), message, backend_code);
}

const PluginTable* load_plugin(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, PluginTable> loaded;  // plugins stay loaded for the process
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = loaded.find(name); it != loaded.end()) return &it->second;

  const std::string file = plugin_path(name);
  if (file.empty()) {
    for (const auto& b : backends()) {
      if (b.plugin != name) continue;
      // A plugin is built only when its library is there at build time, so the order matters.
      const std::string how = b.extra.empty() ? "rebuild juno-bridge"
                                              : "install with the " + b.extra + " extra and rebuild: first the " +
                                                    "extra's packages (pip install 'juno-bridge[" + b.extra +
                                                    "]'), then juno-bridge again from source with pip install " +
                                                    "--no-build-isolation --no-deps --force-reinstall <source>";
      throw Error(ErrorCode::BackendUnavailable,
                  "backend unavailable: '" + b.name + "' (libjuno_bridge_" + name + ".so was not built): " + how);
    }
    std::string built;
    for (const auto& dir : plugin_dirs())
      for (const auto& path : list_files(dir, "libjuno_bridge_")) {
        const std::string base = path.substr(path.rfind('/') + 1);
        built += ", " + base.substr(15, base.size() - 15 - 3);  // libjuno_bridge_<name>.so
      }
    throw Error(ErrorCode::BackendUnavailable,
                "unknown backend '" + name + "': no plugin libjuno_bridge_" + name + ".so; the backends are " +
                    backend_names() + " (plugins here: " + (built.empty() ? "none" : built.substr(2)) + ")");
  }
  std::string error;
  void* handle = open_library(file, error);
  if (handle == nullptr)
    throw Error(ErrorCode::BackendUnavailable, "backend unavailable: cannot load '" + file + "': " + error);
  // A plugin that cannot start is unloaded again, so a later open retries from scratch.
  struct Unload {
    void* handle;
    ~Unload() {
      if (handle) close_library(handle);
    }
  } unload{handle};
  auto init = reinterpret_cast<jb_plugin_init_fn>(find_symbol(handle, JB_PLUGIN_INIT_SYMBOL));
  if (init == nullptr)
    throw Error(ErrorCode::BackendUnavailable, "'" + file + "' is not a juno-bridge plugin (no jb_plugin_init)");
  clear_last_error();
  const jb_plugin_api* api = init(&host());
  if (api == nullptr) {
    if (last_error().status == JB_OK)  // an older plugin refuses a newer host without a word
      throw Error(ErrorCode::BackendUnavailable, "plugin '" + file + "' refused to start with this core (plugin ABI " +
                                                     std::to_string(JB_PLUGIN_ABI_VERSION) + "): rebuild it");
    throw_plugin_error(JB_ERROR_BACKEND_UNAVAILABLE, name);
  }
  // ABI 2 has the layout of 3 up to `options` (struct_size sits in what was padding).
  constexpr size_t kV2Size = offsetof(jb_plugin_api, options);
  const size_t size = api->abi_version == 2 ? kV2Size : api->struct_size;
  if (api->abi_version < 2 || api->abi_version > JB_PLUGIN_ABI_VERSION || size < offsetof(jb_plugin_api, stats))
    throw Error(ErrorCode::BackendUnavailable, "plugin '" + file + "' has ABI version " +
                                                   std::to_string(api->abi_version) + " (table of " +
                                                   std::to_string(size) + " bytes); this core reads 2 to " +
                                                   std::to_string(JB_PLUGIN_ABI_VERSION) + ": rebuild it");
  PluginTable table;
  std::memcpy(&table.api, api, std::min(size, sizeof(jb_plugin_api)));
  table.declares_options = api->abi_version >= 3;
  unload.handle = nullptr;  // started: it stays loaded for the process
  return &(loaded[name] = table);
}

std::string plugin_path(const std::string& name) {
  for (const auto& dir : plugin_dirs()) {
    std::string file = dir + "/libjuno_bridge_" + name + ".so";
    if (file_exists(file)) return file;
  }
  return "";
}

}  // namespace jb
