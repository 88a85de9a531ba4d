// Small wrappers over the dynamic loader, shared by the ONNX Runtime loader and the plugin loader.
#pragma once

#include <string>
#include <vector>

namespace jb {

// Directory holding libjuno_bridge.so itself (where plugins and the installed package live).
std::string this_library_dir();

// dlopen with RTLD_NOW | RTLD_LOCAL; on failure returns nullptr and sets `error` to dlerror()'s text.
void* open_library(const std::string& path, std::string& error);
void* find_symbol(void* handle, const char* name);
void close_library(void* handle);

// Files in `dir` whose names start with `prefix`, sorted so that the highest version comes first.
std::vector<std::string> list_files(const std::string& dir, const std::string& prefix);

bool file_exists(const std::string& path);

}  // namespace jb
