// juno_bridge._sniper: the tensor store seen from Python (numpy arrays over the store's memory, never a
// copy) and the addresses a JunoBridgeAlg's runtime read. Used through juno_bridge/sniper.py.
#define PY_ARRAY_UNIQUE_SYMBOL jb_sniper_numpy_api
#include <boost/python.hpp>
#include <numpy/arrayobject.h>

#include <juno_bridge/juno_bridge.h>
#include <juno_bridge/sniper/JunoBridgeSvc.h>
#include <juno_bridge/sniper/ModelAlg.h>
#include <juno_bridge/sniper/TensorStore.h>

#include <SniperKernel/AlgBase.h>
#include <SniperKernel/DataMemSvc.h>
#include <SniperPython/PyDataStore.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace bp = boost::python;
using jb::sniper::Origin;
using jb::sniper::StoredTensor;
using jb::sniper::TensorStore;

namespace {

constexpr const char* kCapsule = "juno_bridge.sniper.storage";

// ml_dtypes registers bfloat16 with numpy under a type number chosen at run time (called with the GIL).
int bfloat16_type() {
  static const int type = [] {
    const bp::object bfloat16 = bp::import("ml_dtypes").attr("bfloat16");
    return static_cast<int>(bp::extract<int>(bp::import("numpy").attr("dtype")(bfloat16).attr("num")));
  }();
  return type;
}

int numpy_type(jb::DType d) {
  switch (d) {
    case jb::DType::BFloat16: return bfloat16_type();
    case jb::DType::Float32: return NPY_FLOAT32;
    case jb::DType::Float64: return NPY_FLOAT64;
    case jb::DType::Float16: return NPY_FLOAT16;
    case jb::DType::Int8: return NPY_INT8;
    case jb::DType::Int16: return NPY_INT16;
    case jb::DType::Int32: return NPY_INT32;
    case jb::DType::Int64: return NPY_INT64;
    case jb::DType::UInt8: return NPY_UINT8;
    case jb::DType::UInt16: return NPY_UINT16;
    case jb::DType::UInt32: return NPY_UINT32;
    case jb::DType::UInt64: return NPY_UINT64;
    case jb::DType::Bool: return NPY_BOOL;
    default: return -1;
  }
}

jb::DType dtype_from_name(const std::string& name) {
  for (int code = 0; code < 32; ++code) {
    auto d = static_cast<jb::DType>(code);
    if (jb::dtype_size(d) != 0 && name == jb::dtype_name(d)) return d;
  }
  throw jb::Error(jb::ErrorCode::InvalidArgument, "the tensor store holds no dtype '" + name + "'");
}

// A numpy array over a stored tensor; its base object shares the storage, so the array never shows
// freed memory, whatever happens to the store or the task.
PyObject* array_of(const std::string& name, const StoredTensor& t, bool writable) {
  if (!t.holder && t.view.nbytes() != 0)
    throw jb::Error(jb::ErrorCode::InvalidArgument,
                    "tensor '" + name + "' is a view of memory a C++ algorithm owns and did not share "
                    "(TensorStore::view without an owner): Python cannot keep it alive, so it is not handed out");
  const int type = numpy_type(t.view.dtype);
  if (type < 0)
    throw jb::Error(jb::ErrorCode::Unsupported, "tensor '" + name + "' has no numpy dtype");
  npy_intp dims[jb::kMaxRank];
  for (int32_t i = 0; i < t.view.rank; ++i) dims[i] = static_cast<npy_intp>(t.view.shape[i]);
  const int flags = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | (writable ? NPY_ARRAY_WRITEABLE : 0);
  PyObject* array = PyArray_New(&PyArray_Type, t.view.rank, dims, type, nullptr, t.view.data, 0, flags, nullptr);
  if (array == nullptr) bp::throw_error_already_set();
  auto* keep = new std::shared_ptr<void>(t.holder);
  PyObject* capsule = PyCapsule_New(keep, kCapsule, [](PyObject* c) {
    delete static_cast<std::shared_ptr<void>*>(PyCapsule_GetPointer(c, kCapsule));
  });
  if (capsule == nullptr) {
    delete keep;
    Py_DECREF(array);
    bp::throw_error_already_set();
  }
  if (PyArray_SetBaseObject(reinterpret_cast<PyArrayObject*>(array), capsule) < 0) {  // steals capsule
    Py_DECREF(array);
    bp::throw_error_already_set();
  }
  return array;
}

// The store of one task, held weakly: after the task's finalize it reports that, clearly.
class StoreHandle {
 public:
  explicit StoreHandle(DLElement& element) : store_(TensorStore::shared(&element)) {
    auto* task = dynamic_cast<ExecUnit*>(&element);
    task_ = task ? task->objName() : element.getParent()->objName();
  }

