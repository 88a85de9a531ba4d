/* Checks every ONNX Runtime C API slot that third_party/onnxruntime/ort_abi.h declares against the
 * behaviour of a real library: each slot is called at least once and its outcome is checked.
 *
 *   ort_slots --list                        prints the declared slots (slot, name, added_in) as compiled
 *   ort_slots LIBRARY MODEL EXPECTED_VERSION TYPES_MODEL
 *
 * MODEL is the one tests/test_ort_slots.py writes (the constants below describe it): inputs
 * x float[batch,3], n int64[2]; outputs y = x*x float[batch,3], m = -n int64[2]; metadata as below.
 * TYPES_MODEL (tests/helpers/native_build.py write_types_model) has the non-tensor types of TYPE_NAMES.
 * Prints one line per check and "N passed, M failed"; exits 1 when any check failed. A wrong slot
 * number usually crashes: the test treats a crash as a failure too.
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ort_abi.h"

/* The model the test writes. */
#define MODEL_PRODUCER "jb-slot-test"
#define MODEL_GRAPH "slots_graph"
#define MODEL_DOMAIN "org.juno.test"
#define MODEL_DESCRIPTION "slot check model"
#define MODEL_VERSION 7
#define MODEL_CUSTOM_KEYS 2 /* author=juno, purpose=slots */

/* The types model: its inputs then its outputs, as onnxruntime's Python API spells their types. */
static const char* const TYPE_NAMES[2][3] = {{"tensor(float)", "map(string,tensor(double))", NULL},
                                             {"seq(map(int64,tensor(float)))", "optional(tensor(float))", "tensor(double)"}};

/* One index per declared slot, so the end of main can prove every slot was exercised. */
#define JB_SLOT_INDEX(slot, since, ret, name, params) IDX_##name,
enum { JB_ORT_API_SLOTS(JB_SLOT_INDEX) SLOT_COUNT };
#undef JB_SLOT_INDEX
#define JB_SLOT_ROW(slot, since, ret, name, params) {slot, since, #name},
static const struct { int slot, since; const char* name; } kSlots[] = {JB_ORT_API_SLOTS(JB_SLOT_ROW)};
#undef JB_SLOT_ROW

static JbOrtApi api;
static int passed, failed, exercised[SLOT_COUNT];

/* Records the outcome of one check on `slot` (-1: no OrtApi slot) and prints it. */
static int check(int slot, int ok, const char* fmt, ...) {
  va_list args;
  if (slot >= 0) exercised[slot]++;
  printf("%s %-42s ", ok ? "PASS" : "FAIL", slot >= 0 ? kSlots[slot].name : "-");
  va_start(args, fmt);
  vprintf(fmt, args);
  va_end(args);
  printf("\n");
  fflush(stdout);
  if (ok) passed++;
  else failed++;
  return ok;
}

/* Code and message of a status (0 and "" for success); releases it. */
static OrtErrorCode take_status(OrtStatus* status, char* message, size_t size) {
  OrtErrorCode code = ORT_OK;
  message[0] = '\0';
  if (status != NULL) {
    code = api.GetErrorCode(status);
    snprintf(message, size, "%s", api.GetErrorMessage(status));
    for (char* c = message; *c; ++c)
      if (*c == '\n') *c = ' ';  /* one line per check */
    api.ReleaseStatus(status);
  }
  return code;
}

/* A call that must succeed. */
static int expect_ok(int slot, OrtStatus* status, const char* what) {
  char message[512];
  OrtErrorCode code = take_status(status, message, sizeof message);
  return check(slot, code == ORT_OK, "%s -> %s%s", what, code == ORT_OK ? "OK" : "error: ", message);
}

/* A call that must fail; `want` is the expected OrtErrorCode, or -1 for any non-zero code. */
static int expect_error(int slot, OrtStatus* status, int want, const char* what) {
  char message[512];
  OrtErrorCode code = take_status(status, message, sizeof message);
  int ok = code != ORT_OK && (want < 0 || (int)code == want) && message[0] != '\0';
  return check(slot, ok, "%s -> code %d (want %s%d), message '%.160s'", what, (int)code, want < 0 ? "non-zero, e.g. " : "",
               want < 0 ? 1 : want, message);
}

static char* read_file(const char* path, size_t* size) {
  FILE* f = fopen(path, "rb");
  char* data = NULL;
  long n;
  if (f == NULL) return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
    data = malloc((size_t)n);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
      free(data);
      data = NULL;
    }
    *size = (size_t)n;
  }
  fclose(f);
  return data;
}

/* Runs the test model once: x is [2,3], y is pre-made over caller memory, m is left to the runtime. */
static void run_model(OrtSession* session, const OrtMemoryInfo* cpu, const OrtRunOptions* run_options, const char* label) {
  float x[6] = {0.5f, -1.5f, 2.0f, 3.25f, -4.0f, 0.125f}, y[6] = {0};
  int64_t n[2] = {3, -4}, x_shape[2] = {2, 3}, n_shape[1] = {2};
  OrtValue *x_value = NULL, *n_value = NULL, *outputs[2] = {NULL, NULL};
  const char* input_names[2] = {"x", "n"};
  const char* output_names[2] = {"y", "m"};
  void* address = NULL;
  int is_tensor = 0, i, values_ok = 1;
  ONNXType value_type = ONNX_TYPE_UNKNOWN;
  char what[160];

  expect_ok(IDX_CreateTensorWithDataAsOrtValue,
            api.CreateTensorWithDataAsOrtValue(cpu, x, sizeof x, x_shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &x_value),
            "wrap caller input x [2,3] float");
  expect_ok(IDX_CreateTensorWithDataAsOrtValue,
            api.CreateTensorWithDataAsOrtValue(cpu, n, sizeof n, n_shape, 1, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, &n_value),
            "wrap caller input n [2] int64");
  expect_ok(IDX_CreateTensorWithDataAsOrtValue,
            api.CreateTensorWithDataAsOrtValue(cpu, y, sizeof y, x_shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &outputs[0]),
            "wrap caller output y [2,3] float");
  if (!x_value || !n_value || !outputs[0]) return;
  const OrtValue* inputs[2] = {x_value, n_value};

  snprintf(what, sizeof what, "Run (%s) with a pre-made output y and a runtime-allocated m", label);
  if (expect_ok(IDX_Run, api.Run(session, run_options, input_names, inputs, 2, output_names, 2, outputs), what)) {
    for (i = 0; i < 6; ++i) values_ok &= y[i] == x[i] * x[i];
    check(IDX_Run, values_ok, "Run (%s) wrote y = x*x into the caller's buffer: %g %g %g %g %g %g", label, y[0], y[1],
          y[2], y[3], y[4], y[5]);
    expect_ok(IDX_GetTensorMutableData, api.GetTensorMutableData(outputs[0], &address), "data of the pre-made y");
    check(IDX_GetTensorMutableData, address == (void*)y, "pre-made y still points at the caller's buffer (%p == %p)",
          address, (void*)y);
    if (check(IDX_Run, outputs[1] != NULL, "Run (%s) allocated m", label)) {
      int64_t* m = NULL;
      expect_ok(IDX_IsTensor, api.IsTensor(outputs[1], &is_tensor), "IsTensor(m)");
      check(IDX_IsTensor, is_tensor == 1, "m is a tensor (IsTensor = %d)", is_tensor);
      expect_ok(IDX_GetValueType, api.GetValueType(outputs[1], &value_type), "GetValueType(m)");
      check(IDX_GetValueType, value_type == ONNX_TYPE_TENSOR, "m has value type TENSOR (%d)", (int)value_type);
      expect_ok(IDX_GetTensorMutableData, api.GetTensorMutableData(outputs[1], (void**)&m), "data of m");
      check(IDX_Run, m && m[0] == -3 && m[1] == 4, "Run (%s) computed m = -n = [%lld, %lld]", label,
            m ? (long long)m[0] : 0LL, m ? (long long)m[1] : 0LL);
    }
  }
  for (i = 0; i < 2; ++i)
    if (outputs[i]) api.ReleaseValue(outputs[i]);
  api.ReleaseValue(x_value);
  api.ReleaseValue(n_value);
  check(IDX_ReleaseValue, 1, "released 4 values (returned)");
}

