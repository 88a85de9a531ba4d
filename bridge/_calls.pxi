# One call of Session.run/run_async as the core takes it: the _Call (views of the caller's arrays) and
# the plans that remember, per call signature, the names a call resolved (included by _core.pyx).

cdef enum:
    CALL_TENSORS = 4    # tensors per call kept inside the _Call object; more use the heap
    MAX_PLANS = 8       # call signatures remembered per Session (a program uses a handful)


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
cdef class _Plan:
    """What `Session.run` resolved for one call signature (the input dict's keys in order, the keys of
    out=, the outputs= names), reused by every later call with the same signature: the names are
    looked up once, the arrays are still checked on every call."""
    cdef tuple in_names         # the input dict's keys in the caller's order; None: a sequence in model order
    cdef vector[Py_ssize_t] in_index  # model input index of each
    cdef tuple out_keys         # the keys of out= in the caller's order; None: no out=
    cdef vector[Py_ssize_t] out_slot  # the position in `names` of each key of out=
    cdef tuple outputs          # the outputs= names; None: all of them
    cdef tuple names            # the outputs this call produces, in order
    cdef vector[int32_t] out_index
    cdef bint out_is_result     # out= holds exactly `names`, in order: the result is a copy of out

    cdef bint fits(self, object inputs, object out, object outputs):
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
    """One call of Session.run or run_async as the core takes it (made by Session._call): views of the
    caller's arrays (inputs in model order, outputs as requested), the outputs' index, the Tensors that
    receive the outputs the runtime allocates, and every object the views point into, held until the
    call is over."""
    cdef jb_tensor_view in_stack[CALL_TENSORS]
    cdef jb_tensor_view out_stack[CALL_TENSORS]
    cdef vector[jb_tensor_view] in_heap
    cdef vector[jb_tensor_view] out_heap
    cdef jb_tensor_view* in_views
    cdef jb_tensor_view* out_views
    cdef const int32_t* out_index  # into plan.out_index
    cdef size_t n_in
    cdef size_t n_out
    cdef bint allocating
    cdef vector[Tensor] owned
    cdef Tensor* owned_ptr
    cdef _Plan plan
    cdef list keep
    cdef object inputs
    cdef object out
    cdef Session session  # run_async's: the Session stays alive until the completion
    cdef object future    # run_async's

    cdef object result(self):
        """The dict of outputs once the core has run the call."""
        cdef _Plan plan = self.plan
        if not self.allocating and plan.out_is_result:
            return PyDict_Copy(self.out)  # the caller's own arrays, written in place, already in output order
        cdef list sources = _sources(plan, self.inputs, self.n_in) if self.allocating else None
        cdef tuple names = plan.names
        cdef Py_ssize_t i
        result = {}
        for i in range(<Py_ssize_t>self.n_out):
            if self.allocating and self.owned[i].holder.get() != NULL:
                result[names[i]] = adopt(self.owned[i], aliased_input(<jb_tensor_view*>&self.owned[i].view,
                                                                      self.in_views, self.n_in, sources))
            else:
                result[names[i]] = (<dict>self.out)[names[i]]  # the caller's own array, written in place
        return result


cdef _Plan _remember(Session session, object inputs, object out, object outputs, tuple names,
                     const int32_t* out_index, size_t n_out):
    """Records the names this call resolved (every name check has passed) under its signature."""
    cdef _Plan plan = _Plan.__new__(_Plan)
    if type(inputs) is dict:
        plan.in_names = tuple(<dict>inputs)
        for name in plan.in_names:
            plan.in_index.push_back(session._input_index[name])
    plan.out_keys = None if out is None else tuple(<dict>out)
    for name in plan.out_keys or ():
        plan.out_slot.push_back(names.index(name))
    plan.outputs = None if outputs is None else names
    plan.names = names
    plan.out_index.assign(out_index, out_index + n_out)
    plan.out_is_result = plan.out_keys == names
    # The newest first; a caller inventing new names per call pushes the oldest out.
    session._plans = [plan, *session._plans[:MAX_PLANS - 1]]
    return plan


cdef list _sources(_Plan plan, object inputs, size_t n_in):
    """The caller's input objects in model order (an output the runtime allocated may alias one)."""
    if plan.in_names is None:
        return list(inputs)
    cdef list sources = [None] * <Py_ssize_t>n_in
    cdef Py_ssize_t j = 0
    for array in (<dict>inputs).values():
        sources[plan.in_index[j]] = array
        j += 1
    return sources
