"""The GPU rows: the trained default model (pmt [B, 2, 17612] float32 -> vertex, energy) on one CUDA device,
every way a caller can feed it, side by side:

    (a) onnxruntime InferenceSession.run, CUDA provider, host numpy arrays
    (b) onnxruntime io_binding, inputs and outputs resident on the GPU
    (b') the same with enable_cuda_graph
    (b'') onnxruntime io_binding, input resident, outputs allocated by onnxruntime on the GPU each run
    (c) juno-bridge Session.run(out=), host numpy arrays
    (c') juno-bridge Session.run(out=), pinned host tensors (torch pin_memory)
    (c'') juno-bridge Session.run(out=), arrays from Session.empty (pinned by the session, filled in place)
    (c''') juno-bridge Session.run(out=), host numpy arrays, staging="pinned" (copied through the session's
          pinned buffers; the same backend session as (c))
    (d) juno-bridge Session.bind(...).run(), torch CUDA tensors resident
    (d') the same with cuda_graph=True
    (e) juno-bridge Session.run(), torch CUDA tensor in, output_device="cuda": outputs allocated on the GPU
    (t) the torch module on the GPU, tensors resident
    (m) juno-bridge host arrays from 4 threads on one session: time per call (throughput)

It needs a CUDA device, onnxruntime-gpu (its CUDA provider, in place of onnxruntime) and torch built for
CUDA (for pinned and device tensors); without them it says which is missing and measures nothing.
"""
from __future__ import annotations

import importlib.util
from typing import Callable

import numpy as np

import juno_bridge as jb
from juno_bridge.bench.common import (Measure, Row, Settings, Target, find_row, side_by_side, threads_per_call,
                                      time_calls)

BATCHES, QUICK_BATCHES = (1, 64, 1024), (1, 1024)
OUTPUTS = {"vertex": (3,), "energy": ()}