static int contains(const char* haystack, const char* needle) { return haystack && strstr(haystack, needle) != NULL; }

/* What one RunAsync's callback saw, handed to the waiting thread. */
struct AsyncResult {
  pthread_mutex_t mutex;
  pthread_cond_t cond;
  int done;
  OrtValue** outputs;
  size_t num_outputs;
  OrtErrorCode code;
  char message[512];
};

static void on_run_async(void* user_data, OrtValue** outputs, size_t num_outputs, OrtStatus* status) {
  struct AsyncResult* r = user_data;
  pthread_mutex_lock(&r->mutex);
  r->outputs = outputs;
  r->num_outputs = num_outputs;
  r->code = take_status(status, r->message, sizeof r->message); /* the callback owns the status */
  r->done = 1;
  pthread_cond_signal(&r->cond);
  pthread_mutex_unlock(&r->mutex);
}

/* Starts RunAsync on x [2,3] and n (of n_len elements; the model takes 2) into a pre-made y and a
 * runtime-allocated m, waits for the callback when it started; returns RunAsync's own status. */
static float async_x[6] = {0.5f, -1.5f, 2.0f, 3.25f, -4.0f, 0.125f};

static OrtStatus* run_async_and_wait(OrtSession* session, const OrtMemoryInfo* cpu, int64_t n_len, float* y,
                                     OrtValue** outputs, struct AsyncResult* r) {
  float* x = async_x;
  static int64_t n[3] = {3, -4, 5};
  int64_t x_shape[2] = {2, 3};
  OrtValue *x_value = NULL, *n_value = NULL;
  const char* input_names[2] = {"x", "n"};
  static const char* output_names[2] = {"y", "m"};
  api.CreateTensorWithDataAsOrtValue(cpu, x, sizeof async_x, x_shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &x_value);
  api.CreateTensorWithDataAsOrtValue(cpu, n, (size_t)n_len * sizeof n[0], &n_len, 1, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64,
                                     &n_value);
  api.CreateTensorWithDataAsOrtValue(cpu, y, 6 * sizeof(float), x_shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
                                     &outputs[0]);
  outputs[1] = NULL;
  const OrtValue* inputs[2] = {x_value, n_value};
  pthread_mutex_init(&r->mutex, NULL);
  pthread_cond_init(&r->cond, NULL);
  r->done = 0;
  /* The arrays and values stay alive until the callback: this function waits for it. */
  OrtStatus* status = api.RunAsync(session, NULL, input_names, inputs, 2, output_names, 2, outputs, on_run_async, r);
  if (status == NULL) {
    pthread_mutex_lock(&r->mutex);
    while (!r->done) pthread_cond_wait(&r->cond, &r->mutex);
    pthread_mutex_unlock(&r->mutex);
  }
  pthread_cond_destroy(&r->cond);
  pthread_mutex_destroy(&r->mutex);
  api.ReleaseValue(x_value);
  api.ReleaseValue(n_value);
  return status;
}

/* RunAsync: refused on a session of one intra-op thread; on two, it runs on the session's pool, writes the
 * pre-made output, allocates the other and hands the caller's own output array to the callback; a failed
 * run comes as the callback's status, with no outputs. */
static void check_run_async(OrtEnv* env, const char* model, const OrtMemoryInfo* cpu, OrtSession* one_thread) {
  float y[6] = {0};
  OrtValue* outputs[2] = {NULL, NULL};
  struct AsyncResult r;
  OrtSessionOptions* options = NULL;
  OrtSession* two = NULL;
  int i, values_ok = 1;

  expect_error(IDX_RunAsync, run_async_and_wait(one_thread, cpu, 2, y, outputs, &r), -1,
               "RunAsync on a session of 1 intra-op thread");
  api.ReleaseValue(outputs[0]);
  api.CreateSessionOptions(&options);
  expect_ok(IDX_SetIntraOpNumThreads, api.SetIntraOpNumThreads(options, 2), "SetIntraOpNumThreads(2)");
  expect_ok(IDX_CreateSession, api.CreateSession(env, model, options, &two), "CreateSession(2 intra-op threads)");
  api.ReleaseSessionOptions(options);
  if (!two) return;
  if (expect_ok(IDX_RunAsync, run_async_and_wait(two, cpu, 2, y, outputs, &r), "RunAsync, 2 intra-op threads")) {
    check(IDX_RunAsync, r.code == ORT_OK && r.outputs == outputs && r.num_outputs == 2,
          "the callback got status %d, the caller's output array (%d) and 2 outputs (%zu)", (int)r.code,
          r.outputs == outputs, r.num_outputs);
    for (i = 0; i < 6; ++i) values_ok &= y[i] == async_x[i] * async_x[i];
    check(IDX_RunAsync, values_ok, "RunAsync wrote y = x*x into the caller's buffer: %g %g %g %g %g %g", y[0], y[1],
          y[2], y[3], y[4], y[5]);
    int64_t* m = NULL;
    if (check(IDX_RunAsync, outputs[1] != NULL, "RunAsync allocated m into the caller's array")) {
      api.GetTensorMutableData(outputs[1], (void**)&m);
      check(IDX_RunAsync, m && m[0] == -3 && m[1] == 4, "m = -n = [%lld, %lld]", m ? (long long)m[0] : 0LL,
            m ? (long long)m[1] : 0LL);
      api.ReleaseValue(outputs[1]);
    }
  }
  api.ReleaseValue(outputs[0]);
  if (expect_ok(IDX_RunAsync, run_async_and_wait(two, cpu, 3, y, outputs, &r), "RunAsync with n of shape [3] starts"))
    check(IDX_RunAsync, r.code != ORT_OK && r.num_outputs == 0 && outputs[1] == NULL && r.message[0],
          "its failure comes to the callback: code %d, %zu outputs, '%.120s'", (int)r.code, r.num_outputs, r.message);
  api.ReleaseValue(outputs[0]);
  api.ReleaseSession(two);
}

/* Global thread pools: an env made with them runs a session that has no threads of its own. Must come
 * before any other env: ONNX Runtime keeps one env per process and fixes its pools at creation. */
static void check_global_thread_pools(const char* model, const OrtMemoryInfo* cpu) {
  OrtThreadingOptions* threading = NULL;
  OrtEnv* env = NULL;
  OrtSessionOptions* options = NULL;
  OrtSession* session = NULL;

  expect_ok(IDX_CreateThreadingOptions, api.CreateThreadingOptions(&threading), "CreateThreadingOptions");
  if (!threading) return;
  expect_ok(IDX_SetGlobalIntraOpNumThreads, api.SetGlobalIntraOpNumThreads(threading, 2), "SetGlobalIntraOpNumThreads(2)");
  expect_ok(IDX_SetGlobalInterOpNumThreads, api.SetGlobalInterOpNumThreads(threading, 1), "SetGlobalInterOpNumThreads(1)");
  expect_ok(IDX_CreateEnvWithGlobalThreadPools,
            api.CreateEnvWithGlobalThreadPools(ORT_LOGGING_LEVEL_WARNING, "jb-slots-global", threading, &env),
            "CreateEnvWithGlobalThreadPools");
  api.ReleaseThreadingOptions(threading);
  check(IDX_ReleaseThreadingOptions, 1, "released the threading options (returned)");
  if (!check(IDX_CreateEnvWithGlobalThreadPools, env != NULL, "env with global pools is non-NULL")) return;

  expect_ok(IDX_CreateSessionOptions, api.CreateSessionOptions(&options), "CreateSessionOptions");
  expect_ok(IDX_DisablePerSessionThreads, api.DisablePerSessionThreads(options), "DisablePerSessionThreads");
  expect_ok(IDX_CreateSession, api.CreateSession(env, model, options, &session),
            "CreateSession without per-session threads on the global-pool env");
  if (session) {
    run_model(session, cpu, NULL, "global thread pools");
    api.ReleaseSession(session);
  }
  api.ReleaseSessionOptions(options);
  api.ReleaseEnv(env);
  check(IDX_ReleaseEnv, 1, "released the global-pool env (returned)");
}

