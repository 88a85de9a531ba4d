// The "python" backend plugin (libjuno_bridge_python.so): runs a Python callable declared with
// @juno_bridge.algorithm on numpy views of the caller's buffers. It is the only code that links
// libpython, so a C++ program that never opens a `python:` model never loads the interpreter.
//
// From a C++ host it starts the interpreter (and releases the GIL); inside a Python process it attaches
// to the running one. Every entry point takes the GIL itself (PyGILState_Ensure), because the core
// calls it without the GIL: the Cython module releases it around open and run.
//
// Its parts: python_interpreter.cpp (the interpreter), python_views.cpp (the numpy views), this file (the
// backend); python_plugin.hpp is what they share.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "juno_bridge/plugin_sdk.hpp"
#include "python_plugin.hpp"

namespace jb::python_plugin {
namespace {

// The Model of the SDK's Table (plugin_sdk.hpp), and the Lender of its views (python_views.cpp).
struct Algorithm : plugin::ModelBase<Declared>, Lender {
  Ref call, store_returned;

  Algorithm() : Lender(inputs_, outputs_) {}

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
  // GIL held: Lender::lend, and the run's zero-copy evidence (SessionStats).
  std::optional<Error> lend(const jb_tensor_view* inputs, Loan& loan);
  static PyObject* async_done(PyObject* self, PyObject* args);
  static void drop_async_run(PyObject* capsule);
};

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
  if (const std::string said = keep_freed_memory(); !said.empty()) plugin::log(JB_LOG_INFO, "python", said);
  ensure_interpreter(plugin::library_dir());
  Gil gil;
  ensure_numpy();
  auto a = std::make_unique<Algorithm>();
  a->model = model;
  const std::string context = "python model '" + model + "': ";
  Ref module(PyImport_ImportModule("juno_bridge.algorithm"));
  if (!module) throw python_error(JB_ERROR_BACKEND_UNAVAILABLE, "python backend: cannot import juno_bridge: ");
  a->revoke = Ref(PyObject_GetAttrString(module.get(), "revoke"));
  a->release_finished_frames = Ref(PyObject_GetAttrString(module.get(), "release_finished_frames"));
  a->store_returned = Ref(PyObject_GetAttrString(module.get(), "store_returned"));
  Ref open(PyObject_GetAttrString(module.get(), "open_algorithm"));
  Ref config(PyDict_New());
  if (!a->revoke || !a->release_finished_frames || !a->store_returned || !open || !config)
    throw python_error(JB_ERROR_BACKEND_UNAVAILABLE, "python backend: ");
  for (const auto& [key, value] : options.pairs()) {  // the algorithm checks their names itself
    Ref v(PyUnicode_FromString(value.c_str()));
    if (!v || PyDict_SetItemString(config.get(), key.c_str(), v.get()) < 0)
      throw python_error(JB_ERROR_INVALID_ARGUMENT, context);
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


std::optional<Error> Algorithm::lend(const jb_tensor_view* inputs, Loan& loan) {
  std::optional<Error> failure = Lender::lend(inputs, loan);
  if (failure) return failure;
  count_wrapped(loan.lent.size());
  for (size_t i = 0; i < inputs_.size(); ++i) read_input_at(i, inputs[i].data);
  return std::nullopt;
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
  std::unique_ptr<Loan> loan;
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
  Loan& loan = *run->loan;
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
  failure = a->settle(loan, std::move(failure));
  run->loan.reset();  // the scratch outputs too
  if (failure)
    run->done(run->user_data, static_cast<jb_status>(failure->code()), failure->backend_code(), failure->what());
  else
    run->done(run->user_data, JB_OK, 0, nullptr);
  Py_RETURN_NONE;
}

// The capsule's destructor: a `done` dropped without being called still completes the run, as an error.
void Algorithm::drop_async_run(PyObject* capsule) {
  std::unique_ptr<AsyncRun> run(static_cast<AsyncRun*>(PyCapsule_GetPointer(capsule, kAsyncRunCapsule)));
  if (!run || run->algorithm == nullptr) return;
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  PyErr_Fetch(&type, &value, &tb);  // a destructor may run while an exception is pending
  Algorithm* a = std::exchange(run->algorithm, nullptr);
  std::optional<Error> failure =
      a->settle(*run->loan, Error(JB_ERROR_RUNTIME, "python model '" + a->model +
                                                        "': the algorithm's run_async dropped its done "
                                                        "callback without calling it"));
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
  auto* run = new AsyncRun{this, std::move(loan), done, user_data};
  Ref capsule(PyCapsule_New(run, kAsyncRunCapsule, &Algorithm::drop_async_run));
  if (!capsule) {
    std::optional<Error> failure = python_error(JB_ERROR_RUNTIME, "python model '" + model + "': ");
    Loan& l = *run->loan;
    failure = settle(l, failure);
    delete run;
    throw *failure;
  }
  Ref done_callable(PyCFunction_New(&method, capsule.get()));
  // Our own references for the call: done() may release the loan's before run_async returns.
  Loan& lent = *run->loan;
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
  std::optional<Error> failure =
      python_error(JB_ERROR_RUNTIME, "python model '" + model + "': the algorithm's run_async raised an exception:\n");
  run->algorithm = nullptr;
  failure = settle(lent, failure);
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
