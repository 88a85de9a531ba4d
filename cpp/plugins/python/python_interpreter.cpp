// The interpreter of the python plugin: started in a C++ host, joined inside a Python process; the heap
// its algorithms allocate from; and the pending Python exception as a bridge error.
#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "python_plugin.hpp"

namespace jb::python_plugin {
namespace {

std::string parent(const std::string& dir) {
  auto slash = dir.rfind('/');
  return slash == std::string::npos || slash == 0 ? dir : dir.substr(0, slash);
}

}  // namespace

std::string str_of(PyObject* o) {
  Ref s(PyObject_Str(o));
  const char* c = s ? PyUnicode_AsUTF8(s.get()) : nullptr;
  if (c == nullptr) {
    PyErr_Clear();
    return "<unprintable>";
  }
  return c;
}

// The pending Python exception as a bridge error (GIL held). A juno_bridge.errors.Error keeps its own
// status and message; anything else gets `fallback` and the full traceback text.
Error python_error(jb_status fallback, const std::string& context) {
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb && value) PyException_SetTraceback(value, tb);
  Ref t(type), v(value), trace(tb);
  jb_status status = fallback;
  std::string text;
  Ref errors(PyImport_ImportModule("juno_bridge.errors"));
  Ref base(errors ? PyObject_GetAttrString(errors.get(), "Error") : nullptr);
  PyErr_Clear();
  if (v && base && PyObject_IsInstance(v.get(), base.get()) == 1) {
    Ref code(PyObject_GetAttrString(v.get(), "code"));
    long c = code ? PyLong_AsLong(code.get()) : -1;
    if (c > 0 && c <= JB_ERROR_UNSUPPORTED) status = static_cast<jb_status>(c);
    text = str_of(v.get());
  } else if (v) {
    Ref module(PyImport_ImportModule("juno_bridge.algorithm"));
    Ref formatted(module ? PyObject_CallMethod(module.get(), "format_exception", "O", v.get()) : nullptr);
    text = formatted ? str_of(formatted.get()) : str_of(v.get());
  }
  PyErr_Clear();
  return Error(status, context + text);
}

void ensure_interpreter(const std::string& library_dir) {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  if (Py_IsInitialized()) return;
  // Extension modules (numpy) find Python's symbols in the global namespace; the core dlopens this
  // plugin RTLD_LOCAL, so libpython is promoted to RTLD_GLOBAL before the interpreter starts.
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&Py_InitializeEx), &info) != 0 && info.dli_fname != nullptr)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  Py_InitializeEx(0);  // 0: leave the host's signal handlers alone
  std::vector<std::string> dirs;
  // Installed, the plugin is <site-packages>/juno_bridge/lib/; in a build tree (build/lib/) that parent
  // would be a source checkout, whose juno_bridge/ has no compiled modules: never put that on sys.path.
  const std::string& lib = library_dir;
  if (!lib.empty() && parent(lib).size() > 12 && parent(lib).compare(parent(lib).size() - 12, 12, "/juno_bridge") == 0)
    dirs.push_back(parent(parent(lib)));
  if (const char* venv = std::getenv("VIRTUAL_ENV"); venv && *venv)
    dirs.push_back(std::string(venv) + "/lib/python" + std::to_string(PY_MAJOR_VERSION) + "." +
                   std::to_string(PY_MINOR_VERSION) + "/site-packages");
  std::optional<Error> failure;
  Ref site(PyImport_ImportModule("site"));
  PyObject* path = PySys_GetObject("path");  // borrowed
  const Py_ssize_t base_entries = path ? PyList_Size(path) : 0;
  for (const auto& dir : dirs) {
    Ref r(site ? PyObject_CallMethod(site.get(), "addsitedir", "s", dir.c_str()) : nullptr);
    if (!r) {
      failure = python_error(JB_ERROR_BACKEND_UNAVAILABLE, "python backend: cannot add " + dir + " to sys.path: ");
      break;
    }
  }
  // addsitedir appends: move what it added (our environment, its .pth entries) before the base
  // installation's site-packages (PYTHONPATH and the standard library stay first), so the environment
  // juno-bridge is installed in wins.
  Py_ssize_t first_site = 0;
  while (path && first_site < base_entries) {
    const char* entry = PyUnicode_AsUTF8(PyList_GetItem(path, first_site));
    if (entry && (std::strstr(entry, "site-packages") || std::strstr(entry, "dist-packages"))) break;
    PyErr_Clear();
    ++first_site;
  }
  if (!failure && path && PyList_Size(path) > base_entries && first_site < base_entries) {
    Ref added(PyList_GetSlice(path, base_entries, PyList_Size(path)));
    if (!added || PyList_SetSlice(path, base_entries, PyList_Size(path), nullptr) < 0 ||
        PyList_SetSlice(path, first_site, first_site, added.get()) < 0)
      failure = python_error(JB_ERROR_BACKEND_UNAVAILABLE, "python backend: cannot order sys.path: ");
  }
  // Some libraries read sys.argv, which an embedded interpreter lacks.
  if (!failure && PyRun_SimpleString("import sys\nif not getattr(sys, 'argv', None): sys.argv = ['']\n") != 0)
    failure = Error(JB_ERROR_BACKEND_UNAVAILABLE, "python backend: cannot set sys.argv");
  PyEval_SaveThread();  // the host's threads take the GIL per call from now on
  if (failure) throw *failure;
}

std::string keep_freed_memory() {
#if defined(__GLIBC__) && __SIZEOF_POINTER__ == 8
  static std::once_flag once;
  std::string said;
  std::call_once(once, [&said] {
    if (const char* tune = std::getenv("JUNO_BRIDGE_TUNE_MALLOC"); tune && std::strcmp(tune, "0") == 0) return;
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    bool configured = tunables && std::strstr(tunables, "glibc.malloc.");
    for (const char* name : {"MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_"})
      configured = configured || std::getenv(name);
    if (configured) {
      said = "python backend: glibc malloc left as the environment configures it (GLIBC_TUNABLES, MALLOC_*_)";
      return;
    }
    // 32 MiB: the most glibc's own threshold grows to on 64-bit; larger blocks are still mapped per call.
    if (mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1)
      said = "python backend: glibc malloc keeps up to 1 GiB of freed heap for reuse (M_TRIM_THRESHOLD) and serves "
             "blocks up to 32 MiB from it (M_MMAP_THRESHOLD), so that an algorithm's temporaries are not given "
             "back and faulted in again every call; JUNO_BRIDGE_TUNE_MALLOC=0 leaves malloc as it is";
  });
  return said;
#else
  return "";
#endif
}

}  // namespace jb::python_plugin
