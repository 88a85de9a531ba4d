// The C ABI of jb::Runtime (juno_bridge.h): runtimes, tasks for a C executor, and options naming a runtime.
#include <new>

#include "c_handles.hpp"
#include "last_error.hpp"

using jb::null_argument;

extern "C" {

jb_status jb_runtime_new(int32_t async_threads, jb_runtime** out) {
  if (out == nullptr) return null_argument("out");
  *out = nullptr;
  return jb::guarded([&] { *out = new jb_runtime(async_threads); });
}

jb_status jb_runtime_new_with_executor(jb_executor executor, void* context, jb_runtime** out) {
  if (executor == nullptr) return null_argument("executor");
  if (out == nullptr) return null_argument("out");
  *out = nullptr;
  return jb::guarded([&] {
    *out = new jb_runtime([executor, context](jb::Runtime::Task task) {
      executor(context, new jb_task{std::move(task)});  // the executor owes one jb_task_run
    });
  });
}

void jb_task_run(jb_task* task) {
  if (task == nullptr) return void(null_argument("task"));
  task->task();  // never throws (the runtime's tasks catch everything)
  delete task;
}

void jb_runtime_close(jb_runtime* runtime) {
  if (runtime == nullptr) return void(null_argument("runtime"));
  runtime->runtime.close();
}

void jb_runtime_free(jb_runtime* runtime) { delete runtime; }

int64_t jb_runtime_open_backend_count(const jb_runtime* runtime) {
  if (runtime == nullptr) return null_argument("runtime"), -1;
  return runtime->runtime.open_backend_count();
}

jb_status jb_options_set_runtime(jb_options* options, jb_runtime* runtime) {
  if (options == nullptr) return null_argument("options");
  options->runtime = runtime;
  jb::clear_last_error();
  return JB_OK;
}

}  // extern "C"
