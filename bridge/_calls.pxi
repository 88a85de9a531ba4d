# One call of Session.run/run_async as the core takes it: _lay_out checks the caller's arrays and fills a
# CallViews (glue.hpp: their views, in the order the core takes them). Each Session keeps the _CallLayout of
# the call signatures it has seen, so that a repeated call looks up no name (included by _core.pyx).

cdef enum:
    MAX_LAYOUTS = 8     # call signatures whose layout a Session remembers (a program uses a handful)


cdef tuple _as_names(outputs):
    return (outputs,) if isinstance(outputs, str) else tuple(outputs)


cdef object _inputs_of(object inputs):
    """`inputs` as a call takes them: a dict or a sequence (list, tuple); another mapping as a dict."""
    if type(inputs) is dict or isinstance(inputs, (list, tuple)):
        return inputs
    if not hasattr(inputs, "keys"):
        raise InputTypeError(f"inputs must be a dict name -> array or a sequence of arrays, "
                             f"got {type(inputs).__name__}")
    return dict(inputs)


cdef list _temporaries(CallViews& views):
    """The list of temporary arrays `views` holds, made on first need."""
    if views.temporaries == NULL:
        made = []
        Py_INCREF(made)
        views.temporaries = <PyObject*>made
    return <list>views.temporaries


cdef inline int _fill(CallViews& views, object obj, jb_tensor_view* view, str role, object name,
                      bint writable) except -1:
    """fill_view, the common case inline: a numpy array, C-contiguous and aligned (and writable for an
    output), of a supported dtype in native byte order, of a rank the core takes. Anything else goes to
    fill_view, which checks it all again and views it (a buffer-protocol or DLPack object, alive in `views`)
    or says what is wrong."""
    cdef int flags, typenum, ndim, d
    cdef cnp.npy_intp* dims
    cdef int needed = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED
    cdef int32_t dtype = 0
    if cnp.PyArray_Check(obj):
        if writable:
            needed |= cnp.NPY_ARRAY_WRITEABLE
        flags = cnp.PyArray_FLAGS(<cnp.ndarray>obj)
        typenum = cnp.PyArray_TYPE(<cnp.ndarray>obj)
        ndim = cnp.PyArray_NDIM(<cnp.ndarray>obj)
        dtype = jb_dtype_of(typenum)
        if ((flags & needed) == needed and dtype != 0 and ndim <= JB_MAX_RANK
                and not cnp.PyArray_ISBYTESWAPPED(<cnp.ndarray>obj)):
            dims = cnp.PyArray_DIMS(<cnp.ndarray>obj)
            view.data = cnp.PyArray_DATA(<cnp.ndarray>obj)
            view.dtype = dtype
            view.rank = ndim
            for d in range(ndim):
                view.shape[d] = dims[d]
            view.device = JB_DEVICE_CPU
            view.device_id = 0
            return 0
        return fill_view(obj, view, role, name, writable, None)  # raises
    return fill_view(obj, view, role, name, writable, _temporaries(views))


cdef inline void _allocated(jb_tensor_view* view) noexcept:
    """`view` is an output the runtime allocates, in host memory (the rest of the view is the runtime's to
    fill: CallViews' room is not cleared between calls)."""
    view.data = NULL
    view.device = JB_DEVICE_CPU
    view.device_id = 0


