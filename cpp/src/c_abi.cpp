// The C ABI over the C++ Session: every entry point checks its pointers and runs its body in
// jb::guarded (last_error.hpp), which turns any exception into a status plus the thread's last error.
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "c_handles.hpp"
#include "last_error.hpp"

struct jb_session {
  jb::Session session;
  // C views of the signature, built once at open, valid until close.
  struct Info {
    std::vector<int64_t> shape;
    std::vector<const char*> dim_names;
  };
  std::vector<Info> inputs, outputs;
  std::string providers;  // comma-separated, for jb_session_providers
};

struct jb_tensor {
  jb::Tensor tensor;
};

namespace jb {

LastError& last_error() {
  thread_local LastError error;
  return error;
}

void set_last_error(jb_status status, int backend_code, const char* message) {
  LastError& e = last_error();
  e.status = status;
  e.backend_code = backend_code;
  e.message = message ? message : "";
}

jb_status set_last_error_from_current_exception() noexcept {
  LastError& e = last_error();
  e.status = status_of_current_exception(JB_ERROR_RUNTIME, e.message, e.backend_code);
  return e.status;
}

void clear_last_error() {
  LastError& e = last_error();
  e.status = JB_OK;
  e.backend_code = 0;
  e.message.clear();
}

}  // namespace jb

namespace {

using jb::null_argument;

jb::Runtime& runtime_of(const jb_options* options) {
  return options && options->runtime ? options->runtime->runtime : jb::Runtime::process_default();
}

jb_session* make_session(jb::Session&& s) {
  auto* handle = new jb_session{std::move(s), {}, {}, {}};
  for (const auto& p : handle->session.providers()) handle->providers += (handle->providers.empty() ? "" : ",") + p;
  auto fill = [](const std::vector<jb::TensorInfo>& infos, std::vector<jb_session::Info>& out) {
    for (const auto& info : infos) {
      jb_session::Info c;
      c.shape = info.shape;
      for (const auto& n : info.dim_names) c.dim_names.push_back(n ? n->c_str() : nullptr);
      out.push_back(std::move(c));
    }
  };
  fill(handle->session.inputs(), handle->inputs);
  fill(handle->session.outputs(), handle->outputs);
  return handle;
}

jb_status describe(const jb_session* s, size_t index, jb_tensor_info* out, bool input) {
  if (s == nullptr) return null_argument("session");
  if (out == nullptr) return null_argument("out");
  return jb::guarded([&] {
    const auto& infos = input ? s->session.inputs() : s->session.outputs();
    const auto& cinfos = input ? s->inputs : s->outputs;
    if (index >= infos.size())
      throw jb::Error(jb::ErrorCode::InvalidArgument, std::string(input ? "input" : "output") + " index " +
                                                          std::to_string(index) + " out of range (" +
                                                          std::to_string(infos.size()) + ")");
    const auto& info = infos[index];
    out->name = info.name.c_str();
    out->dtype = static_cast<int32_t>(info.dtype);
    out->rank = info.rank_known ? static_cast<int32_t>(info.shape.size()) : -1;
    out->shape = cinfos[index].shape.data();
    out->dim_names = cinfos[index].dim_names.data();
    out->type_name = info.type_name.c_str();
  });
}

// What jb_session_run_outputs and jb_session_run_async check before the core sees the call; clears
// `owned` so that it is defined on every return (a caller may free it whatever happened).
jb_status check_run_arguments(const jb_session* session, const jb_tensor_view* inputs, size_t num_inputs,
                              const int32_t* output_index, const jb_tensor_view* outputs, jb_tensor** owned,
                              size_t num_outputs) {
  if (session == nullptr) return null_argument("session");
  if (inputs == nullptr && num_inputs) return null_argument("inputs");
  if (num_outputs && output_index == nullptr) return null_argument("output_index");
  if (num_outputs && outputs == nullptr) return null_argument("outputs");
  // The count is checked before the caller's arrays are read: no output may be asked for twice, so
  // more than the model has would read past them.
  if (num_outputs > session->outputs.size()) {
    jb::set_last_error(JB_ERROR_INVALID_ARGUMENT, 0,
                       ("num_outputs is " + std::to_string(num_outputs) + ", more than the model's " +
                        std::to_string(session->outputs.size()) + " output(s)").c_str());
    return JB_ERROR_INVALID_ARGUMENT;
  }
  for (size_t i = 0; i < num_outputs; ++i)
    if (outputs[i].data == nullptr && owned == nullptr) return null_argument("owned");
  if (owned)
    for (size_t i = 0; i < num_outputs; ++i) owned[i] = nullptr;
  return JB_OK;
}

}  // namespace

