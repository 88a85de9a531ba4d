# Arrays that are not numpy arrays: buffer-protocol objects and DLPack objects in host memory (torch tensors,
# JAX arrays, ...) as numpy views of their memory for fill_view's checks; DLPack objects in CUDA memory as
# views the core checks against the devices the session takes (included by _core.pyx).

# DLPack (type code, bits) -> numpy type number, for every type numpy (with ml_dtypes) knows: those the
# core does not take then get fill_view's own message, as the same numpy array would.
_DLPACK_TYPENUMS = {(0, 8): np.dtype(np.int8).num, (0, 16): np.dtype(np.int16).num,
                    (0, 32): np.dtype(np.int32).num, (0, 64): np.dtype(np.int64).num,
                    (1, 8): np.dtype(np.uint8).num, (1, 16): np.dtype(np.uint16).num,
                    (1, 32): np.dtype(np.uint32).num, (1, 64): np.dtype(np.uint64).num,
                    (2, 16): np.dtype(np.float16).num, (2, 32): np.dtype(np.float32).num,
                    (2, 64): np.dtype(np.float64).num, (4, 16): _BFLOAT16_TYPENUM,
                    (5, 64): np.dtype(np.complex64).num, (5, 128): np.dtype(np.complex128).num,
                    (6, 8): np.dtype(np.bool_).num}
for _code, _name in enumerate(("float8_e3m4", "float8_e4m3", "float8_e4m3b11fnuz", "float8_e4m3fn",
                               "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu"), 7):
    if hasattr(ml_dtypes, _name):
        _DLPACK_TYPENUMS[(_code, 8)] = np.dtype(getattr(ml_dtypes, _name)).num

# DLPack's device types, as a device is usually written ("cuda:0").
_DLPACK_DEVICES = {1: "cpu", 2: "cuda", 3: "cuda_host", 4: "opencl", 7: "vulkan", 8: "metal", 9: "vpi",
                   10: "rocm", 11: "rocm_host", 12: "ext_dev", 13: "cuda_managed", 14: "oneapi", 15: "webgpu",
                   16: "hexagon", 17: "maia", 18: "trn"}
cdef long double _NO_ELEMENTS  # where an array of no elements points, aligned for every dtype
_DEVICES_TAKEN = ("juno-bridge takes host memory (DLPack cpu, cuda_host) and CUDA device memory (cuda) where the "
                  "session computes on that GPU, and never copies between devices: copy it yourself (e.g. "
                  "tensor.cpu()) or pass a host array")


cdef object foreign_memory(object obj, jb_tensor_view* view, str role, object name, bint writable):
    """What views `obj`'s memory, never a copy: a numpy array over host memory, with view.device set (cpu, or
    cuda_pinned for DLPack's cuda_host); or, for CUDA device memory, the DLPack export with `view` filled
    from it. Else an error saying why there is none."""
    what = _what(role, name)
    view.device = JB_DEVICE_CPU
    view.device_id = 0
    if hasattr(obj, "__dlpack_device__"):
        try:
            kind, index = (int(x) for x in obj.__dlpack_device__())
        except Exception as error:
            raise InputTypeError(f"{what}: the {type(obj).__name__}'s __dlpack_device__() gave no (device type, "
                                 f"device id): {error!r}") from error
        if kind != kDLCPU and kind != kDLCUDA and kind != kDLCUDAHost:
            raise InputError(f"{what}: the {type(obj).__name__} is on {_device_name(kind, index)}; {_DEVICES_TAKEN}")
        if hasattr(obj, "__dlpack__"):
            return _from_dlpack(obj, what, view, writable)
        if kind != kDLCPU:
            raise InputTypeError(f"{what}: the {type(obj).__name__} is on {_device_name(kind, index)} and has no "
                                 f"__dlpack__ to export it")
    elif hasattr(obj, "__cuda_array_interface__"):
        raise InputError(f"{what}: the {type(obj).__name__} has __cuda_array_interface__ only, which does not say "
                         f"which GPU its memory is on: pass a DLPack object (torch, CuPy and JAX arrays have "
                         f"__dlpack__; numba: cupy.asarray(array)); {_DEVICES_TAKEN}")
    if PyObject_CheckBuffer(obj):
        return np.asarray(memoryview(obj))  # a view of the exporter's memory in its own format, not a copy
    raise InputTypeError(f"{what}: expected a numpy array, a buffer-protocol object or a DLPack object "
                         f"(__dlpack__, as a torch tensor), got {type(obj).__name__}")


cdef str _device_name(int kind, int index):
    return f"{_DLPACK_DEVICES.get(kind, f'DLPack device type {kind}')}:{index}"


@cython.final
cdef class _DLPackMemory:
    """A DLPack tensor taken out of its capsule: calls its exporter's deleter once the numpy array that views
    it is gone (its base)."""
    cdef DLManagedTensorVersioned* versioned
    cdef DLManagedTensor* legacy

    def __dealloc__(self):
        if self.versioned != NULL and self.versioned.deleter != NULL:
            self.versioned.deleter(self.versioned)
        elif self.legacy != NULL and self.legacy.deleter != NULL:
            self.legacy.deleter(self.legacy)