/* A custom logger counts the lines it is given. */
static void count_log_line(void* param, OrtLoggingLevel severity, const char* category, const char* logid,
                           const char* code_location, const char* message) {
  (void)severity, (void)category, (void)logid, (void)code_location, (void)message;
  ++*(int*)param;
}

/* Opens and releases a session on `env` (no per-session threads when `global_pools`); 1 if it opened. */
static int open_and_release(OrtEnv* env, const char* model, int global_pools) {
  OrtSessionOptions* options = NULL;
  OrtSession* session = NULL;
  expect_ok(IDX_CreateSessionOptions, api.CreateSessionOptions(&options), "CreateSessionOptions");
  if (!options) return 0;
  if (global_pools) expect_ok(IDX_DisablePerSessionThreads, api.DisablePerSessionThreads(options), "DisablePerSessionThreads");
  expect_ok(IDX_CreateSession, api.CreateSession(env, model, options, &session), "CreateSession on a custom-logger env");
  if (session) api.ReleaseSession(session);
  api.ReleaseSessionOptions(options);
  return session != NULL;
}

/* Custom loggers: a verbose env hands its lines to our function; at level fatal it hands none. Each env
 * is released before the next (one per process). */
static void check_custom_logger(const char* model) {
  OrtEnv* env = NULL;
  OrtThreadingOptions* threading = NULL;
  int lines = 0, before;

  expect_ok(IDX_CreateEnvWithCustomLogger,
            api.CreateEnvWithCustomLogger(count_log_line, &lines, ORT_LOGGING_LEVEL_VERBOSE, "jb-slots-logger", &env),
            "CreateEnvWithCustomLogger(verbose)");
  if (!check(IDX_CreateEnvWithCustomLogger, env != NULL, "env with a custom logger is non-NULL")) return;
  if (open_and_release(env, model, 0))
    check(IDX_CreateEnvWithCustomLogger, lines > 0, "the logger got %d verbose lines while a session opened", lines);
  expect_ok(IDX_UpdateEnvWithCustomLogLevel, api.UpdateEnvWithCustomLogLevel(env, ORT_LOGGING_LEVEL_FATAL),
            "UpdateEnvWithCustomLogLevel(fatal)");
  before = lines;
  if (open_and_release(env, model, 0))
    check(IDX_UpdateEnvWithCustomLogLevel, lines == before, "no line at level fatal (%d new)", lines - before);
  api.ReleaseEnv(env);
  env = NULL;

  lines = 0;
  expect_ok(IDX_CreateThreadingOptions, api.CreateThreadingOptions(&threading), "CreateThreadingOptions");
  if (!threading) return;
  expect_ok(IDX_CreateEnvWithCustomLoggerAndGlobalThreadPools,
            api.CreateEnvWithCustomLoggerAndGlobalThreadPools(count_log_line, &lines, ORT_LOGGING_LEVEL_VERBOSE,
                                                              "jb-slots-logger-global", threading, &env),
            "CreateEnvWithCustomLoggerAndGlobalThreadPools(verbose)");
  api.ReleaseThreadingOptions(threading);
  if (!check(IDX_CreateEnvWithCustomLoggerAndGlobalThreadPools, env != NULL, "env is non-NULL")) return;
  if (open_and_release(env, model, 1))
    check(IDX_CreateEnvWithCustomLoggerAndGlobalThreadPools, lines > 0,
          "the logger got %d verbose lines while a session without its own threads opened", lines);
  api.ReleaseEnv(env);
}

static void check_signature(OrtSession* session, OrtAllocator* allocator) {
  static const char* const names[2][2] = {{"x", "n"}, {"y", "m"}};
  static const ONNXTensorElementDataType types[2] = {ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64};
  static const size_t ranks[2] = {2, 1};
  static const int64_t dims[2][2] = {{-1, 3}, {2, 0}};
  static const char* const symbols[2][2] = {{"batch", ""}, {"", ""}};
  size_t count = 0, i, side;
  char* name = NULL;
  char buffer[64];

  expect_ok(IDX_SessionGetInputCount, api.SessionGetInputCount(session, &count), "SessionGetInputCount");
  check(IDX_SessionGetInputCount, count == 2, "2 inputs (got %zu)", count);
  expect_ok(IDX_SessionGetOutputCount, api.SessionGetOutputCount(session, &count), "SessionGetOutputCount");
  check(IDX_SessionGetOutputCount, count == 2, "2 outputs (got %zu)", count);
  expect_error(IDX_SessionGetInputName, api.SessionGetInputName(session, 5, allocator, &name), -1,
               "SessionGetInputName(index 5 of 2)");

  for (side = 0; side < 2; ++side) {
    for (i = 0; i < 2; ++i) {
      OrtTypeInfo* type_info = NULL;
      const OrtTensorTypeAndShapeInfo* tensor = NULL;
      ONNXType kind = ONNX_TYPE_UNKNOWN;
      ONNXTensorElementDataType element = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
      size_t rank = 0;
      int64_t got_dims[2] = {0, 0};
      const char* got_symbols[2] = {NULL, NULL};
      int name_slot = side ? IDX_SessionGetOutputName : IDX_SessionGetInputName;
      int type_slot = side ? IDX_SessionGetOutputTypeInfo : IDX_SessionGetInputTypeInfo;

      name = NULL;
      expect_ok(name_slot, side ? api.SessionGetOutputName(session, i, allocator, &name)
                                : api.SessionGetInputName(session, i, allocator, &name), "read a name");
      check(name_slot, name && strcmp(name, names[side][i]) == 0, "%s %zu is named '%s' (got '%s')",
            side ? "output" : "input", i, names[side][i], name ? name : "(null)");
      snprintf(buffer, sizeof buffer, "%s", name ? name : "?");
      if (name) expect_ok(IDX_AllocatorFree, api.AllocatorFree(allocator, name), "AllocatorFree(name)");

      expect_ok(type_slot, side ? api.SessionGetOutputTypeInfo(session, i, &type_info)
                                : api.SessionGetInputTypeInfo(session, i, &type_info), "read a type info");
      if (!check(type_slot, type_info != NULL, "type info of '%s' is non-NULL", buffer)) continue;
      expect_ok(IDX_GetOnnxTypeFromTypeInfo, api.GetOnnxTypeFromTypeInfo(type_info, &kind), "GetOnnxTypeFromTypeInfo");
      check(IDX_GetOnnxTypeFromTypeInfo, kind == ONNX_TYPE_TENSOR, "'%s' is a tensor (ONNXType %d)", buffer, (int)kind);
      expect_ok(IDX_CastTypeInfoToTensorInfo, api.CastTypeInfoToTensorInfo(type_info, &tensor), "CastTypeInfoToTensorInfo");
      if (check(IDX_CastTypeInfoToTensorInfo, tensor != NULL, "'%s' has tensor info", buffer)) {
        expect_ok(IDX_GetTensorElementType, api.GetTensorElementType(tensor, &element), "GetTensorElementType");
        check(IDX_GetTensorElementType, element == types[i], "'%s' has element type %d (got %d)", buffer, (int)types[i],
              (int)element);
        expect_ok(IDX_GetDimensionsCount, api.GetDimensionsCount(tensor, &rank), "GetDimensionsCount");
        check(IDX_GetDimensionsCount, rank == ranks[i], "'%s' has rank %zu (got %zu)", buffer, ranks[i], rank);
        if (rank == ranks[i]) {
          expect_ok(IDX_GetDimensions, api.GetDimensions(tensor, got_dims, rank), "GetDimensions");
          check(IDX_GetDimensions, got_dims[0] == dims[i][0] && (rank < 2 || got_dims[1] == dims[i][1]),
                "'%s' dims [%lld, %lld] (first %zu count)", buffer, (long long)got_dims[0], (long long)got_dims[1], rank);
          expect_ok(IDX_GetSymbolicDimensions, api.GetSymbolicDimensions(tensor, got_symbols, rank), "GetSymbolicDimensions");
          check(IDX_GetSymbolicDimensions,
                got_symbols[0] && strcmp(got_symbols[0], symbols[i][0]) == 0 &&
                    (rank < 2 || (got_symbols[1] && strcmp(got_symbols[1], symbols[i][1]) == 0)),
                "'%s' symbolic dims ['%s', '%s']", buffer, got_symbols[0] ? got_symbols[0] : "(null)",
                rank > 1 && got_symbols[1] ? got_symbols[1] : "");
        }
      }
      api.ReleaseTypeInfo(type_info);
      check(IDX_ReleaseTypeInfo, 1, "released the type info of '%s' (returned)", buffer);
    }
  }
}

