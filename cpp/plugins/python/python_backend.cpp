// The "python" backend plugin (libjuno_bridge_python.so): runs a Python callable declared with
// @juno_bridge.algorithm on numpy views of the caller's buffers. It is the only code that links
// libpython, so a C++ program that never opens a `python:` model never loads the interpreter.
//
// From a C++ host it starts the interpreter (and releases the GIL); inside a Python process it attaches
// to the running one. Every entry point takes the GIL itself (PyGILState_Ensure), because the core
// calls it without the GIL: the Cython module releases it around open and run.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_2_0_API_VERSION
#include <numpy/arrayobject.h>

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "juno_bridge/plugin_sdk.hpp"

namespace jb::python_plugin {
namespace {

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

// bfloat16 is ml_dtypes' numpy type, numbered when ml_dtypes registers it (juno_bridge imports it). Under
// the GIL; -1 with a Python error set when ml_dtypes cannot be imported.
int bfloat16_typenum() {
  static int num = -1;
  if (num < 0) {
    Ref module(PyImport_ImportModule("ml_dtypes"));
    Ref type(module ? PyObject_GetAttrString(module.get(), "bfloat16") : nullptr);
    PyArray_Descr* descr = nullptr;
    if (type && PyArray_DescrConverter(type.get(), &descr)) {
      num = descr->type_num;
      Py_DECREF(descr);
    }
  }
  return num;
}

int typenum_of(int32_t dtype) {
  switch (dtype) {
    case JB_DTYPE_FLOAT32: return NPY_FLOAT32;
    case JB_DTYPE_UINT8: return NPY_UINT8;
    case JB_DTYPE_INT8: return NPY_INT8;
    case JB_DTYPE_UINT16: return NPY_UINT16;
    case JB_DTYPE_INT16: return NPY_INT16;
    case JB_DTYPE_INT32: return NPY_INT32;
    case JB_DTYPE_INT64: return NPY_INT64;
    case JB_DTYPE_BOOL: return NPY_BOOL;
    case JB_DTYPE_FLOAT16: return NPY_FLOAT16;
    case JB_DTYPE_FLOAT64: return NPY_FLOAT64;
    case JB_DTYPE_UINT32: return NPY_UINT32;
    case JB_DTYPE_UINT64: return NPY_UINT64;
    case JB_DTYPE_BFLOAT16: return bfloat16_typenum();
    default: return -1;
  }
}

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

// A lease is the base of one lent array and of every view made from it: an empty ndarray that owns
// nothing and has no base. numpy bases a view on the first base of the same type that owns its data or
// has no base of its own, so a lease still referenced after its run means the algorithm kept a view.
// Each run takes its own leases: Python switches threads inside a call, so runs interleave.
PyObject* new_lease() {
  static char nothing;
  npy_intp zero = 0;
  return PyArray_New(&PyArray_Type, 1, &zero, NPY_UINT8, nullptr, &nothing, 0, 0, nullptr);
}

// The Model of the SDK's Table (plugin_sdk.hpp).
struct Algorithm : plugin::ModelBase<Declared> {
  std::string model;
  Ref call, revoke, store_returned;
  std::vector<std::string> symbols;
  std::vector<PyObject*> free_leases;  // leases no view references any more, reused by later runs

  ~Algorithm() {
    for (PyObject* lease : free_leases) Py_DECREF(lease);
  }

  static Algorithm* open(const std::string& model, const void* bytes, size_t size, const plugin::Options& options);
  static void close(Algorithm* a);
  void run(const jb_tensor_view* inputs, const int32_t* output_index, jb_tensor_view* outputs, jb_plugin_owned* owned,
           size_t num_outputs);
  // The algorithm's optional run_async(inputs, outputs, done) (juno_bridge.algorithm documents it).
  bool async_native() const { return static_cast<bool>(call_async); }
  void run_async(const jb_tensor_view* inputs, const int32_t* output_index, jb_tensor_view* outputs,
                 jb_plugin_owned* owned, size_t num_outputs, plugin::RunAsyncDone done, void* user_data);

  Ref call_async;  // None from open_algorithm: empty

