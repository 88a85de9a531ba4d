/* The C interface between the core and a backend plugin (libjuno_bridge_<name>.so).
 *
 * A plugin carries one heavy dependency (libtorch, TensorFlow, libpython) so that the core never
 * links it. It is a C table of functions, not C++ classes, so a plugin built against any toolchain or
 * library build works with the core. The core loads `libjuno_bridge_<name>.so` from its own directory
 * (or $JUNO_BRIDGE_PLUGIN_PATH) when a model needs it, calls jb_plugin_init once, and checks
 * abi_version. The core has already checked every tensor against the plugin's declared inputs and
 * outputs (dtype, rank, fixed dims, NULL data, overlap) before `run` is called.
 *
 * A model that states nothing about a tensor (e.g. a torch model without a signature) reports it with
 * dtype JB_DTYPE_UNDEFINED, rank -1 and type_name "unknown": the core then leaves the dtype and shape
 * checks of that tensor to the plugin.
 */
#ifndef JUNO_BRIDGE_PLUGIN_H
#define JUNO_BRIDGE_PLUGIN_H

#include "juno_bridge/juno_bridge.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 2: `stats` added at the end of jb_plugin_api.
 * 3: `struct_size` in both tables (in what was padding after abi_version, so every other field keeps
 *    its offset), jb_plugin_api.options and jb_plugin_host.library_dir at the end.
 * From 3 on, a table grows only at its end and the reader tells by struct_size which fields the writer
 * has (a field past struct_size is absent: NULL). abi_version changes only when a field changes meaning.
 * 4: jb_tensor_view carries its device (device, device_id at its end), so the views a plugin is handed
 *    are 8 bytes longer each; `devices` at the end names the GPUs whose memory the plugin takes (else
 *    host memory only: JB_DEVICE_CPU or JB_DEVICE_CUDA_PINNED).
 * The core reads tables of ABI 2 (as if struct_size ended before `options`), 3 (with or without the
 * asynchronous entries, and `staged`, at the end) and 4; plugins of 2 and 3 are handed views laid out as
 * they were built with. The host table of 3 may end before `log`. */
#define JB_PLUGIN_ABI_VERSION 4

/* What the core offers a plugin. */
typedef struct jb_plugin_host {
  uint32_t abi_version;
  uint32_t struct_size; /* sizeof(jb_plugin_host) as the core was built */
  /* Records the calling thread's error; a plugin function then returns the same status. */
  void (*set_error)(jb_status status, int backend_code, const char* message);
  /* 3: the directory of libjuno_bridge.so (an installed package's lib/), resolved; for plugins that
   * find files of the installation (the python plugin adds its site-packages to sys.path). */
  const char* library_dir;
  /* 3: a line for the core's log sink (juno_bridge.h: jb_set_log_callback, level filter), `source` naming
   * the library ("tensorflow"); for what the caller should know but is no error (a copy made). */
  void (*log)(int32_t level, const char* source, const char* message);
} jb_plugin_host;

/* An output the plugin allocated: the core calls release(holder) when the caller lets go of it. */
typedef struct jb_plugin_owned {
  void* holder;
  void (*release)(void* holder);
} jb_plugin_owned;