/* ONNX's spelling of a type, built through the sequence, map and optional type-info slots. Each inner
 * type info those hand over is released here. */
static void type_string(const OrtTypeInfo* info, char* out, size_t size) {
  ONNXType kind = ONNX_TYPE_UNKNOWN;
  OrtTypeInfo* inner = NULL;
  const char* prefix = NULL;
  char key[32] = "", contained[160] = "";
  snprintf(out, size, "?");
  if (!expect_ok(IDX_GetOnnxTypeFromTypeInfo, api.GetOnnxTypeFromTypeInfo(info, &kind), "GetOnnxTypeFromTypeInfo"))
    return;
  if (kind == ONNX_TYPE_TENSOR) {
    const OrtTensorTypeAndShapeInfo* tensor = NULL;
    ONNXTensorElementDataType element = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    api.CastTypeInfoToTensorInfo(info, &tensor);
    if (tensor) api.GetTensorElementType(tensor, &element);
    snprintf(out, size, "tensor(%s)", element == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT ? "float"
                                      : element == ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE ? "double" : "other");
    return;
  }
  if (kind == ONNX_TYPE_SEQUENCE) {
    const OrtSequenceTypeInfo* sequence = NULL;
    prefix = "seq";
    expect_ok(IDX_CastTypeInfoToSequenceTypeInfo, api.CastTypeInfoToSequenceTypeInfo(info, &sequence),
              "CastTypeInfoToSequenceTypeInfo(a sequence)");
    if (check(IDX_CastTypeInfoToSequenceTypeInfo, sequence != NULL, "the sequence's info is non-NULL"))
      expect_ok(IDX_GetSequenceElementType, api.GetSequenceElementType(sequence, &inner), "GetSequenceElementType");
  } else if (kind == ONNX_TYPE_MAP) {
    const OrtMapTypeInfo* map = NULL;
    ONNXTensorElementDataType key_type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    prefix = "map";
    expect_ok(IDX_CastTypeInfoToMapTypeInfo, api.CastTypeInfoToMapTypeInfo(info, &map), "CastTypeInfoToMapTypeInfo(a map)");
    if (check(IDX_CastTypeInfoToMapTypeInfo, map != NULL, "the map's info is non-NULL")) {
      expect_ok(IDX_GetMapKeyType, api.GetMapKeyType(map, &key_type), "GetMapKeyType");
      snprintf(key, sizeof key, "%s,", key_type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64    ? "int64"
                                      : key_type == ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING ? "string" : "other");
      expect_ok(IDX_GetMapValueType, api.GetMapValueType(map, &inner), "GetMapValueType");
    }
  } else if (kind == ONNX_TYPE_OPTIONAL) {
    const OrtOptionalTypeInfo* optional = NULL;
    prefix = "optional";
    expect_ok(IDX_CastTypeInfoToOptionalTypeInfo, api.CastTypeInfoToOptionalTypeInfo(info, &optional),
              "CastTypeInfoToOptionalTypeInfo(an optional)");
    if (check(IDX_CastTypeInfoToOptionalTypeInfo, optional != NULL, "the optional's info is non-NULL"))
      expect_ok(IDX_GetOptionalContainedTypeInfo, api.GetOptionalContainedTypeInfo(optional, &inner),
                "GetOptionalContainedTypeInfo");
  } else {
    snprintf(out, size, "kind %d", (int)kind);
    return;
  }
  if (inner) {
    type_string(inner, contained, sizeof contained);
    api.ReleaseTypeInfo(inner);
  }
  snprintf(out, size, "%s(%s%s)", prefix, key, contained);
}

/* The types model: every input and output spelt through the type-info slots; a cast to the wrong kind
 * gives NULL, not an error. */
static void check_types(OrtEnv* env, const char* model) {
  OrtSession* session = NULL;
  OrtTypeInfo* x_info = NULL;
  size_t side, i, count;
  char got[256];
  expect_ok(IDX_CreateSession, api.CreateSession(env, model, NULL, &session), "CreateSession(types model)");
  if (!session) return;
  for (side = 0; side < 2; ++side) {
    count = 0;
    if (side) api.SessionGetOutputCount(session, &count);
    else api.SessionGetInputCount(session, &count);
    check(side ? IDX_SessionGetOutputCount : IDX_SessionGetInputCount, count == (side ? 3u : 2u),
          "the types model has %zu %s", count, side ? "outputs" : "inputs");
    for (i = 0; i < count && i < 3; ++i) {
      OrtTypeInfo* info = NULL;
      if (side) api.SessionGetOutputTypeInfo(session, i, &info);
      else api.SessionGetInputTypeInfo(session, i, &info);
      if (!info) continue;
      type_string(info, got, sizeof got);
      check(IDX_GetOnnxTypeFromTypeInfo, TYPE_NAMES[side][i] && strcmp(got, TYPE_NAMES[side][i]) == 0,
            "%s %zu is of type %s (want %s)", side ? "output" : "input", i, got,
            TYPE_NAMES[side][i] ? TYPE_NAMES[side][i] : "(none)");
      api.ReleaseTypeInfo(info);
    }
  }
  if (api.SessionGetInputTypeInfo(session, 0, &x_info) == NULL && x_info) {
    const OrtMapTypeInfo* map = (const OrtMapTypeInfo*)1;
    const OrtSequenceTypeInfo* sequence = (const OrtSequenceTypeInfo*)1;
    const OrtOptionalTypeInfo* optional = (const OrtOptionalTypeInfo*)1;
    expect_ok(IDX_CastTypeInfoToMapTypeInfo, api.CastTypeInfoToMapTypeInfo(x_info, &map), "CastTypeInfoToMapTypeInfo(a tensor)");
    check(IDX_CastTypeInfoToMapTypeInfo, map == NULL, "a tensor is no map: NULL");
    expect_ok(IDX_CastTypeInfoToSequenceTypeInfo, api.CastTypeInfoToSequenceTypeInfo(x_info, &sequence),
              "CastTypeInfoToSequenceTypeInfo(a tensor)");
    check(IDX_CastTypeInfoToSequenceTypeInfo, sequence == NULL, "a tensor is no sequence: NULL");
    expect_ok(IDX_CastTypeInfoToOptionalTypeInfo, api.CastTypeInfoToOptionalTypeInfo(x_info, &optional),
              "CastTypeInfoToOptionalTypeInfo(a tensor)");
    check(IDX_CastTypeInfoToOptionalTypeInfo, optional == NULL, "a tensor is no optional: NULL");
    api.ReleaseTypeInfo(x_info);
  }
  api.ReleaseSession(session);
}

