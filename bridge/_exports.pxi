# RuntimeMemory as a DLPack producer: the memory of an output juno-bridge's backend allocated (in GPU memory
# with output_device="cuda") handed to torch, CuPy, JAX or numpy without a copy, owned until the last
# consumer lets it go (included by _core.pyx). Written here because DLPack has no producer library to call:
# a producer is the capsule and its deleter.

# DLPack (type code, bits) of each numpy type number juno-bridge passes.
_DLPACK_OF_TYPENUM = {typenum: code_bits for code_bits, typenum in _DLPACK_TYPENUMS.items()}


cdef struct _Export:
    # One export: the managed tensor a capsule points to (versioned or legacy, as the consumer asked), the
    # shape and strides its DLTensor points to, and the RuntimeMemory it holds a reference to.
    DLManagedTensorVersioned versioned
    DLManagedTensor legacy
    int64_t shape[JB_MAX_RANK]
    int64_t strides[JB_MAX_RANK]
    PyObject* owner


cdef void _release_export(_Export* export) noexcept nogil:
    # A consumer's deleter may run on any thread, with or without the GIL.
    with gil:
        Py_DECREF(<object>export.owner)
    free(export)


cdef void _delete_versioned(DLManagedTensorVersioned* tensor) noexcept nogil:
    _release_export(<_Export*>tensor.manager_ctx)


cdef void _delete_legacy(DLManagedTensor* tensor) noexcept nogil:
    _release_export(<_Export*>tensor.manager_ctx)


cdef void _drop_unused_capsule(object capsule) noexcept:
    # A capsule no consumer took (it is renamed "used_..." when one does) still owns its export.
    cdef DLManagedTensorVersioned* versioned
    cdef DLManagedTensor* legacy
    if PyCapsule_IsValid(capsule, b"dltensor_versioned"):
        versioned = <DLManagedTensorVersioned*>PyCapsule_GetPointer(capsule, b"dltensor_versioned")
        versioned.deleter(versioned)
    elif PyCapsule_IsValid(capsule, b"dltensor"):
        legacy = <DLManagedTensor*>PyCapsule_GetPointer(capsule, b"dltensor")
        legacy.deleter(legacy)


cdef tuple _dlpack_device(RuntimeMemory memory):
    # Host memory, pinned or not, is kDLCPU: what numpy takes, and how torch exports its own pinned memory.
    if memory.view.device == JB_DEVICE_CUDA:
        return (<int>kDLCUDA, <int>memory.view.device_id)
    return (<int>kDLCPU, 0)


cdef object _export(RuntimeMemory memory, object stream, object max_version, object dl_device, object copy):
    """RuntimeMemory.__dlpack__: a capsule over the memory, which it keeps alive until the consumer's
    deleter (or, unconsumed, the capsule's end)."""
    where = _dlpack_device(memory)
    if copy:
        raise BufferError("juno-bridge exports its memory without a copy (copy=True asked for one)")
    if dl_device is not None and tuple(dl_device) != where:
        raise BufferError(f"the memory is on {_device_name(where[0], where[1])}, not on "
                          f"{_device_name(dl_device[0], dl_device[1])}; juno-bridge never copies between devices")
    # stream: nothing to order. A run returns once its outputs are complete (ONNX Runtime synchronises its
    # CUDA stream at the end of a run), so they are ready on any stream.
    cdef const jb_tensor_view* view = &memory.view
    code, bits = _DLPACK_OF_TYPENUM[_TYPENUM_FROM_JB[view.dtype]]
    cdef _Export* export = <_Export*>calloc(1, sizeof(_Export))
    if export == NULL:
        raise MemoryError()
    cdef DLTensor* tensor
    cdef bint versioned = max_version is not None and max_version[0] >= DLPACK_MAJOR_VERSION
    if versioned:
        export.versioned.version.major = DLPACK_MAJOR_VERSION
        export.versioned.version.minor = 0
        export.versioned.manager_ctx = export
        export.versioned.deleter = _delete_versioned
        tensor = &export.versioned.dl_tensor
    else:
        export.legacy.manager_ctx = export
        export.legacy.deleter = _delete_legacy
        tensor = &export.legacy.dl_tensor
    cdef int64_t stride = 1
    cdef int d
    for d in reversed(range(view.rank)):
        export.shape[d] = view.shape[d]
        export.strides[d] = stride
        stride *= view.shape[d]
    tensor.data = view.data
    tensor.device.device_type = where[0]
    tensor.device.device_id = where[1]
    tensor.ndim = view.rank
    tensor.dtype.code = code
    tensor.dtype.bits = bits
    tensor.dtype.lanes = 1
    tensor.shape = export.shape
    tensor.strides = export.strides
    tensor.byte_offset = 0
    Py_INCREF(memory)
    export.owner = <PyObject*>memory
    try:
        if versioned:
            return PyCapsule_New(&export.versioned, b"dltensor_versioned", _drop_unused_capsule)
        return PyCapsule_New(&export.legacy, b"dltensor", _drop_unused_capsule)
    except BaseException:
        _release_export(export)
        raise


cdef object device_output(RuntimeMemory memory):
    """An output in GPU memory as the caller most likely computes with it: a torch tensor where torch is
    installed with CUDA, else a CuPy array, else the RuntimeMemory itself (each a view of the same memory)."""
    for module in ("torch", "cupy"):
        try:
            library = importlib.import_module(module)
            return library.from_dlpack(memory)
        except ImportError:
            continue
        except Exception as error:  # e.g. a CPU-only torch: the next one, or the memory itself, serves
            logging.getLogger("juno_bridge.outputs").debug("output in %s memory: %s.from_dlpack refused it (%s)",
                                                          memory.device, module, error)
    return memory