  bp::list names() const {
    bp::list out;
    for (const auto& n : lock()->names()) out.append(n);
    return out;
  }
  bool contains(const std::string& name) const { return lock()->contains(name); }
  size_t size() const { return lock()->size(); }

  bp::object get(const std::string& name) const {
    auto store = lock();
    const StoredTensor* t = store->find(name);
    if (t == nullptr) {
      PyErr_SetString(PyExc_KeyError, ("the tensor store has no tensor '" + name + "'; it holds " +
                                       store->names_string()).c_str());
      bp::throw_error_already_set();
    }
    return bp::object(bp::handle<>(array_of(name, *t, t->origin == Origin::Python)));
  }

  bp::object create(const std::string& name, bp::object shape, const std::string& dtype) {
    auto store = lock();
    std::vector<int64_t> dims;
    for (Py_ssize_t i = 0; i < bp::len(shape); ++i) dims.push_back(bp::extract<int64_t>(shape[i]));
    const StoredTensor* old = store->find(name);
    if (old != nullptr && old->origin != Origin::Python)
      throw jb::Error(jb::ErrorCode::InvalidArgument,
                      "tensor '" + name + "' belongs to a C++ algorithm; Python may only read it");
    store->create(name, dtype_from_name(dtype), dims, Origin::Python);
    return bp::object(bp::handle<>(array_of(name, *store->find(name), true)));
  }

  uintptr_t address(const std::string& name) const {
    return reinterpret_cast<uintptr_t>(lock()->at(name).data);
  }
  // (device, source): where the bytes are ("cpu", "cuda_pinned") and the reader whose session made them.
  bp::tuple memory(const std::string& name) const {
    auto store = lock();
    store->at(name);  // an unknown name: the error naming the store's keys
    const StoredTensor& t = *store->find(name);
    return bp::make_tuple(t.view.device.name(), t.source);
  }
  bool erase(const std::string& name) { return lock()->erase(name); }
  const std::string& task() const { return task_; }

 private:
  std::shared_ptr<TensorStore> lock() const {
    auto store = store_.lock();
    if (!store)
      throw jb::Error(jb::ErrorCode::InvalidArgument,
                      "the tensor store of task '" + task_ + "' is gone (the task finalized); arrays taken "
                      "from it stay valid");
    return store;
  }

