/* jb-ort-raw-loop: the raw baseline for `juno-bridge bench` (path (e)): a C loop straight over the
 * ONNX Runtime C API, through our own declarations (third_party/onnxruntime/ort_abi.h), no juno-bridge.
 *
 *   jb-ort-raw-loop MODEL BATCH ITERATIONS WARMUP LIBRARY [--check]
 *
 * LIBRARY is the ONNX Runtime shared library to dlopen. One intra-op thread; input OrtValues over
 * buffers made once (dynamic dims become BATCH, values as in jb-bench-loop), output OrtValues pre-made
 * over buffers sized by one probe run; then WARMUP untimed and ITERATIONS timed calls of Run. Prints
 * the same JSON line as jb-bench-loop (runner "jb-ort-raw-loop"). Errors: message on stderr, exit 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ort_abi.h"

#define MAX_TENSORS 64
#define CHECK_VALUES 8 /* values per output printed by --check */

static JbOrtApi api;

static void fail(const char* what, const char* detail) {
  fprintf(stderr, "jb-ort-raw-loop: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

/* Exits with the runtime's code and message when `status` is an error. */
static void ort_check(OrtStatus* status, const char* what) {
  if (status == NULL) return;
  fprintf(stderr, "jb-ort-raw-loop: %s: ONNX Runtime error %d: %s\n", what, (int)api.GetErrorCode(status),
          api.GetErrorMessage(status));
  api.ReleaseStatus(status);
  exit(1);
}

static long long parse_count(const char* text, const char* what, long long minimum) {
  char* end = NULL;
  long long value = strtoll(text, &end, 10);
  if (*text == '\0' || *end != '\0' || value < minimum) {
    fprintf(stderr, "jb-ort-raw-loop: %s must be an integer >= %lld; got '%s'\n", what, minimum, text);
    exit(1);
  }
  return value;
}

static size_t element_size(ONNXTensorElementDataType t) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return 1;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16: return 2;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32: return 4;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64: return 8;
    default: return 0;
  }
}

/* IEEE half bits of a float that half represents exactly (the inputs are k/16). */
static uint16_t half_bits(float f) {
  uint32_t b;
  memcpy(&b, &f, sizeof b);
  uint16_t sign = (uint16_t)((b >> 16) & 0x8000u);
  if ((b & 0x7fffffffu) == 0) return sign;
  uint32_t exponent = ((b >> 23) & 0xffu) - 127 + 15;
  return (uint16_t)(sign | (exponent << 10) | ((b & 0x7fffffu) >> 13));
}

/* The deterministic inputs of jb-bench-loop: k = (37 i) mod 101; floats k/16 - 3, signed ints k - 50,
 * unsigned ints k, bool k odd. */
static void fill(void* data, ONNXTensorElementDataType t, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    int64_t k = (i * 37) % 101;
    float real = (float)k / 16.0f - 3.0f;
    switch (t) {
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: ((float*)data)[i] = real; break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: ((double*)data)[i] = real; break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: ((uint16_t*)data)[i] = half_bits(real); break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: ((int8_t*)data)[i] = (int8_t)(k - 50); break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16: ((int16_t*)data)[i] = (int16_t)(k - 50); break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: ((int32_t*)data)[i] = (int32_t)(k - 50); break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: ((int64_t*)data)[i] = k - 50; break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: ((uint8_t*)data)[i] = (uint8_t)k; break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16: ((uint16_t*)data)[i] = (uint16_t)k; break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32: ((uint32_t*)data)[i] = (uint32_t)k; break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64: ((uint64_t*)data)[i] = (uint64_t)k; break;
      case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: ((unsigned char*)data)[i] = (unsigned char)(k & 1); break;
      default: fail("cannot fill an input of this element type", NULL);
    }
  }
}

