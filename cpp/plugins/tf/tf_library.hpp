// Which TensorFlow the tf plugin runs on, bound at run time: the plugin is built without TensorFlow and
// resolves the C API functions of tf_abi.h from a release's libtensorflow_cc.so.2 (2.16 and newer).
//
// One process holds one TensorFlow release (two releases' C++ internals clash), so the first library
// bound stays for the process. The choice, first that applies:
//   1. a TensorFlow already in the process (Python imported tensorflow, or an earlier session), whatever
//      its release; requesting a different library then is an error naming both;
//   2. the library requested: the session option `tensorflow` (a libtensorflow_cc.so.2 file or the
//      folder holding it, e.g. site-packages/tensorflow), else $JUNO_BRIDGE_TENSORFLOW;
//   3. the tensorflow package installed beside juno-bridge (<site-packages>/tensorflow/, found from this
//      plugin's own location, so a C++ program without Python finds it too), then the system loader's
//      libtensorflow_cc.so.2 (LD_LIBRARY_PATH, ldconfig).
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

#include "tf_abi.h"

namespace jb::tf_plugin {

// No usable TensorFlow: the message says what was found and what to do.
struct TfUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TfLibrary {
  std::string path;      // the libtensorflow_cc.so.2 bound, resolved
  std::string version;   // TF_Version()
  JbTfApi api{};         // every JB_TF_REQUIRED function; JB_TF_OPTIONAL ones may be NULL
  size_t alignment = 64; // what TF_NewTensor needs to keep a caller's pointer
  bool bound = false;
};

// Binds TensorFlow (once per process) for `requested` ("" = $JUNO_BRIDGE_TENSORFLOW, then the defaults)
// and returns it; throws TfUnavailable. Thread-safe.
const TfLibrary& load_tensorflow(const std::string& requested);

// The library load_tensorflow bound (its fields are written once, before it first returns).
const TfLibrary& tensorflow();

}  // namespace jb::tf_plugin
