// What the three parts of the python plugin (libjuno_bridge_python.so) share:
//   python_interpreter.cpp  starts the interpreter in a C++ host (sys.path, sys.argv), sets the process's malloc
//                           to keep freed memory, and turns the pending Python exception into a bridge error;
//   python_views.cpp        lends the caller's buffers to the algorithm as numpy views for one run, and takes
//                           them back (the only part that includes numpy's C API);
//   python_backend.cpp      the backend: the SDK's Model (open, run, run_async, close) and jb_plugin_init.
// plugin_sdk.hpp has internal linkage (its host pointer is per translation unit), so only python_backend.cpp
// includes it; what the other parts need of the host comes as arguments.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "juno_bridge/error.hpp"
#include "juno_bridge/plugin.h"

namespace jb::python_plugin {

class Gil {
 public:
  Gil() : state_(PyGILState_Ensure()) {}
  ~Gil() { PyGILState_Release(state_); }
  Gil(const Gil&) = delete;
  Gil& operator=(const Gil&) = delete;

 private:
  PyGILState_STATE state_;
};

// Owns one reference.
struct Ref {
  PyObject* p = nullptr;
  Ref() = default;
  explicit Ref(PyObject* o) : p(o) {}
  Ref(Ref&& o) noexcept : p(o.p) { o.p = nullptr; }
  Ref& operator=(Ref&& o) noexcept { std::swap(p, o.p); return *this; }
  Ref(const Ref&) = delete;
  ~Ref() { Py_XDECREF(p); }
  PyObject* get() const { return p; }
  explicit operator bool() const { return p != nullptr; }
};

// str(o), or "<unprintable>" (GIL held; clears the error str() raises).
std::string str_of(PyObject* o);

// The pending Python exception as a bridge error (GIL held). A juno_bridge.errors.Error keeps its own
// status and message; anything else gets `fallback` and the full traceback text.
Error python_error(jb_status fallback, const std::string& context);

// Starts the interpreter when no Python runs in this process yet (a C++ host), so that our package and
// numpy are importable without the host knowing about Python: the site-packages the core is installed
// in (<site-packages>/juno_bridge/lib/, the host's library_dir) and $VIRTUAL_ENV's are added to sys.path.
// `library_dir`: plugin::library_dir(), which only the backend's translation unit can ask the host for.
void ensure_interpreter(const std::string& library_dir);

// A declared input or output. A dim is fixed (shape[d] >= 0) or symbolic (symbol[d] indexes the
// algorithm's symbol table).
struct Declared {
  std::string name;
  int32_t dtype = 0;
  std::vector<int64_t> shape;
  std::vector<int> symbol;
  std::vector<std::string> dim_name_storage;
  std::vector<const char*> dim_names;
  Ref key;  // the name as a Python str, reused every run

  jb_tensor_info c_info() const {
    jb_tensor_info i{};
    i.name = name.c_str();
    i.dtype = dtype;
    i.rank = static_cast<int32_t>(shape.size());
    i.shape = shape.data();
    i.dim_names = dim_names.data();
    i.type_name = nullptr;  // the core spells it from the dtype
    return i;
  }
};

// One run's loan of the caller's memory to Python: where each model output goes, the arrays made over the
// memory and their leases (inputs first), and the dicts handed to the algorithm.
struct Loan {
  std::vector<void*> out_data;
  std::vector<std::vector<int64_t>> out_shape;
  std::vector<std::unique_ptr<void, void (*)(void*)>> scratch;
  std::vector<PyObject*> lent, leases;
  PyObject* in_dict = nullptr;
  PyObject* out_dict = nullptr;
};

// The lending of one algorithm's views (python_views.cpp), shared by its runs: the declared tensors, the
// symbol table that binds the outputs' shapes, juno_bridge.algorithm.revoke, and the leases no view
// references any more, reused by later runs.
class Lender {
 public:
  Lender(const std::vector<Declared>& inputs, const std::vector<Declared>& outputs) : ins_(inputs), outs_(outputs) {}
  Lender(const Lender&) = delete;
  Lender& operator=(const Lender&) = delete;
  ~Lender();  // GIL held

  std::string model;
  std::vector<std::string> symbols;
  Ref revoke;                   // juno_bridge.algorithm.revoke
  Ref release_finished_frames;  // and release_finished_frames

  // Before the GIL: the outputs' shapes bound from the inputs and their memory (the caller's, allocated
  // for the caller, or scratch).
  void place_outputs(const jb_tensor_view* inputs, const int32_t* output_index, jb_tensor_view* outputs,
                     jb_plugin_owned* owned, size_t num_outputs, Loan& loan) const;
  // GIL held: the numpy views and their dicts; an error when they cannot be made.
  std::optional<Error> lend(const jb_tensor_view* inputs, Loan& loan);
  // GIL held: empties and releases the dicts (an asynchronous run ends while the caller of done() still
  // holds them; a plain one while a finished frame may), takes the views back, revoking any the
  // algorithm kept; the run's error.
  std::optional<Error> settle(Loan& loan, std::optional<Error> failure);

 private:
  bool still_referenced(PyObject* lent);

  const std::vector<Declared>& ins_;   // the algorithm's inputs_ (ModelBase)
  const std::vector<Declared>& outs_;  // and outputs_
  std::vector<PyObject*> free_leases;
};

// Once per process, on glibc unless the environment configures malloc itself (GLIBC_TUNABLES glibc.malloc.*,
// MALLOC_*_) or JUNO_BRIDGE_TUNE_MALLOC=0: keeps freed heap memory for reuse instead of giving it back to the
// system. glibc gives the top of its heap back when more than M_TRIM_THRESHOLD is free there, a threshold
// it sizes after the largest block it has unmapped (at most 2 x 32 MiB). A torch module's temporaries per
// call can exceed it; then, depending on what else lies on the heap, they are given back after every call
// and faulted in again on the next (twice the time of the default model's call at B = 64: README,
// "Measured"). Says what it did, for the host's log ("" when nothing).
std::string keep_freed_memory();

// numpy's C API for this plugin (GIL held); throws when numpy cannot be imported.
void ensure_numpy();

}  // namespace jb::python_plugin