/* Element i as a double, for --check (float16 as its raw bits, as jb-bench-loop prints it). */
static double element(const void* data, ONNXTensorElementDataType t, int64_t i) {
  switch (t) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return ((const float*)data)[i];
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return ((const double*)data)[i];
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return ((const uint16_t*)data)[i];
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return ((const int8_t*)data)[i];
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16: return ((const int16_t*)data)[i];
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return ((const int32_t*)data)[i];
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return (double)((const int64_t*)data)[i];
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return ((const uint8_t*)data)[i];
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16: return ((const uint16_t*)data)[i];
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32: return ((const uint32_t*)data)[i];
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64: return (double)((const uint64_t*)data)[i];
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return ((const unsigned char*)data)[i] ? 1 : 0;
    default: return NAN;
  }
}

/* Cache-line aligned, zeroed memory, like jb-bench-loop's buffers. */
static void* allocate(size_t nbytes) {
  size_t size = nbytes < 64 ? 64 : (nbytes + 63) / 64 * 64;
  void* p = aligned_alloc(64, size);
  if (p == NULL) fail("out of memory", NULL);
  memset(p, 0, size);
  return p;
}

static int compare_doubles(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void print_json_string(const char* s) {
  putchar('"');
  for (; *s; ++s) {
    if (*s == '"' || *s == '\\') putchar('\\');
    if ((unsigned char)*s >= 0x20) putchar(*s);
  }
  putchar('"');
}

/* A tensor of the model (input or output): name, element type, shape for this batch, its memory. */
typedef struct {
  char* name;
  ONNXTensorElementDataType type;
  size_t rank;
  int64_t shape[16];
  int64_t count;
  void* data;
  OrtValue* value;
} Tensor;

static void read_inputs(OrtSession* session, OrtAllocator* allocator, int64_t batch, Tensor* t, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    OrtTypeInfo* type_info = NULL;
    const OrtTensorTypeAndShapeInfo* info = NULL;
    ONNXType kind = ONNX_TYPE_UNKNOWN;
    ort_check(api.SessionGetInputName(session, i, allocator, &t[i].name), "reading an input name");
    ort_check(api.SessionGetInputTypeInfo(session, i, &type_info), "reading an input type");
    ort_check(api.GetOnnxTypeFromTypeInfo(type_info, &kind), "reading an input type");
    if (kind != ONNX_TYPE_TENSOR) fail("input is not a tensor", t[i].name);
    ort_check(api.CastTypeInfoToTensorInfo(type_info, &info), "reading an input type");
    ort_check(api.GetTensorElementType(info, &t[i].type), "reading an input element type");
    ort_check(api.GetDimensionsCount(info, &t[i].rank), "reading an input rank");
    if (t[i].rank > 16) fail("input rank above 16", t[i].name);
    ort_check(api.GetDimensions(info, t[i].shape, t[i].rank), "reading input dims");
    api.ReleaseTypeInfo(type_info);
    if (element_size(t[i].type) == 0) fail("input element type not supported by this loop", t[i].name);
    t[i].count = 1;
    for (size_t d = 0; d < t[i].rank; ++d) {
      if (t[i].shape[d] < 0) t[i].shape[d] = batch;
      t[i].count *= t[i].shape[d];
    }
  }
}

