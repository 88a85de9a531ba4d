/* juno-bridge's own declarations of the part of TensorFlow's C API that the tf plugin calls.
 *
 * Written from TensorFlow's documented C API (tensorflow/c/c_api.h and its companions, stable since
 * TensorFlow 1.x): the signatures of the functions we call, the enum values we use and the one struct
 * whose fields we read (TF_Buffer). No TensorFlow header is used, so the plugin builds without
 * TensorFlow and binds a release's libtensorflow_cc.so.2 at run time with dlopen/dlsym.
 *
 * JB_TF_REQUIRED lists the 26 functions the plugin needs: a library lacking one is refused by name.
 * JB_TF_OPTIONAL lists newer functions used only when the library has them (NULL otherwise).
 * Plain C, so a C test program can use the same declarations.
 */
#ifndef JUNO_BRIDGE_THIRD_PARTY_TF_ABI_H
#define JUNO_BRIDGE_THIRD_PARTY_TF_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque objects. */
typedef struct TF_Status TF_Status;
typedef struct TF_Tensor TF_Tensor;
typedef struct TF_Graph TF_Graph;
typedef struct TF_Operation TF_Operation;
typedef struct TF_Session TF_Session;
typedef struct TF_SessionOptions TF_SessionOptions;

/* A byte buffer TensorFlow fills (a serialized MetaGraphDef); we read data and length. */
typedef struct TF_Buffer {
  const void* data;
  size_t length;
  void (*data_deallocator)(void* data, size_t length);
} TF_Buffer;

/* One output of a graph operation. */
typedef struct TF_Output {
  TF_Operation* oper;
  int index;
} TF_Output;

/* TensorFlow's DataType numbers (types.proto); the ones juno-bridge names. */
typedef enum TF_DataType {
  TF_FLOAT = 1, TF_DOUBLE = 2, TF_INT32 = 3, TF_UINT8 = 4, TF_INT16 = 5, TF_INT8 = 6, TF_STRING = 7,
  TF_COMPLEX64 = 8, TF_INT64 = 9, TF_BOOL = 10, TF_BFLOAT16 = 14, TF_UINT16 = 17, TF_COMPLEX128 = 18,
  TF_HALF = 19, TF_RESOURCE = 20, TF_VARIANT = 21, TF_UINT32 = 22, TF_UINT64 = 23
} TF_DataType;

/* Status codes (the canonical error codes TensorFlow shares with gRPC). */
typedef enum TF_Code {
  TF_OK = 0, TF_CANCELLED = 1, TF_UNKNOWN = 2, TF_INVALID_ARGUMENT = 3, TF_DEADLINE_EXCEEDED = 4,
  TF_NOT_FOUND = 5, TF_ALREADY_EXISTS = 6, TF_PERMISSION_DENIED = 7, TF_RESOURCE_EXHAUSTED = 8,
  TF_FAILED_PRECONDITION = 9, TF_ABORTED = 10, TF_OUT_OF_RANGE = 11, TF_UNIMPLEMENTED = 12, TF_INTERNAL = 13,
  TF_UNAVAILABLE = 14, TF_DATA_LOSS = 15, TF_UNAUTHENTICATED = 16
} TF_Code;

typedef void (*TF_Deallocator)(void* data, size_t len, void* arg);

/* X(return type, name, parameter list): every function the plugin calls. */
#define JB_TF_REQUIRED(X)                                                                                   \
  X(const char*, TF_Version, (void))                                                                      \
  X(TF_Status*, TF_NewStatus, (void))                                                                     \
  X(void, TF_DeleteStatus, (TF_Status*))                                                                  \
  X(TF_Code, TF_GetCode, (const TF_Status*))                                                              \
  X(const char*, TF_Message, (const TF_Status*))                                                          \
  X(TF_Buffer*, TF_NewBuffer, (void))                                                                     \
  X(void, TF_DeleteBuffer, (TF_Buffer*))                                                                  \
  X(TF_Graph*, TF_NewGraph, (void))                                                                       \
  X(void, TF_DeleteGraph, (TF_Graph*))                                                                    \
  X(TF_Operation*, TF_GraphOperationByName, (TF_Graph * graph, const char* oper_name))                    \
  X(int, TF_OperationNumOutputs, (TF_Operation * oper))                                                   \
  X(TF_SessionOptions*, TF_NewSessionOptions, (void))                                                     \
  X(void, TF_DeleteSessionOptions, (TF_SessionOptions*))                                                  \
  X(void, TF_SetConfig, (TF_SessionOptions * options, const void* proto, size_t proto_len, TF_Status* status)) \
  X(TF_Session*, TF_LoadSessionFromSavedModel,                                                            \
    (const TF_SessionOptions* session_options, const TF_Buffer* run_options, const char* export_dir,     \
     const char* const* tags, int tags_len, TF_Graph* graph, TF_Buffer* meta_graph_def, TF_Status* status)) \
  X(void, TF_SessionRun,                                                                                  \
    (TF_Session * session, const TF_Buffer* run_options, const TF_Output* inputs,                         \
     TF_Tensor* const* input_values, int ninputs, const TF_Output* outputs, TF_Tensor** output_values,    \
     int noutputs, const TF_Operation* const* target_opers, int ntargets, TF_Buffer* run_metadata,        \
     TF_Status* status))                                                                                  \
  X(void, TF_CloseSession, (TF_Session*, TF_Status* status))                                              \
  X(void, TF_DeleteSession, (TF_Session*, TF_Status* status))                                             \
  X(TF_Tensor*, TF_NewTensor,                                                                             \
    (TF_DataType dtype, const int64_t* dims, int num_dims, void* data, size_t len,                       \
     TF_Deallocator deallocator, void* deallocator_arg))                                                  \
  X(TF_Tensor*, TF_AllocateTensor, (TF_DataType dtype, const int64_t* dims, int num_dims, size_t len))   \
  X(void, TF_DeleteTensor, (TF_Tensor*))                                                                  \
  X(TF_DataType, TF_TensorType, (const TF_Tensor*))                                                       \
  X(int, TF_NumDims, (const TF_Tensor*))                                                                  \
  X(int64_t, TF_Dim, (const TF_Tensor* tensor, int dim_index))                                            \
  X(size_t, TF_TensorByteSize, (const TF_Tensor*))                                                        \
  X(void*, TF_TensorData, (const TF_Tensor*))

/* Newer than TensorFlow 2.16; NULL when the library lacks them. TF_TensorDefaultAlignment: the
 * alignment TF_NewTensor needs to keep the caller's pointer (64 before it existed). */
#define JB_TF_OPTIONAL(X) X(size_t, TF_TensorDefaultAlignment, (void))

/* The bound functions: one pointer per function, under its C API name. */
#define JB_TF_MEMBER(ret, name, params) ret(*name) params;
typedef struct JbTfApi {
  JB_TF_REQUIRED(JB_TF_MEMBER)
  JB_TF_OPTIONAL(JB_TF_MEMBER)
} JbTfApi;
#undef JB_TF_MEMBER

#ifdef __cplusplus
}
#endif
#endif /* JUNO_BRIDGE_THIRD_PARTY_TF_ABI_H */