  std::weak_ptr<TensorStore> store_;
  std::string task_;
};

StoreHandle store_of(DLElement& element) { return StoreHandle(element); }

// The open session of a JunoBridgeAlg (or a ModelAlg), else an error naming the algorithm.
const jb::Session& session_of(AlgBase& alg) {
  auto* model = dynamic_cast<jb::sniper::ModelAlg*>(&alg);
  if (model == nullptr)
    throw jb::Error(jb::ErrorCode::InvalidArgument, "'" + alg.objName() + "' is not a JunoBridgeAlg");
  if (model->session() == nullptr)
    throw jb::Error(jb::ErrorCode::InvalidArgument,
                    "'" + alg.objName() + "' has no open session (before initialize or after finalize)");
  return *model->session();
}

// Where the runtime of a JunoBridgeAlg (or a ModelAlg) read each input in its last run.
bp::list input_addresses(AlgBase& alg) {
  bp::list out;
  for (const void* p : session_of(alg).stats().input_addresses) out.append(reinterpret_cast<uintptr_t>(p));
  return out;
}

// Which backend session an algorithm runs on, and how many open Sessions share it.
bp::dict session_stats(AlgBase& alg) {
  const jb::Session& session = session_of(alg);
  const jb::SessionStats stats = session.stats();
  bp::dict out;
  out["backend"] = session.backend_name();
  out["backend_id"] = stats.backend_id;
  out["backend_users"] = stats.backend_users;
  out["tensors_wrapped"] = stats.tensors_wrapped;
  return out;
}

// SNiPER's own C++ -> Python handoff, timed: PyDataStore::set of a float vector of `elements`, the way a
// C++ algorithm hands an array to Python algorithms today. Returns seconds per call.
double time_pydatastore_set(ExecUnit& task, const std::string& block, const std::string& key, size_t elements,
                            int iterations) {
  auto* memory = dynamic_cast<DataMemSvc*>(task.find("DataMemSvc"));
  auto* ds = memory ? dynamic_cast<PyDataStore*>(memory->find(block)) : nullptr;
  if (ds == nullptr)
    throw jb::Error(jb::ErrorCode::InvalidArgument, "task '" + task.objName() + "' has no PyDataStore '" + block + "'");
  std::vector<float> values(elements, 1.5f);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) ds->set(key, values);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / iterations;
}

// The runtime of the JunoBridgeSvc a Python algorithm opens its session in (jb::sniper::find_service's
// rule), for juno_bridge._core to hold: (capsule of a std::shared_ptr<jb::Runtime>, the service's name,
// the address of jb_version in the core this package links, so Python can tell it is its own core). None
// when the algorithm's tasks have no JunoBridgeSvc.
bp::object runtime_of(AlgBase& alg, const std::string& service) {
  jb::sniper::RuntimeSvc* svc = jb::sniper::find_service(&alg, service);
  if (svc == nullptr) {
    if (!service.empty())
      throw jb::Error(jb::ErrorCode::InvalidArgument, "service='" + service + "' names no service of task '" +
                                                          alg.getParent()->objName() + "' or a task above it");
    return bp::object();
  }
  std::shared_ptr<jb::Runtime> runtime = svc->shared_runtime();
  if (!runtime)
    throw jb::Error(jb::ErrorCode::Runtime,
                    "JunoBridgeSvc '" + svc->objName() + "' is not initialized (or was finalized)");
  PyObject* capsule = PyCapsule_New(
      new std::shared_ptr<jb::Runtime>(std::move(runtime)), "juno_bridge.shared_runtime", [](PyObject* c) {
        delete static_cast<std::shared_ptr<jb::Runtime>*>(PyCapsule_GetPointer(c, "juno_bridge.shared_runtime"));
      });
  if (capsule == nullptr) bp::throw_error_already_set();
  return bp::make_tuple(bp::object(bp::handle<>(capsule)), svc->objName(), reinterpret_cast<uintptr_t>(&jb_version));
}

void translate(const jb::Error& e) {
  bp::object errors = bp::import("juno_bridge.errors");
  bp::object cls = errors.attr("error_class")(static_cast<int>(e.code()));
  PyErr_SetObject(cls.ptr(), bp::object(std::string(e.what())).ptr());
}

}  // namespace

BOOST_PYTHON_MODULE(_sniper) {
  if (_import_array() < 0) bp::throw_error_already_set();
  bp::register_exception_translator<jb::Error>(&translate);
  bp::class_<StoreHandle>("StoreHandle", bp::no_init)
      .def("names", &StoreHandle::names)
      .def("contains", &StoreHandle::contains)
      .def("size", &StoreHandle::size)
      .def("get", &StoreHandle::get)
      .def("create", &StoreHandle::create)
      .def("address", &StoreHandle::address)
      .def("memory", &StoreHandle::memory)
      .def("erase", &StoreHandle::erase)
      .add_property("task", bp::make_function(&StoreHandle::task, bp::return_value_policy<bp::copy_const_reference>()));
  bp::def("store_of", &store_of);
  bp::def("input_addresses", &input_addresses);
  bp::def("session_stats", &session_stats);
  bp::def("runtime_of", &runtime_of);
  bp::def("time_pydatastore_set", &time_pydatastore_set);
}
