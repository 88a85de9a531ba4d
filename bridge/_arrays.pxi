# numpy arrays <-> the core's tensor views: the dtype tables, fill_view (every check only Python can make; other
# array objects are first viewed as numpy arrays, _foreign.pxi), the arrays over memory the runtime allocated,
# TensorInfo (included by _core.pyx).

# jb dtype code (the C ABI's jb_dtype) -> numpy dtype: the Python side's one dtype table
# (juno_bridge.dtypes presents it; the C tables below are derived from it).
NUMPY_DTYPES = {JB_DTYPE_FLOAT32: np.dtype(np.float32), JB_DTYPE_UINT8: np.dtype(np.uint8),
                JB_DTYPE_INT8: np.dtype(np.int8), JB_DTYPE_UINT16: np.dtype(np.uint16),
                JB_DTYPE_INT16: np.dtype(np.int16), JB_DTYPE_INT32: np.dtype(np.int32),
                JB_DTYPE_INT64: np.dtype(np.int64), JB_DTYPE_BOOL: np.dtype(np.bool_),
                JB_DTYPE_FLOAT16: np.dtype(np.float16), JB_DTYPE_FLOAT64: np.dtype(np.float64),
                JB_DTYPE_UINT32: np.dtype(np.uint32), JB_DTYPE_UINT64: np.dtype(np.uint64),
                JB_DTYPE_BFLOAT16: np.dtype(ml_dtypes.bfloat16)}
SUPPORTED_DTYPES = tuple(str(d) for d in NUMPY_DTYPES.values())

cdef int32_t _JB_FROM_TYPENUM[64]  # numpy's built-in type numbers
# bfloat16 is a type that ml_dtypes registers with numpy: its number is given out at run time (>= 256).
cdef int _BFLOAT16_TYPENUM = NUMPY_DTYPES[JB_DTYPE_BFLOAT16].num
cdef int _TYPENUM_FROM_JB[17]
cdef int _ITEMSIZE_FROM_JB[17]


cdef void _init_dtype_tables() noexcept:
    cdef int i
    for i in range(64):
        _JB_FROM_TYPENUM[i] = 0
    for i in range(17):
        _TYPENUM_FROM_JB[i] = -1
        _ITEMSIZE_FROM_JB[i] = 0
    for code, dtype in NUMPY_DTYPES.items():
        _TYPENUM_FROM_JB[code] = dtype.num
        _ITEMSIZE_FROM_JB[code] = dtype.itemsize
        if dtype.num < 64:
            _JB_FROM_TYPENUM[dtype.num] = code
    # int64/uint64 have two numpy type numbers on LP64 (long and long long).
    _JB_FROM_TYPENUM[<int>cnp.NPY_LONGLONG] = JB_DTYPE_INT64
    _JB_FROM_TYPENUM[<int>cnp.NPY_ULONGLONG] = JB_DTYPE_UINT64
    _JB_FROM_TYPENUM[<int>cnp.NPY_LONG] = JB_DTYPE_INT64 if sizeof(long) == 8 else JB_DTYPE_INT32
    _JB_FROM_TYPENUM[<int>cnp.NPY_ULONG] = JB_DTYPE_UINT64 if sizeof(long) == 8 else JB_DTYPE_UINT32


_init_dtype_tables()


cdef inline int32_t jb_dtype_of(int typenum) noexcept:
    """The core's dtype code for a numpy type number; 0 for a type the core does not take."""
    if 0 <= typenum < 64:
        return _JB_FROM_TYPENUM[typenum]
    return JB_DTYPE_BFLOAT16 if typenum == _BFLOAT16_TYPENUM else 0


cdef int numpy_typenum(int32_t dtype) noexcept:
    return _TYPENUM_FROM_JB[dtype] if 0 <= dtype < 17 else -1


cdef str _what(str role, object name):
    """How an error names the tensor: "input 'x'", or the role alone ("pmt_ids")."""
    return role if name is None else f"{role} '{name}'"


cdef int fill_view(object obj, jb_tensor_view* view, str role, object name, bint writable,
                   list keep) except -1:
    cdef cnp.ndarray arr
    if cnp.PyArray_Check(obj):
        arr = <cnp.ndarray>obj
        view.device = JB_DEVICE_CPU
        view.device_id = 0
    else:
        # A numpy view of a buffer-protocol or DLPack object's host memory (view.device says whether it is
        # pinned), or a DLPack export of CUDA memory with `view` filled from it; or refused.
        memory = foreign_memory(obj, view, role, name, writable)
        keep.append(memory)  # alive until the run returns
        if not cnp.PyArray_Check(memory):
            return 0
        arr = <cnp.ndarray>memory
    cdef int flags = cnp.PyArray_FLAGS(arr)
    if not (flags & cnp.NPY_ARRAY_C_CONTIGUOUS):
        raise InputError(f"{_what(role, name)}: expected a C-contiguous array, got strides {(<object>arr).strides} "
                         f"for shape {(<object>arr).shape}; pass np.ascontiguousarray(...) (juno-bridge never copies "
                         f"silently)")
    if not (flags & cnp.NPY_ARRAY_ALIGNED):
        raise InputError(f"{_what(role, name)}: array data at {<uintptr_t>cnp.PyArray_DATA(arr):#x} is not aligned "
                         f"to its {arr.dtype.itemsize}-byte elements")
    if writable and not (flags & cnp.NPY_ARRAY_WRITEABLE):
        raise InputError(f"{_what(role, name)}: the output buffer is read-only"
                         + ("" if arr is obj else f" (the {type(obj).__name__} exports its memory read-only)"))
    cdef int typenum = cnp.PyArray_TYPE(arr)
    cdef int32_t dtype = jb_dtype_of(typenum)
    if dtype == 0 or cnp.PyArray_ISBYTESWAPPED(arr):
        raise InputTypeError(f"{_what(role, name)}: dtype {arr.dtype.str if not arr.dtype.isnative else arr.dtype} "
                             f"is not supported; expected one of {', '.join(SUPPORTED_DTYPES)} "
                             f"in native byte order")
    cdef int ndim = cnp.PyArray_NDIM(arr)
    if ndim > JB_MAX_RANK:
        raise InputError(f"{_what(role, name)}: rank {ndim} exceeds the maximum of {JB_MAX_RANK}")
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(arr)
    cdef int d
    view.data = cnp.PyArray_DATA(arr)
    view.dtype = dtype
    view.rank = ndim
    for d in range(ndim):
        view.shape[d] = dims[d]
    return 0