def missing() -> str | None:
    """What this machine lacks for the GPU rows, or None."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return ("onnxruntime has no CUDA provider (install onnxruntime-gpu==1.31.1 in place of onnxruntime, with "
                "CUDA 13 and cuDNN 9)")
    if "CUDAExecutionProvider" not in jb.onnxruntime_info()["providers"]:
        return f"the ONNX Runtime juno-bridge loads ({jb.onnxruntime_info()['path']}) has no CUDA provider"
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (pinned and CUDA tensors come from torch)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device is visible to torch"
    return None


def group_rows(settings: Settings) -> list[Row]:
    why = missing()
    if why is not None:
        raise RuntimeError(f"no GPU rows: {why}")
    import onnxruntime as ort
    import torch

    from juno_bridge.bench.model import _events
    from juno_bridge.demo.models import default

    path = str(default.onnx_model())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    ort_session = ort.InferenceSession(path, options, providers=["CUDAExecutionProvider"])
    session = jb.Session(path, providers=("cuda", "cpu"), require_providers=True, intra_op_threads=1)
    staged = jb.Session(path, providers=("cuda", "cpu"), require_providers=True, intra_op_threads=1,
                        staging="pinned")
    module = default.torch_module().to("cuda").eval()
    rows: list[Row] = []
    for batch in QUICK_BATCHES if settings.is_quick else BATCHES:
        x = _events(batch)
        expected = ort_session.run(None, {"pmt": x})
        host_out = {k: np.empty((batch, *s), np.float32) for k, s in OUTPUTS.items()}
        staged_out = {k: np.empty((batch, *s), np.float32) for k, s in OUTPUTS.items()}
        session.run({"pmt": x}, out=host_out)
        staged.run({"pmt": x}, out=staged_out)
        for name, want in zip(OUTPUTS, expected):  # the same provider's kernels: agreement before any number
            for got in (host_out[name], staged_out[name]):
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
        contestants = _contestants(ort, torch, ort_session, session, module, path, x, host_out)
        contestants["(c''') juno-bridge Session.run(out=), host arrays, staging='pinned'"] = (
            lambda k, w: time_calls(lambda: staged.run({"pmt": x}, out=staged_out), k, w))
        n = max(20, settings.iterations // (10 if batch > 64 else 2))
        for method, timing in side_by_side(contestants, n, max(5, settings.warmup // 10)).items():
            rows.append(Row("gpu", "net", batch, method, "python", *timing,
                            extra={"note": f"{timing[0] / batch:.2f} us/event"}))
    session.close()
    staged.close()
    return rows


def _contestants(ort, torch, ort_session, session, module, path, x, host_out) -> dict[str, Measure]:
    """The rows at one batch size. A CUDA graph is captured once per session, for one shape and one set of
    buffers: the graph sessions are this batch size's own."""
    batch = x.shape[0]
    feed = {"pmt": x}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    ort_graph = ort.InferenceSession(path, options, providers=[("CUDAExecutionProvider", {"enable_cuda_graph": "1"})])

    def resident_binding(ort_sess):
        binding = ort_sess.io_binding()
        pmt = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
        outs = {k: ort.OrtValue.ortvalue_from_shape_and_type([batch, *s], np.float32, "cuda", 0)
                for k, s in OUTPUTS.items()}
        binding.bind_ortvalue_input("pmt", pmt)
        for k, v in outs.items():
            binding.bind_ortvalue_output(k, v)
        return binding, (pmt, outs)  # the values live as long as the binding is used

    binding, keep = resident_binding(ort_session)
    allocating = ort_session.io_binding()  # (b''): the outputs onnxruntime allocates on the GPU, each run
    allocating.bind_ortvalue_input("pmt", keep[0])
    for k in OUTPUTS:
        allocating.bind_output(k, "cuda")
    graph_binding, keep_graph = resident_binding(ort_graph)
    pinned_in = torch.from_numpy(x).pin_memory()
    pinned_out = {k: torch.empty((batch, *s)).pin_memory() for k, s in OUTPUTS.items()}
    session_in = session.empty(x.shape)
    session_in[...] = x  # a framework fills it in place (scatter_hits, the BatchAssembler): not timed
    session_out = {k: session.empty((batch, *s)) for k, s in OUTPUTS.items()}
    device_in = torch.from_numpy(x).to("cuda")
    device_out = {k: torch.empty((batch, *s), device="cuda") for k, s in OUTPUTS.items()}
    bound = session.bind({"pmt": device_in}, out=device_out)
    graphed = jb.Session(path, providers=("cuda", "cpu"), require_providers=True, intra_op_threads=1,
                         cuda_graph=True, shared=False)
    graph_out = {k: torch.empty((batch, *s), device="cuda") for k, s in OUTPUTS.items()}
    graph_bound = graphed.bind({"pmt": device_in}, out=graph_out)
    on_device = jb.Session(path, providers=("cuda", "cpu"), require_providers=True, intra_op_threads=1,
                           output_device="cuda")
    device_feed = {"pmt": device_in}

    def torch_resident():
        with torch.inference_mode():
            module(device_in)
        torch.cuda.synchronize()

    def device_run(run: Callable[[], object]) -> Callable[[], None]:
        def call():
            run()
            torch.cuda.synchronize()  # the outputs are there when the call is timed as done
        return call

    return {
        "(a) onnxruntime InferenceSession.run, CUDA, host arrays":
            lambda k, w: time_calls(lambda: ort_session.run(None, feed), k, w),
        "(b) onnxruntime io_binding, resident on the GPU":
            lambda k, w: time_calls(lambda: ort_session.run_with_iobinding(binding), k, w),
        "(b') onnxruntime io_binding, resident, enable_cuda_graph":
            lambda k, w: time_calls(lambda: ort_graph.run_with_iobinding(graph_binding), k, w),
        "(b'') onnxruntime io_binding, input resident, outputs allocated on the GPU":
            lambda k, w: time_calls(lambda: ort_session.run_with_iobinding(allocating), k, w),
        "(c) juno-bridge Session.run(out=), host arrays":
            lambda k, w: time_calls(lambda: session.run(feed, out=host_out), k, w),
        "(c') juno-bridge Session.run(out=), pinned tensors":
            lambda k, w: time_calls(lambda: session.run({"pmt": pinned_in}, out=pinned_out), k, w),
        "(c'') juno-bridge Session.run(out=), Session.empty arrays":
            lambda k, w: time_calls(lambda: session.run({"pmt": session_in}, out=session_out), k, w),
        "(d) juno-bridge bind().run(), CUDA tensors resident":
            lambda k, w: time_calls(device_run(bound.run), k, w),
        "(d') juno-bridge bind().run(), resident, cuda_graph=True":
            lambda k, w: time_calls(device_run(graph_bound.run), k, w),
        "(e) juno-bridge Session.run(), CUDA tensor in, output_device='cuda'":
            lambda k, w: time_calls(device_run(lambda: on_device.run(device_feed)), k, w),
        "(t) torch module on the GPU, resident":
            lambda k, w: time_calls(torch_resident, k, w),
        "(m) juno-bridge host arrays, 4 threads on one session (per call)":
            lambda k, w: _threads(session, x, 4, k),
    }


