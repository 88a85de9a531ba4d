"""Python algorithms the tests open through `python:helpers.pyalgos:<name>`, and C++ hosts through
`python:pyalgos:<name>` with this directory on their PYTHONPATH."""
import resource
import sys
import threading

import numpy as np

import juno_bridge as jb

N = 16  # PMTs in the small test events

# A linear "reconstruction" that tests/test_python_backend.py also builds as ONNX: y = x @ W + b.
W = (np.arange(2 * N * 4, dtype=np.float32).reshape(2 * N, 4) % 7 - 3) / 10
BIAS = np.array([0.5, -1.0, 2.0, 0.0], dtype=np.float32)


@jb.algorithm(inputs={"pmt": ("float32", ("B", 2, N))},
              outputs={"vertex": ("float32", ("B", 3)), "energy": ("float32", ("B",))})
def reco(inputs, outputs):
    """Sums the nPE channel into an energy and writes a fixed vertex."""
    outputs["energy"][:] = inputs["pmt"][:, 0].sum(axis=1)
    outputs["vertex"][:] = inputs["pmt"][:, 1, :3]


@jb.algorithm(inputs={"x": ("float32", ("B", 2 * N))}, outputs={"y": ("float32", ("B", 4))})
def linear(inputs, outputs):
    np.matmul(inputs["x"], W, out=outputs["y"])
    outputs["y"] += BIAS


@jb.algorithm(inputs={"x": ("float32", ("B", 2 * N))}, outputs={"y": ("float32", ("B", 4))})
def linear_returning(inputs, outputs):
    return {"y": inputs["x"] @ W + BIAS}


@jb.algorithm(inputs={"x": ("float64", ("N",))}, outputs={"y": ("float64", ("N",))},
              options={"scale": float, "offset": int, "negate": bool, "label": str})
class Affine:
    """A class: built once per session with the session's config entries as keyword options."""

    def __init__(self, scale=1.0, offset=0, negate=False, label=""):
        self.scale, self.offset, self.negate, self.label = scale, offset, negate, label
        self.calls = 0

    def __call__(self, inputs, outputs):
        self.calls += 1
        y = inputs["x"] * self.scale + self.offset
        outputs["y"][:] = -y if self.negate else y


seen = {}  # what the recording algorithm saw, for the zero-copy tests


@jb.algorithm(inputs={"a": ("int32", ("K",)), "b": ("float32", (3,))},
              outputs={"c": ("int32", ("K",)), "d": ("float32", (3,))})
def recording(inputs, outputs):
    for role, views in (("in", inputs), ("out", outputs)):
        for name, v in views.items():
            seen[name] = (v.__array_interface__["data"][0], v.flags.writeable, v.flags.owndata, role)
    outputs["c"][:] = inputs["a"] * 2
    outputs["d"][:] = inputs["b"] + 1


@jb.algorithm(inputs={"x": ("float32", ("B",))}, outputs={"y": ("float32", ("B",))})
def failing_on_negative(inputs, outputs):
    if (inputs["x"] < 0).any():
        raise ValueError("negative energy in event")
    outputs["y"][:] = inputs["x"] * 2


@jb.algorithm(inputs={"x": ("float32", ("B",))}, outputs={"y": ("float32", ("B",))})
def writes_input(inputs, outputs):
    inputs["x"][0] = 1.0


kept = []
keep = [True]  # tests switch keeping off to show the next event runs normally


@jb.algorithm(inputs={"x": ("float32", ("B",))}, outputs={"y": ("float32", ("B",))})
def keeping(inputs, outputs):
    outputs["y"][:] = inputs["x"]
    if keep[0]:
        kept.append(inputs["x"])


@jb.algorithm(inputs={"x": ("float32", ("B",))}, outputs={"y": ("float32", ("B",))})
def keeping_a_slice(inputs, outputs):
    outputs["y"][:] = inputs["x"]
    if keep[0]:
        kept.append(inputs["x"][1:])


held_frames = []  # what a stack sampler (Dask's worker profiler) holds when a call returns mid-sample


@jb.algorithm(inputs={"x": ("float32", ("B",))}, outputs={"y": ("float32", ("B",))})
def sampled(inputs, outputs):
    """Its frame outlives the call, holding the dicts, the input and a view derived from it."""
    x = inputs["x"]
    head = x[:1]
    outputs["y"][:] = x + head
    held_frames.append(sys._getframe())


@jb.algorithm(inputs={"x": ("float32", ("B",))}, outputs={"y": ("float32", ("B",))})
def keeping_a_generator(inputs, outputs):
    """Keeps a suspended generator over the input: a real reference (its frame is not cleared)."""
    outputs["y"][:] = inputs["x"]

    def rows(x):
        yield from x

    started = rows(inputs["x"])
    next(started)
    kept.append(started)


