/* juno-bridge C ABI: opaque handles, status codes and a thread-local last error.
 *
 * Stable for C callers, other languages and plugin loaders. Every function checks its pointer
 * arguments and answers NULL with JB_ERROR_INVALID_ARGUMENT instead of crashing. A function that
 * returns jb_status leaves a message for jb_last_error_message() on the calling thread when it fails.
 */
#ifndef JUNO_BRIDGE_H
#define JUNO_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include "juno_bridge/version.h" /* JB_VERSION_MAJOR, _MINOR, _PATCH, _STRING: from juno_bridge/VERSION */

#ifdef __cplusplus
extern "C" {
#endif

/* What the library exports: it is built with hidden visibility and a version script, so that only
 * jb_* and jb:: symbols are seen by the process (never a copy of libstdc++ linked into it). */
#if defined(__GNUC__)
#define JB_API __attribute__((visibility("default")))
#else
#define JB_API
#endif

/* Highest tensor rank a view can describe. */
#define JB_MAX_RANK 16

typedef enum jb_status {
  JB_OK = 0,
  JB_ERROR_INVALID_ARGUMENT = 1,   /* misuse of the API: NULL pointer, unknown option, bad index */
  JB_ERROR_INPUT = 2,              /* a tensor does not fit: shape, rank, name, contiguity, overlap */
  JB_ERROR_INPUT_TYPE = 3,         /* a tensor has the wrong element type */
  JB_ERROR_MODEL_LOAD = 4,         /* missing, unreadable or corrupt model */
  JB_ERROR_BACKEND_UNAVAILABLE = 5,/* runtime library or plugin missing, too old, provider absent */
  JB_ERROR_RUNTIME = 6,            /* the backend failed while running the model */
  JB_ERROR_UNSUPPORTED = 7         /* a valid model feature the bridge cannot pass (strings, maps) */
} jb_status;

/* Element types; the numbers are ONNX's TensorProto.DataType values. */
typedef enum jb_dtype {
  JB_DTYPE_UNDEFINED = 0, JB_DTYPE_FLOAT32 = 1, JB_DTYPE_UINT8 = 2, JB_DTYPE_INT8 = 3,
  JB_DTYPE_UINT16 = 4, JB_DTYPE_INT16 = 5, JB_DTYPE_INT32 = 6, JB_DTYPE_INT64 = 7,
  JB_DTYPE_BOOL = 9, JB_DTYPE_FLOAT16 = 10, JB_DTYPE_FLOAT64 = 11, JB_DTYPE_UINT32 = 12,
  JB_DTYPE_UINT64 = 13,
  JB_DTYPE_BFLOAT16 = 16 /* bfloat16: 2 bytes, the high half of a float32 (C code keeps it in uint16_t) */
} jb_dtype;

/* Where a view's memory lies. 0 is host memory, so a view zero-initialised or built without naming a
 * device is host memory, as before devices existed. */
typedef enum jb_device_kind {
  JB_DEVICE_CPU = 0,        /* host memory */
  JB_DEVICE_CUDA = 1,       /* memory of CUDA device device_id: only a session computing there takes it */
  JB_DEVICE_CUDA_PINNED = 2 /* page-locked host memory (cudaHostAlloc, cudaHostRegister): host memory that a
                               CUDA session copies to the GPU without staging; every session takes it */
} jb_device_kind;

/* C-contiguous memory owned by the caller. Never copied by the bridge. */
typedef struct jb_tensor_view {
  void* data;
  int32_t dtype; /* jb_dtype */
  int32_t rank;
  int64_t shape[JB_MAX_RANK];
  int32_t device;    /* jb_device_kind */
  int32_t device_id; /* the CUDA device's ordinal for JB_DEVICE_CUDA; 0 otherwise */
} jb_tensor_view;

/* A model input or output. Pointers stay valid while the session is open. A dim is -1 when dynamic;
 * dim_names[i] is its symbolic name or NULL. type_name is ONNX's spelling, e.g. "tensor(float)". */
typedef struct jb_tensor_info {
  const char* name;
  int32_t dtype; /* JB_DTYPE_UNDEFINED for non-tensor or unsupported types, see type_name */
  int32_t rank;  /* -1 when the rank is unknown */
  const int64_t* shape;
  const char* const* dim_names;
  const char* type_name;
} jb_tensor_info;

typedef struct jb_session jb_session;
typedef struct jb_options jb_options;
typedef struct jb_tensor jb_tensor; /* an output allocated by the backend */

/* Library and errors. */
JB_API const char* jb_version(void);
JB_API const char* jb_last_error_message(void); /* "" when the last call succeeded */
JB_API jb_status jb_last_error_code(void);
JB_API int jb_last_backend_code(void);           /* the backend's own code (ONNX Runtime's OrtErrorCode), 0 if none */
JB_API size_t jb_dtype_size(int32_t dtype);      /* 0 for an unknown dtype */
JB_API const char* jb_dtype_name(int32_t dtype); /* "float32", ...; "undefined" for an unknown one */

/* Options: string keys and values, the same ones the C++ SessionOptions and Python keywords use:
 * backend, intra_op_threads, inter_op_threads, optimization (disable|basic|extended|all),
 * providers (comma-separated: cpu, cuda, ...), onnxruntime (library path), log_level
 * (verbose|info|warning|error|fatal), execution_mode (sequential|parallel), global_thread_pool (0|1),
 * require_providers (0|1: a provider in `providers` that cannot be used is an error, not skipped),
 * shared (0|1, default 1: sessions of the same model and options share one backend session),
 * async_runs (auto|native|pool, default auto: how jb_session_run_async runs, see jb_session_async_mode),
 * bfloat16_as_uint16 (0|1: a JB_DTYPE_UINT16 view passes for a bfloat16 tensor, and bfloat16 outputs the
 * backend allocates come back labelled JB_DTYPE_UINT16; without it such a view is refused).
 * A backend-specific entry is "config.<key>" (Python's config= dict): a plugin's own option
 * ("config.num_runners") or an ONNX Runtime session config entry ("config.session.intra_op.allow_spinning");
 * any other key is taken as config.<key> too. The backend that opens the model refuses, by name and
 * listing the valid ones, an entry it does not take: a plugin takes what it declares (plugin.h), ONNX
 * Runtime takes keys of the form "<area>.<name>". */
JB_API jb_options* jb_options_new(void);
JB_API void jb_options_free(jb_options* options);
JB_API jb_status jb_options_set(jb_options* options, const char* key, const char* value);

/* Sessions. `options` may be NULL for the defaults. */
JB_API jb_status jb_session_open(const char* model, const jb_options* options, jb_session** out);
JB_API jb_status jb_session_open_bytes(const void* data, size_t size, const jb_options* options, jb_session** out);
JB_API void jb_session_close(jb_session* session);
JB_API const char* jb_session_backend(const jb_session* session);
JB_API size_t jb_session_num_inputs(const jb_session* session);
JB_API size_t jb_session_num_outputs(const jb_session* session);
JB_API jb_status jb_session_input_info(const jb_session* session, size_t index, jb_tensor_info* out);
JB_API jb_status jb_session_output_info(const jb_session* session, size_t index, jb_tensor_info* out);
JB_API jb_status jb_session_input_index(const jb_session* session, const char* name, size_t* index);
JB_API jb_status jb_session_output_index(const jb_session* session, const char* name, size_t* index);
/* The execution providers the session uses, comma-separated in order ("cuda,cpu"; "" for a backend
 * without providers); valid until close. */
JB_API const char* jb_session_providers(const jb_session* session);
/* 1 when the session computes from memory on that device without a copy by the caller: host memory
 * (JB_DEVICE_CPU, JB_DEVICE_CUDA_PINNED) always, JB_DEVICE_CUDA device_id where the session runs on that
 * GPU (ONNX Runtime with the CUDA provider active); else 0, and -1 for NULL or an unknown kind. */
JB_API int jb_session_takes_device(const jb_session* session, int32_t device, int32_t device_id);
/* How jb_session_run_async runs for this session (static text): "native", the backend's own
 * asynchronous call (ONNX Runtime's RunAsync, a plugin's run_async such as Triton's async_infer), or
 * "pool", the executor of the session's runtime (jb_runtime). Option async_runs: "auto" (native except for
 * ONNX Runtime on the CPU, whose RunAsync was slower than the pool there: README "Python"), "native" (where the backend allows it), "pool". */
JB_API const char* jb_session_async_mode(const jb_session* session);
/* The backend session behind `session`: sessions sharing one (option shared) have the same id. */
JB_API uint64_t jb_session_backend_id(const jb_session* session);
/* Backend sessions open in the process (a shared one counts once). */
JB_API int64_t jb_open_backend_count(void);

/* Runtimes: what sessions share, owned by the caller (C++ jb::Runtime, runtime.hpp). A runtime holds the
 * cache of shared backend sessions (two runtimes never share one) and the executor of
 * jb_session_run_async's work: a worker pool of `async_threads` threads (started on first use; 0: the
 * work runs on the thread calling jb_session_run_async, before it returns; -1: the process default's
 * rule, $JUNO_BRIDGE_ASYNC_THREADS or the number of cores), or the caller's executor, which receives
 * each task and must call jb_task_run on it exactly once, on any thread. A session opened with options
 * without a runtime uses the process default. ONNX Runtime's environment and the log sink stay
 * process-wide. jb_runtime_close refuses new sessions, waits for the runs in flight of the runtime's
 * sessions (until their `done` has returned, but for one it is called from), closes them (their handles
 * stay valid for jb_session_close) and stops the pool. */
typedef struct jb_runtime jb_runtime;
typedef struct jb_task jb_task;
typedef void (*jb_executor)(void* context, jb_task* task);
JB_API jb_status jb_runtime_new(int32_t async_threads, jb_runtime** out);
JB_API jb_status jb_runtime_new_with_executor(jb_executor executor, void* context, jb_runtime** out);
JB_API void jb_task_run(jb_task* task); /* runs the task and frees it */
JB_API void jb_runtime_close(jb_runtime* runtime);
JB_API void jb_runtime_free(jb_runtime* runtime); /* closes it first */
JB_API int64_t jb_runtime_open_backend_count(const jb_runtime* runtime); /* -1 for NULL */
/* Sessions opened with these options belong to `runtime` (NULL: the process default), which must
 * outlive the opens. */
JB_API jb_status jb_options_set_runtime(jb_options* options, jb_runtime* runtime);

/* Runs with every input in model order and every output in model order, written in place into the
 * caller's buffers. The per-event fast path: nothing is allocated when the buffers repeat. */
JB_API jb_status jb_session_run(jb_session* session, const jb_tensor_view* inputs, size_t num_inputs,
                                jb_tensor_view* outputs, size_t num_outputs);

/* The general form: outputs[i] receives model output output_index[i]. An output whose data is NULL is
 * allocated by the backend: outputs[i] is filled in and owned[i] receives a handle that keeps the
 * memory alive until jb_tensor_free. `owned` may be NULL when every output has caller memory. */
JB_API jb_status jb_session_run_outputs(jb_session* session, const jb_tensor_view* inputs, size_t num_inputs,
                                        const int32_t* output_index, jb_tensor_view* outputs,
                                        jb_tensor** owned, size_t num_outputs);
JB_API void jb_tensor_free(jb_tensor* tensor);

/* An uninitialised host tensor of `dtype` and shape[0..rank) for the caller to fill with inputs, in the
 * memory the session reads fastest: page-locked (view->device JB_DEVICE_CUDA_PINNED) where it copies
 * inputs to a GPU, plain 64-byte-aligned host memory (JB_DEVICE_CPU) otherwise. Fills *view and *owned,
 * which keeps the memory alive (after jb_session_close too) until jb_tensor_free. */
JB_API jb_status jb_session_empty(jb_session* session, int32_t dtype, const int64_t* shape, int32_t rank,
                                  jb_tensor_view* view, jb_tensor** owned);

/* Asynchronous jb_session_run_outputs: checks the call now (a bad one returns its error and `done` is
 * never called), starts it (through the backend's own asynchronous call or the runtime's executor: see
 * jb_session_async_mode) and returns JB_OK; `done` is then called exactly once, on a thread of the
 * backend's or of the executor's (the calling thread, before this returns, for a runtime of 0 threads), with the run's status and message (valid during the call). Until `done` is
 * called the caller keeps alive and untouched: the input and output buffers, the `outputs` and `owned`
 * arrays (an output the backend allocates is written into outputs[i] and owned[i] on success, as
 * jb_session_run_outputs does). `inputs` and `output_index` are copied. jb_session_close waits for the
 * runs in flight; `done` may close the session. */
typedef void (*jb_run_callback)(void* user_data, jb_status status, const char* message);
JB_API jb_status jb_session_run_async(jb_session* session, const jb_tensor_view* inputs, size_t num_inputs,
                                      const int32_t* output_index, jb_tensor_view* outputs, jb_tensor** owned,
                                      size_t num_outputs, jb_run_callback done, void* user_data);

/* Logging. The backends' own log lines (ONNX Runtime's log) go to one sink, filtered at one
 * process-wide level: the callback when one is set (called from whichever thread logs; `source` is
 * e.g. "onnxruntime"), else stderr, where error lines are left out because each error also comes back
 * as a status. Levels are ONNX Runtime's. The default level is JB_LOG_WARNING. */
typedef enum jb_log_level {
  JB_LOG_VERBOSE = 0, JB_LOG_INFO = 1, JB_LOG_WARNING = 2, JB_LOG_ERROR = 3, JB_LOG_FATAL = 4
} jb_log_level;
typedef void (*jb_log_callback)(void* user_data, int32_t level, const char* source, const char* message);
JB_API void jb_set_log_callback(jb_log_callback callback, void* user_data); /* NULL: back to stderr */
JB_API jb_status jb_set_log_level(int32_t level); /* JB_ERROR_INVALID_ARGUMENT outside 0..4 */
JB_API int32_t jb_get_log_level(void);

/* ONNX Runtime facts for `juno-bridge info` (the library chosen by `onnxruntime`, or the default one
 * when NULL). Strings stay valid for the life of the process. */
JB_API jb_status jb_onnxruntime_info(const char* onnxruntime, const char** path, const char** version,
                                     uint32_t* api_version, const char** providers);

/* The backend registry: every way juno-bridge runs a model, in order, the default (onnxruntime) first.
 * Lists are comma-joined; "" when empty. Strings stay valid for the life of the process. */
typedef struct jb_backend_entry {
  const char* name;             /* what the `backend` option takes: "onnxruntime", "torch", ... */
  const char* aliases;          /* other spellings `backend` takes: "onnx,ort" */
  const char* prefixes;         /* model strings starting so are its: "python:", "triton://" */
  const char* suffixes;         /* model files ending so are its: ".onnx,.ort" */
  const char* directory_marker; /* a directory holding this file is its model: "saved_model.pb" */
  const char* plugin;           /* "" when built into the core, else libjuno_bridge_<plugin>.so */
  const char* plugin_path;      /* where that plugin loads from now; "" when built in or not built */
  const char* extra;            /* the pip extra that installs what it needs; "" when nothing */
  const char* description;      /* one line */
} jb_backend_entry;

JB_API size_t jb_backend_count(void);
/* Fills *out with backend `index` (< jb_backend_count()). */
JB_API jb_status jb_backend_info(size_t index, jb_backend_entry* out);

#ifdef __cplusplus
}
#endif
#endif /* JUNO_BRIDGE_H */
