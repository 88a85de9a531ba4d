/* juno-bridge's own declarations of the part of the ONNX Runtime C ABI that it calls.
 *
 * Written from the slot table beside this file (ort_api_slots.tsv: every OrtApi slot, its name and the API
 * version that added it, as ONNX Runtime's public C API documents them) and that documentation; no ONNX
 * Runtime header is used (none is available from a package registry here).
 * `OrtApi` is an append-only table of function pointers: a function never moves once released, so we
 * address each one by its zero-based slot and the API version that added it, instead of declaring the
 * whole struct. Plain C, so the raw C benchmark loop and the C++ core share one set of declarations.
 */
#ifndef JUNO_BRIDGE_THIRD_PARTY_ORT_ABI_H
#define JUNO_BRIDGE_THIRD_PARTY_ORT_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque runtime objects. */
typedef struct OrtEnv OrtEnv;
typedef struct OrtStatus OrtStatus;
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtSession OrtSession;
typedef struct OrtValue OrtValue;
typedef struct OrtRunOptions OrtRunOptions;
typedef struct OrtTypeInfo OrtTypeInfo;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;
typedef struct OrtMapTypeInfo OrtMapTypeInfo;
typedef struct OrtSequenceTypeInfo OrtSequenceTypeInfo;
typedef struct OrtOptionalTypeInfo OrtOptionalTypeInfo;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtModelMetadata OrtModelMetadata;
typedef struct OrtThreadingOptions OrtThreadingOptions;
typedef struct OrtAllocator OrtAllocator;
typedef struct OrtCUDAProviderOptionsV2 OrtCUDAProviderOptionsV2;
typedef struct OrtIoBinding OrtIoBinding;

/* Enumerations (values are part of the ABI). */
typedef enum OrtErrorCode {
  ORT_OK = 0, ORT_FAIL = 1, ORT_INVALID_ARGUMENT = 2, ORT_NO_SUCHFILE = 3, ORT_NO_MODEL = 4,
  ORT_ENGINE_ERROR = 5, ORT_RUNTIME_EXCEPTION = 6, ORT_INVALID_PROTOBUF = 7, ORT_MODEL_LOADED = 8,
  ORT_NOT_IMPLEMENTED = 9, ORT_INVALID_GRAPH = 10, ORT_EP_FAIL = 11
} OrtErrorCode;

typedef enum ONNXTensorElementDataType {
  ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED = 0, ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT = 1,
  ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8 = 2, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8 = 3,
  ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT16 = 4, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT16 = 5,
  ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 = 6, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 = 7,
  ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING = 8, ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL = 9,
  ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 = 10, ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE = 11,
  ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT32 = 12, ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT64 = 13,
  ONNX_TENSOR_ELEMENT_DATA_TYPE_COMPLEX64 = 14, ONNX_TENSOR_ELEMENT_DATA_TYPE_COMPLEX128 = 15,
  ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16 = 16
} ONNXTensorElementDataType;

typedef enum ONNXType {
  ONNX_TYPE_UNKNOWN = 0, ONNX_TYPE_TENSOR = 1, ONNX_TYPE_SEQUENCE = 2, ONNX_TYPE_MAP = 3,
  ONNX_TYPE_OPAQUE = 4, ONNX_TYPE_SPARSETENSOR = 5, ONNX_TYPE_OPTIONAL = 6
} ONNXType;

typedef enum OrtLoggingLevel {
  ORT_LOGGING_LEVEL_VERBOSE = 0, ORT_LOGGING_LEVEL_INFO = 1, ORT_LOGGING_LEVEL_WARNING = 2,
  ORT_LOGGING_LEVEL_ERROR = 3, ORT_LOGGING_LEVEL_FATAL = 4
} OrtLoggingLevel;

typedef enum GraphOptimizationLevel {
  ORT_DISABLE_ALL = 0, ORT_ENABLE_BASIC = 1, ORT_ENABLE_EXTENDED = 2, ORT_ENABLE_ALL = 99
} GraphOptimizationLevel;