@cython.final
cdef class _CallLayout:
    """How the arrays of one call signature (the input dict's keys in order, the keys of out=, the
    outputs= names) are laid out for the core: the model index of each input, the output each out=
    entry receives, the outputs produced. Made by the first call of that signature, once every name
    has been checked, and reused by every later one: the names are looked up once, the arrays are
    still checked on every call."""
    cdef tuple in_names         # the input dict's keys in the caller's order; None: a sequence in model order
    cdef vector[Py_ssize_t] in_index  # model input index of each
    cdef tuple out_keys         # the keys of out= in the caller's order; None: no out=
    cdef vector[Py_ssize_t] out_slot  # the position in `names` of each key of out=
    cdef tuple outputs          # the outputs= names; None: all of them
    cdef tuple names            # the outputs this call produces, in order
    cdef vector[int32_t] out_index
    cdef bint out_is_result     # out= holds exactly `names`, in order: the result is out itself

    cdef bint fill(self, Session session, object inputs, object out, object outputs,
                   CallViews& views) except -1:
        """Fills `views` from a call of this layout's signature (every array checked, as _fill does) and
        returns True; False as soon as the call turns out to have another signature (`views` then partly
        filled). Each dict is read once: its keys are compared with the layout's as its arrays are viewed."""
        if outputs is not self.outputs and (outputs is None or self.outputs is None
                                            or _as_names(outputs) != self.outputs):
            return False
        if (out is None) != (self.out_keys is None):
            return False
        cdef Py_ssize_t n, j, i, pos = 0
        cdef PyObject* key
        cdef PyObject* value
        cdef jb_tensor_view* in_views
        if self.in_names is None:  # a sequence, in model order
            if type(inputs) is dict or len(inputs) != <Py_ssize_t>session._n_in:
                return False
            in_views = views.input_room(session._n_in)
            for j in range(<Py_ssize_t>session._n_in):
                _fill(views, inputs[j], &in_views[j], "input", session._input_names[j], False)
        else:
            n = len(self.in_names)
            if type(inputs) is not dict or len(<dict>inputs) != n:
                return False
            in_views = views.input_room(session._n_in)
            for j in range(n):
                PyDict_Next(inputs, &pos, &key, &value)
                if <object>key is not self.in_names[j] and <object>key != self.in_names[j]:
                    return False
                _fill(views, <object>value, &in_views[self.in_index[j]], "input", <object>key, False)

        cdef Py_ssize_t n_out = self.out_index.size()
        cdef jb_tensor_view* out_views = views.output_room(n_out)
        views.output_index = self.out_index.data()
        for i in range(n_out):
            _allocated(&out_views[i])  # unless out= gives a buffer
        cdef bint allocating = out is None or <Py_ssize_t>self.out_slot.size() < n_out
        if out is not None:
            n = self.out_slot.size()
            if len(<dict>out) != n:
                return False
            pos = 0
            for j in range(n):
                PyDict_Next(out, &pos, &key, &value)
                if <object>key is not self.out_keys[j] and <object>key != self.out_keys[j]:
                    return False
                i = self.out_slot[j]
                if <object>value is None:
                    allocating = True
                else:
                    _fill(views, <object>value, &out_views[i], "output", self.names[i], True)
        views.allocate_outputs(allocating)
        return True


cdef _CallLayout _lay_out(Session session, object inputs, object out, object outputs, CallViews& views):
    """Fills `views` with one call's arrays, every name and Python-side property checked, and returns the
    call's layout. `inputs`: a dict or a sequence (_inputs_of); `out`: a dict or None; the Session is open."""
    cdef list layouts = session._layouts
    cdef _CallLayout layout
    cdef Py_ssize_t k
    for k in range(len(layouts)):
        layout = <_CallLayout>layouts[k]
        if layout.fill(session, inputs, out, outputs, views):
            return layout
    return _new_layout(session, inputs, out, outputs, views)