cdef class RuntimeMemory:
    """Memory juno-bridge's backend allocated (an output given no buffer, or Session.empty's), alive while
    this object is: the base of the numpy array over host memory, or itself the result for an output in GPU
    memory (output_device="cuda" without torch or CuPy). A DLPack exporter (_exports.pxi): torch.from_dlpack,
    cupy.from_dlpack, np.from_dlpack and juno-bridge's own inputs take it without a copy."""
    cdef shared_ptr[void] holder
    cdef readonly uintptr_t address  # the pointer the backend returned (tests check it is not copied)
    cdef readonly object aliased  # the caller's input this output is, when the model passes one through
    cdef readonly str device  # "cpu", "cuda_pinned" (page-locked host memory) or "cuda:N"
    cdef jb_tensor_view view  # data, dtype, shape and device, for DLPack

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        return _export(self, stream, max_version, dl_device, copy)

    def __dlpack_device__(self):
        return _dlpack_device(self)

    @property
    def shape(self):
        return tuple(self.view.shape[d] for d in range(self.view.rank))

    @property
    def dtype(self):
        return np.dtype(NUMPY_DTYPES[self.view.dtype])

    def __repr__(self):
        return f"RuntimeMemory(shape={self.shape}, dtype={self.dtype}, device={self.device!r})"


cdef object aliased_input(const jb_tensor_view* out, const jb_tensor_view* ins, size_t n_in, list sources):
    """The caller's input whose memory a runtime-allocated output lies in, or None. ONNX Runtime hands a graph
    input that is also a graph output straight back: the output array must then keep that input alive."""
    if out.device == JB_DEVICE_CUDA:
        return None  # GPU memory: never the caller's host arrays
    cdef uintptr_t address = <uintptr_t>out.data
    cdef uintptr_t start
    cdef size_t j, nbytes
    cdef int d
    for j in range(n_in):
        nbytes = <size_t>_ITEMSIZE_FROM_JB[ins[j].dtype]
        for d in range(ins[j].rank):
            nbytes *= <size_t>ins[j].shape[d]
        start = <uintptr_t>ins[j].data
        if nbytes and start <= address < start + nbytes:
            return sources[j]
    return None


cdef object adopt(Tensor& tensor, object aliased):
    cdef jb_tensor_view* view = <jb_tensor_view*>&tensor.view
    cdef cnp.npy_intp dims[JB_MAX_RANK]
    cdef int d
    for d in range(view.rank):
        dims[d] = view.shape[d]
    cdef RuntimeMemory memory = RuntimeMemory.__new__(RuntimeMemory)
    memory.holder = tensor.holder
    memory.address = <uintptr_t>view.data
    memory.aliased = aliased
    memory.view = view[0]
    if view.device == JB_DEVICE_CUDA:
        memory.device = f"cuda:{view.device_id}"
        return device_output(memory)
    memory.device = "cuda_pinned" if view.device == JB_DEVICE_CUDA_PINNED else "cpu"
    arr = cnp.PyArray_SimpleNewFromData(view.rank, dims, _TYPENUM_FROM_JB[view.dtype], view.data)
    cnp.set_array_base(arr, memory)
    return arr


cdef object to_info(const CTensorInfo* info):
    cdef size_t d
    name = info.name.decode()
    dtype = NUMPY_DTYPES.get(<int>info.dtype)
    if not info.rank_known:
        return TensorInfo(name, dtype, None, None, info.type_name.decode())
    shape = []
    names = []
    for d in range(info.shape.size()):
        shape.append(info.shape[d])
        names.append(info.dim_names[d].value().decode() if info.dim_names[d].has_value() else None)
    return TensorInfo(name, dtype, tuple(shape), tuple(names), info.type_name.decode())


cdef object session_empty(CSession* session, object shape, object dtype):
    """Session.empty: a numpy array over the memory Session::empty allocates, which it keeps alive."""
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    cdef vector[int64_t] c_shape
    for d in dims:
        c_shape.push_back(operator.index(d))
    wanted = np.dtype(dtype)
    cdef int32_t code = jb_dtype_of(wanted.num) if wanted.isnative else 0
    if code == 0:
        raise InputTypeError(f"Session.empty: dtype {wanted} is not one juno-bridge passes "
                             f"({', '.join(str(d) for d in NUMPY_DTYPES.values())})")
    cdef Tensor tensor
    cdef Status status
    if c_session_empty(deref(session), <DType>code, c_shape, &tensor, &status):
        raise_status(status)
    return adopt(tensor, None)
