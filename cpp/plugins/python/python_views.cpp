// The lending of the caller's buffers to a Python algorithm: numpy arrays over the memory (no copy) for
// one run, and their return after it, revoking any view the algorithm kept.
#include "python_plugin.hpp"
#define NPY_NO_DEPRECATED_API NPY_2_0_API_VERSION
#include <numpy/arrayobject.h>

#include <cstdlib>
#include <cstring>

#include "juno_bridge/tensor.hpp"

namespace jb::python_plugin {
namespace {

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

// A lease is the base of one lent array and of every view made from it: an empty ndarray that owns
// nothing and has no base. numpy bases a view on the first base of the same type that owns its data or
// has no base of its own, so a lease still referenced after its run means the algorithm kept a view.
// Each run takes its own leases: Python switches threads inside a call, so runs interleave.
PyObject* new_lease() {
  static char nothing;
  npy_intp zero = 0;
  return PyArray_New(&PyArray_Type, 1, &zero, NPY_UINT8, nullptr, &nothing, 0, 0, nullptr);
}

// The declared shape with symbols spelled out and their bound values: "[B=4, 3]".
std::string bound_text(const Lender& a, const Declared& d, const std::vector<int64_t>& bound) {
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

}  // namespace

void ensure_numpy() {
  if (PyArray_API == nullptr && _import_array() < 0)
    throw python_error(JB_ERROR_BACKEND_UNAVAILABLE, "python backend: cannot import numpy: ");
}

Lender::~Lender() {
  for (PyObject* lease : free_leases) Py_DECREF(lease);
}

void Lender::place_outputs(const jb_tensor_view* inputs, const int32_t* output_index, jb_tensor_view* outputs,
                              jb_plugin_owned* owned, size_t num_outputs, Loan& loan) const {
  const Lender* a = this;
  const size_t num_inputs = ins_.size();
  const std::string context = "python model '" + a->model + "': ";

  // Symbolic dims take their sizes from the inputs, so every output's shape is known before the call.
  std::vector<int64_t> bound(a->symbols.size(), -1);
  std::vector<size_t> bound_by(a->symbols.size(), 0);
  for (size_t i = 0; i < num_inputs; ++i) {
    const Declared& d = a->ins_[i];
    for (size_t k = 0; k < d.shape.size(); ++k) {
      int s = d.symbol[k];
      if (s < 0) continue;
      if (bound[s] < 0) {
        bound[s] = inputs[i].shape[k];
        bound_by[s] = i;
      } else if (bound[s] != inputs[i].shape[k]) {
        throw Error(JB_ERROR_INPUT, context + "input '" + d.name + "': dim " + std::to_string(k) + " ('" +
                                        a->symbols[s] + "') is " + std::to_string(inputs[i].shape[k]) +
                                        ", but input '" + a->ins_[bound_by[s]].name + "' has " + a->symbols[s] +
                                        " = " + std::to_string(bound[s]));
      }
    }
  }
  const size_t n_model_out = a->outs_.size();
  auto& out_shape = loan.out_shape;
  out_shape.assign(n_model_out, {});
  for (size_t k = 0; k < n_model_out; ++k) {
    const Declared& d = a->outs_[k];
    for (size_t i = 0; i < d.shape.size(); ++i)
      out_shape[k].push_back(d.symbol[i] < 0 ? d.shape[i] : bound[d.symbol[i]]);
  }
  auto nbytes = [&](size_t k) {
    size_t n = dtype_size(static_cast<DType>(a->outs_[k].dtype));
    for (int64_t v : out_shape[k]) n *= static_cast<size_t>(v);
    return n;
  };

  // Where each model output goes: the caller's buffer, one we allocate for the caller, or scratch for an
  // output the caller did not ask for (the callable still gets every declared output).
  auto& out_data = loan.out_data;
  out_data.assign(n_model_out, nullptr);
  for (size_t i = 0; i < num_outputs; ++i) {
    const size_t k = static_cast<size_t>(output_index[i]);
    const Declared& d = a->outs_[k];
    if (outputs[i].data != nullptr) {
      if (static_cast<size_t>(outputs[i].rank) != d.shape.size() ||
          std::memcmp(outputs[i].shape, out_shape[k].data(), d.shape.size() * sizeof(int64_t)) != 0)
        throw Error(JB_ERROR_INPUT, context + "output '" + d.name + "': expected shape " + bound_text(*a, d, bound) +
                                        " (bound from the inputs), got " +
                                        shape_string(outputs[i].shape, outputs[i].rank));
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
    if (!loan.scratch.back())
      throw Error(JB_ERROR_RUNTIME, context + "out of memory for output '" + a->outs_[k].name + "'");
    out_data[k] = loan.scratch.back().get();
  }
}

std::optional<Error> Lender::lend(const jb_tensor_view* inputs, Loan& loan) {
  const size_t num_inputs = ins_.size(), n_model_out = outs_.size();
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
    PyObject* arr = lease ? lend_array(inputs[i].data, ins_[i], inputs[i].shape, false, lease) : nullptr;
    built = arr && (loan.lent.push_back(arr), PyDict_SetItem(loan.in_dict, ins_[i].key.get(), arr) == 0);
  }
  for (size_t k = 0; built && k < n_model_out; ++k) {
    PyObject* lease = take_lease();
    PyObject* arr = lease ? lend_array(loan.out_data[k], outs_[k], loan.out_shape[k].data(), true, lease) : nullptr;
    built = arr && (loan.lent.push_back(arr), PyDict_SetItem(loan.out_dict, outs_[k].key.get(), arr) == 0);
  }
  if (!built) return python_error(JB_ERROR_RUNTIME, "python model '" + model + "': cannot make the numpy views: ");
  return std::nullopt;
}

// Whether `lent` is still referenced beyond the loan's own reference. A finished frame someone still
// holds (Dask's profiler samples the stacks; a traceback) keeps it by accident: those are cleared first.
bool Lender::still_referenced(PyObject* lent) {
  if (Py_REFCNT(lent) <= 1) return false;
  Ref r(PyObject_CallFunctionObjArgs(release_finished_frames.get(), lent, nullptr));
  if (!r) PyErr_Clear();
  return Py_REFCNT(lent) > 1;
}

std::optional<Error> Lender::settle(Loan& loan, std::optional<Error> failure) {
  // Emptied, so that a dict someone still holds (a finished frame's argument) holds no view.
  for (PyObject* dict : {loan.in_dict, loan.out_dict})
    if (dict) PyDict_Clear(dict);
  Py_CLEAR(loan.in_dict);
  Py_CLEAR(loan.out_dict);
  // Lifetime: the caller may free these buffers as soon as the run is over. A lent array the algorithm
  // kept is revoked in place (numpy offers no way to detach an array from its memory, so its state is
  // replaced); a view derived from it cannot be reached to revoke. Both fail this run, naming the
  // tensor, and a fresh lease serves the next run.
  const size_t num_inputs = ins_.size();
  std::string kept;
  for (size_t j = 0; j < loan.lent.size(); ++j) {
    const bool is_input = j < num_inputs;
    const Declared& d = is_input ? ins_[j] : outs_[j - num_inputs];
    const std::string what = std::string(is_input ? "input '" : "output '") + d.name + "'";
    if (still_referenced(loan.lent[j])) {
      Ref r(PyObject_CallFunction(revoke.get(), "Os", loan.lent[j], what.c_str()));
      if (!r) PyErr_Clear();
      kept += (kept.empty() ? "" : ", ") + what + " (revoked: it raises ReleasedViewError on use)";
    }
    Py_DECREF(loan.lent[j]);
  }
  for (size_t j = 0; j < loan.leases.size(); ++j) {
    if (!still_referenced(loan.leases[j])) {
      free_leases.push_back(loan.leases[j]);
      continue;
    }
    Py_DECREF(loan.leases[j]);  // the kept view holds it from now on
    const bool is_input = j < num_inputs;
    const Declared& d = is_input ? ins_[j] : outs_[j - num_inputs];
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

}  // namespace jb::python_plugin