def _returning(value):
    @jb.algorithm(inputs={"x": ("float32", ("B",))}, outputs={"y": ("float32", ("B",))})
    def algo(inputs, outputs):
        return value(inputs["x"])
    return algo


returns_float64 = _returning(lambda x: {"y": x.astype(np.float64)})
returns_short = _returning(lambda x: {"y": x[:-1].copy()})
returns_unknown = _returning(lambda x: {"z": x.copy()})
returns_list = _returning(lambda x: [x])


@jb.algorithm(inputs={"pmt": ("float32", ("B", 2, 17612))}, outputs={"energy": ("float32", ("B",))})
def heavy(inputs, outputs):
    """Enough numpy work per event that several threads overlap it (numpy releases the GIL)."""
    outputs["energy"][:] = np.sqrt(inputs["pmt"] * inputs["pmt"] + 1.0).sum(axis=(1, 2))


@jb.algorithm(inputs={"pmt": ("float32", (2, 17612))},
              outputs={"vertex": ("float32", (3,)), "energy": ("float32", (1,))})
def per_event(inputs, outputs):
    """The benchmark's callable: 2 x 17,612 float32 in, 4 values out."""
    pmt = inputs["pmt"]
    outputs["energy"][0] = pmt[0, 0]
    outputs["vertex"][:] = pmt[1, :3]


@jb.algorithm(inputs={"x": ("float32", (1,))}, outputs={"faults": ("int64", (1,))})
def scratch_faults(inputs, outputs):
    """80 MB of temporaries (4 x 20 MB), freed before it returns, as a torch module's are; the minor page faults
    their allocation took on this thread (tests/native/cpp/python_scratch_memory.cpp)."""
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    blocks = [np.ones(5_000_000, np.float32) for _ in range(4)]
    del blocks
    outputs["faults"][0] = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before


not_declared = lambda inputs, outputs: None  # noqa: E731


deferred_kept = []


@jb.algorithm(inputs={"x": ("float32", ("B",))}, outputs={"y": ("float32", ("B",))}, options={"behaviour": str})
class Deferred:
    """y = 2 x, with an asynchronous run of its own (the algorithm protocol's run_async): each run ends on
    a thread it starts. `behaviour` picks a way to fail: "raise" (before starting), "keep" (keeps the
    input view in deferred_kept), "drop" (never calls done); a negative x fails through done(exc)."""

    def __init__(self, behaviour=""):
        self.behaviour = behaviour

    def __call__(self, inputs, outputs):
        outputs["y"][:] = 2 * inputs["x"]

    def run_async(self, inputs, outputs, done):
        if self.behaviour == "raise":
            raise ValueError("cannot start")
        threading.Thread(target=self._finish, args=(inputs, outputs, done)).start()

    def _finish(self, inputs, outputs, done):
        if self.behaviour == "drop":
            return
        x = inputs["x"]
        if (x < 0).any():
            del x  # the views are lent until done: no reference may outlive it
            done(ValueError("negative input"))
            return
        np.multiply(x, 2, out=outputs["y"])
        if self.behaviour == "keep":
            deferred_kept.append(x)
        del x
        done()


@jb.algorithm(inputs={"x": ("bfloat16", ("B",))}, outputs={"y": ("bfloat16", ("B",)), "f": ("float32", ("B",))})
def bfloat16_double(inputs, outputs):
    """bfloat16 views (ml_dtypes.bfloat16 arrays) of the caller's memory in and out."""
    seen["x"] = (inputs["x"].dtype, inputs["x"].__array_interface__["data"][0])
    seen["y"] = (outputs["y"].dtype, outputs["y"].__array_interface__["data"][0])
    outputs["y"][:] = inputs["x"] * 2
    outputs["f"][:] = inputs["x"].astype(np.float32)


@jb.algorithm(inputs={"x": ("float32", ("B", 8))}, outputs={"y": ("float32", ("B", 8))})
def marking(inputs, outputs):
    """Copies x and leaves a mark in $JB_TEST_MARK: the test sees whether any event ran."""
    import os

    with open(os.environ["JB_TEST_MARK"], "a") as mark:
        mark.write(f"{len(inputs['x'])}\n")
    outputs["y"][:] = inputs["x"]


closed = []  # names of the Closing instances closed, in order


@jb.algorithm(inputs={"x": ("float32", ("B", 8))}, outputs={"y": ("float32", ("B", 8))}, options={"label": str})
class Closing:
    """An algorithm holding a resource: close() is called when its session closes. It keeps a reference
    cycle, so Python alone would free it only at a later garbage collection."""

    def __init__(self, label=""):
        self.label, self.me = label, self  # the cycle

    def __call__(self, inputs, outputs):
        outputs["y"][:] = inputs["x"]

    def close(self):
        closed.append(self.label)
        if self.label == "failing":
            raise RuntimeError("close failed")
