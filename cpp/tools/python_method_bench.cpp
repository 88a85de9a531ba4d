// The Python-algorithm method timed per event from C++, two ways, in one process:
//  (a) JUNO-style: each of the 2 x 17,612 values copied element by element into a new numpy array in a
//      dict (what the JUNO example does through its binding: one Python object and one __setitem__ per
//      value), the Python algorithm called, its 4 results copied back element by element;
//  (b) juno-bridge: a `python:` jb::Session run on the C++ buffers (numpy views, no copy).
// Usage: python_method_bench <site-packages dir> <events> <module:attr>; prints one JSON object with the
// per-event times in microseconds. Run by juno_bridge/bench_python.py.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "juno_bridge/hits.hpp"
#include "juno_bridge/session.hpp"

namespace {

constexpr int64_t kChannels = 2, kPmts = jb::kLargePmts;

double since_us(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

bool check(PyObject* o, const char* what) {
  if (o != nullptr) return true;
  std::fprintf(stderr, "python failure in %s:\n", what);
  PyErr_Print();
  return false;
}

// (a): fresh arrays per event, filled and read back one element at a time through the CPython API.
bool juno_style_event(PyObject* numpy, PyObject* algorithm, const std::vector<float>& pmt, float* results) {
  PyObject* zeros = PyObject_GetAttrString(numpy, "zeros");
  PyObject* in = PyObject_CallFunction(zeros, "((ll)s)", static_cast<long>(kChannels), static_cast<long>(kPmts), "float32");
  PyObject* vertex = PyObject_CallFunction(zeros, "(l)s", 3L, "float32");
  PyObject* energy = PyObject_CallFunction(zeros, "(l)s", 1L, "float32");
  if (!check(in, "zeros") || !check(vertex, "zeros") || !check(energy, "zeros")) return false;
  for (int64_t c = 0; c < kChannels; ++c)
    for (int64_t p = 0; p < kPmts; ++p) {
      PyObject* index = Py_BuildValue("(ll)", static_cast<long>(c), static_cast<long>(p));
      PyObject* value = PyFloat_FromDouble(pmt[c * kPmts + p]);
      PyObject_SetItem(in, index, value);
      Py_DECREF(index);
      Py_DECREF(value);
    }
  PyObject* inputs = PyDict_New();
  PyObject* outputs = PyDict_New();
  PyDict_SetItemString(inputs, "pmt", in);
  PyDict_SetItemString(outputs, "vertex", vertex);
  PyDict_SetItemString(outputs, "energy", energy);
  PyObject* r = PyObject_CallFunctionObjArgs(algorithm, inputs, outputs, nullptr);
  if (!check(r, "the algorithm")) return false;
  Py_DECREF(r);
  int k = 0;
  for (PyObject* arr : {vertex, energy}) {
    Py_ssize_t n = PyObject_Length(arr);
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* index = PyLong_FromSsize_t(i);
      PyObject* item = PyObject_GetItem(arr, index);
      results[k++] = static_cast<float>(PyFloat_AsDouble(item));
      Py_DECREF(item);
      Py_DECREF(index);
    }
  }
  for (PyObject* o : {inputs, outputs, in, vertex, energy, zeros}) Py_DECREF(o);
  return true;
}

void print_times(const char* key, const std::vector<double>& times, bool last) {
  std::printf("\"%s\": [", key);
  for (size_t i = 0; i < times.size(); ++i) std::printf("%s%.3f", i ? ", " : "", times[i]);
  std::printf("]%s", last ? "" : ", ");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s <site-packages> <events> <module:attr>\n", argv[0]);
    return 2;
  }
  const std::string site = argv[1], target = argv[3];
  const int events = std::atoi(argv[2]);
  std::vector<float> pmt(kChannels * kPmts);
  for (size_t i = 0; i < pmt.size(); ++i) pmt[i] = static_cast<float>((i * 2654435761u) % 1000) / 100.0f;

  Py_InitializeEx(0);
  PyObject* sys_path = PySys_GetObject("path");  // borrowed
  PyObject* dir = PyUnicode_FromString(site.c_str());
  PyList_Insert(sys_path, 0, dir);
  Py_DECREF(dir);
  PyObject* numpy = PyImport_ImportModule("numpy");
  const std::string module_name = target.substr(0, target.find(':'));
  PyObject* module = PyImport_ImportModule(module_name.c_str());
  PyObject* algorithm = module ? PyObject_GetAttrString(module, target.substr(target.find(':') + 1).c_str()) : nullptr;
  if (!check(numpy, "import numpy") || !check(algorithm, "import the algorithm")) return 2;

  float results[4];
  std::vector<double> a, b;
  for (int e = 0; e < events; ++e) {
    auto t0 = std::chrono::steady_clock::now();
    if (!juno_style_event(numpy, algorithm, pmt, results)) return 2;
    a.push_back(since_us(t0));
  }
  const float a_energy = results[3];

  PyThreadState* main_state = PyEval_SaveThread();  // as in a C++ framework: the bridge takes the GIL per run
  try {
    jb::Session session("python:" + target);
    std::vector<float> vertex(3), energy(1);
    std::vector<jb::TensorView> in = {jb::TensorView::of(pmt.data(), {kChannels, kPmts})};
    std::vector<jb::TensorView> out = {jb::TensorView::of(vertex.data(), {3}), jb::TensorView::of(energy.data(), {1})};
    for (int e = 0; e < events + 20; ++e) {
      auto t0 = std::chrono::steady_clock::now();
      session.run(in, out);
      if (e >= 20) b.push_back(since_us(t0));  // the first runs warm the caches of both sides
    }
    if (energy[0] != a_energy) {
      std::fprintf(stderr, "the two ways disagree: %g vs %g\n", energy[0], a_energy);
      return 1;
    }
  } catch (const jb::Error& e) {
    std::fprintf(stderr, "juno-bridge: %s\n", e.what());
    return 2;
  }
  PyEval_RestoreThread(main_state);
  std::printf("{");
  print_times("juno_style", a, false);
  print_times("bridge_session", b, true);
  std::printf("}\n");
  return 0;
}
