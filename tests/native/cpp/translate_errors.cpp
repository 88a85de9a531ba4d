// The one exception translator (error.hpp) and the plugin SDK's dtype and shape helpers, checked from a
// C++ program built against the installed headers only (as a plugin is: no core library linked).
#include <cstdio>
#include <new>
#include <stdexcept>
#include <string>

#include "juno_bridge/plugin_sdk.hpp"

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  failures += ok ? 0 : 1;
}

template <class Throw>
void expect_translation(Throw&& thrower, jb_status want, const std::string& want_message, int want_code,
                        const std::string& what) {
  std::string message = "stale";
  int code = -1;
  jb_status got = JB_OK;
  try {
    thrower();
  } catch (...) {
    got = jb::status_of_current_exception(JB_ERROR_RUNTIME, message, code);
  }
  expect(got == want && message == want_message && code == want_code,
         what + ": status " + std::to_string(got) + ", message '" + message + "', backend code " + std::to_string(code));
}

struct NotAnException {};

}  // namespace

int main() {
  expect_translation([] { throw jb::Error(JB_ERROR_INPUT_TYPE, "input 'x': expected float32", 7); },
                     JB_ERROR_INPUT_TYPE, "input 'x': expected float32", 7, "jb::Error keeps its code");
  expect_translation([] { throw std::bad_alloc(); }, JB_ERROR_RUNTIME, "out of memory", 0, "bad_alloc");
  expect_translation([] { throw std::out_of_range("index 9"); }, JB_ERROR_RUNTIME, "index 9", 0, "std::exception");
  expect_translation([] { throw 42; }, JB_ERROR_RUNTIME, "unknown C++ exception (not derived from std::exception)", 0,
                     "an int");
  expect_translation([] { throw NotAnException{}; }, JB_ERROR_RUNTIME,
                     "unknown C++ exception (not derived from std::exception)", 0, "a non-std class");

  // The plugin-side guard reports through the host: without one it still returns the status.
  expect(jb::plugin::guarded(JB_ERROR_MODEL_LOAD, [] { throw 3.5; }) == JB_ERROR_MODEL_LOAD,
         "plugin guard: a double becomes the fallback status");

  // One dtype table: an unknown code has size 0 everywhere (the python plugin's said 1).
  expect(jb::plugin::dtype_size(99) == 0 && jb::plugin::dtype_size(JB_DTYPE_UNDEFINED) == 0, "unknown dtype: size 0");
  expect(jb::plugin::dtype_size(JB_DTYPE_FLOAT64) == 8 && jb::plugin::dtype_size(JB_DTYPE_BOOL) == 1, "known sizes");
  expect(std::string(jb::plugin::dtype_name(99)) == "undefined", "unknown dtype: name 'undefined'");
  expect(jb::plugin::onnx_type_name(JB_DTYPE_FLOAT32) == "tensor(float)" &&
             jb::plugin::onnx_type_name(JB_DTYPE_FLOAT64) == "tensor(double)",
         "ONNX spelling");
  expect(jb::dtype_from_name("uint16") == jb::DType::UInt16 && jb::dtype_from_name("f33") == jb::DType::Undefined,
         "dtype from numpy's name");
  const int64_t dims[] = {2, 17612};
  expect(jb::shape_string(dims, 2) == "[2, 17612]", "shape text");
  expect(jb::plugin::parse_count("echo", "n", "", 5) == 5, "parse_count: empty is the fallback");
  try {
    jb::plugin::parse_count("echo", "n", "many", 0);
    expect(false, "parse_count refuses 'many'");
  } catch (const jb::Error& e) {
    expect(std::string(e.what()).find("option 'n' needs an integer") != std::string::npos, "parse_count names it");
  }
  std::printf(failures ? "FAILED\n" : "OK\n");
  return failures ? 1 : 0;
}
