# The DLPack ABI (dmlc/dlpack's dlpack.h, v1.x; v0.x for DLManagedTensor) as a consumer reads it: the
# structs an exporter's capsule points to, laid out as the header lays them out.
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef enum:
    kDLCPU = 1
    kDLCUDA = 2
    kDLCUDAHost = 3  # pinned host memory (cudaMallocHost)
    DLPACK_FLAG_BITMASK_READ_ONLY = 1
    DLPACK_MAJOR_VERSION = 1

cdef struct DLDevice:
    int32_t device_type
    int32_t device_id

cdef struct DLDataType:
    uint8_t code
    uint8_t bits
    uint16_t lanes

cdef struct DLTensor:
    void* data
    DLDevice device
    int32_t ndim
    DLDataType dtype
    int64_t* shape
    int64_t* strides  # in elements; NULL (before v1.2): C-contiguous
    uint64_t byte_offset

cdef struct DLManagedTensor:  # the capsule "dltensor" (DLPack before 1.0)
    DLTensor dl_tensor
    void* manager_ctx
    void (*deleter)(DLManagedTensor*) noexcept

cdef struct DLPackVersion:
    uint32_t major
    uint32_t minor

cdef struct DLManagedTensorVersioned:  # the capsule "dltensor_versioned" (DLPack 1.0 on)
    DLPackVersion version
    void* manager_ctx
    void (*deleter)(DLManagedTensorVersioned*) noexcept
    uint64_t flags
    DLTensor dl_tensor