/* A metadata string getter's outcome: `value` is what it wrote; compared, then freed. */
static void check_metadata_string(int slot, OrtStatus* status, char* value, const char* want, OrtAllocator* allocator) {
  if (expect_ok(slot, status, kSlots[slot].name))
    check(slot, value && strcmp(value, want) == 0, "'%s' (want '%s')", value ? value : "(null)", want);
  if (value) api.AllocatorFree(allocator, value);
}

static void check_metadata(OrtSession* session, OrtAllocator* allocator) {
  OrtModelMetadata* metadata = NULL;
  OrtStatus* status = NULL;
  char* value = NULL;
  char** keys = NULL;
  int64_t num_keys = 0, version = 0, i;
  int found_author = 0;

  expect_ok(IDX_SessionGetModelMetadata, api.SessionGetModelMetadata(session, &metadata), "SessionGetModelMetadata");
  if (!metadata) return;
  value = NULL;
  status = api.ModelMetadataGetProducerName(metadata, allocator, &value);
  check_metadata_string(IDX_ModelMetadataGetProducerName, status, value, MODEL_PRODUCER, allocator);
  value = NULL;
  status = api.ModelMetadataGetGraphName(metadata, allocator, &value);
  check_metadata_string(IDX_ModelMetadataGetGraphName, status, value, MODEL_GRAPH, allocator);
  value = NULL;
  status = api.ModelMetadataGetDomain(metadata, allocator, &value);
  check_metadata_string(IDX_ModelMetadataGetDomain, status, value, MODEL_DOMAIN, allocator);
  value = NULL;
  status = api.ModelMetadataGetDescription(metadata, allocator, &value);
  check_metadata_string(IDX_ModelMetadataGetDescription, status, value, MODEL_DESCRIPTION, allocator);
  value = NULL;
  status = api.ModelMetadataLookupCustomMetadataMap(metadata, allocator, "author", &value);
  check_metadata_string(IDX_ModelMetadataLookupCustomMetadataMap, status, value, "juno", allocator);
  value = (char*)"sentinel";
  expect_ok(IDX_ModelMetadataLookupCustomMetadataMap,
            api.ModelMetadataLookupCustomMetadataMap(metadata, allocator, "no-such-key", &value), "lookup a missing key");
  check(IDX_ModelMetadataLookupCustomMetadataMap, value == NULL, "a missing key gives NULL");
  expect_ok(IDX_ModelMetadataGetVersion, api.ModelMetadataGetVersion(metadata, &version), "ModelMetadataGetVersion");
  check(IDX_ModelMetadataGetVersion, version == MODEL_VERSION, "version %lld (want %d)", (long long)version, MODEL_VERSION);
  expect_ok(IDX_ModelMetadataGetCustomMetadataMapKeys,
            api.ModelMetadataGetCustomMetadataMapKeys(metadata, allocator, &keys, &num_keys),
            "ModelMetadataGetCustomMetadataMapKeys");
  for (i = 0; i < num_keys; ++i) {
    found_author |= strcmp(keys[i], "author") == 0;
    api.AllocatorFree(allocator, keys[i]);
  }
  if (keys) api.AllocatorFree(allocator, keys);
  check(IDX_ModelMetadataGetCustomMetadataMapKeys, num_keys == MODEL_CUSTOM_KEYS && found_author,
        "%lld custom keys including 'author' (want %d)", (long long)num_keys, MODEL_CUSTOM_KEYS);
  api.ReleaseModelMetadata(metadata);
  check(IDX_ReleaseModelMetadata, 1, "released the metadata (returned)");
}

/* A session's allocator for a memory info: the CPU one allocates and frees blocks; one for CUDA pinned
 * memory exists only where the CUDA provider runs the session (juno-bridge's Session::empty), elsewhere
 * asking is an error code. */
static void check_session_allocator(OrtSession* session, const OrtMemoryInfo* cpu) {
  OrtAllocator* allocator = NULL;
  OrtMemoryInfo* pinned = NULL;
  if (expect_ok(IDX_CreateAllocator, api.CreateAllocator(session, cpu, &allocator), "CreateAllocator(session, cpu)") &&
      check(IDX_CreateAllocator, allocator != NULL, "the session's CPU allocator is non-NULL")) {
    void* p = NULL;
    if (expect_ok(IDX_AllocatorAlloc, api.AllocatorAlloc(allocator, 4096, &p), "AllocatorAlloc(4096)") &&
        check(IDX_AllocatorAlloc, p != NULL, "AllocatorAlloc gave a block")) {
      memset(p, 0x5a, 4096);  /* the block is the caller's to write (ASan would see it short) */
      expect_ok(IDX_AllocatorFree, api.AllocatorFree(allocator, p), "AllocatorFree of its own block");
    }
    api.ReleaseAllocator(allocator);
    check(IDX_ReleaseAllocator, 1, "released the session's allocator (returned)");
  }
  if (expect_ok(IDX_CreateMemoryInfo,
                api.CreateMemoryInfo("CudaPinned", OrtDeviceAllocator, 0, OrtMemTypeCPUOutput, &pinned),
                "CreateMemoryInfo(\"CudaPinned\") for an allocator")) {
    OrtAllocator* none = NULL;
    expect_error(IDX_CreateAllocator, api.CreateAllocator(session, pinned, &none), -1,
                 "CreateAllocator(session, CudaPinned) on a session without the CUDA provider");
    api.ReleaseMemoryInfo(pinned);
  }
}

/* An IO binding (juno-bridge's output_device=cuda runs, here with host memory): x and n bound, y bound to a
 * pre-made value over caller memory, m to a device for the runtime to allocate on; the bound outputs come
 * back in the order bound, y's still the caller's buffer. A CUDA device on a CPU session is an error. */