typedef enum ExecutionMode { ORT_SEQUENTIAL = 0, ORT_PARALLEL = 1 } ExecutionMode;
typedef enum OrtAllocatorType { OrtInvalidAllocator = -1, OrtDeviceAllocator = 0, OrtArenaAllocator = 1 } OrtAllocatorType;
typedef enum OrtMemType { OrtMemTypeCPUInput = -2, OrtMemTypeCPUOutput = -1, OrtMemTypeDefault = 0 } OrtMemType;

/* The entry point exported by the library (the only exported symbol we need). */
typedef struct OrtApi OrtApi; /* never dereferenced as a struct: see JB_ORT_API_SLOTS */
typedef struct OrtApiBase {
  const OrtApi* (*GetApi)(uint32_t version); /* NULL when `version` is not supported */
  const char* (*GetVersionString)(void);
} OrtApiBase;
typedef const OrtApiBase* (*OrtGetApiBaseFn)(void);

/* A custom logger's sink (CreateEnvWithCustomLogger): called for each log line at or above the env's
 * level, from whichever thread logs; `param` is the logger_param given at creation. */
typedef void (*OrtLoggingFunction)(void* param, OrtLoggingLevel severity, const char* category, const char* logid,
                                   const char* code_location, const char* message);

/* RunAsync's completion (API 16): called once, on a thread of the session's intra-op pool, with the
 * `outputs` array given to RunAsync (an entry that was NULL now holds a value the runtime made, which the
 * receiver releases), the number of outputs (0 when the run failed) and the run's status (NULL on
 * success; a failed one belongs to the callback, which releases it). */
typedef void (*OrtRunAsyncCallback)(void* user_data, OrtValue** outputs, size_t num_outputs, OrtStatus* status);

/* The functions we call: X(slot, added_in_api_version, return type, name, parameter list).
 * OrtStatus* NULL means success; a non-NULL status must be released with ReleaseStatus. A CastTypeInfoTo*
 * result belongs to the type info it was cast from (NULL when the kind differs); GetMapValueType,
 * GetSequenceElementType and GetOptionalContainedTypeInfo hand over a new OrtTypeInfo (ReleaseTypeInfo). */
