# C and C++ declarations of the core library, written once; the .pyx modules only cimport them.
from cpython.ref cimport PyObject
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libcpp cimport bool
from libcpp.map cimport map
from libcpp.memory cimport shared_ptr, unique_ptr
from libcpp.optional cimport optional
from libcpp.string cimport string
from libcpp.vector cimport vector


cdef extern from "juno_bridge/juno_bridge.h" nogil:
    enum:
        JB_MAX_RANK
    ctypedef enum jb_dtype:
        JB_DTYPE_UNDEFINED, JB_DTYPE_FLOAT32, JB_DTYPE_UINT8, JB_DTYPE_INT8, JB_DTYPE_UINT16, JB_DTYPE_INT16,
        JB_DTYPE_INT32, JB_DTYPE_INT64, JB_DTYPE_BOOL, JB_DTYPE_FLOAT16, JB_DTYPE_FLOAT64, JB_DTYPE_UINT32,
        JB_DTYPE_UINT64, JB_DTYPE_BFLOAT16
    ctypedef enum jb_device_kind:
        JB_DEVICE_CPU, JB_DEVICE_CUDA, JB_DEVICE_CUDA_PINNED
    ctypedef struct jb_tensor_view:
        void* data
        int32_t dtype
        int32_t rank
        int64_t shape[16]
        int32_t device
        int32_t device_id
    const char* jb_version()
    ctypedef void (*jb_log_callback)(void* user_data, int32_t level, const char* source, const char* message)
    void jb_set_log_callback(jb_log_callback callback, void* user_data)
    int jb_set_log_level(int32_t level)
    int32_t jb_get_log_level()


cdef extern from "juno_bridge/session.hpp" namespace "jb" nogil:
    cdef enum class DType(int32_t):
        pass

    size_t dtype_size(DType dtype)
    const char* dtype_name(DType dtype)

    cdef cppclass TensorView:
        pass

    cdef cppclass Device:
        string name()

    cdef cppclass CTensorInfo "jb::TensorInfo":
        string name
        DType dtype
        vector[int64_t] shape
        vector[optional[string]] dim_names
        bool rank_known
        string type_name

    cdef cppclass Tensor:
        TensorView view
        shared_ptr[void] holder

    cdef cppclass SessionOptions:
        SessionOptions()
        int intra_op_threads

    cdef cppclass ModelMetadata:
        string producer_name, graph_name, domain, description
        int64_t version
        map[string, string] custom

    cdef cppclass SessionStats:
        uint64_t tensors_wrapped
        uint64_t inputs_staged
        uint64_t bytes_staged
        vector[const void*] input_addresses
        uint64_t backend_id
        int64_t backend_users

    int64_t open_backend_count()

    cdef cppclass CSession "jb::Session":
        bint is_open()
        vector[string] providers() except +
        vector[Device] devices() except +
        const char* async_mode() except +

    cdef cppclass OnnxRuntimeInfo:
        string path, version, build_info
        uint32_t api_version
        vector[string] providers


cdef extern from "juno_bridge/runtime.hpp" namespace "jb" nogil:
    cdef cppclass CRuntime "jb::Runtime":
        void close()
        bint is_open()
        int64_t open_backend_count()
        const char* executor_kind()
        int async_threads()
        int started_threads()


cdef extern from "glue.hpp" namespace "jb" nogil:
    cdef cppclass Status:
        int code
        int backend_code
        string message

    int set_option(SessionOptions* options, const string& key, const string& value, Status* status)
    int open_session(const string& model, const SessionOptions& options, CRuntime* runtime,
                     shared_ptr[CSession]* out, Status* status)
    int open_session_bytes(const char* data, size_t size, const SessionOptions& options, CRuntime* runtime,
                           shared_ptr[CSession]* out, Status* status)
    cdef cppclass RuntimeTask "jb::Runtime::Task":
        pass
    ctypedef int (*ExecutorCall)(void* executor, RuntimeTask* task) noexcept
    int make_runtime(int async_threads, unique_ptr[CRuntime]* out, Status* status)
    int make_runtime_with_executor(ExecutorCall call, void* executor, unique_ptr[CRuntime]* out, Status* status)
    void run_task(RuntimeTask* task) noexcept
    int session_signature(const CSession& session, vector[CTensorInfo]* inputs, vector[CTensorInfo]* outputs,
                          string* backend, Status* status)
    int session_metadata(const CSession& session, ModelMetadata* out, Status* status)
    int run_session(CSession& session, const jb_tensor_view* inputs, size_t num_inputs,
                    const int32_t* output_index, jb_tensor_view* outputs, Tensor* owned,
                    size_t num_outputs, Status* status)
    cdef cppclass CallViews:
        jb_tensor_view* inputs
        jb_tensor_view* outputs
        const int32_t* output_index
        Tensor* owned
        size_t num_inputs
        size_t num_outputs
        PyObject* temporaries
        jb_tensor_view* input_room(size_t n)
        jb_tensor_view* output_room(size_t n)
        void allocate_outputs(bint any)
    ctypedef void (*AsyncDone)(void* user_data, Status* status) noexcept
    int run_session_async(CSession& session, const jb_tensor_view* inputs, size_t num_inputs,
                          const int32_t* output_index, const jb_tensor_view* outputs, Tensor* owned,
                          size_t num_outputs, AsyncDone done, void* user_data, Status* status)
    void free_ended_thread_states() noexcept
    int session_stats(const CSession& session, SessionStats* out, Status* status)
    int session_empty(const CSession& session, DType dtype, const vector[int64_t]& shape, Tensor* out, Status* status)
    int get_onnxruntime_info(const string& library, OnnxRuntimeInfo* out, Status* status)


cdef extern from "juno_bridge/backends.hpp" namespace "jb" nogil:
    cdef cppclass BackendInfo:
        string name
        vector[string] aliases, prefixes, suffixes
        string directory_marker, plugin, extra, description

    const vector[BackendInfo]& backends()
    string backend_plugin_path(const BackendInfo& backend)
