# One call of Session.run/run_async as the core takes it: _make_call checks the caller's arrays and makes
# the _Call (their views, in the order the core takes them); each Session keeps the _CallLayout of the call
# signatures it has seen, so that a repeated call looks up no name (included by _core.pyx).

cdef enum:
    CALL_TENSORS = 4    # tensors per call kept inside the _Call object; more use the heap
    MAX_LAYOUTS = 8     # call signatures whose layout a Session remembers (a program uses a handful)


cdef jb_tensor_view* _views(jb_tensor_view* inline_room, vector[jb_tensor_view]& heap, size_t n):
    """Room for n views: `inline_room` (CALL_TENSORS long) when they fit, else `heap` grown to n."""
    if n <= CALL_TENSORS:
        return inline_room
    heap.resize(n)
    return heap.data()


cdef bint _keys_are(dict d, tuple names):
    """The dict's keys are `names`, in that order (identity first: the caller usually passes the same strings)."""
    cdef Py_ssize_t n = len(names), pos = 0, j
    cdef PyObject* key
    cdef PyObject* value
    if len(d) != n:
        return False
    for j in range(n):
        PyDict_Next(d, &pos, &key, &value)
        if <object>key is not names[j] and <object>key != names[j]:
            return False
    return True


cdef inline list _keeper(list keep, object obj):
    """`keep`, made on first need: only a buffer-protocol object that is not an array needs one (fill_view)."""
    return keep if keep is not None or cnp.PyArray_Check(obj) else []


cdef tuple _as_names(outputs):
    return (outputs,) if isinstance(outputs, str) else tuple(outputs)


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
    cdef bint out_is_result     # out= holds exactly `names`, in order: the result is a copy of out

    cdef bint matches(self, object inputs, object out, object outputs):
        """The call has this layout's signature."""
        if self.in_names is None:
            if type(inputs) is dict:
                return False
        elif type(inputs) is not dict or not _keys_are(<dict>inputs, self.in_names):
            return False
        if (out is None) != (self.out_keys is None) or (out is not None and not _keys_are(<dict>out, self.out_keys)):
            return False
        if outputs is None or self.outputs is None:
            return outputs is self.outputs
        return outputs is self.outputs or _as_names(outputs) == self.outputs


@cython.freelist(8)
cdef class _Call:
    """One call of Session.run or run_async as the core takes it (made by _make_call): views of the
    caller's arrays (inputs in model order, outputs as requested), the outputs' index, the Tensors that
    receive the outputs the runtime allocates, and every object the views point into, held until the
    call is over."""
    cdef jb_tensor_view in_stack[CALL_TENSORS]
    cdef jb_tensor_view out_stack[CALL_TENSORS]
    cdef vector[jb_tensor_view] in_heap
    cdef vector[jb_tensor_view] out_heap
    cdef jb_tensor_view* in_views
    cdef jb_tensor_view* out_views
    cdef const int32_t* out_index  # into layout.out_index
    cdef size_t n_in
    cdef size_t n_out
    cdef bint allocating
    cdef vector[Tensor] owned
    cdef Tensor* owned_ptr
    cdef _CallLayout layout
    cdef list keep
    cdef object inputs
    cdef object out
    cdef Session session  # run_async's: the Session stays alive until the completion
    cdef object future    # run_async's

    cdef object result(self):
        """The dict of outputs once the core has run the call."""
        cdef _CallLayout layout = self.layout
        if not self.allocating and layout.out_is_result:
            return PyDict_Copy(self.out)  # the caller's own arrays, written in place, already in output order
        cdef list sources = _sources(layout, self.inputs, self.n_in) if self.allocating else None
        cdef tuple names = layout.names
        cdef Py_ssize_t i
        result = {}
        for i in range(<Py_ssize_t>self.n_out):
            if self.allocating and self.owned[i].holder.get() != NULL:
                result[names[i]] = adopt(self.owned[i], aliased_input(<jb_tensor_view*>&self.owned[i].view,
                                                                      self.in_views, self.n_in, sources))
            else:
                result[names[i]] = (<dict>self.out)[names[i]]  # the caller's own array, written in place
        return result


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


