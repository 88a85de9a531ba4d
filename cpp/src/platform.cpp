#include "platform.hpp"

#include <dirent.h>
#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cstdlib>

namespace jb {

std::string this_library_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&this_library_dir), &info) == 0 || info.dli_fname == nullptr) return ".";
  // Resolved: a library found through an rpath like $ORIGIN/../lib is named ".../bin/../lib/...".
  char resolved[PATH_MAX];
  std::string file = realpath(info.dli_fname, resolved) ? resolved : info.dli_fname;
  auto slash = file.rfind('/');
  return slash == std::string::npos ? "." : file.substr(0, slash);
}

void* open_library(const std::string& path, std::string& error) {
  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* message = dlerror();
    error = message ? message : "unknown dlopen error";
  }
  return handle;
}

void* find_symbol(void* handle, const char* name) { return dlsym(handle, name); }

void close_library(void* handle) { dlclose(handle); }

std::vector<std::string> list_files(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> found;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* entry = readdir(d)) {
      std::string name = entry->d_name;
      if (name.compare(0, prefix.size(), prefix) != 0) continue;
      std::string path = dir + "/" + name;
      char resolved[PATH_MAX];
      found.push_back(realpath(path.c_str(), resolved) ? resolved : path);  // no "lib/../.." in messages
    }
    closedir(d);
  }
  // Longest (most specific version suffix) and then lexically highest first.
  std::sort(found.begin(), found.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() > b.size() : a > b;
  });
  return found;
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

}  // namespace jb