def _threads(session, x: np.ndarray, threads: int, calls: int) -> tuple[float, float]:
    """Wall time per call with `threads` threads running host-array calls on one session."""
    batch = x.shape[0]
    per_thread = max(1, calls // threads)

    def work():
        out = {k: np.empty((batch, *s), np.float32) for k, s in OUTPUTS.items()}
        for _ in range(per_thread):
            session.run({"pmt": x}, out=out)

    return threads_per_call(work, threads, per_thread)


def group_targets(rows: list[Row]) -> list[Target]:
    """Issue 21's targets: host arrays at the copy limit, device-resident at io_binding's, graphs at B = 1."""
    def row(batch, label):  # "(c'') " is not "(c''') "
        return find_row(rows, "net", batch, label + " ", "gpu")

    targets: list[Target] = []
    a, c = row(1024, "(a)"), row(1024, "(c)")
    if c:
        targets.append(("B=1024: (c) juno-bridge from host arrays, us per event", c.median_us / 1024, 5.0, False))
    if a and c:
        targets.append(("B=1024: (c)/(a), juno-bridge host arrays vs onnxruntime's Python API",
                        c.median_us / a.median_us, 0.25, False))
    filled = row(1024, "(c'')")
    if filled:
        targets.append(("B=1024: (c'') juno-bridge from Session.empty arrays, us per event",
                        filled.median_us / 1024, 5.0, False))
    staged = row(1024, "(c''')")
    if staged:
        targets.append(("B=1024: (c''') juno-bridge from host arrays, staging='pinned', us per event",
                        staged.median_us / 1024, 5.0, False))
    if a and staged:
        targets.append(("B=1024: (c''')/(a), juno-bridge host arrays staged vs onnxruntime's Python API",
                        staged.median_us / a.median_us, 0.25, False))
    for batch in (1, 64, 1024):
        b, d = row(batch, "(b)"), row(batch, "(d)")
        if b and d:
            targets.append((f"B={batch}: (d)/(b), juno-bridge resident vs onnxruntime io_binding",
                            d.median_us / b.median_us, 1.1, False))
        allocating, on_device = row(batch, "(b'')"), row(batch, "(e)")
        if allocating and on_device:
            targets.append((f"B={batch}: (e)/(b''), juno-bridge GPU outputs vs onnxruntime io_binding allocating",
                            on_device.median_us / allocating.median_us, 1.1, False))
    graph = row(1, "(d')")
    if graph:
        targets.append(("B=1: (d') juno-bridge with cuda_graph, us per call", graph.median_us, 400.0, False))
    return targets
