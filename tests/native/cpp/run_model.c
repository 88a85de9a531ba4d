/* A C program over juno-bridge's C ABI, built against the installed package and run without Python.
 *
 *   run_model MODEL BATCH
 *
 * Opens MODEL (float32 inputs and outputs; dynamic dims become BATCH), lists its signature, runs it
 * into caller buffers (jb_session_run) and into runtime-allocated outputs (jb_session_run_outputs),
 * and checks the error paths: NULL arguments, a wrong dtype, a wrong shape, a missing model.
 * Prints "values <how> <name> <d0,d1,..> <values as C99 hex floats>" lines (exact, for the test to
 * compare bit for bit with the Python path), one line per check, and "N passed, M failed".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "juno_bridge/juno_bridge.h"

static int passed, failed;

static int check(int ok, const char* fmt, ...) {
  va_list args;
  printf("%s ", ok ? "PASS" : "FAIL");
  va_start(args, fmt);
  vprintf(fmt, args);
  va_end(args);
  printf("\n");
  if (ok) passed++;
  else failed++;
  return ok;
}

/* A call that must fail with `want`, leaving a message that contains `needle`. */
static void expect_status(jb_status got, jb_status want, const char* needle, const char* what) {
  const char* message = jb_last_error_message();
  check(got == want && message[0] != '\0' && strstr(message, needle) != NULL, "%s -> status %d (want %d): '%s'",
        what, (int)got, (int)want, message);
}

static int64_t count(const jb_tensor_view* v) {
  int64_t n = 1;
  for (int32_t d = 0; d < v->rank; ++d) n *= v->shape[d];
  return n;
}

static void print_output(const char* how, const char* name, const jb_tensor_view* v) {
  const float* data = (const float*)v->data;
  printf("values %s %s ", how, name);
  for (int32_t d = 0; d < v->rank; ++d) printf("%s%lld", d ? "," : "", (long long)v->shape[d]);
  if (v->rank == 0) printf("-");
  for (int64_t i = 0; i < count(v); ++i) printf(" %a", (double)data[i]);
  printf("\n");
}