cdef object _from_dlpack(object obj, str what, jb_tensor_view* view, bint writable):
    """A numpy view of a DLPack object's host memory, writable unless the export says read-only (numpy's own
    from_dlpack knows no bfloat16, hence the capsule is read here); for CUDA memory, the export itself, with
    `view` filled from it."""
    try:
        try:
            capsule = obj.__dlpack__(max_version=(DLPACK_MAJOR_VERSION, 0), copy=False)
        except TypeError:  # an exporter from before DLPack 1.0 takes no keywords
            capsule = obj.__dlpack__()
    except Exception as error:
        raise InputError(f"{what}: the {type(obj).__name__} refused its DLPack export: {error}") from error
    cdef _DLPackMemory memory = _DLPackMemory.__new__(_DLPackMemory)
    cdef DLTensor* tensor
    cdef bint read_only = False
    if PyCapsule_IsValid(capsule, b"dltensor_versioned"):
        memory.versioned = <DLManagedTensorVersioned*>PyCapsule_GetPointer(capsule, b"dltensor_versioned")
        PyCapsule_SetName(capsule, b"used_dltensor_versioned")  # `memory` deletes it now, not the capsule
        if memory.versioned.version.major != DLPACK_MAJOR_VERSION:
            raise InputTypeError(f"{what}: the {type(obj).__name__} exports DLPack {memory.versioned.version.major}."
                                 f"{memory.versioned.version.minor}; juno-bridge reads DLPack "
                                 f"{DLPACK_MAJOR_VERSION}.x")
        tensor = &memory.versioned.dl_tensor
        read_only = (memory.versioned.flags & DLPACK_FLAG_BITMASK_READ_ONLY) != 0
    elif PyCapsule_IsValid(capsule, b"dltensor"):
        memory.legacy = <DLManagedTensor*>PyCapsule_GetPointer(capsule, b"dltensor")
        PyCapsule_SetName(capsule, b"used_dltensor")
        tensor = &memory.legacy.dl_tensor
    else:
        raise InputTypeError(f"{what}: {type(obj).__name__}.__dlpack__() returned a {type(capsule).__name__}, "
                             f"not an unused DLPack capsule")
    cdef int32_t kind = tensor.device.device_type
    if kind != kDLCPU and kind != kDLCUDA and kind != kDLCUDAHost:  # it said one device, then exported elsewhere
        raise InputError(f"{what}: the {type(obj).__name__} is on "
                         f"{_device_name(kind, tensor.device.device_id)}; {_DEVICES_TAKEN}")
    typenum = _DLPACK_TYPENUMS.get((tensor.dtype.code, tensor.dtype.bits)) if tensor.dtype.lanes == 1 else None
    if typenum is None:
        raise InputTypeError(f"{what}: the {type(obj).__name__}'s DLPack dtype (type code {tensor.dtype.code}, "
                             f"{tensor.dtype.bits} bits, {tensor.dtype.lanes} lanes) is not supported; expected one "
                             f"of {', '.join(SUPPORTED_DTYPES)}")
    if tensor.ndim > JB_MAX_RANK:
        raise InputError(f"{what}: rank {tensor.ndim} exceeds the maximum of {JB_MAX_RANK}")
    cdef cnp.npy_intp dims[JB_MAX_RANK]
    cdef cnp.npy_intp strides[JB_MAX_RANK]
    cdef cnp.npy_intp itemsize = tensor.dtype.bits // 8
    cdef bint empty = False
    cdef int d
    for d in range(tensor.ndim):
        dims[d] = tensor.shape[d]
        strides[d] = tensor.strides[d] * itemsize if tensor.strides != NULL else 0
        empty = empty or dims[d] == 0
    cdef char* data = <char*>tensor.data + tensor.byte_offset
    if kind == kDLCUDA:
        _fill_device_view(tensor, data, <int>typenum, read_only and writable, what, view)
        return memory
    if kind == kDLCUDAHost:
        view.device = JB_DEVICE_CUDA_PINNED
    if tensor.data == NULL:  # allowed for no elements; numpy would allocate memory for a NULL
        if not empty:
            raise InputError(f"{what}: the {type(obj).__name__}'s DLPack export has no data pointer")
        data = <char*>&_NO_ELEMENTS
    cdef cnp.npy_intp* layout = NULL  # C-contiguous
    if tensor.strides != NULL:
        layout = strides
    arr = cnp.PyArray_New(np.ndarray, tensor.ndim, dims, <int>typenum, layout, data, 0,
                          0 if read_only else cnp.NPY_ARRAY_WRITEABLE, None)
    cnp.set_array_base(arr, memory)
    return arr


cdef int _fill_device_view(DLTensor* tensor, char* data, int typenum, bint read_only_output, str what,
                           jb_tensor_view* view) except -1:
    """`view` over a DLPack tensor in CUDA memory, checked as fill_view checks a numpy array (the core then
    checks the rest, and whether the session computes on that GPU). Nothing here reads the memory."""
    cdef int32_t dtype = jb_dtype_of(typenum)
    if dtype == 0:
        raise InputTypeError(f"{what}: dtype {cnp.PyArray_DescrFromType(typenum)} is not supported; "
                             f"expected one of {', '.join(SUPPORTED_DTYPES)}")
    if read_only_output:
        raise InputError(f"{what}: the output buffer is read-only (its DLPack export says so)")
    cdef int64_t expected = 1
    cdef int d
    if tensor.strides != NULL:
        for d in reversed(range(tensor.ndim)):
            if tensor.shape[d] != 1 and tensor.strides[d] != expected:
                raise InputError(f"{what}: expected a C-contiguous tensor, got strides "
                                 f"{tuple(tensor.strides[i] for i in range(tensor.ndim))} (in elements) for shape "
                                 f"{tuple(tensor.shape[i] for i in range(tensor.ndim))}; juno-bridge never copies "
                                 f"silently (torch: .contiguous())")
            expected *= tensor.shape[d]
    view.data = data
    view.dtype = dtype
    view.rank = tensor.ndim
    for d in range(tensor.ndim):
        view.shape[d] = tensor.shape[d]
    view.device = JB_DEVICE_CUDA
    view.device_id = tensor.device.device_id
    return 0