static void check_io_binding(OrtSession* session, const OrtMemoryInfo* cpu, const OrtRunOptions* run_options,
                             OrtAllocator* allocator) {
  float x[6] = {0.5f, -1.5f, 2.0f, 3.25f, -4.0f, 0.125f}, y[6] = {0};
  int64_t n[2] = {5, -6}, x_shape[2] = {2, 3}, n_shape[1] = {2};
  OrtValue *x_value = NULL, *n_value = NULL, *y_value = NULL, **bound = NULL;
  OrtIoBinding* binding = NULL;
  OrtMemoryInfo* cuda = NULL;
  size_t count = 0, i;
  int values_ok = 1;
  api.CreateTensorWithDataAsOrtValue(cpu, x, sizeof x, x_shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &x_value);
  api.CreateTensorWithDataAsOrtValue(cpu, n, sizeof n, n_shape, 1, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, &n_value);
  api.CreateTensorWithDataAsOrtValue(cpu, y, sizeof y, x_shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &y_value);
  if (!x_value || !n_value || !y_value ||
      !expect_ok(IDX_CreateIoBinding, api.CreateIoBinding(session, &binding), "CreateIoBinding(session)") ||
      !check(IDX_CreateIoBinding, binding != NULL, "the binding is non-NULL"))
    goto done;
  expect_ok(IDX_BindInput, api.BindInput(binding, "x", x_value), "BindInput(x)");
  expect_ok(IDX_BindInput, api.BindInput(binding, "n", n_value), "BindInput(n)");
  expect_ok(IDX_BindOutput, api.BindOutput(binding, "y", y_value), "BindOutput(y, caller memory)");
  expect_ok(IDX_BindOutputToDevice, api.BindOutputToDevice(binding, "m", cpu), "BindOutputToDevice(m, cpu)");
  if (expect_ok(IDX_RunWithBinding, api.RunWithBinding(session, run_options, binding), "RunWithBinding") &&
      expect_ok(IDX_GetBoundOutputValues, api.GetBoundOutputValues(binding, allocator, &bound, &count),
                "GetBoundOutputValues") &&
      check(IDX_GetBoundOutputValues, count == 2 && bound != NULL, "two bound outputs (%zu)", count)) {
    void *y_data = NULL, *m_data = NULL;
    api.GetTensorMutableData(bound[0], &y_data);
    api.GetTensorMutableData(bound[1], &m_data);
    for (i = 0; i < 6; ++i) values_ok &= y[i] == x[i] * x[i];
    check(IDX_RunWithBinding, values_ok && y_data == (void*)y, "y = x*x written into the caller's buffer, bound first");
    check(IDX_BindOutputToDevice, m_data != NULL && ((int64_t*)m_data)[0] == -5 && ((int64_t*)m_data)[1] == 6,
          "m = -n allocated by the runtime on the device bound");
  }
  for (i = 0; i < count; ++i) api.ReleaseValue(bound[i]);
  if (bound) api.AllocatorFree(allocator, bound);
  bound = NULL;
  count = 0;
  /* Bound to CUDA on a session without the CUDA provider, the output is quietly allocated in host memory:
   * only the value's own memory info tells where it lies (juno-bridge reads it for every bound output). */
  if (expect_ok(IDX_CreateMemoryInfo, api.CreateMemoryInfo("Cuda", OrtDeviceAllocator, 0, OrtMemTypeDefault, &cuda),
                "CreateMemoryInfo(\"Cuda\") for a bound output") &&
      expect_ok(IDX_BindOutputToDevice, api.BindOutputToDevice(binding, "m", cuda), "BindOutputToDevice(m, cuda)") &&
      expect_ok(IDX_RunWithBinding, api.RunWithBinding(session, run_options, binding),
                "RunWithBinding, m bound to CUDA on a CPU session") &&
      expect_ok(IDX_GetBoundOutputValues, api.GetBoundOutputValues(binding, allocator, &bound, &count),
                "GetBoundOutputValues") &&
      count == 2) {
    const OrtMemoryInfo* where = NULL;
    const char* name = NULL;
    int id = -1;
    if (expect_ok(IDX_GetTensorMemoryInfo, api.GetTensorMemoryInfo(bound[1], &where), "GetTensorMemoryInfo(m)") &&
        expect_ok(IDX_MemoryInfoGetName, api.MemoryInfoGetName(where, &name), "MemoryInfoGetName") &&
        expect_ok(IDX_MemoryInfoGetId, api.MemoryInfoGetId(where, &id), "MemoryInfoGetId"))
      check(IDX_GetTensorMemoryInfo, name && strcmp(name, "Cpu") == 0 && id == 0,
            "m lies in host memory (%s:%d), not where it was bound", name ? name : "NULL", id);
    api.GetTensorMemoryInfo(bound[0], &where);
    api.MemoryInfoGetName(where, &name);
    check(IDX_MemoryInfoGetName, name && strcmp(name, "Cpu") == 0, "y's memory is named Cpu (%s)",
          name ? name : "NULL");
  }
  for (i = 0; i < count; ++i) api.ReleaseValue(bound[i]);
  if (bound) api.AllocatorFree(allocator, bound);
  if (cuda) api.ReleaseMemoryInfo(cuda);
  api.ReleaseIoBinding(binding);
  check(IDX_ReleaseIoBinding, 1, "released the binding (returned)");
done:
  if (x_value) api.ReleaseValue(x_value);
  if (n_value) api.ReleaseValue(n_value);
  if (y_value) api.ReleaseValue(y_value);
}

/* Providers: the CPU one is listed; asking for one this build lacks is an error code, not a crash. */
static void check_providers(void) {
  char** providers = NULL;
  int count = 0, i, has_cpu = 0, has_cuda = 0;
  OrtSessionOptions* options = NULL;
  OrtCUDAProviderOptionsV2* cuda = NULL;

  expect_ok(IDX_GetAvailableProviders, api.GetAvailableProviders(&providers, &count), "GetAvailableProviders");
  for (i = 0; i < count; ++i) {
    has_cpu |= strcmp(providers[i], "CPUExecutionProvider") == 0;
    has_cuda |= strcmp(providers[i], "CUDAExecutionProvider") == 0;
  }
  check(IDX_GetAvailableProviders, has_cpu, "%d providers, CPUExecutionProvider among them", count);
  expect_ok(IDX_ReleaseAvailableProviders, api.ReleaseAvailableProviders(providers, count), "ReleaseAvailableProviders");

  expect_ok(IDX_CreateSessionOptions, api.CreateSessionOptions(&options), "CreateSessionOptions for providers");
  if (!options) return;
  expect_error(IDX_SessionOptionsAppendExecutionProvider,
               api.SessionOptionsAppendExecutionProvider(options, "NoSuchProvider", NULL, NULL, 0), -1,
               "SessionOptionsAppendExecutionProvider('NoSuchProvider')");
  if (has_cuda) {
    /* A GPU build (onnxruntime-gpu): the options are made; appending them initialises CUDA, which works
     * where a GPU and its libraries are and is an error code elsewhere, never a crash. */
    expect_ok(IDX_CreateCUDAProviderOptions, api.CreateCUDAProviderOptions(&cuda), "CreateCUDAProviderOptions on a GPU build");
    if (cuda) {
      /* Updating loads the CUDA provider's library, which works where CUDA's libraries are and is an
       * error code elsewhere; where it works, a value that is no flag is refused. */
      const char *keys[] = {"enable_cuda_graph"}, *values[] = {"1"}, *bad[] = {"not_a_number"};
      OrtStatus* update = api.UpdateCUDAProviderOptions(cuda, keys, values, 1);
      check(IDX_UpdateCUDAProviderOptions, 1, "UpdateCUDAProviderOptions(enable_cuda_graph=1) on a GPU build: %s",
            update ? "an error code (the CUDA provider cannot load here)" : "updated");
      if (update) api.ReleaseStatus(update);
      else
        expect_error(IDX_UpdateCUDAProviderOptions, api.UpdateCUDAProviderOptions(cuda, keys, bad, 1), -1,
                     "UpdateCUDAProviderOptions(enable_cuda_graph=not_a_number)");
      OrtStatus* status = api.SessionOptionsAppendExecutionProvider_CUDA_V2(options, cuda);
      check(IDX_SessionOptionsAppendExecutionProvider_CUDA_V2, 1, "SessionOptionsAppendExecutionProvider_CUDA_V2 on a "
            "GPU build: %s", status ? "an error code (CUDA cannot initialise here)" : "appended");
      if (status) api.ReleaseStatus(status);
      api.ReleaseCUDAProviderOptions(cuda);
      check(IDX_ReleaseCUDAProviderOptions, 1, "released the CUDA options (returned)");
    }
  } else {
    /* On a CPU build either the options or the append fail, with a code. */
    /* Zeroed stand-in options for when the build cannot make real ones: the library does not check
     * for NULL, so it must get readable memory even if it looked at the options. */
    static union { char bytes[4096]; long double align; } stand_in;
    OrtStatus* status = api.CreateCUDAProviderOptions(&cuda);
    if (status != NULL) expect_error(IDX_CreateCUDAProviderOptions, status, -1, "CreateCUDAProviderOptions on a CPU build");
    else check(IDX_CreateCUDAProviderOptions, cuda != NULL, "CreateCUDAProviderOptions made options");
    {
      const char *keys[] = {"enable_cuda_graph"}, *values[] = {"1"};
      expect_error(
          IDX_UpdateCUDAProviderOptions,
          api.UpdateCUDAProviderOptions(cuda ? cuda : (OrtCUDAProviderOptionsV2*)(void*)&stand_in, keys, values, 1), -1,
          "UpdateCUDAProviderOptions on a CPU build");
    }
    expect_error(IDX_SessionOptionsAppendExecutionProvider_CUDA_V2,
                 api.SessionOptionsAppendExecutionProvider_CUDA_V2(
                     options, cuda ? cuda : (const OrtCUDAProviderOptionsV2*)(const void*)&stand_in), -1,
                 "SessionOptionsAppendExecutionProvider_CUDA_V2 on a CPU build");
    api.ReleaseCUDAProviderOptions(cuda);
    check(IDX_ReleaseCUDAProviderOptions, 1, "released the CUDA options (returned)");
  }
  api.ReleaseSessionOptions(options);
}