extern "C" {

const char* jb_version(void) { return JB_VERSION_STRING; }
const char* jb_last_error_message(void) { return jb::last_error().message.c_str(); }
jb_status jb_last_error_code(void) { return jb::last_error().status; }
int jb_last_backend_code(void) { return jb::last_error().backend_code; }
size_t jb_dtype_size(int32_t dtype) { return jb::dtype_size(static_cast<jb::DType>(dtype)); }
const char* jb_dtype_name(int32_t dtype) { return jb::dtype_name(static_cast<jb::DType>(dtype)); }

jb_options* jb_options_new(void) { return new (std::nothrow) jb_options(); }
void jb_options_free(jb_options* options) { delete options; }

jb_status jb_options_set(jb_options* options, const char* key, const char* value) {
  if (options == nullptr) return null_argument("options");
  if (key == nullptr) return null_argument("key");
  if (value == nullptr) return null_argument("value");
  return jb::guarded([&] { options->options.set(key, value); });
}

jb_status jb_session_open(const char* model, const jb_options* options, jb_session** out) {
  if (model == nullptr) return null_argument("model");
  if (out == nullptr) return null_argument("out");
  *out = nullptr;
  return jb::guarded([&] {
    *out = make_session(jb::Session(model, options ? options->options : jb::SessionOptions{}, runtime_of(options)));
  });
}

jb_status jb_session_open_bytes(const void* data, size_t size, const jb_options* options, jb_session** out) {
  if (data == nullptr) return null_argument("data");
  if (out == nullptr) return null_argument("out");
  *out = nullptr;
  return jb::guarded([&] {
    *out = make_session(
        jb::Session::from_bytes(data, size, options ? options->options : jb::SessionOptions{}, runtime_of(options)));
  });
}

void jb_session_close(jb_session* session) {
  if (session == nullptr) return;
  session->session.close();  // waits for runs in flight on other threads before the handle goes
  delete session;
}

// These answer a value, not a status: a NULL session answers "" or 0 and records
// JB_ERROR_INVALID_ARGUMENT for jb_last_error_code(), as every other entry point does.
const char* jb_session_backend(const jb_session* session) {
  const char* name = "";
  if (session == nullptr) null_argument("session");
  else jb::guarded([&] { name = session->session.backend_name().c_str(); });
  return name;
}
const char* jb_session_providers(const jb_session* session) {
  if (session == nullptr) return null_argument("session"), "";
  jb::clear_last_error();
  return session->providers.c_str();
}
int jb_session_takes_device(const jb_session* session, int32_t device, int32_t device_id) {
  if (session == nullptr) return null_argument("session"), -1;
  if (device < JB_DEVICE_CPU || device > JB_DEVICE_CUDA_PINNED) {
    const std::string message = "unknown device kind " + std::to_string(device) + " (jb_device_kind: 0 to 2)";
    jb::set_last_error(JB_ERROR_INVALID_ARGUMENT, 0, message.c_str());
    return -1;
  }
  int takes = -1;
  jb::guarded([&] { takes = session->session.takes({static_cast<jb::DeviceKind>(device), device_id}) ? 1 : 0; });
  return takes;
}
const char* jb_session_async_mode(const jb_session* session) {
  const char* mode = "";
  if (session == nullptr) null_argument("session");
  else jb::guarded([&] { mode = session->session.async_mode(); });
  return mode;
}
uint64_t jb_session_backend_id(const jb_session* session) {
  uint64_t id = 0;
  if (session == nullptr) null_argument("session");
  else jb::guarded([&] { id = session->session.stats().backend_id; });
  return id;
}
int64_t jb_open_backend_count(void) { return jb::open_backend_count(); }

size_t jb_session_num_inputs(const jb_session* session) {
  if (session == nullptr) return null_argument("session"), 0;
  jb::clear_last_error();
  return session->inputs.size();
}
size_t jb_session_num_outputs(const jb_session* session) {
  if (session == nullptr) return null_argument("session"), 0;
  jb::clear_last_error();
  return session->outputs.size();
}

jb_status jb_session_input_info(const jb_session* session, size_t index, jb_tensor_info* out) {
  return describe(session, index, out, true);
}
jb_status jb_session_output_info(const jb_session* session, size_t index, jb_tensor_info* out) {
  return describe(session, index, out, false);
}

jb_status jb_session_input_index(const jb_session* session, const char* name, size_t* index) {
  if (session == nullptr) return null_argument("session");
  if (name == nullptr) return null_argument("name");
  if (index == nullptr) return null_argument("index");
  return jb::guarded([&] { *index = session->session.input_index(name); });
}

jb_status jb_session_output_index(const jb_session* session, const char* name, size_t* index) {
  if (session == nullptr) return null_argument("session");
  if (name == nullptr) return null_argument("name");
  if (index == nullptr) return null_argument("index");
  return jb::guarded([&] { *index = session->session.output_index(name); });
}

jb_status jb_session_run(jb_session* session, const jb_tensor_view* inputs, size_t num_inputs,
                         jb_tensor_view* outputs, size_t num_outputs) {
  if (session == nullptr) return null_argument("session");
  if (inputs == nullptr && num_inputs) return null_argument("inputs");
  if (outputs == nullptr && num_outputs) return null_argument("outputs");
  return jb::guarded([&] { session->session.run(jb::from_c(inputs), num_inputs, jb::from_c(outputs), num_outputs); });
}

jb_status jb_session_run_outputs(jb_session* session, const jb_tensor_view* inputs, size_t num_inputs,
                                 const int32_t* output_index, jb_tensor_view* outputs, jb_tensor** owned,
                                 size_t num_outputs) {
  if (jb_status status = check_run_arguments(session, inputs, num_inputs, output_index, outputs, owned, num_outputs))
    return status;
  return jb::guarded([&] {
    std::vector<jb::Tensor> tensors(num_outputs);
    session->session.run(jb::from_c(inputs), num_inputs, output_index, jb::from_c(outputs), tensors.data(),
                         num_outputs);
    for (size_t i = 0; i < num_outputs; ++i)
      if (owned) owned[i] = tensors[i].holder ? new jb_tensor{std::move(tensors[i])} : nullptr;
  });
}

void jb_tensor_free(jb_tensor* tensor) { delete tensor; }

jb_status jb_session_empty(jb_session* session, int32_t dtype, const int64_t* shape, int32_t rank, jb_tensor_view* view,
                           jb_tensor** owned) {
  if (owned) *owned = nullptr;
  if (session == nullptr) return null_argument("session");
  if (view == nullptr) return null_argument("view");
  if (owned == nullptr) return null_argument("owned");
  if (shape == nullptr && rank > 0) return null_argument("shape");
  if (rank < 0 || rank > JB_MAX_RANK) {
    const std::string message =
        "jb_session_empty: rank " + std::to_string(rank) + " is outside [0, " + std::to_string(JB_MAX_RANK) + "]";
    jb::set_last_error(JB_ERROR_INVALID_ARGUMENT, 0, message.c_str());
    return JB_ERROR_INVALID_ARGUMENT;
  }
  return jb::guarded([&] {
    jb::Tensor tensor =
        session->session.empty(static_cast<jb::DType>(dtype), std::vector<int64_t>(shape, shape + rank));
    *view = *jb::as_c(&tensor.view);
    *owned = new jb_tensor{std::move(tensor)};
  });
}

jb_status jb_session_run_async(jb_session* session, const jb_tensor_view* inputs, size_t num_inputs,
                               const int32_t* output_index, jb_tensor_view* outputs, jb_tensor** owned,
                               size_t num_outputs, jb_run_callback done, void* user_data) {
  if (done == nullptr) return null_argument("done");
  if (jb_status status = check_run_arguments(session, inputs, num_inputs, output_index, outputs, owned, num_outputs))
    return status;
  return jb::guarded([&] {
    auto tensors = std::make_shared<std::vector<jb::Tensor>>(num_outputs);
    session->session.run_async(
        jb::from_c(inputs), num_inputs, output_index, jb::from_c(outputs), tensors->data(), num_outputs,
        [tensors, outputs, owned, done, user_data](std::exception_ptr error) {
          jb_status status = JB_OK;
          std::string message;
          int backend_code = 0;
          if (error) {
            try {
              std::rethrow_exception(error);
            } catch (...) {
              status = jb::status_of_current_exception(JB_ERROR_RUNTIME, message, backend_code);
            }
          } else {
            for (size_t i = 0; i < tensors->size(); ++i)
              if ((*tensors)[i].holder) {
                *jb::from_c(&outputs[i]) = (*tensors)[i].view;
                owned[i] = new jb_tensor{std::move((*tensors)[i])};
              }
          }
          done(user_data, status, message.c_str());
        });
  });
}

jb_status jb_onnxruntime_info(const char* onnxruntime, const char** path, const char** version,
                              uint32_t* api_version, const char** providers) {
  return jb::guarded([&] {
    static std::mutex mutex;
    static std::map<std::string, jb::OnnxRuntimeInfo> cache;  // strings handed out live for the process
    static std::map<std::string, std::string> provider_lists;
    std::lock_guard<std::mutex> lock(mutex);
    const std::string key = onnxruntime ? onnxruntime : "";
    auto it = cache.find(key);
    if (it == cache.end()) {
      it = cache.emplace(key, jb::onnxruntime_info(key)).first;
      std::string& list = provider_lists[key];  // built once: pointers handed out stay valid
      for (const auto& p : it->second.providers) list += (list.empty() ? "" : ",") + p;
    }
    const std::string& list = provider_lists[key];
    if (path) *path = it->second.path.c_str();
    if (version) *version = it->second.version.c_str();
    if (api_version) *api_version = it->second.api_version;
    if (providers) *providers = list.c_str();
  });
}

}  // extern "C"
