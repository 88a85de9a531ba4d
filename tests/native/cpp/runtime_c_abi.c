/* jb_runtime from C, built against the installed package and run without Python.
 *
 *   runtime_c_abi MODEL
 *
 * MODEL: x float32 [batch, 8] -> y [batch, 4], s [batch] (helpers/native_build.py's write_mlp_model).
 * A C executor that only queues the tasks it is given, run later by this thread with jb_task_run: the
 * runs happen exactly then, and their results equal jb_session_run's. Sessions opened with options that
 * name a runtime share within it, not across. NULL arguments answer JB_ERROR_INVALID_ARGUMENT.
 * jb_runtime_close closes the runtime's sessions. Prints PASS/FAIL lines, then "N passed, M failed".
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "juno_bridge/juno_bridge.h"

static int passed, failed;

static void check(int ok, const char* fmt, ...) {
  va_list args;
  printf("%s ", ok ? "PASS" : "FAIL");
  va_start(args, fmt);
  vprintf(fmt, args);
  va_end(args);
  printf("\n");
  if (ok) passed++;
  else failed++;
}

enum { BATCH = 4, FEATURES = 8, OUTPUTS = 4, RUNS = 5 };

/* The executor: a queue this thread drains. */
static jb_task* queued[64];
static int num_queued;
static void queue_task(void* context, jb_task* task) {
  ++*(int*)context;
  queued[num_queued++] = task;
}

static int done_calls, done_errors;
static void on_done(void* user_data, jb_status status, const char* message) {
  (void)user_data;
  (void)message;
  done_calls++;
  if (status != JB_OK) done_errors++;
}

static void views(float* x, float* y, float* s, jb_tensor_view* in, jb_tensor_view out[2]) {
  memset(in, 0, sizeof *in);
  memset(out, 0, 2 * sizeof *out);
  *in = (jb_tensor_view){.data = x, .dtype = JB_DTYPE_FLOAT32, .rank = 2, .shape = {BATCH, FEATURES}};
  out[0] = (jb_tensor_view){.data = y, .dtype = JB_DTYPE_FLOAT32, .rank = 2, .shape = {BATCH, OUTPUTS}};
  out[1] = (jb_tensor_view){.data = s, .dtype = JB_DTYPE_FLOAT32, .rank = 1, .shape = {BATCH}};
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s MODEL\n", argv[0]);
    return 2;
  }
  float x[BATCH * FEATURES], y_ref[BATCH * OUTPUTS], s_ref[BATCH];
  float y[RUNS][BATCH * OUTPUTS], s[RUNS][BATCH];
  for (int i = 0; i < BATCH * FEATURES; ++i) x[i] = (float)((i * 37) % 101) / 16.0f - 3.0f;

  jb_runtime* runtime = NULL;
  jb_runtime* other = NULL;
  int submitted = 0;
  jb_status status = jb_runtime_new_with_executor(NULL, NULL, &runtime);
  check(status == JB_ERROR_INVALID_ARGUMENT && strstr(jb_last_error_message(), "executor") != NULL,
        "a NULL executor is refused: '%s'", jb_last_error_message());
  check(jb_runtime_new(1, NULL) == JB_ERROR_INVALID_ARGUMENT, "a NULL out is refused");
  status = jb_runtime_new(-2, &other);
  check(status == JB_ERROR_INVALID_ARGUMENT && other == NULL && strstr(jb_last_error_message(), "got -2") != NULL,
        "async_threads -2 is refused: '%s'", jb_last_error_message());
  check(jb_options_set_runtime(NULL, NULL) == JB_ERROR_INVALID_ARGUMENT, "jb_options_set_runtime(NULL) is refused");
  check(jb_runtime_open_backend_count(NULL) == -1, "jb_runtime_open_backend_count(NULL) is -1");
  jb_task_run(NULL);
  check(jb_last_error_code() == JB_ERROR_INVALID_ARGUMENT, "jb_task_run(NULL) records an error and returns");

  check(jb_runtime_new_with_executor(queue_task, &submitted, &runtime) == JB_OK, "a runtime with a C executor");
  check(jb_runtime_new(1, &other) == JB_OK, "a runtime with a pool of 1");

  jb_options* options = jb_options_new();
  jb_options_set(options, "intra_op_threads", "1");
  jb_options_set(options, "async_runs", "pool");
  jb_session *plain = NULL, *a1 = NULL, *a2 = NULL, *b1 = NULL;
  check(jb_session_open(argv[1], options, &plain) == JB_OK, "a session in the process default runtime");
  jb_options_set_runtime(options, runtime);
  check(jb_session_open(argv[1], options, &a1) == JB_OK && jb_session_open(argv[1], options, &a2) == JB_OK,
        "two sessions in the runtime");
  jb_options_set_runtime(options, other);
  check(jb_session_open(argv[1], options, &b1) == JB_OK, "one session in the other runtime");
  check(jb_session_backend_id(a1) == jb_session_backend_id(a2), "one runtime shares its backend session");
  check(jb_session_backend_id(a1) != jb_session_backend_id(b1) &&
            jb_session_backend_id(a1) != jb_session_backend_id(plain),
        "runtimes do not share");
  check(jb_runtime_open_backend_count(runtime) == 1, "the runtime counts one backend session");

  jb_tensor_view in, out[2];
  views(x, y_ref, s_ref, &in, out);
  check(jb_session_run(plain, &in, 1, out, 2) == JB_OK, "the synchronous reference run");

  const int32_t all[2] = {0, 1};
  jb_tensor_view outs[RUNS][2];
  for (int r = 0; r < RUNS; ++r) {
    views(x, y[r], s[r], &in, outs[r]);
    memset(y[r], 0, sizeof y[r]);
    check(jb_session_run_async(r % 2 ? a2 : a1, &in, 1, all, outs[r], NULL, 2, on_done, NULL) == JB_OK,
          "run_async %d started", r);
  }
  check(submitted == RUNS && num_queued == RUNS && done_calls == 0,
        "the executor got %d tasks and nothing ran yet (%d done)", submitted, done_calls);
  for (int i = 0; i < num_queued; ++i) jb_task_run(queued[i]);
  check(done_calls == RUNS && done_errors == 0, "jb_task_run ran them: %d done, %d errors", done_calls, done_errors);
  int equal = 1;
  for (int r = 0; r < RUNS; ++r)
    equal &= memcmp(y[r], y_ref, sizeof y_ref) == 0 && memcmp(s[r], s_ref, sizeof s_ref) == 0;
  check(equal, "every asynchronous result equals the synchronous run bit for bit");

  jb_runtime_close(runtime);
  check(jb_runtime_open_backend_count(runtime) == 0, "close released the runtime's backend session");
  status = jb_session_run(a1, &in, 1, out, 2);
  check(status == JB_ERROR_INVALID_ARGUMENT && strstr(jb_last_error_message(), "closed") != NULL,
        "a session of the closed runtime refuses to run: '%s'", jb_last_error_message());
  jb_options_set_runtime(options, runtime);
  jb_session* late = NULL;
  status = jb_session_open(argv[1], options, &late);
  check(status == JB_ERROR_INVALID_ARGUMENT && late == NULL && strstr(jb_last_error_message(), "the runtime is closed"),
        "the closed runtime opens no session: '%s'", jb_last_error_message());
  check(jb_session_run(b1, &in, 1, out, 2) == JB_OK, "the other runtime's session still runs");

  jb_session_close(a1);
  jb_session_close(a2);
  jb_session_close(b1);
  jb_session_close(plain);
  jb_options_free(options);
  jb_runtime_free(runtime);
  jb_runtime_free(other);
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