int main(int argc, char** argv) {
  const char* positional[5];
  int n_positional = 0, check = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--check") == 0) check = 1;
    else if (strncmp(argv[i], "--", 2) == 0) fail("unknown option", argv[i]);
    else if (n_positional < 5) positional[n_positional++] = argv[i];
    else fail("too many arguments", argv[i]);
  }
  if (n_positional != 5) fail("usage: jb-ort-raw-loop MODEL BATCH ITERATIONS WARMUP LIBRARY [--check]", NULL);
  const char* model = positional[0];
  const long long batch = parse_count(positional[1], "BATCH", 1);
  const long long iterations = parse_count(positional[2], "ITERATIONS", 1);
  const long long warmup = parse_count(positional[3], "WARMUP", 0);
  const char* library = positional[4];

  /* Load and negotiate as the core does: the highest version we declare, then lower ones. */
  void* handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) fail("cannot load the ONNX Runtime library", dlerror());
  OrtGetApiBaseFn get_api_base = (OrtGetApiBaseFn)dlsym(handle, "OrtGetApiBase");
  if (get_api_base == NULL) fail("not an ONNX Runtime library (no OrtGetApiBase)", library);
  const OrtApiBase* base = get_api_base();
  /* A 1.x release offers API version x; starting there spares older releases a complaint on stderr. */
  unsigned major = 0, minor = 0, first = JB_ORT_API_VERSION_DECLARED;
  if (sscanf(base->GetVersionString(), "%u.%u", &major, &minor) == 2 && major == 1 && minor < first) first = minor;
  const OrtApi* table = NULL;
  for (unsigned v = first; v >= JB_ORT_API_VERSION_MINIMUM && table == NULL; --v) table = base->GetApi(v);
  if (table == NULL) fail("this ONNX Runtime is older than the minimum API version we support", base->GetVersionString());
  jb_ort_bind(table, &api);

  OrtEnv* env = NULL;
  OrtSessionOptions* options = NULL;
  OrtSession* session = NULL;
  OrtMemoryInfo* cpu = NULL;
  OrtAllocator* allocator = NULL;
  ort_check(api.CreateEnv(ORT_LOGGING_LEVEL_WARNING, "jb-ort-raw-loop", &env), "creating the environment");
  ort_check(api.CreateSessionOptions(&options), "creating session options");
  ort_check(api.SetIntraOpNumThreads(options, 1), "setting intra-op threads");
  ort_check(api.SetSessionGraphOptimizationLevel(options, ORT_ENABLE_ALL), "setting the optimization level");
  ort_check(api.CreateSession(env, model, options, &session), "loading the model");
  ort_check(api.CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &cpu), "creating CPU memory info");
  ort_check(api.GetAllocatorWithDefaultOptions(&allocator), "getting the allocator");

  size_t n_in = 0, n_out = 0;
  ort_check(api.SessionGetInputCount(session, &n_in), "counting inputs");
  ort_check(api.SessionGetOutputCount(session, &n_out), "counting outputs");
  if (n_in > MAX_TENSORS || n_out > MAX_TENSORS) fail("more than 64 inputs or outputs", NULL);
  Tensor inputs[MAX_TENSORS], outputs[MAX_TENSORS];
  const char *in_names[MAX_TENSORS], *out_names[MAX_TENSORS];
  const OrtValue* in_values[MAX_TENSORS];
  OrtValue* out_values[MAX_TENSORS];
  memset(inputs, 0, sizeof inputs);
  memset(outputs, 0, sizeof outputs);

  read_inputs(session, allocator, batch, inputs, n_in);
  for (size_t i = 0; i < n_in; ++i) {
    size_t nbytes = (size_t)inputs[i].count * element_size(inputs[i].type);
    inputs[i].data = allocate(nbytes);
    fill(inputs[i].data, inputs[i].type, inputs[i].count);
    ort_check(api.CreateTensorWithDataAsOrtValue(cpu, inputs[i].data, nbytes, inputs[i].shape, inputs[i].rank,
                                                 inputs[i].type, &inputs[i].value),
              "wrapping an input buffer");
    in_names[i] = inputs[i].name;
    in_values[i] = inputs[i].value;
  }
  for (size_t i = 0; i < n_out; ++i) {
    ort_check(api.SessionGetOutputName(session, i, allocator, &outputs[i].name), "reading an output name");
    out_names[i] = outputs[i].name;
    out_values[i] = NULL;
  }

  /* One probe run with runtime-allocated outputs tells the output shapes; then pre-made outputs. */
  ort_check(api.Run(session, NULL, in_names, in_values, n_in, out_names, n_out, out_values), "the probe run");
  for (size_t i = 0; i < n_out; ++i) {
    OrtTensorTypeAndShapeInfo* info = NULL;
    ONNXType kind = ONNX_TYPE_UNKNOWN;
    ort_check(api.GetValueType(out_values[i], &kind), "reading an output");
    if (kind != ONNX_TYPE_TENSOR) fail("output is not a tensor", outputs[i].name);
    ort_check(api.GetTensorTypeAndShape(out_values[i], &info), "reading an output shape");
    ort_check(api.GetTensorElementType(info, &outputs[i].type), "reading an output element type");
    ort_check(api.GetDimensionsCount(info, &outputs[i].rank), "reading an output rank");
    if (outputs[i].rank > 16) fail("output rank above 16", outputs[i].name);
    ort_check(api.GetDimensions(info, outputs[i].shape, outputs[i].rank), "reading output dims");
    api.ReleaseTensorTypeAndShapeInfo(info);
    api.ReleaseValue(out_values[i]);
    if (element_size(outputs[i].type) == 0) fail("output element type not supported by this loop", outputs[i].name);
    outputs[i].count = 1;
    for (size_t d = 0; d < outputs[i].rank; ++d) outputs[i].count *= outputs[i].shape[d];
    size_t nbytes = (size_t)outputs[i].count * element_size(outputs[i].type);
    outputs[i].data = allocate(nbytes);
    ort_check(api.CreateTensorWithDataAsOrtValue(cpu, outputs[i].data, nbytes, outputs[i].shape, outputs[i].rank,
                                                 outputs[i].type, &outputs[i].value),
              "wrapping an output buffer");
    out_values[i] = outputs[i].value;
  }

  for (long long i = 0; i < warmup; ++i)
    ort_check(api.Run(session, NULL, in_names, in_values, n_in, out_names, n_out, out_values), "a warm-up run");
  double* micros = malloc(sizeof(double) * (size_t)iterations);
  if (micros == NULL) fail("out of memory", NULL);
  for (long long i = 0; i < iterations; ++i) {
    double start = now_us();
    OrtStatus* status = api.Run(session, NULL, in_names, in_values, n_in, out_names, n_out, out_values);
    micros[i] = now_us() - start;
    ort_check(status, "a timed run");
  }

  double mean = 0;
  for (long long i = 0; i < iterations; ++i) mean += micros[i] / (double)iterations;
  qsort(micros, (size_t)iterations, sizeof(double), compare_doubles);
  size_t n = (size_t)iterations;
  double median = n % 2 ? micros[n / 2] : (micros[n / 2 - 1] + micros[n / 2]) / 2;
  double p90 = micros[(size_t)ceil(0.9 * (double)n) - 1];
  printf("{\"runner\": \"jb-ort-raw-loop\", \"batch\": %lld, \"iterations\": %lld, \"warmup\": %lld, "
         "\"median_us\": %.4f, \"p90_us\": %.4f, \"mean_us\": %.4f, \"min_us\": %.4f",
         batch, iterations, warmup, median, p90, mean, micros[0]);
  if (check) {
    printf(", \"outputs\": {");
    for (size_t o = 0; o < n_out; ++o) {
      printf("%s", o ? ", " : "");
      print_json_string(outputs[o].name);
      printf(": [");
      for (int64_t i = 0; i < outputs[o].count && i < CHECK_VALUES; ++i) {
        double x = element(outputs[o].data, outputs[o].type, i);
        if (isfinite(x)) printf("%s%.17g", i ? ", " : "", x);
        else printf("%snull", i ? ", " : "");
      }
      printf("]");
    }
    printf("}");
  }
  printf("}\n");

  for (size_t i = 0; i < n_in; ++i) {
    api.ReleaseValue(inputs[i].value);
    api.AllocatorFree(allocator, inputs[i].name);
    free(inputs[i].data);
  }
  for (size_t i = 0; i < n_out; ++i) {
    api.ReleaseValue(outputs[i].value);
    api.AllocatorFree(allocator, outputs[i].name);
    free(outputs[i].data);
  }
  free(micros);
  api.ReleaseMemoryInfo(cpu);
  api.ReleaseSession(session);
  api.ReleaseSessionOptions(options);
  api.ReleaseEnv(env);
  return 0;
}