/* A view of the model's tensor `info` with dynamic dims set to `batch`, over fresh zeroed memory. */
static jb_tensor_view make_view(const jb_tensor_info* info, int64_t batch) {
  jb_tensor_view v;
  memset(&v, 0, sizeof v);
  v.dtype = info->dtype;
  v.rank = info->rank;
  for (int32_t d = 0; d < info->rank; ++d) v.shape[d] = info->shape[d] < 0 ? batch : info->shape[d];
  v.data = calloc((size_t)(count(&v) > 0 ? count(&v) : 1), sizeof(float));
  return v;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s MODEL BATCH\n", argv[0]);
    return 2;
  }
  const char* model = argv[1];
  const int64_t batch = atoll(argv[2]);
  jb_tensor_view inputs[8], outputs[8], second[8];
  jb_tensor_info in_info[8], out_info[8];
  size_t n_in, n_out, i;
  jb_session* session = NULL;

  check(strcmp(jb_version(), JB_VERSION_STRING) == 0, "jb_version '%s' matches the header", jb_version());

  jb_options* options = jb_options_new();
  if (!check(options != NULL, "jb_options_new")) return 1;
  check(jb_options_set(options, "intra_op_threads", "1") == JB_OK, "intra_op_threads=1");
  check(jb_options_set(options, "optimization", "all") == JB_OK, "optimization=all");
  expect_status(jb_options_set(options, "intra_op_threads", "many"), JB_ERROR_INVALID_ARGUMENT, "intra_op_threads",
                "intra_op_threads=many");

  /* NULL arguments: an error status and a message naming the argument, never a crash. */
  expect_status(jb_session_open(NULL, options, &session), JB_ERROR_INVALID_ARGUMENT, "model", "jb_session_open(NULL model)");
  expect_status(jb_session_open(model, options, NULL), JB_ERROR_INVALID_ARGUMENT, "out", "jb_session_open(NULL out)");
  expect_status(jb_options_set(NULL, "log_level", "error"), JB_ERROR_INVALID_ARGUMENT, "options", "jb_options_set(NULL options)");
  expect_status(jb_session_run(NULL, NULL, 0, NULL, 0), JB_ERROR_INVALID_ARGUMENT, "session", "jb_session_run(NULL session)");
  expect_status(jb_session_open("/nonexistent/juno-bridge/missing.onnx", options, &session), JB_ERROR_MODEL_LOAD,
                "missing.onnx", "jb_session_open(missing file)");
  check(session == NULL, "a failed open leaves the session NULL");

  if (!check(jb_session_open(model, options, &session) == JB_OK && session != NULL, "jb_session_open('%s'): %s", model,
             jb_last_error_message()))
    return 1;
  check(jb_last_error_message()[0] == '\0', "the last error is empty after a success");
  check(strcmp(jb_session_backend(session), "onnxruntime") == 0, "backend '%s'", jb_session_backend(session));

  n_in = jb_session_num_inputs(session);
  n_out = jb_session_num_outputs(session);
  if (!check(n_in >= 1 && n_in <= 8 && n_out >= 1 && n_out <= 8, "%zu input(s), %zu output(s)", n_in, n_out)) return 1;
  for (i = 0; i < n_in + n_out; ++i) {
    const int is_input = i < n_in;
    const size_t k = is_input ? i : i - n_in;
    jb_tensor_info* info = is_input ? &in_info[k] : &out_info[k];
    jb_status status = is_input ? jb_session_input_info(session, k, info) : jb_session_output_info(session, k, info);
    if (!check(status == JB_OK && info->dtype == JB_DTYPE_FLOAT32 && info->rank >= 0,
               "%s %zu: '%s' %s, rank %d", is_input ? "input" : "output", k, info->name, info->type_name, info->rank))
      return 1;
    printf("%s %s %s [", is_input ? "input" : "output", info->name, jb_dtype_name(info->dtype));
    for (int32_t d = 0; d < info->rank; ++d)
      printf("%s%lld%s%s", d ? ", " : "", (long long)info->shape[d], info->dim_names[d] ? "=" : "",
             info->dim_names[d] ? info->dim_names[d] : "");
    printf("]\n");
  }
  expect_status(jb_session_input_info(session, 0, NULL), JB_ERROR_INVALID_ARGUMENT, "out", "jb_session_input_info(NULL out)");
  expect_status(jb_session_output_info(session, n_out, &out_info[0]), JB_ERROR_INVALID_ARGUMENT, "out of range",
                "jb_session_output_info(index past the end)");

  /* Deterministic inputs, the same formula the Python side uses: ((37 i) mod 101) / 16 - 3. */
  for (i = 0; i < n_in; ++i) {
    inputs[i] = make_view(&in_info[i], batch);
    for (int64_t e = 0; e < count(&inputs[i]); ++e) ((float*)inputs[i].data)[e] = (float)((e * 37) % 101) / 16.0f - 3.0f;
  }
  for (i = 0; i < n_out; ++i) outputs[i] = make_view(&out_info[i], batch);

  /* 1. Every output into caller buffers. */
  if (check(jb_session_run(session, inputs, n_in, outputs, n_out) == JB_OK, "jb_session_run into caller buffers: %s",
            jb_last_error_message()))
    for (i = 0; i < n_out; ++i) print_output("caller", out_info[i].name, &outputs[i]);

  /* 2. The first output allocated by the runtime, the others into second caller buffers. */
  {
    int32_t index[8];
    jb_tensor* owned[8] = {NULL};
    for (i = 0; i < n_out; ++i) {
      index[i] = (int32_t)i;
      second[i] = make_view(&out_info[i], batch);
    }
    free(second[0].data);
    second[0].data = NULL; /* NULL data: the runtime allocates this one */
    expect_status(jb_session_run_outputs(session, inputs, n_in, index, second, NULL, n_out), JB_ERROR_INVALID_ARGUMENT,
                  "owned", "jb_session_run_outputs(allocated output, NULL owned)");
    if (check(jb_session_run_outputs(session, inputs, n_in, index, second, owned, n_out) == JB_OK,
              "jb_session_run_outputs with a runtime-allocated first output: %s", jb_last_error_message())) {
      check(owned[0] != NULL && (second[0].data != NULL || count(&second[0]) == 0),
            "the runtime-allocated output has an owner and data");
      for (i = 1; i < n_out; ++i) check(owned[i] == NULL, "caller output %zu has no owner", i);
      for (i = 0; i < n_out; ++i) {
        int same = second[i].rank == outputs[i].rank && count(&second[i]) == count(&outputs[i]) &&
                   (count(&outputs[i]) == 0 ||
                    memcmp(second[i].data, outputs[i].data, (size_t)count(&outputs[i]) * sizeof(float)) == 0);
        check(same, "output '%s' is bitwise the same as in run 1", out_info[i].name);
        print_output(i == 0 ? "runtime" : "mixed", out_info[i].name, &second[i]);
      }
      jb_tensor_free(owned[0]);
    }
    for (i = 1; i < n_out; ++i) free(second[i].data);
  }

  /* 3. Only the last output, allocated by the runtime. */
  {
    int32_t index[1] = {(int32_t)(n_out - 1)};
    jb_tensor_view subset[1];
    jb_tensor* owned[1] = {NULL};
    memset(subset, 0, sizeof subset);
    if (check(jb_session_run_outputs(session, inputs, n_in, index, subset, owned, 1) == JB_OK,
              "jb_session_run_outputs for output '%s' alone: %s", out_info[n_out - 1].name, jb_last_error_message())) {
      check(count(&subset[0]) == count(&outputs[n_out - 1]) &&
                (count(&subset[0]) == 0 ||
                 memcmp(subset[0].data, outputs[n_out - 1].data, (size_t)count(&subset[0]) * sizeof(float)) == 0),
            "the subset output is bitwise the same as in run 1");
      print_output("subset", out_info[n_out - 1].name, &subset[0]);
      jb_tensor_free(owned[0]);
    }
  }

  /* Bad inputs: clear errors naming the input. */
  {
    jb_tensor_view bad[8];
    memcpy(bad, inputs, sizeof(jb_tensor_view) * n_in);
    bad[0].dtype = JB_DTYPE_INT32;
    expect_status(jb_session_run(session, bad, n_in, outputs, n_out), JB_ERROR_INPUT_TYPE, in_info[0].name,
                  "input with dtype int32");
    bad[0].dtype = JB_DTYPE_FLOAT32;
    bad[0].shape[bad[0].rank - 1] += 1;
    expect_status(jb_session_run(session, bad, n_in, outputs, n_out), JB_ERROR_INPUT, in_info[0].name,
                  "input with a wrong last dim");
    expect_status(jb_session_run(session, NULL, n_in, outputs, n_out), JB_ERROR_INVALID_ARGUMENT, "inputs",
                  "jb_session_run(NULL inputs)");
    memcpy(bad, outputs, sizeof(jb_tensor_view) * n_out);
    bad[0].data = NULL;
    if (batch > 0)  /* a zero-element output needs no memory: NULL is fine then */
      expect_status(jb_session_run(session, inputs, n_in, bad, n_out), JB_ERROR_INVALID_ARGUMENT, out_info[0].name,
                    "jb_session_run with an output's data NULL");
  }

  /* Devices: pinned host memory is host memory; CUDA memory is refused by a session on the CPU, naming both. */
  {
    jb_tensor_view on[8], out[8];
    memcpy(on, inputs, sizeof(jb_tensor_view) * n_in);
    memcpy(out, outputs, sizeof(jb_tensor_view) * n_out);
    check(jb_session_takes_device(session, JB_DEVICE_CPU, 0) == 1 &&
              jb_session_takes_device(session, JB_DEVICE_CUDA_PINNED, 0) == 1 &&
              jb_session_takes_device(session, JB_DEVICE_CUDA, 0) == 0,
          "a session on the CPU takes host memory, pinned or not, and no CUDA memory");
    check(jb_session_takes_device(session, 7, 0) == -1 &&
              strstr(jb_last_error_message(), "unknown device kind 7") != NULL,
          "an unknown device kind: -1, '%s'", jb_last_error_message());
    check(jb_session_takes_device(NULL, JB_DEVICE_CPU, 0) == -1, "jb_session_takes_device(NULL) is -1");
    on[0].device = JB_DEVICE_CUDA_PINNED;
    out[0].device = JB_DEVICE_CUDA_PINNED;
    check(jb_session_run(session, on, n_in, out, n_out) == JB_OK, "a run from and into pinned host memory: %s",
          jb_last_error_message());
    on[0].device = JB_DEVICE_CUDA;
    on[0].device_id = 1;
    expect_status(jb_session_run(session, on, n_in, outputs, n_out), JB_ERROR_INPUT, "the buffer is in cuda:1 memory",
                  "an input in CUDA memory");
    on[0].device = 5;
    expect_status(jb_session_run(session, on, n_in, outputs, n_out), JB_ERROR_INPUT, "unknown device kind 5",
                  "an input on an unknown device kind");
    on[0].device = JB_DEVICE_CUDA;
    on[0].device_id = -1;
    expect_status(jb_session_run(session, on, n_in, outputs, n_out), JB_ERROR_INPUT, "cuda device id -1",
                  "an input on CUDA device -1");
    out[0].device = JB_DEVICE_CUDA;
    out[0].device_id = 0;
    expect_status(jb_session_run(session, inputs, n_in, out, n_out), JB_ERROR_INPUT, "the buffer is in cuda:0 memory",
                  "an output in CUDA memory");
  }

  jb_session_close(session);
  jb_session_close(NULL); /* closing NULL is a no-op, like free */
  jb_options_free(options);
  for (i = 0; i < n_in; ++i) free(inputs[i].data);
  for (i = 0; i < n_out; ++i) free(outputs[i].data);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
