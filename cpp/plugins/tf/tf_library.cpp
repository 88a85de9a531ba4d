#include "tf_library.hpp"

#include <dlfcn.h>
#include <link.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "platform.hpp"  // cpp/src/: the core's dlopen helpers, compiled into the plugin too

namespace jb::tf_plugin {
namespace {

constexpr const char* kCcLibrary = "libtensorflow_cc.so.2";
constexpr const char* kFrameworkLibrary = "libtensorflow_framework.so.2";

TfLibrary g_library;

std::string resolved(const std::string& path) {
  char buffer[PATH_MAX];
  return realpath(path.c_str(), buffer) ? buffer : path;
}

std::string folder_of(const std::string& file) {
  const auto slash = file.rfind('/');
  return slash == std::string::npos ? "." : file.substr(0, slash);
}

bool is_directory(const std::string& path) { return file_exists(path + "/."); }

// A requested path names the library itself or the folder holding it (e.g. site-packages/tensorflow).
std::string library_file(const std::string& requested) {
  return is_directory(requested) ? requested + "/" + kCcLibrary : requested;
}

// Where the dynamic loader found an already loaded library (its link map's name).
std::string loaded_path(void* handle) {
  link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr || map->l_name == nullptr) return "";
  return resolved(map->l_name);
}

// "2.20.0" when the folder is a pip-installed tensorflow package (its .dist-info beside it), else "".
std::string release_in_folder(const std::string& folder) {
  for (const auto& entry : list_files(folder_of(resolved(folder)), "t")) {
    const std::string name = entry.substr(entry.rfind('/') + 1);
    const auto dash = name.find('-');
    const std::string project = name.substr(0, dash);
    // The distributions that ship the package itself (not tensorflow_io_gcs_filesystem and the like).
    const bool tensorflow = project == "tensorflow" || project == "tensorflow_cpu" || project == "tensorflow_intel" ||
                            project == "tf_nightly" || project == "tf_nightly_cpu";
    const bool dist_info = name.size() > 10 && name.compare(name.size() - 10, 10, ".dist-info") == 0;
    if (dash == std::string::npos || !tensorflow || !dist_info) continue;
    return name.substr(dash + 1, name.size() - 10 - dash - 1);
  }
  return "";
}

// Whether `requested` names the bound library: the same file, or a bare name the loader resolves to it.
bool names_bound_library(const std::string& requested) {
  const std::string file = library_file(requested);
  if (file.find('/') != std::string::npos) return resolved(file) == g_library.path;
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_NOLOAD);
  const bool same = handle != nullptr && loaded_path(handle) == g_library.path;
  if (handle) dlclose(handle);
  return same;
}

std::string describe_request(const std::string& requested, const std::string& source) {
  const std::string release = release_in_folder(folder_of(resolved(library_file(requested))));
  return "the TensorFlow requested with " + source + " ('" + requested + "'" +
         (release.empty() ? "" : ", release " + release) + ")";
}