 private:
  struct Loan;
  // Before the GIL: the outputs' shapes bound from the inputs and their memory (the caller's, allocated
  // for the caller, or scratch).
  void place_outputs(const jb_tensor_view* inputs, const int32_t* output_index, jb_tensor_view* outputs,
                     jb_plugin_owned* owned, size_t num_outputs, Loan& loan) const;
  // GIL held: the numpy views and their dicts; an error when they cannot be made.
  std::optional<Error> lend(const jb_tensor_view* inputs, Loan& loan);
  // GIL held: releases the dicts (emptied first when `empty_dicts`: an asynchronous run ends while its
  // dicts may still be referenced, by the caller of done()), takes the views back, revoking any the
  // algorithm kept; the run's error.
  std::optional<Error> settle(Loan& loan, std::optional<Error> failure, bool empty_dicts = false);
  static PyObject* async_done(PyObject* self, PyObject* args);
  static void drop_async_run(PyObject* capsule);
};

std::string parent(const std::string& dir) {
  auto slash = dir.rfind('/');
  return slash == std::string::npos || slash == 0 ? dir : dir.substr(0, slash);
}

// Starts the interpreter when no Python runs in this process yet (a C++ host), so that our package and
// numpy are importable without the host knowing about Python: the site-packages the core is installed
// in (<site-packages>/juno_bridge/lib/, the host's library_dir) and $VIRTUAL_ENV's are added to sys.path.
void ensure_interpreter() {
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
  if (const std::string lib = plugin::library_dir(); !lib.empty() && parent(lib).size() > 12 &&
                                                     parent(lib).compare(parent(lib).size() - 12, 12, "/juno_bridge") == 0)
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

void ensure_numpy() {
  if (PyArray_API == nullptr && _import_array() < 0)
    throw python_error(JB_ERROR_BACKEND_UNAVAILABLE, "python backend: cannot import numpy: ");
}

// Reads (name, dtype code, dims) records from open_algorithm into `out`, building the symbol table.
bool read_declared(Algorithm& a, PyObject* list, std::vector<Declared>& out) {
  Ref seq(PySequence_Fast(list, "expected a list"));
  if (!seq) return false;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq.get()); ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(seq.get(), i);
    const char* name = nullptr;
    int dtype = 0;
    PyObject* dims = nullptr;
    if (!PyArg_ParseTuple(item, "siO", &name, &dtype, &dims)) return false;
    Declared d;
    d.name = name;
    d.dtype = dtype;
    Ref dseq(PySequence_Fast(dims, "dims must be a sequence"));
    if (!dseq) return false;
    Py_ssize_t rank = PySequence_Fast_GET_SIZE(dseq.get());
    if (rank > JB_MAX_RANK) {
      PyErr_Format(PyExc_ValueError, "'%s' has rank %zd; the maximum is %d", name, rank, JB_MAX_RANK);
      return false;
    }
    for (Py_ssize_t k = 0; k < rank; ++k) {
      PyObject* dim = PySequence_Fast_GET_ITEM(dseq.get(), k);
      if (PyUnicode_Check(dim)) {
        std::string sym = PyUnicode_AsUTF8(dim);
        int index = -1;
        for (size_t s = 0; s < a.symbols.size(); ++s)
          if (a.symbols[s] == sym) index = static_cast<int>(s);
        if (index < 0) {
          index = static_cast<int>(a.symbols.size());
          a.symbols.push_back(sym);
        }
        d.shape.push_back(-1);
        d.symbol.push_back(index);
        d.dim_name_storage.push_back(sym);
      } else {
        long long v = PyLong_AsLongLong(dim);
        if (v == -1 && PyErr_Occurred()) return false;
        d.shape.push_back(v);
        d.symbol.push_back(-1);
        d.dim_name_storage.emplace_back();
      }
    }
    for (const auto& n : d.dim_name_storage) d.dim_names.push_back(n.empty() ? nullptr : n.c_str());
    d.key = Ref(PyUnicode_FromString(name));
    if (!d.key) return false;
    out.push_back(std::move(d));
  }
  return true;
}

Algorithm* Algorithm::open(const std::string& model, const void* bytes, size_t, const plugin::Options& options) {
  if (bytes != nullptr)
    throw Error(JB_ERROR_UNSUPPORTED, "python backend: opens 'python:package.module:attr', not model bytes");
  ensure_interpreter();
  Gil gil;
  ensure_numpy();
  auto a = std::make_unique<Algorithm>();
  a->model = model;
  const std::string context = "python model '" + model + "': ";
  Ref module(PyImport_ImportModule("juno_bridge.algorithm"));
  if (!module) throw python_error(JB_ERROR_BACKEND_UNAVAILABLE, "python backend: cannot import juno_bridge: ");
  a->revoke = Ref(PyObject_GetAttrString(module.get(), "revoke"));
  a->store_returned = Ref(PyObject_GetAttrString(module.get(), "store_returned"));
  Ref open(PyObject_GetAttrString(module.get(), "open_algorithm"));
  Ref config(PyDict_New());
  if (!a->revoke || !a->store_returned || !open || !config)
    throw python_error(JB_ERROR_BACKEND_UNAVAILABLE, "python backend: ");
  for (const auto& [key, value] : options.pairs()) {  // the algorithm checks their names itself
    Ref v(PyUnicode_FromString(value.c_str()));
    if (!v || PyDict_SetItemString(config.get(), key.c_str(), v.get()) < 0) throw python_error(JB_ERROR_INVALID_ARGUMENT, context);
  }
  Ref opened(PyObject_CallFunction(open.get(), "sO", model.c_str(), config.get()));
  if (!opened) throw python_error(JB_ERROR_MODEL_LOAD, context);
  PyObject *call = nullptr, *ins = nullptr, *outs = nullptr, *md = nullptr;
  PyObject* run_async = nullptr;
  if (!PyArg_ParseTuple(opened.get(), "OOOO|O", &call, &ins, &outs, &md, &run_async) ||
      !read_declared(*a, ins, a->inputs_) ||
      !read_declared(*a, outs, a->outputs_))
    throw python_error(JB_ERROR_MODEL_LOAD, context);
  Py_INCREF(call);
  a->call = Ref(call);
  if (PyTuple_GET_SIZE(opened.get()) > 4 && PyTuple_GET_ITEM(opened.get(), 4) != Py_None) {
    Py_INCREF(PyTuple_GET_ITEM(opened.get(), 4));
    a->call_async = Ref(PyTuple_GET_ITEM(opened.get(), 4));
  }
  PyObject *k = nullptr, *v = nullptr;
  for (Py_ssize_t pos = 0; PyDict_Next(md, &pos, &k, &v);) a->add_metadata(str_of(k), str_of(v));
  a->seal();
  return a.release();
}

void Algorithm::close(Algorithm* a) {
  if (a == nullptr) return;
  // At interpreter shutdown Python objects can no longer be released safely: leave them.
#if PY_VERSION_HEX >= 0x030D0000
  if (!Py_IsInitialized() || Py_IsFinalizing()) return;
#else
  if (!Py_IsInitialized() || _Py_IsFinalizing()) return;
#endif
  Gil gil;
  // An algorithm instance (a class's, made at open) with a close() method is closed now, not whenever
  // Python collects it: what it holds (a server connection, shared memory) goes with the session.
  if (a->call && !PyFunction_Check(a->call.get()) && PyObject_HasAttrString(a->call.get(), "close")) {
    Ref done(PyObject_CallMethod(a->call.get(), "close", nullptr));
    if (!done) PyErr_WriteUnraisable(a->call.get());  // a close that fails is reported, never thrown here
  }
  delete a;
}

// The declared shape with symbols spelled out and their bound values: "[B=4, 3]".
std::string bound_text(const Algorithm& a, const Declared& d, const std::vector<int64_t>& bound) {
  std::string s = "[";
  for (size_t i = 0; i < d.shape.size(); ++i) {
    s += i ? ", " : "";
    s += d.symbol[i] < 0 ? std::to_string(d.shape[i])
                         : a.symbols[d.symbol[i]] + "=" + std::to_string(bound[d.symbol[i]]);
  }
  return s + "]";
}

void free_aligned(void* p) { std::free(p); }

// 64-byte aligned (what vectorised libraries expect), never NULL even for an empty tensor.
void* alloc_output(size_t nbytes) {
  size_t rounded = (nbytes + 63) / 64 * 64;
  return std::aligned_alloc(64, rounded ? rounded : 64);
}

// Lends `data` to Python as a numpy array whose base is `lease` (a reference is added).
PyObject* lend_array(void* data, const Declared& d, const int64_t* shape, bool writable, PyObject* lease) {
  npy_intp dims[JB_MAX_RANK];
  for (size_t i = 0; i < d.shape.size(); ++i) dims[i] = static_cast<npy_intp>(shape[i]);
  int flags = NPY_ARRAY_C_CONTIGUOUS | (writable ? NPY_ARRAY_WRITEABLE : 0);
  PyObject* arr = PyArray_New(&PyArray_Type, static_cast<int>(d.shape.size()), dims, typenum_of(d.dtype), nullptr,
                              data, 0, flags, nullptr);
  if (arr == nullptr) return nullptr;
  Py_INCREF(lease);
  if (PyArray_SetBaseObject(reinterpret_cast<PyArrayObject*>(arr), lease) < 0) {
    Py_DECREF(arr);
    return nullptr;
  }
  return arr;
}

// One run's loan of the caller's memory to Python: where each model output goes, the arrays made over the
// memory and their leases (inputs first), and the dicts handed to the algorithm.
struct Algorithm::Loan {
  std::vector<void*> out_data;
  std::vector<std::vector<int64_t>> out_shape;
  std::vector<std::unique_ptr<void, void (*)(void*)>> scratch;
  std::vector<PyObject*> lent, leases;
  PyObject* in_dict = nullptr;
  PyObject* out_dict = nullptr;
};

void Algorithm::place_outputs(const jb_tensor_view* inputs, const int32_t* output_index, jb_tensor_view* outputs,
                              jb_plugin_owned* owned, size_t num_outputs, Loan& loan) const {
  const Algorithm* a = this;
  const size_t num_inputs = inputs_.size();
  const std::string context = "python model '" + a->model + "': ";

  // Symbolic dims take their sizes from the inputs, so every output's shape is known before the call.
  std::vector<int64_t> bound(a->symbols.size(), -1);
  std::vector<size_t> bound_by(a->symbols.size(), 0);
  for (size_t i = 0; i < num_inputs; ++i) {
    const Declared& d = a->inputs_[i];
    for (size_t k = 0; k < d.shape.size(); ++k) {
      int s = d.symbol[k];
      if (s < 0) continue;
      if (bound[s] < 0) {
        bound[s] = inputs[i].shape[k];
        bound_by[s] = i;
      } else if (bound[s] != inputs[i].shape[k]) {
        throw Error(JB_ERROR_INPUT, context + "input '" + d.name + "': dim " + std::to_string(k) + " ('" +
                                        a->symbols[s] + "') is " + std::to_string(inputs[i].shape[k]) +
                                        ", but input '" + a->inputs_[bound_by[s]].name + "' has " + a->symbols[s] +
                                        " = " + std::to_string(bound[s]));
      }
    }
  }
  const size_t n_model_out = a->outputs_.size();
  auto& out_shape = loan.out_shape;
  out_shape.assign(n_model_out, {});
  for (size_t k = 0; k < n_model_out; ++k) {
    const Declared& d = a->outputs_[k];
    for (size_t i = 0; i < d.shape.size(); ++i) out_shape[k].push_back(d.symbol[i] < 0 ? d.shape[i] : bound[d.symbol[i]]);
  }
  auto nbytes = [&](size_t k) {
    size_t n = plugin::dtype_size(a->outputs_[k].dtype);
    for (int64_t v : out_shape[k]) n *= static_cast<size_t>(v);
    return n;
  };

  // Where each model output goes: the caller's buffer, one we allocate for the caller, or scratch for an
  // output the caller did not ask for (the callable still gets every declared output).
  auto& out_data = loan.out_data;
  out_data.assign(n_model_out, nullptr);
  for (size_t i = 0; i < num_outputs; ++i) {
    const size_t k = static_cast<size_t>(output_index[i]);
    const Declared& d = a->outputs_[k];
    if (outputs[i].data != nullptr) {
      if (static_cast<size_t>(outputs[i].rank) != d.shape.size() ||
          std::memcmp(outputs[i].shape, out_shape[k].data(), d.shape.size() * sizeof(int64_t)) != 0)
        throw Error(JB_ERROR_INPUT, context + "output '" + d.name + "': expected shape " + bound_text(*a, d, bound) +
                                        " (bound from the inputs), got " + shape_string(outputs[i].shape, outputs[i].rank));
      out_data[k] = outputs[i].data;
      continue;
    }
    void* p = alloc_output(nbytes(k));
    if (p == nullptr) throw Error(JB_ERROR_RUNTIME, context + "out of memory for output '" + d.name + "'");
    owned[i].holder = p;
    owned[i].release = &free_aligned;
    outputs[i].data = p;
    outputs[i].dtype = d.dtype;
    outputs[i].rank = static_cast<int32_t>(d.shape.size());
    for (size_t r = 0; r < d.shape.size(); ++r) outputs[i].shape[r] = out_shape[k][r];
    out_data[k] = p;
  }
  for (size_t k = 0; k < n_model_out; ++k) {
    if (out_data[k] != nullptr) continue;
    loan.scratch.emplace_back(alloc_output(nbytes(k)), &free_aligned);
    if (!loan.scratch.back()) throw Error(JB_ERROR_RUNTIME, context + "out of memory for output '" + a->outputs_[k].name + "'");
    out_data[k] = loan.scratch.back().get();
  }
}

std::optional<Error> Algorithm::lend(const jb_tensor_view* inputs, Loan& loan) {
  const size_t num_inputs = inputs_.size(), n_model_out = outputs_.size();
  loan.lent.reserve(num_inputs + n_model_out);
  loan.leases.reserve(num_inputs + n_model_out);
  auto take_lease = [&]() -> PyObject* {
    PyObject* lease = nullptr;
    if (!free_leases.empty()) {
      lease = free_leases.back();
      free_leases.pop_back();
    } else {
      lease = new_lease();
    }
    if (lease) loan.leases.push_back(lease);
    return lease;
  };
  loan.in_dict = PyDict_New();
  loan.out_dict = PyDict_New();
  bool built = loan.in_dict && loan.out_dict;
  for (size_t i = 0; built && i < num_inputs; ++i) {
    PyObject* lease = take_lease();
    PyObject* arr = lease ? lend_array(inputs[i].data, inputs_[i], inputs[i].shape, false, lease) : nullptr;
    built = arr && (loan.lent.push_back(arr), PyDict_SetItem(loan.in_dict, inputs_[i].key.get(), arr) == 0);
  }
  for (size_t k = 0; built && k < n_model_out; ++k) {
    PyObject* lease = take_lease();
    PyObject* arr = lease ? lend_array(loan.out_data[k], outputs_[k], loan.out_shape[k].data(), true, lease) : nullptr;
    built = arr && (loan.lent.push_back(arr), PyDict_SetItem(loan.out_dict, outputs_[k].key.get(), arr) == 0);
  }
  if (!built) return python_error(JB_ERROR_RUNTIME, "python model '" + model + "': cannot make the numpy views: ");
  count_wrapped(loan.lent.size());
  for (size_t i = 0; i < num_inputs; ++i) read_input_at(i, inputs[i].data);
  return std::nullopt;
}

std::optional<Error> Algorithm::settle(Loan& loan, std::optional<Error> failure, bool empty_dicts) {
  for (PyObject* dict : {loan.in_dict, loan.out_dict})
    if (empty_dicts && dict) PyDict_Clear(dict);
  Py_CLEAR(loan.in_dict);
  Py_CLEAR(loan.out_dict);
  // Lifetime: the caller may free these buffers as soon as the run is over. A lent array the algorithm
  // kept is revoked in place (numpy offers no way to detach an array from its memory, so its state is
  // replaced); a view derived from it cannot be reached to revoke. Both fail this run, naming the
  // tensor, and a fresh lease serves the next run.
  const size_t num_inputs = inputs_.size();
  std::string kept;
  for (size_t j = 0; j < loan.lent.size(); ++j) {
    const bool is_input = j < num_inputs;
    Declared& d = is_input ? inputs_[j] : outputs_[j - num_inputs];
    const std::string what = std::string(is_input ? "input '" : "output '") + d.name + "'";
    if (Py_REFCNT(loan.lent[j]) > 1) {
      Ref r(PyObject_CallFunction(revoke.get(), "Os", loan.lent[j], what.c_str()));
      if (!r) PyErr_Clear();
      kept += (kept.empty() ? "" : ", ") + what + " (revoked: it raises ReleasedViewError on use)";
    }
    Py_DECREF(loan.lent[j]);
  }
  for (size_t j = 0; j < loan.leases.size(); ++j) {
    if (Py_REFCNT(loan.leases[j]) <= 1) {
      free_leases.push_back(loan.leases[j]);
      continue;
    }
    Py_DECREF(loan.leases[j]);  // the kept view holds it from now on
    const bool is_input = j < num_inputs;
    const Declared& d = is_input ? inputs_[j] : outputs_[j - num_inputs];
    kept += (kept.empty() ? "" : ", ") + std::string("a view derived from ") + (is_input ? "input '" : "output '") +
            d.name + "' (cannot be revoked: it must not be used again)";
  }
  loan.lent.clear();
  loan.leases.clear();
  if (!kept.empty() && !failure)
    failure = Error(JB_ERROR_RUNTIME, "python model '" + model + "': the algorithm kept " + kept +
                                          " after the call; views lend the caller's memory for one run only: "
                                          "keep a .copy() instead");
  return failure;
}

void Algorithm::run(const jb_tensor_view* inputs, const int32_t* output_index, jb_tensor_view* outputs,
                    jb_plugin_owned* owned, size_t num_outputs) {
  Loan loan;
  place_outputs(inputs, output_index, outputs, owned, num_outputs, loan);
  Gil gil;
  std::optional<Error> failure = lend(inputs, loan);
  if (!failure) {
    const std::string context = "python model '" + model + "': ";
    PyObject* result = PyObject_CallFunctionObjArgs(call.get(), loan.in_dict, loan.out_dict, nullptr);
    if (result == nullptr) {
      failure = python_error(JB_ERROR_RUNTIME, context + "the algorithm raised an exception:\n");
    } else if (result != Py_None) {
      Ref stored(PyObject_CallFunctionObjArgs(store_returned.get(), result, loan.out_dict, nullptr));
      if (!stored) failure = python_error(JB_ERROR_RUNTIME, context);
    }
    Py_XDECREF(result);
  }
  // The exception and its traceback (which holds the frames' locals) are gone by now, so any reference
  // left to a lent array is one the algorithm kept.
  failure = settle(loan, std::move(failure));
  if (failure) throw *failure;
}

// One run_async lent to the algorithm: its loan and the core's completion, held by the `done` callable's
// capsule. `algorithm` is cleared once done has been called (or the run did not start).
struct AsyncRun {
  Algorithm* algorithm;
  std::unique_ptr<void, void (*)(void*)> loan;  // an Algorithm::Loan
  plugin::RunAsyncDone done;
  void* user_data;
};
constexpr const char* kAsyncRunCapsule = "juno_bridge.python_plugin.run_async";

// done(error=None): the algorithm's run is over; its views must no longer be referenced.
PyObject* Algorithm::async_done(PyObject* capsule, PyObject* args) {
  PyObject* error = Py_None;
  if (!PyArg_ParseTuple(args, "|O:done", &error)) return nullptr;
  auto* run = static_cast<AsyncRun*>(PyCapsule_GetPointer(capsule, kAsyncRunCapsule));
  if (run == nullptr) return nullptr;
  if (run->algorithm == nullptr) {
    PyErr_SetString(PyExc_RuntimeError, "done() was already called for this run");
    return nullptr;
  }
  Algorithm* a = std::exchange(run->algorithm, nullptr);
  auto& loan = *static_cast<Loan*>(run->loan.get());
  const std::string context = "python model '" + a->model + "': ";
  std::optional<Error> failure;
  if (error != Py_None) {
    if (PyExceptionInstance_Check(error)) {
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error)), error);
      failure = python_error(JB_ERROR_RUNTIME, context + "the algorithm's run_async failed:\n");
      // Its traceback holds frames whose locals may be the lent views: it is told, not kept.
      PyException_SetTraceback(error, Py_None);
      PyException_SetContext(error, nullptr);
      PyException_SetCause(error, nullptr);
    } else {
      failure = Error(JB_ERROR_RUNTIME, context + "run_async's done() takes None or an exception, got " +
                                            Py_TYPE(error)->tp_name);
    }
  }
  failure = a->settle(loan, std::move(failure), true);
  run->loan.reset();  // the scratch outputs too
  if (failure) run->done(run->user_data, static_cast<jb_status>(failure->code()), failure->backend_code(), failure->what());
  else run->done(run->user_data, JB_OK, 0, nullptr);
  Py_RETURN_NONE;
}

