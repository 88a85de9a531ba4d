/* bfloat16 through the C ABI: a C caller keeps bfloat16 in uint16_t and labels the view JB_DTYPE_BFLOAT16;
 * labelled JB_DTYPE_UINT16 it is refused by name unless the session has the option bfloat16_as_uint16, with
 * which allocated bfloat16 outputs come back labelled JB_DTYPE_UINT16. Usage: bfloat16_c_abi <model.onnx>,
 * the model c[batch, n] = a + b in bfloat16; prints what it saw, then OK. */
#include <stdio.h>
#include <string.h>

#include "juno_bridge/juno_bridge.h"

static int failures = 0;

static void check(int ok, const char* what) {
  printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

static uint16_t bits_of(float f) { /* exact for the small integers used here */
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return (uint16_t)(u >> 16);
}

static jb_tensor_view view(void* data, int32_t dtype) {
  jb_tensor_view v = {.data = data, .dtype = dtype, .rank = 2, .shape = {2, 3}};
  return v;
}

static jb_session* open_with(const char* model, const char* bits_option) {
  jb_options* options = jb_options_new();
  jb_session* session = NULL;
  if (bits_option) jb_options_set(options, "bfloat16_as_uint16", bits_option);
  jb_status status = jb_session_open(model, options, &session);
  jb_options_free(options);
  if (status != JB_OK) printf("open: %s\n", jb_last_error_message());
  return session;
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  check(jb_dtype_size(JB_DTYPE_BFLOAT16) == 2 && strcmp(jb_dtype_name(JB_DTYPE_BFLOAT16), "bfloat16") == 0,
        "bfloat16 is a dtype of 2 bytes named bfloat16");
  uint16_t a[6], b[6], c[6], want[6];
  for (int i = 0; i < 6; ++i) {
    a[i] = bits_of((float)i);
    b[i] = bits_of(10.0f);
    want[i] = bits_of((float)i + 10.0f);
  }

  jb_session* s = open_with(argv[1], NULL);
  jb_tensor_info info;
  check(s && jb_session_input_info(s, 0, &info) == JB_OK && info.dtype == JB_DTYPE_BFLOAT16 &&
            strcmp(info.type_name, "tensor(bfloat16)") == 0,
        "the input is JB_DTYPE_BFLOAT16, tensor(bfloat16)");
  jb_tensor_view in[2] = {view(a, JB_DTYPE_BFLOAT16), view(b, JB_DTYPE_BFLOAT16)};
  jb_tensor_view out = view(c, JB_DTYPE_BFLOAT16);
  memset(c, 0xFF, sizeof c);
  check(jb_session_run(s, in, 2, &out, 1) == JB_OK && memcmp(c, want, sizeof c) == 0,
        "uint16_t memory labelled bfloat16 runs, the output written in place");
  in[1].dtype = JB_DTYPE_UINT16;
  jb_status status = jb_session_run(s, in, 2, &out, 1);
  printf("uint16 without the option: status %d: %s\n", (int)status, jb_last_error_message());
  const char* message = jb_last_error_message();
  check(status == JB_ERROR_INPUT_TYPE && strstr(message, "input 'b': expected dtype bfloat16, got uint16") &&
            strstr(message, "bfloat16_as_uint16=1"),
        "a view labelled uint16 is refused naming bfloat16 and the option");
  jb_session_close(s);

  s = open_with(argv[1], "1");
  in[0].dtype = JB_DTYPE_UINT16;
  jb_tensor_view allocated = {NULL, 0, 0, {0}};
  jb_tensor* owned = NULL;
  int32_t index = 0;
  check(s && jb_session_run_outputs(s, in, 2, &index, &allocated, &owned, 1) == JB_OK &&
            allocated.dtype == JB_DTYPE_UINT16 && allocated.rank == 2 &&
            memcmp(allocated.data, want, sizeof want) == 0,
        "with bfloat16_as_uint16=1, uint16 views run and the allocated output is labelled uint16");
  jb_tensor_free(owned);
  jb_session_close(s);

  jb_options* options = jb_options_new();
  status = jb_options_set(options, "bfloat16_as_uint16", "yes");
  check(status == JB_ERROR_INVALID_ARGUMENT && strstr(jb_last_error_message(), "'bfloat16_as_uint16' is 0 or 1"),
        "the option is 0 or 1");
  jb_options_free(options);

  if (failures) return 1;
  printf("OK\n");
  return 0;
}