typedef struct jb_plugin_api {
  uint32_t abi_version; /* JB_PLUGIN_ABI_VERSION */
  uint32_t struct_size; /* sizeof(jb_plugin_api) as the plugin was built */
  const char* name;     /* the backend name, e.g. "torch" */

  /* Opens a model from a path (bytes NULL) or from memory. The options are string pairs, only those
   * named in `options` below: the session's own (intra_op_threads, inter_op_threads, optimization,
   * log_level, execution_mode: always, when declared) and the backend-specific entries the caller gave
   * (config.<key> in jb_options_set, config= in Python). */
  jb_status (*open)(const char* model, const void* bytes, size_t size, const char* const* keys,
                    const char* const* values, size_t num_options, void** handle);
  void (*close)(void* handle);
  size_t (*num_inputs)(void* handle);
  size_t (*num_outputs)(void* handle);
  /* Pointers in *out stay valid until close. */
  jb_status (*input_info)(void* handle, size_t index, jb_tensor_info* out);
  jb_status (*output_info)(void* handle, size_t index, jb_tensor_info* out);
  /* Key/value metadata (producer_name, graph_name, domain, description, version, custom.<key>),
   * valid until close. */
  jb_status (*metadata)(void* handle, size_t* count, const char* const** keys, const char* const** values);
  /* inputs: every input in model order. outputs[i] is output output_index[i]; when its data is NULL
   * the plugin allocates it in host memory (the core hands it with device JB_DEVICE_CPU), fills
   * outputs[i] and sets owned[i]. A plugin that declares the option output_device may, when it is
   * "cuda", allocate it on a GPU it names (`devices`) and say so in outputs[i].device/device_id; an
   * output anywhere else is refused (and released). Must be thread-safe. */
  jb_status (*run)(void* handle, const jb_tensor_view* inputs, size_t num_inputs, const int32_t* output_index,
                   jb_tensor_view* outputs, jb_plugin_owned* owned, size_t num_outputs);

  /* Optional (may be NULL): the zero-copy evidence of SessionStats. *tensors_wrapped counts the runtime
   * tensors made over caller memory since open; input_addresses[i] (i < n) is where the runtime read
   * input i in the last run, NULL before the first run. */
  jb_status (*stats)(void* handle, uint64_t* tensors_wrapped, const void** input_addresses, size_t n);

  /* 3: the option names the plugin takes, NULL-terminated (NULL: none). The core passes only these and
   * refuses a backend-specific entry outside them by name, listing them. The name "*" takes every
   * backend-specific entry: the plugin then checks their names itself (the python plugin hands them
   * to the algorithm, which declares its own). */
  const char* const* options;

  /* Optional, both or neither (NULL, or past struct_size in an older plugin: the session's runtime
   * executor serves run_async): the plugin's own asynchronous run.
   * async_native: 1 when this model has one, 0 when not (then the runtime's executor serves it); asked once
   * at open.
   * run_async: `run` without waiting. Starts the run and returns JB_OK, after which `done` is called
   * exactly once, on any thread, with the run's status, the backend's code and message (valid during
   * the call; NULL on success). Until then the plugin may use the memory of the inputs and outputs, and
   * the arrays `inputs`, `output_index`, `outputs` and `owned` stay valid (an output the plugin
   * allocates is written into outputs[i] and owned[i], as run does). An error returned (after
   * host->set_error) means the run did not start and `done` is never called. */
  int (*async_native)(void* handle);
  jb_status (*run_async)(void* handle, const jb_tensor_view* inputs, size_t num_inputs, const int32_t* output_index,
                         jb_tensor_view* outputs, jb_plugin_owned* owned, size_t num_outputs,
                         void (*done)(void* user_data, jb_status status, int backend_code, const char* message),
                         void* user_data);

  /* 3, optional (may be NULL): SessionStats.inputs_staged, the inputs the plugin copied into memory of
   * its own since open because its runtime cannot read them in place (TensorFlow's unaligned inputs). */
  jb_status (*staged)(void* handle, uint64_t* inputs_staged);

  /* 4, optional (may be NULL): the GPUs `run` computes on for this model, reading and writing their
   * memory in place. Writes up to `capacity` of them (kinds[i] JB_DEVICE_CUDA, ids[i] its ordinal) and
   * returns how many there are; asked once at open. Without it, or 0, the plugin is handed host memory
   * only: the core refuses any other before the plugin runs. */
  size_t (*devices)(void* handle, int32_t* kinds, int32_t* ids, size_t capacity);

  /* 4, optional (may be NULL, or past struct_size): `nbytes` of host memory for inputs, as `run` reads them
   * fastest (page-locked where it copies inputs to a GPU), for Session::empty: sets *data (64-byte aligned),
   * *device (JB_DEVICE_CUDA_PINNED or JB_DEVICE_CPU) and *owned, whose release the core calls when the
   * caller lets go. *data NULL: no memory of its own for this model (the core's host memory is used). */
  jb_status (*allocate_host)(void* handle, size_t nbytes, void** data, int32_t* device, jb_plugin_owned* owned);
} jb_plugin_api;

/* Every plugin exports this symbol; it returns NULL (after host->set_error) when it cannot start. */
typedef const jb_plugin_api* (*jb_plugin_init_fn)(const jb_plugin_host* host);
#define JB_PLUGIN_INIT_SYMBOL "jb_plugin_init"

#ifdef __cplusplus
}
#endif
#endif /* JUNO_BRIDGE_PLUGIN_H */