static OrtSessionOptions* make_session_options(void) {
  OrtSessionOptions* options = NULL;
  expect_ok(IDX_CreateSessionOptions, api.CreateSessionOptions(&options), "CreateSessionOptions");
  check(IDX_CreateSessionOptions, options != NULL, "options are non-NULL");
  if (!options) return NULL;
  expect_ok(IDX_SetSessionExecutionMode, api.SetSessionExecutionMode(options, ORT_SEQUENTIAL), "SetSessionExecutionMode");
  expect_ok(IDX_SetSessionLogSeverityLevel, api.SetSessionLogSeverityLevel(options, ORT_LOGGING_LEVEL_ERROR),
            "SetSessionLogSeverityLevel(error)");
  expect_error(IDX_SetSessionGraphOptimizationLevel,
               api.SetSessionGraphOptimizationLevel(options, (GraphOptimizationLevel)42), ORT_INVALID_ARGUMENT,
               "SetSessionGraphOptimizationLevel(42)");
  expect_ok(IDX_SetSessionGraphOptimizationLevel, api.SetSessionGraphOptimizationLevel(options, ORT_ENABLE_ALL),
            "SetSessionGraphOptimizationLevel(all)");
  expect_ok(IDX_SetIntraOpNumThreads, api.SetIntraOpNumThreads(options, 1), "SetIntraOpNumThreads(1)");
  expect_ok(IDX_SetInterOpNumThreads, api.SetInterOpNumThreads(options, 1), "SetInterOpNumThreads(1)");
  expect_error(IDX_AddSessionConfigEntry, api.AddSessionConfigEntry(options, "", "1"), -1, "AddSessionConfigEntry(empty key)");
  expect_ok(IDX_AddSessionConfigEntry, api.AddSessionConfigEntry(options, "session.intra_op.allow_spinning", "0"),
            "AddSessionConfigEntry(session.intra_op.allow_spinning=0)");
  return options;
}

