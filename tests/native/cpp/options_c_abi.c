/* Options and the backend registry through the C ABI: a misspelt option is refused by name when the
 * session opens, "config.<key>" reaches ONNX Runtime as a session config entry, and the registry lists
 * every backend. Usage: options_c_abi <model.onnx>; prints what it saw, then OK. */
#include <stdio.h>
#include <string.h>

#include "juno_bridge/juno_bridge.h"

static int failures = 0;

static void check(int ok, const char* what) {
  printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

static jb_status open_with(const char* model, const char* key, const char* value) {
  jb_options* options = jb_options_new();
  jb_session* session = NULL;
  jb_status status = jb_options_set(options, key, value);
  if (status == JB_OK) status = jb_session_open(model, options, &session);
  printf("%s=%s: status %d: %s\n", key, value, (int)status, jb_last_error_message());
  jb_session_close(session);
  jb_options_free(options);
  return status;
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  check(open_with(argv[1], "intra_op_thread", "1") == JB_ERROR_INVALID_ARGUMENT &&
            strstr(jb_last_error_message(), "unknown option 'intra_op_thread'") &&
            strstr(jb_last_error_message(), "intra_op_threads"),
        "a misspelt option is refused by name, listing the valid ones");
  check(open_with(argv[1], "config.num_runners", "2") == JB_ERROR_INVALID_ARGUMENT &&
            strstr(jb_last_error_message(), "'num_runners' for the onnxruntime backend"),
        "another backend's option is refused by the one that opens the model");
  check(open_with(argv[1], "config.session.intra_op.allow_spinning", "0") == JB_OK,
        "config.<key> reaches ONNX Runtime as a session config entry");
  check(open_with(argv[1], "output_device", "gpu") == JB_ERROR_INVALID_ARGUMENT &&
            strstr(jb_last_error_message(), "option 'output_device' must be cpu or cuda, got 'gpu'"),
        "output_device takes cpu or cuda");
  check(open_with(argv[1], "output_device", "cuda") == JB_ERROR_INVALID_ARGUMENT &&
            strstr(jb_last_error_message(), "output_device=cuda needs ONNX Runtime's CUDA provider"),
        "output_device=cuda on a session of the CPU provider is refused, never given host memory");
  check(open_with(argv[1], "output_device", "cpu") == JB_OK, "output_device=cpu is the default, said out loud");
  check(open_with(argv[1], "staging", "yes") == JB_ERROR_INVALID_ARGUMENT &&
            strstr(jb_last_error_message(), "option 'staging' must be off or pinned, got 'yes'"),
        "staging takes off or pinned");
  check(open_with(argv[1], "staging", "pinned") == JB_ERROR_INVALID_ARGUMENT &&
            strstr(jb_last_error_message(), "computes from host memory, which it reads in place"),
        "staging=pinned on a session of the CPU provider is refused: nothing is copied to a GPU");
  check(open_with(argv[1], "staging", "off") == JB_OK, "staging=off is the default, said out loud");

  size_t n = jb_backend_count();
  check(n >= 5, "the registry lists the backends");
  for (size_t i = 0; i < n; ++i) {
    jb_backend_entry b;
    check(jb_backend_info(i, &b) == JB_OK, "jb_backend_info");
    printf("backend %s | aliases %s | prefixes %s | suffixes %s | marker %s | plugin %s | path %s | extra %s\n",
           b.name, b.aliases, b.prefixes, b.suffixes, b.directory_marker, b.plugin, b.plugin_path, b.extra);
  }
  jb_backend_entry first;
  check(jb_backend_info(0, &first) == JB_OK && strcmp(first.name, "onnxruntime") == 0 &&
            strcmp(first.suffixes, ".onnx,.ort") == 0 && first.plugin[0] == '\0',
        "the default backend comes first");
  check(jb_backend_info(n, &first) == JB_ERROR_INVALID_ARGUMENT && strstr(jb_last_error_message(), "out of range"),
        "an index past the end is refused");
  check(jb_backend_info(0, NULL) == JB_ERROR_INVALID_ARGUMENT, "NULL out is refused");
  printf(failures ? "FAILED\n" : "OK\n");
  return failures ? 1 : 0;
}