// The capsule's destructor: a `done` dropped without being called still completes the run, as an error.
void Algorithm::drop_async_run(PyObject* capsule) {
  std::unique_ptr<AsyncRun> run(static_cast<AsyncRun*>(PyCapsule_GetPointer(capsule, kAsyncRunCapsule)));
  if (!run || run->algorithm == nullptr) return;
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  PyErr_Fetch(&type, &value, &tb);  // a destructor may run while an exception is pending
  Algorithm* a = std::exchange(run->algorithm, nullptr);
  std::optional<Error> failure = a->settle(*static_cast<Loan*>(run->loan.get()),
                                           Error(JB_ERROR_RUNTIME, "python model '" + a->model +
                                                                       "': the algorithm's run_async dropped its done "
                                                                       "callback without calling it"),
                                           true);
  run->loan.reset();
  run->done(run->user_data, static_cast<jb_status>(failure->code()), failure->backend_code(), failure->what());
  PyErr_Restore(type, value, tb);
}

void Algorithm::run_async(const jb_tensor_view* inputs, const int32_t* output_index, jb_tensor_view* outputs,
                          jb_plugin_owned* owned, size_t num_outputs, plugin::RunAsyncDone done, void* user_data) {
  auto loan = std::make_unique<Loan>();
  place_outputs(inputs, output_index, outputs, owned, num_outputs, *loan);
  Gil gil;
  if (std::optional<Error> failure = lend(inputs, *loan)) throw *settle(*loan, failure);
  static PyMethodDef method = {"done", reinterpret_cast<PyCFunction>(&Algorithm::async_done), METH_VARARGS,
                               "done(error=None): the run is over (error: the exception that ended it)."};
  auto* run = new AsyncRun{this, {loan.release(), [](void* p) { delete static_cast<Loan*>(p); }}, done, user_data};
  Ref capsule(PyCapsule_New(run, kAsyncRunCapsule, &Algorithm::drop_async_run));
  if (!capsule) {
    std::optional<Error> failure = python_error(JB_ERROR_RUNTIME, "python model '" + model + "': ");
    Loan& l = *static_cast<Loan*>(run->loan.get());
    failure = settle(l, failure);
    delete run;
    throw *failure;
  }
  Ref done_callable(PyCFunction_New(&method, capsule.get()));
  // Our own references for the call: done() may release the loan's before run_async returns.
  Loan& lent = *static_cast<Loan*>(run->loan.get());
  Py_INCREF(lent.in_dict);
  Py_INCREF(lent.out_dict);
  Ref in_dict(lent.in_dict), out_dict(lent.out_dict);
  Ref started(done_callable ? PyObject_CallFunctionObjArgs(call_async.get(), in_dict.get(), out_dict.get(),
                                                           done_callable.get(), nullptr)
                            : nullptr);
  if (started) return;  // running, or already done
  if (run->algorithm == nullptr) {  // done() was called, then it raised: the run has reported already
    PyErr_Clear();
    return;
  }
  // It raised before starting: the run did not start, and done (if kept) must find nothing to complete.
  std::optional<Error> failure = python_error(JB_ERROR_RUNTIME, "python model '" + model +
                                                                    "': the algorithm's run_async raised an exception:\n");
  run->algorithm = nullptr;
  failure = settle(lent, failure, true);
  run->loan.reset();
  throw *failure;
}


constexpr const char* kOptions[] = {"*", nullptr};  // the algorithm declares and checks its own
const jb_plugin_api kApi = plugin::Table<Algorithm>::api("python", kOptions);

}  // namespace
}  // namespace jb::python_plugin

extern "C" JB_PLUGIN_EXPORT const jb_plugin_api* jb_plugin_init(const jb_plugin_host* host) {
  return jb::plugin::start(host) ? &jb::python_plugin::kApi : nullptr;
}