int main(int argc, char** argv) {
  size_t i;
  if (argc == 2 && strcmp(argv[1], "--list") == 0) {
    for (i = 0; i < SLOT_COUNT; ++i) printf("%d\t%s\t%d\n", kSlots[i].slot, kSlots[i].name, kSlots[i].since);
    return 0;
  }
  if (argc != 5) {
    fprintf(stderr, "usage: %s --list | %s LIBRARY MODEL EXPECTED_VERSION TYPES_MODEL\n", argv[0], argv[0]);
    return 2;
  }
  const char *library = argv[1], *model = argv[2], *expected_version = argv[3], *types_model = argv[4];

  /* Load and negotiate the way the core does: highest declared version first, then lower ones. */
  void* handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (!check(-1, handle != NULL, "dlopen('%s') %s", library, handle ? "" : dlerror())) return 1;
  OrtGetApiBaseFn get_api_base = (OrtGetApiBaseFn)dlsym(handle, "OrtGetApiBase");
  if (!check(-1, get_api_base != NULL, "the library exports OrtGetApiBase")) return 1;
  const OrtApiBase* base = get_api_base();
  const char* version = base->GetVersionString();
  check(-1, version && strcmp(version, expected_version) == 0, "OrtApiBase.GetVersionString '%s' == '%s'",
        version ? version : "(null)", expected_version);
  check(-1, base->GetApi(JB_ORT_API_VERSION_DECLARED + 1000) == NULL, "GetApi(%d) is NULL (unknown version)",
        JB_ORT_API_VERSION_DECLARED + 1000);
  /* A 1.x release offers API version x: start there (as the core does), fall back below it. */
  unsigned major = 0, minor = 0, v = JB_ORT_API_VERSION_DECLARED;
  if (version && sscanf(version, "%u.%u", &major, &minor) == 2 && major == 1 && minor < v) v = minor;
  const OrtApi* table = NULL;
  for (; v >= JB_ORT_API_VERSION_MINIMUM && table == NULL; --v) table = base->GetApi(v);
  unsigned api_version = table ? v + 1 : 0;
  if (!check(-1, table != NULL, "negotiated API version %u (declared %d, minimum %d)", api_version,
             JB_ORT_API_VERSION_DECLARED, JB_ORT_API_VERSION_MINIMUM))
    return 1;
  jb_ort_bind(table, &api);
  void* const* raw = (void* const*)table;
  for (i = 0; i < SLOT_COUNT; ++i)
    check((int)i, (unsigned)kSlots[i].since <= api_version && raw[kSlots[i].slot] != NULL,
          "slot %d (added in API %d) is present in API %u", kSlots[i].slot, kSlots[i].since, api_version);

  /* Build information and memory. */
  const char* build_info = api.GetBuildInfoString();
  check(IDX_GetBuildInfoString, contains(build_info, "ORT Build Info"), "'%.80s'", build_info ? build_info : "(null)");
  OrtMemoryInfo* cpu = NULL;
  expect_ok(IDX_CreateCpuMemoryInfo, api.CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &cpu),
            "CreateCpuMemoryInfo(arena, default)");
  /* Device memory is described by name in every build (the CUDA provider need not be there). */
  {
    static const char* const names[] = {"Cpu", "Cuda", "CudaPinned"};
    size_t n;
    for (n = 0; n < sizeof names / sizeof names[0]; ++n) {
      OrtMemoryInfo* device = NULL;
      char what[64];
      snprintf(what, sizeof what, "CreateMemoryInfo(\"%s\", device allocator, 0)", names[n]);
      if (expect_ok(IDX_CreateMemoryInfo,
                    api.CreateMemoryInfo(names[n], OrtDeviceAllocator, 0, OrtMemTypeDefault, &device), what))
        api.ReleaseMemoryInfo(device);
    }
    OrtMemoryInfo* unknown = NULL;
    expect_error(IDX_CreateMemoryInfo,
                 api.CreateMemoryInfo("NoSuchDevice", OrtDeviceAllocator, 0, OrtMemTypeDefault, &unknown), -1,
                 "CreateMemoryInfo(\"NoSuchDevice\")");
  }
  OrtAllocator* allocator = NULL;
  expect_ok(IDX_GetAllocatorWithDefaultOptions, api.GetAllocatorWithDefaultOptions(&allocator),
            "GetAllocatorWithDefaultOptions");
  if (!cpu || !allocator) goto done;

  /* Zero-copy wrapping of caller memory, and its size check. */
  {
    float buffer[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[2] = {2, 3};
    OrtValue* value = NULL;
    void* address = NULL;
    OrtTensorTypeAndShapeInfo* info = NULL;
    ONNXTensorElementDataType element = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    size_t rank = 0;
    int64_t dims[2] = {0, 0};
    expect_error(IDX_CreateTensorWithDataAsOrtValue,
                 api.CreateTensorWithDataAsOrtValue(cpu, buffer, 4, shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &value),
                 ORT_INVALID_ARGUMENT, "CreateTensorWithDataAsOrtValue with 4 bytes for [2,3] float");
    expect_ok(IDX_CreateTensorWithDataAsOrtValue,
              api.CreateTensorWithDataAsOrtValue(cpu, buffer, sizeof buffer, shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
                                                 &value),
              "CreateTensorWithDataAsOrtValue over caller memory");
    if (value) {
      expect_ok(IDX_GetTensorMutableData, api.GetTensorMutableData(value, &address), "GetTensorMutableData");
      check(IDX_GetTensorMutableData, address == (void*)buffer, "returns the caller's pointer (%p == %p)", address,
            (void*)buffer);
      expect_ok(IDX_GetTensorTypeAndShape, api.GetTensorTypeAndShape(value, &info), "GetTensorTypeAndShape");
      if (info) {
        api.GetTensorElementType(info, &element);
        api.GetDimensionsCount(info, &rank);
        if (rank == 2) api.GetDimensions(info, dims, 2);
        check(IDX_GetTensorTypeAndShape, element == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT && rank == 2 && dims[0] == 2 &&
                                             dims[1] == 3,
              "the value is float [%lld, %lld]", (long long)dims[0], (long long)dims[1]);
        api.ReleaseTensorTypeAndShapeInfo(info);
        check(IDX_ReleaseTensorTypeAndShapeInfo, 1, "released the shape info (returned)");
      }
      api.ReleaseValue(value);
    }
  }

  check_global_thread_pools(model, cpu);
  check_custom_logger(model);

  OrtEnv* env = NULL;
  expect_ok(IDX_CreateEnv, api.CreateEnv(ORT_LOGGING_LEVEL_WARNING, "jb-slots", &env), "CreateEnv");
  if (!check(IDX_CreateEnv, env != NULL, "env is non-NULL")) goto done;

  {
    OrtSessionOptions* options = make_session_options();
    OrtSessionOptions* no_threads = NULL;
    OrtSession *session = NULL, *from_bytes = NULL, *rejected = NULL;
    OrtRunOptions* run_options = NULL;
    size_t size = 0;
    char* bytes = read_file(model, &size);
    static const char garbage[] = "this is not an ONNX model, just bytes";
    char message[512];
    OrtErrorCode code;

    if (!options || !check(-1, bytes != NULL, "read %zu bytes of '%s'", size, model)) goto done;

    /* Status functions, on the failures the reference documents. */
    code = take_status(api.CreateSession(env, "/nonexistent/juno-bridge/missing.onnx", options, &rejected), message,
                       sizeof message);
    check(IDX_CreateSession, code == ORT_NO_SUCHFILE, "missing file -> code %d (want %d NO_SUCHFILE)", (int)code,
          ORT_NO_SUCHFILE);
    check(IDX_GetErrorCode, code == ORT_NO_SUCHFILE, "GetErrorCode read %d from the status", (int)code);
    check(IDX_GetErrorMessage, contains(message, "missing.onnx"), "message names the file: '%.160s'", message);
    check(IDX_ReleaseStatus, 1, "released the status (returned)");
    expect_error(IDX_CreateSessionFromArray, api.CreateSessionFromArray(env, garbage, sizeof garbage, options, &rejected),
                 ORT_INVALID_PROTOBUF, "CreateSessionFromArray on garbage bytes");

    /* No per-session threads and no global pools in this env: the runtime must refuse. */
    expect_ok(IDX_CreateSessionOptions, api.CreateSessionOptions(&no_threads), "CreateSessionOptions");
    expect_ok(IDX_DisablePerSessionThreads, api.DisablePerSessionThreads(no_threads), "DisablePerSessionThreads");
    expect_error(IDX_DisablePerSessionThreads, api.CreateSession(env, model, no_threads, &rejected), -1,
                 "CreateSession without per-session threads on an env without global pools");
    api.ReleaseSessionOptions(no_threads);

    expect_ok(IDX_CreateSession, api.CreateSession(env, model, options, &session), "CreateSession(model file)");
    expect_ok(IDX_CreateSessionFromArray, api.CreateSessionFromArray(env, bytes, size, options, &from_bytes),
              "CreateSessionFromArray(model bytes)");
    if (session) {
      check_signature(session, allocator);
      check_metadata(session, allocator);
      check_session_allocator(session, cpu);

      expect_ok(IDX_CreateRunOptions, api.CreateRunOptions(&run_options), "CreateRunOptions");
      expect_ok(IDX_RunOptionsSetRunLogSeverityLevel, api.RunOptionsSetRunLogSeverityLevel(run_options, ORT_LOGGING_LEVEL_ERROR),
                "RunOptionsSetRunLogSeverityLevel(error)");
      run_model(session, cpu, run_options, "file");
      check_io_binding(session, cpu, run_options, allocator);

      {  /* The runtime checks input names and shapes itself. */
        float x[6] = {0};
        int64_t n[3] = {0}, x_shape[2] = {2, 3}, n_shape[1] = {3};
        OrtValue *x_value = NULL, *n_value = NULL, *out = NULL;
        api.CreateTensorWithDataAsOrtValue(cpu, x, sizeof x, x_shape, 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, &x_value);
        api.CreateTensorWithDataAsOrtValue(cpu, n, sizeof n, n_shape, 1, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, &n_value);
        const OrtValue* inputs[2] = {x_value, n_value};
        const char* wrong_names[2] = {"x", "no_such_input"};
        const char* names[2] = {"x", "n"};
        const char* output_names[1] = {"y"};
        expect_error(IDX_Run, api.Run(session, NULL, wrong_names, inputs, 2, output_names, 1, &out), ORT_INVALID_ARGUMENT,
                     "Run with an unknown input name");
        expect_error(IDX_Run, api.Run(session, NULL, names, inputs, 2, output_names, 1, &out), ORT_INVALID_ARGUMENT,
                     "Run with n of shape [3] (model: [2])");
        api.ReleaseValue(x_value);
        api.ReleaseValue(n_value);
      }
      api.ReleaseRunOptions(run_options);
      check(IDX_ReleaseRunOptions, 1, "released the run options (returned)");
      check_run_async(env, model, cpu, session);
    }
    if (from_bytes) {
      run_model(from_bytes, cpu, NULL, "bytes");
      api.ReleaseSession(from_bytes);
    }
    api.ReleaseSession(session);
    check(IDX_ReleaseSession, 1, "released 2 sessions (returned)");
    api.ReleaseSessionOptions(options);
    check(IDX_ReleaseSessionOptions, 1, "released the session options (returned)");
    free(bytes);
  }

  check_types(env, types_model);
  check_providers();
  api.ReleaseEnv(env);
  check(IDX_ReleaseEnv, 1, "released the env (returned)");

done:
  if (cpu) api.ReleaseMemoryInfo(cpu);
  check(IDX_ReleaseMemoryInfo, cpu != NULL, "released the CPU memory info (returned)");
  /* Every declared slot must have had a check beyond its presence: count presence (1) plus behaviour. */
  for (i = 0; i < SLOT_COUNT; ++i)
    if (exercised[i] < 2) check(-1, 0, "slot %d %s was never exercised", kSlots[i].slot, kSlots[i].name);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