#define JB_ORT_API_SLOTS(X) \
  X(1, 1, OrtErrorCode, GetErrorCode, (const OrtStatus* status)) \
  X(2, 1, const char*, GetErrorMessage, (const OrtStatus* status)) \
  X(3, 1, OrtStatus*, CreateEnv, (OrtLoggingLevel level, const char* logid, OrtEnv** out)) \
  X(4, 1, OrtStatus*, CreateEnvWithCustomLogger, (OrtLoggingFunction logging_function, void* logger_param, OrtLoggingLevel logging_level, const char* logid, OrtEnv** out)) \
  X(7, 1, OrtStatus*, CreateSession, (const OrtEnv* env, const char* model_path, const OrtSessionOptions* options, OrtSession** out)) \
  X(8, 1, OrtStatus*, CreateSessionFromArray, (const OrtEnv* env, const void* model_data, size_t model_data_length, const OrtSessionOptions* options, OrtSession** out)) \
  X(9, 1, OrtStatus*, Run, (OrtSession* session, const OrtRunOptions* run_options, const char* const* input_names, const OrtValue* const* inputs, size_t input_len, const char* const* output_names, size_t output_names_len, OrtValue** outputs)) \
  X(10, 1, OrtStatus*, CreateSessionOptions, (OrtSessionOptions** options)) \
  X(13, 1, OrtStatus*, SetSessionExecutionMode, (OrtSessionOptions* options, ExecutionMode execution_mode)) \
  X(22, 1, OrtStatus*, SetSessionLogSeverityLevel, (OrtSessionOptions* options, int session_log_severity_level)) \
  X(23, 1, OrtStatus*, SetSessionGraphOptimizationLevel, (OrtSessionOptions* options, GraphOptimizationLevel graph_optimization_level)) \
  X(24, 1, OrtStatus*, SetIntraOpNumThreads, (OrtSessionOptions* options, int intra_op_num_threads)) \
  X(25, 1, OrtStatus*, SetInterOpNumThreads, (OrtSessionOptions* options, int inter_op_num_threads)) \
  X(30, 1, OrtStatus*, SessionGetInputCount, (const OrtSession* session, size_t* out)) \
  X(31, 1, OrtStatus*, SessionGetOutputCount, (const OrtSession* session, size_t* out)) \
  X(33, 1, OrtStatus*, SessionGetInputTypeInfo, (const OrtSession* session, size_t index, OrtTypeInfo** type_info)) \
  X(34, 1, OrtStatus*, SessionGetOutputTypeInfo, (const OrtSession* session, size_t index, OrtTypeInfo** type_info)) \
  X(36, 1, OrtStatus*, SessionGetInputName, (const OrtSession* session, size_t index, OrtAllocator* allocator, char** value)) \
  X(37, 1, OrtStatus*, SessionGetOutputName, (const OrtSession* session, size_t index, OrtAllocator* allocator, char** value)) \
  X(39, 1, OrtStatus*, CreateRunOptions, (OrtRunOptions** out)) \
  X(41, 1, OrtStatus*, RunOptionsSetRunLogSeverityLevel, (OrtRunOptions* options, int log_severity_level)) \
  X(49, 1, OrtStatus*, CreateTensorWithDataAsOrtValue, (const OrtMemoryInfo* info, void* p_data, size_t p_data_len, const int64_t* shape, size_t shape_len, ONNXTensorElementDataType type, OrtValue** out)) \
  X(50, 1, OrtStatus*, IsTensor, (const OrtValue* value, int* out)) \
  X(51, 1, OrtStatus*, GetTensorMutableData, (OrtValue* value, void** out)) \
  X(55, 1, OrtStatus*, CastTypeInfoToTensorInfo, (const OrtTypeInfo* type_info, const OrtTensorTypeAndShapeInfo** out)) \
  X(56, 1, OrtStatus*, GetOnnxTypeFromTypeInfo, (const OrtTypeInfo* type_info, ONNXType* out)) \
  X(60, 1, OrtStatus*, GetTensorElementType, (const OrtTensorTypeAndShapeInfo* info, ONNXTensorElementDataType* out)) \
  X(61, 1, OrtStatus*, GetDimensionsCount, (const OrtTensorTypeAndShapeInfo* info, size_t* out)) \
  X(62, 1, OrtStatus*, GetDimensions, (const OrtTensorTypeAndShapeInfo* info, int64_t* dim_values, size_t dim_values_length)) \
  X(63, 1, OrtStatus*, GetSymbolicDimensions, (const OrtTensorTypeAndShapeInfo* info, const char** dim_params, size_t dim_params_length)) \
  X(65, 1, OrtStatus*, GetTensorTypeAndShape, (const OrtValue* value, OrtTensorTypeAndShapeInfo** out)) \
  X(67, 1, OrtStatus*, GetValueType, (const OrtValue* value, ONNXType* out)) \
  X(68, 1, OrtStatus*, CreateMemoryInfo, (const char* name, OrtAllocatorType type, int id, OrtMemType mem_type, OrtMemoryInfo** out)) \
  X(69, 1, OrtStatus*, CreateCpuMemoryInfo, (OrtAllocatorType type, OrtMemType mem_type, OrtMemoryInfo** out)) \
  X(71, 1, OrtStatus*, MemoryInfoGetName, (const OrtMemoryInfo* ptr, const char** out)) \
  X(72, 1, OrtStatus*, MemoryInfoGetId, (const OrtMemoryInfo* ptr, int* out)) \
  X(75, 1, OrtStatus*, AllocatorAlloc, (OrtAllocator* allocator, size_t size, void** out)) \
  X(76, 1, OrtStatus*, AllocatorFree, (OrtAllocator* allocator, void* p)) \
  X(78, 1, OrtStatus*, GetAllocatorWithDefaultOptions, (OrtAllocator** out)) \
  X(92, 1, void, ReleaseEnv, (OrtEnv* object)) \
  X(93, 1, void, ReleaseStatus, (OrtStatus* object)) \
  X(94, 1, void, ReleaseMemoryInfo, (OrtMemoryInfo* object)) \
  X(95, 1, void, ReleaseSession, (OrtSession* object)) \
  X(96, 1, void, ReleaseValue, (OrtValue* object)) \
  X(97, 1, void, ReleaseRunOptions, (OrtRunOptions* object)) \
  X(98, 1, void, ReleaseTypeInfo, (OrtTypeInfo* object)) \
  X(99, 1, void, ReleaseTensorTypeAndShapeInfo, (OrtTensorTypeAndShapeInfo* object)) \
  X(100, 1, void, ReleaseSessionOptions, (OrtSessionOptions* object)) \
  X(103, 2, OrtStatus*, CastTypeInfoToMapTypeInfo, (const OrtTypeInfo* type_info, const OrtMapTypeInfo** out)) \
  X(104, 2, OrtStatus*, CastTypeInfoToSequenceTypeInfo, (const OrtTypeInfo* type_info, const OrtSequenceTypeInfo** out)) \
  X(105, 2, OrtStatus*, GetMapKeyType, (const OrtMapTypeInfo* map_type_info, ONNXTensorElementDataType* out)) \
  X(106, 2, OrtStatus*, GetMapValueType, (const OrtMapTypeInfo* map_type_info, OrtTypeInfo** type_info)) \
  X(107, 2, OrtStatus*, GetSequenceElementType, (const OrtSequenceTypeInfo* sequence_type_info, OrtTypeInfo** type_info)) \
  X(111, 2, OrtStatus*, SessionGetModelMetadata, (const OrtSession* session, OrtModelMetadata** out)) \
  X(112, 2, OrtStatus*, ModelMetadataGetProducerName, (const OrtModelMetadata* metadata, OrtAllocator* allocator, char** value)) \
  X(113, 2, OrtStatus*, ModelMetadataGetGraphName, (const OrtModelMetadata* metadata, OrtAllocator* allocator, char** value)) \
  X(114, 2, OrtStatus*, ModelMetadataGetDomain, (const OrtModelMetadata* metadata, OrtAllocator* allocator, char** value)) \
  X(115, 2, OrtStatus*, ModelMetadataGetDescription, (const OrtModelMetadata* metadata, OrtAllocator* allocator, char** value)) \
  X(116, 2, OrtStatus*, ModelMetadataLookupCustomMetadataMap, (const OrtModelMetadata* metadata, OrtAllocator* allocator, const char* key, char** value)) \
  X(117, 2, OrtStatus*, ModelMetadataGetVersion, (const OrtModelMetadata* metadata, int64_t* value)) \
  X(118, 2, void, ReleaseModelMetadata, (OrtModelMetadata* object)) \
  X(119, 3, OrtStatus*, CreateEnvWithGlobalThreadPools, (OrtLoggingLevel level, const char* logid, const OrtThreadingOptions* tp_options, OrtEnv** out)) \
  X(120, 3, OrtStatus*, DisablePerSessionThreads, (OrtSessionOptions* options)) \
  X(121, 3, OrtStatus*, CreateThreadingOptions, (OrtThreadingOptions** out)) \
  X(122, 3, void, ReleaseThreadingOptions, (OrtThreadingOptions* object)) \
  X(123, 3, OrtStatus*, ModelMetadataGetCustomMetadataMapKeys, (const OrtModelMetadata* metadata, OrtAllocator* allocator, char*** keys, int64_t* num_keys)) \
  X(125, 4, OrtStatus*, GetAvailableProviders, (char*** out_ptr, int* provider_length)) \
  X(126, 4, OrtStatus*, ReleaseAvailableProviders, (char** ptr, int providers_length)) \
  X(130, 5, OrtStatus*, AddSessionConfigEntry, (OrtSessionOptions* options, const char* config_key, const char* config_value)) \
  X(131, 5, OrtStatus*, CreateAllocator, (const OrtSession* session, const OrtMemoryInfo* mem_info, OrtAllocator** out)) \
  X(132, 5, void, ReleaseAllocator, (OrtAllocator* allocator)) \
  X(133, 5, OrtStatus*, RunWithBinding, (OrtSession* session, const OrtRunOptions* run_options, const OrtIoBinding* binding_ptr)) \
  X(134, 5, OrtStatus*, CreateIoBinding, (OrtSession* session, OrtIoBinding** out)) \
  X(135, 5, void, ReleaseIoBinding, (OrtIoBinding* binding_ptr)) \
  X(136, 5, OrtStatus*, BindInput, (OrtIoBinding* binding_ptr, const char* name, const OrtValue* val_ptr)) \
  X(137, 5, OrtStatus*, BindOutput, (OrtIoBinding* binding_ptr, const char* name, const OrtValue* val_ptr)) \
  X(138, 5, OrtStatus*, BindOutputToDevice, (OrtIoBinding* binding_ptr, const char* name, const OrtMemoryInfo* mem_info_ptr)) \
  X(140, 5, OrtStatus*, GetBoundOutputValues, (const OrtIoBinding* binding_ptr, OrtAllocator* allocator, OrtValue*** output, size_t* output_count)) \
  X(147, 5, OrtStatus*, SetGlobalIntraOpNumThreads, (OrtThreadingOptions* tp_options, int intra_op_num_threads)) \
  X(148, 5, OrtStatus*, SetGlobalInterOpNumThreads, (OrtThreadingOptions* tp_options, int inter_op_num_threads)) \
  X(151, 6, OrtStatus*, CreateEnvWithCustomLoggerAndGlobalThreadPools, (OrtLoggingFunction logging_function, void* logger_param, OrtLoggingLevel logging_level, const char* logid, const OrtThreadingOptions* tp_options, OrtEnv** out)) \
  X(194, 10, OrtStatus*, GetTensorMemoryInfo, (const OrtValue* value, const OrtMemoryInfo** mem_info)) \
  X(204, 11, OrtStatus*, SessionOptionsAppendExecutionProvider_CUDA_V2, (OrtSessionOptions* options, const OrtCUDAProviderOptionsV2* cuda_options)) \
  X(205, 11, OrtStatus*, CreateCUDAProviderOptions, (OrtCUDAProviderOptionsV2** out)) \
  X(206, 11, OrtStatus*, UpdateCUDAProviderOptions, (OrtCUDAProviderOptionsV2* cuda_options, const char* const* provider_options_keys, const char* const* provider_options_values, size_t num_keys)) \
  X(208, 11, void, ReleaseCUDAProviderOptions, (OrtCUDAProviderOptionsV2* object)) \
  X(216, 12, OrtStatus*, SessionOptionsAppendExecutionProvider, (OrtSessionOptions* options, const char* provider_name, const char* const* provider_options_keys, const char* const* provider_options_values, size_t num_keys)) \
  X(226, 14, OrtStatus*, UpdateEnvWithCustomLogLevel, (OrtEnv* ort_env, OrtLoggingLevel log_severity_level)) \
  X(250, 15, OrtStatus*, CastTypeInfoToOptionalTypeInfo, (const OrtTypeInfo* type_info, const OrtOptionalTypeInfo** out)) \
  X(251, 15, OrtStatus*, GetOptionalContainedTypeInfo, (const OrtOptionalTypeInfo* optional_type_info, OrtTypeInfo** out)) \
  X(254, 15, const char*, GetBuildInfoString, (void)) \
  X(260, 16, OrtStatus*, RunAsync, (OrtSession* session, const OrtRunOptions* run_options, const char* const* input_names, const OrtValue* const* inputs, size_t input_len, const char* const* output_names, size_t output_names_len, OrtValue** outputs, OrtRunAsyncCallback callback, void* user_data))

/* The API version these declarations were written against (the highest we ask GetApi for), and the
 * lowest we accept. Every slot above exists from API 16 on; 16 is ONNX Runtime 1.16 (2023). */
#define JB_ORT_API_VERSION_DECLARED 31
#define JB_ORT_API_VERSION_MINIMUM 16

/* Typed pointers to the functions above, filled from the runtime's table by jb_ort_bind. */
#define JB_ORT_MEMBER(slot, since, ret, name, params) ret (*name) params;
typedef struct JbOrtApi {
  JB_ORT_API_SLOTS(JB_ORT_MEMBER)
} JbOrtApi;
#undef JB_ORT_MEMBER

/* Copies each slot of the runtime's function table (an array of pointers) into `out`. */
static inline void jb_ort_bind(const OrtApi* table, JbOrtApi* out) {
  void* const* slots = (void* const*)table;
#define JB_ORT_COPY(slot, since, ret, name, params) *(void**)&out->name = slots[slot];
  JB_ORT_API_SLOTS(JB_ORT_COPY)
#undef JB_ORT_COPY
}

#ifdef __cplusplus
}
#endif
#endif /* JUNO_BRIDGE_THIRD_PARTY_ORT_ABI_H */