// Fills g_library from an opened handle, or throws naming what is missing or mismatched.
void bind(void* handle, const std::string& path) {
  JbTfApi api{};
  std::string missing;
#define JB_TF_BIND_REQUIRED(ret, name, params)                                 \
  api.name = reinterpret_cast<ret(*) params>(find_symbol(handle, #name));     \
  if (api.name == nullptr) missing += (missing.empty() ? "" : ", ") + std::string(#name);
  JB_TF_REQUIRED(JB_TF_BIND_REQUIRED)
#undef JB_TF_BIND_REQUIRED
#define JB_TF_BIND_OPTIONAL(ret, name, params) api.name = reinterpret_cast<ret(*) params>(find_symbol(handle, #name));
  JB_TF_OPTIONAL(JB_TF_BIND_OPTIONAL)
#undef JB_TF_BIND_OPTIONAL
  if (!missing.empty())
    throw TfUnavailable("'" + path + "' is not a TensorFlow C API library juno-bridge can use: it lacks " + missing +
                        " (juno-bridge needs TensorFlow 2.16 or newer)");
  // libtensorflow_cc.so.2 finds its framework library by its run path, but LD_LIBRARY_PATH or a framework
  // library already in the process comes first: two releases' halves would crash, so refuse them here.
  if (void* framework = dlopen(kFrameworkLibrary, RTLD_NOW | RTLD_NOLOAD)) {
    const std::string framework_path = loaded_path(framework);
    dlclose(framework);  // only the reference NOLOAD added
    if (!framework_path.empty() && folder_of(framework_path) != folder_of(path))
      throw TfUnavailable("TensorFlow's two libraries come from different folders: " + path + " and " +
                          framework_path + " (set by LD_LIBRARY_PATH, or loaded earlier in this process); they must "
                          "be one release's pair: unset LD_LIBRARY_PATH's TensorFlow folder or name the other one");
  }
  g_library.path = path;
  g_library.version = api.TF_Version();
  g_library.alignment = api.TF_TensorDefaultAlignment ? api.TF_TensorDefaultAlignment() : 64;
  g_library.api = api;
  g_library.bound = true;
}

// Opens and binds one candidate library; closes it again when it is not usable.
void open_and_bind(const std::string& path) {
  if (path.find('/') != std::string::npos && !file_exists(path)) throw TfUnavailable("'" + path + "': no such file");
  std::string error;
  void* handle = open_library(path, error);
  if (handle == nullptr) throw TfUnavailable("cannot load '" + path + "': " + error);
  try {
    bind(handle, path.find('/') != std::string::npos ? resolved(path) : loaded_path(handle));
  } catch (...) {
    close_library(handle);
    throw;
  }
}

std::vector<std::string> default_candidates() {
  // This plugin lives in <site-packages>/juno_bridge/lib/: the tensorflow wheel beside juno-bridge.
  return {this_library_dir() + "/../../tensorflow/" + kCcLibrary, kCcLibrary};
}

}  // namespace

const TfLibrary& tensorflow() { return g_library; }

const TfLibrary& load_tensorflow(const std::string& option) {
  static std::mutex mutex;
  std::string requested = option, source = "the option 'tensorflow'";
  if (requested.empty())
    if (const char* env = std::getenv("JUNO_BRIDGE_TENSORFLOW"); env != nullptr && *env != '\0') {
      requested = env;
      source = "JUNO_BRIDGE_TENSORFLOW";
    }
  std::lock_guard<std::mutex> lock(mutex);

  // One release per process: what is loaded already wins, and a request for another is refused.
  if (!g_library.bound) {
    if (void* loaded = dlopen(kCcLibrary, RTLD_NOW | RTLD_NOLOAD)) {
      try {
        bind(loaded, loaded_path(loaded));  // the reference stays: this library is ours now as well
      } catch (const TfUnavailable& e) {
        dlclose(loaded);
        throw TfUnavailable(std::string("the TensorFlow already loaded in this process cannot be used: ") + e.what());
      }
    }
  }
  if (g_library.bound) {
    if (!requested.empty() && !names_bound_library(requested))
      throw TfUnavailable("TensorFlow " + g_library.version + " from '" + g_library.path +
                          "' is already loaded in this process (imported by Python or opened by an earlier session), "
                          "so " + describe_request(requested, source) + " cannot be loaded: one process holds one "
                          "TensorFlow release. Request the loaded one, or open this model in a process that has not "
                          "loaded TensorFlow");
    return g_library;
  }

  if (!requested.empty()) {
    const std::string file = library_file(requested);
    try {
      open_and_bind(file);
    } catch (const TfUnavailable& e) {
      throw TfUnavailable("TensorFlow requested with " + source + " is unusable: " + e.what());
    }
    return g_library;
  }
  std::string tried;
  for (const auto& candidate : default_candidates()) {
    try {
      open_and_bind(candidate);
      return g_library;
    } catch (const TfUnavailable& e) {
      tried += std::string("\n  ") + e.what();
    }
  }
  throw TfUnavailable("no TensorFlow found: install it beside juno-bridge (pip install tensorflow-cpu, 2.16 or "
                      "newer), or name its libtensorflow_cc.so.2 or the folder holding it with config={'tensorflow': "
                      "PATH} (the option 'tensorflow' in C and C++) or JUNO_BRIDGE_TENSORFLOW. Tried:" + tried);
}

}  // namespace jb::tf_plugin

// For `juno-bridge info`: binds TensorFlow as a session would (`requested` may be NULL) and writes
// "<TF_Version()>\n<library path>" into out, or the error. Returns 0 when bound, 1 otherwise.
extern "C" __attribute__((visibility("default"))) int jb_tf_describe(const char* requested, char* out, size_t size) {
  std::string text;
  int status = 0;
  try {
    const auto& tf = jb::tf_plugin::load_tensorflow(requested ? requested : "");
    text = tf.version + "\n" + tf.path;
  } catch (const std::exception& e) {
    text = e.what();
    status = 1;
  }
  if (size > 0) {
    std::strncpy(out, text.c_str(), size - 1);
    out[size - 1] = '\0';
  }
  return status;
}