cdef _Call _make_call(Session session, object inputs, object out, object outputs):
    """The views of one call's arrays, every name and Python-side property checked (the Session is open)."""
    cdef _Call call = _Call.__new__(_Call)
    if type(inputs) is not dict and not isinstance(inputs, (list, tuple)):
        if not hasattr(inputs, "keys"):
            raise InputTypeError(f"inputs must be a dict name -> array or a sequence of arrays, "
                                 f"got {type(inputs).__name__}")
        inputs = dict(inputs)
    if out is not None and type(out) is not dict:
        out = dict(out)
    call.inputs = inputs
    call.out = out
    # The layout of this call signature, resolved by an earlier call; None the first time.
    cdef _CallLayout layout = None
    for known in session._layouts:
        if (<_CallLayout>known).matches(inputs, out, outputs):
            layout = <_CallLayout>known
            break

    # Inputs, in model order.
    cdef size_t n_in = session._n_in
    cdef jb_tensor_view* in_views = _views(call.in_stack, call.in_heap, n_in)
    call.in_views = in_views
    call.n_in = n_in
    cdef list keep = None  # temporary arrays over buffer-protocol objects, alive until the run is over
    cdef Py_ssize_t i, j = 0, k, pos
    cdef PyObject* key
    cdef PyObject* value
    if type(inputs) is dict:
        for name, array in (<dict>inputs).items():
            if layout is not None:
                i = layout.in_index[j]
            else:
                index = session._input_index.get(name)
                if index is None:
                    raise InputError(f"unknown input {name!r}; the model's inputs are "
                                     f"{_names(session._input_index)}")
                i = index
            keep = _keeper(keep, array)
            fill_view(array, &in_views[i], "input", name, False, keep)
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
            keep = _keeper(keep, inputs[i])
            fill_view(inputs[i], &in_views[i], "input", session._inputs[i].name, False, keep)

    # Outputs: which ones, and where they go.
    cdef vector[int32_t] chosen
    cdef const int32_t* out_index = session._all_outputs.data()
    cdef size_t n_out = session._n_out
    cdef tuple names = session._output_names
    if layout is not None:
        names = layout.names
        out_index = layout.out_index.data()
        n_out = layout.out_index.size()
    elif outputs is not None:
        names = _as_names(outputs)
        for name in names:
            index = session._output_index.get(name)
            if index is None:
                raise InputError(f"unknown output {name!r}; the model's outputs are "
                                 f"{_names(session._output_names)}")
            chosen.push_back(index)
        out_index = chosen.data()
        n_out = chosen.size()

    cdef jb_tensor_view* out_views = _views(call.out_stack, call.out_heap, n_out)
    cdef bint allocating = False
    cdef Py_ssize_t n_placed = 0
    if layout is not None:
        # out= has the layout's keys in its order (matches checked): no name is looked up.
        for i in range(<Py_ssize_t>n_out):
            out_views[i].data = NULL
        allocating = out is None or <size_t>layout.out_slot.size() < n_out
        pos = 0
        for k in range(<Py_ssize_t>layout.out_slot.size()):
            PyDict_Next(out, &pos, &key, &value)
            i = layout.out_slot[k]
            if <object>value is None:
                allocating = True
            else:
                keep = _keeper(keep, <object>value)
                fill_view(<object>value, &out_views[i], "output", names[i], True, keep)
    else:
        for i in range(<Py_ssize_t>n_out):
            target = None if out is None else (<dict>out).get(names[i])
            if target is None:
                out_views[i].data = NULL
                allocating = True
            else:
                keep = _keeper(keep, target)
                fill_view(target, &out_views[i], "output", names[i], True, keep)
                n_placed += 1
        if out is not None and n_placed != len(out):
            # The difference is either names this run does not produce, or entries of None (allocate).
            unknown = [n for n in out if n not in names]
            if unknown:
                raise InputError(f"out= names output(s) {_names(unknown)} that this run does not produce; "
                                 f"it produces {_names(names)}")
        layout = _remember_layout(session, inputs, out, outputs, names, out_index, n_out)

    call.layout = layout
    call.keep = keep
    call.out_views = out_views
    call.out_index = layout.out_index.data()
    call.n_out = n_out
    call.allocating = allocating
    if allocating:
        call.owned.resize(n_out)
        call.owned_ptr = call.owned.data()
    return call