cdef _CallLayout _new_layout(Session session, object inputs, object out, object outputs, CallViews& views):
    """_lay_out for a call signature without a layout yet: every name looked up and checked, then the
    layout remembered."""
    # Inputs, in model order.
    cdef size_t n_in = session._n_in
    cdef jb_tensor_view* in_views = views.input_room(n_in)
    cdef Py_ssize_t i, j = 0
    if type(inputs) is dict:
        for name, array in (<dict>inputs).items():
            index = session._input_index.get(name)
            if index is None:
                raise InputError(f"unknown input {name!r}; the model's inputs are "
                                 f"{_names(session._input_index)}")
            _fill(views, array, &in_views[<Py_ssize_t>index], "input", name, False)
            j += 1
        if <size_t>j != n_in:
            missing = [n for n in session._input_index if n not in inputs]
            raise InputError(f"missing input(s) {_names(missing)}; the model's inputs are "
                             f"{_names(session._input_index)}")
    else:
        if session._unordered is not None:
            raise InputError(session._unordered)
        if <size_t>len(inputs) != n_in:
            raise InputError(f"the model takes {n_in} input(s) ({_names(session._input_index)}), "
                             f"got {len(inputs)}")
        for i in range(<Py_ssize_t>n_in):
            _fill(views, inputs[i], &in_views[i], "input", session._input_names[i], False)

    # Outputs: which ones, and where they go.
    cdef vector[int32_t] chosen
    cdef const int32_t* out_index = session._all_outputs.data()
    cdef size_t n_out = session._n_out
    cdef tuple names = session._output_names
    if outputs is not None:
        names = _as_names(outputs)
        for name in names:
            index = session._output_index.get(name)
            if index is None:
                raise InputError(f"unknown output {name!r}; the model's outputs are "
                                 f"{_names(session._output_names)}")
            chosen.push_back(index)
        out_index = chosen.data()
        n_out = chosen.size()

    cdef jb_tensor_view* out_views = views.output_room(n_out)
    cdef bint allocating = False
    cdef Py_ssize_t n_placed = 0
    for i in range(<Py_ssize_t>n_out):
        target = None if out is None else (<dict>out).get(names[i])
        if target is None:
            _allocated(&out_views[i])
            allocating = True
        else:
            _fill(views, target, &out_views[i], "output", names[i], True)
            n_placed += 1
    if out is not None and n_placed != len(out):
        # The difference is either names this run does not produce, or entries of None (allocate).
        unknown = [n for n in out if n not in names]
        if unknown:
            raise InputError(f"out= names output(s) {_names(unknown)} that this run does not produce; "
                             f"it produces {_names(names)}")
    layout = _remember_layout(session, inputs, out, outputs, names, out_index, n_out)
    views.output_index = layout.out_index.data()
    views.allocate_outputs(allocating)
    return layout


cdef _CallLayout _remember_layout(Session session, object inputs, object out, object outputs, tuple names,
                                  const int32_t* out_index, size_t n_out):
    """Records the layout this call resolved (every name check has passed) under its signature."""
    cdef _CallLayout layout = _CallLayout.__new__(_CallLayout)
    if type(inputs) is dict:
        layout.in_names = tuple(<dict>inputs)
        for name in layout.in_names:
            layout.in_index.push_back(session._input_index[name])
    layout.out_keys = None if out is None else tuple(<dict>out)
    for name in layout.out_keys or ():
        layout.out_slot.push_back(names.index(name))
    layout.outputs = None if outputs is None else names
    layout.names = names
    layout.out_index.assign(out_index, out_index + n_out)
    layout.out_is_result = layout.out_keys == names
    # The newest first; a caller inventing new names per call pushes the oldest out.
    session._layouts = [layout, *session._layouts[:MAX_LAYOUTS - 1]]
    return layout


cdef object _result(_CallLayout layout, CallViews& views, object inputs, object out):
    """The dict of outputs once the core has run the call of `views`."""
    if views.owned == NULL and layout.out_is_result:
        return out  # the caller's own arrays, written in place, already in output order
    cdef list sources = _sources(layout, inputs, views.num_inputs) if views.owned != NULL else None
    cdef tuple names = layout.names
    cdef Py_ssize_t i
    result = {}
    for i in range(<Py_ssize_t>views.num_outputs):
        if views.owned != NULL and views.owned[i].holder.get() != NULL:
            result[names[i]] = adopt(views.owned[i], aliased_input(<jb_tensor_view*>&views.owned[i].view,
                                                                   views.inputs, views.num_inputs, sources))
        else:
            result[names[i]] = (<dict>out)[names[i]]  # the caller's own array, written in place
    return result


cdef list _sources(_CallLayout layout, object inputs, size_t n_in):
    """The caller's input objects in model order (an output the runtime allocated may alias one)."""
    if layout.in_names is None:
        return list(inputs)
    cdef list sources = [None] * <Py_ssize_t>n_in
    cdef Py_ssize_t j = 0
    for array in (<dict>inputs).values():
        sources[layout.in_index[j]] = array
        j += 1
    return sources


@cython.freelist(8)
cdef class _Call:
    """A run_async call in flight: its views (held by the core until it completes) and every object they
    point into, the Session and the future the completion settles."""
    cdef CallViews views
    cdef _CallLayout layout
    cdef object inputs
    cdef object out
    cdef Session session  # the Session stays alive until the completion
    cdef object future

    cdef object result(self):
        return _result(self.layout, self.views, self.inputs, self.out)
