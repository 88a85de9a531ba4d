"""Property-based fuzzing of the C ABI through ctypes (hypothesis): jb_tensor_view values of any rank
(-1..20 and extremes), dims negative, zero, huge and overflowing, dtype codes in and out of range, devices
(host, pinned, CUDA, undefined kinds and ids), NULL, misaligned and overlapping data; option keys and values;
open/run/close sequences from several threads; and jb_scatter_hits. Every example runs in a worker process
(fuzz_worker.py), so a crash is a failing example with its inputs, and the worker is restarted for the next
one."""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from helpers.jb_c import MAX_RANK, STATUSES
from helpers.native_build import write_mlp_model

TESTS = Path(__file__).resolve().parents[1]
POOL_BYTES = 1 << 16  # fuzz_worker.POOL_BYTES
ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8}
FLOAT32, INT32, INT64 = 1, 6, 7
# Examples per property: the normal profile's count times these (JUNO_BRIDGE_HYPOTHESIS_PROFILE=thorough: more).
SCALE = settings.default.max_examples


class Worker:
    """fuzz_worker.py, restarted after a crash; ask() answers the worker's reply or fails the example."""

    def __init__(self, model: Path):
        self.model, self.proc = model, None

    def start(self):
        env = {**os.environ, "PYTHONPATH": str(TESTS)}  # the helpers package, nothing else
        self.proc = subprocess.Popen([sys.executable, "-m", "helpers.fuzz_worker", str(self.model)], cwd=TESTS,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)

    def ask(self, example: dict, timeout: float = 60) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        self.proc.stdin.write(json.dumps(example) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        self.proc.kill()
        _, err = self.proc.communicate()
        code = self.proc.returncode
        self.proc = None
        raise AssertionError(f"the worker {'hung' if not ready else f'died (exit {code})'} on {example}\n"
                             f"{err[-4000:]}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    w = Worker(write_mlp_model(tmp_path_factory.mktemp("model") / "mlp.onnx"))
    yield w
    w.stop()


# ---- strategies -------------------------------------------------------------------------------------
EXTREME_DIMS = [2**31 - 1, 2**31, 2**32, 2**40, 2**61, 2**62, 2**63 - 1, -(2**63), -1]
dims = st.one_of(st.integers(0, 8), st.sampled_from([4, 8, 16]), st.integers(-3, -1), st.sampled_from(EXTREME_DIMS),
                 st.integers(0, 2**63 - 1))
dtypes = st.one_of(st.sampled_from(sorted(ITEMSIZE)), st.integers(-1, 20), st.integers(-(2**31), 2**31 - 1))
ranks = st.one_of(st.integers(0, 3), st.integers(-1, 20), st.sampled_from([2**31 - 1, -(2**31)]))
offsets = st.one_of(st.none(), st.sampled_from([0, 64, 1024, 4096]), st.integers(0, POOL_BYTES))
aligned = st.sampled_from(range(0, POOL_BYTES // 2, 4096))  # well apart: overlap only when equal
# Hypothesis picks one_of branches evenly: a branch listed twice is drawn twice as often (valid values).
small = st.integers(0, 6)


# Host memory (0), pinned host memory (2), CUDA memory (1: the CPU session refuses it), kinds no one defined.
devices = st.one_of(st.just(0), st.sampled_from([0, 1, 2]), st.integers(-(2**31), 2**31 - 1))
device_ids = st.one_of(st.just(0), st.integers(-2, 2), st.integers(-(2**31), 2**31 - 1))
HOST = (0, 2)


@st.composite
def any_view(draw):
    return {"data": draw(offsets), "dtype": draw(dtypes), "rank": draw(ranks),
            "shape": draw(st.lists(dims, min_size=MAX_RANK, max_size=MAX_RANK)),
            "device": draw(devices), "device_id": draw(device_ids)}


@st.composite
def float_view(draw, shape_tail, batch):
    """A view that fits the model's signature (float32, aligned, host memory), so some examples run all the way."""
    shape = [batch, *shape_tail] + [0] * (MAX_RANK - 1 - len(shape_tail))
    return {"data": draw(aligned), "dtype": FLOAT32,
            "rank": 1 + len(shape_tail), "shape": shape, "device": draw(st.sampled_from(HOST)), "device_id": 0}


def claimed_bytes(v: dict) -> int | None:
    """The bytes a view claims, or None when it claims no countable memory (the library must refuse it)."""
    if not 0 <= v["rank"] <= MAX_RANK:
        return None
    n = 1
    for d in v["shape"][:v["rank"]]:
        if d < 0:
            return None
        n *= d
    if n * 16 > 2**63 - 1:
        return None
    return n * ITEMSIZE.get(v["dtype"], 0)


def honest(v: dict | None) -> bool:
    """A view whose claim the library cannot check (it points at memory) must not claim more than is there."""
    if v is None or v["data"] is None:
        return True
    size = claimed_bytes(v)
    return size is None or v["data"] + size <= POOL_BYTES


def byte_range(v):
    size = claimed_bytes(v)
    return (v["data"], v["data"] + size) if v["data"] is not None and size else None


def overlap(a, b) -> bool:
    ra, rb = byte_range(a), byte_range(b)
    return bool(ra and rb and ra[0] < rb[1] and rb[0] < ra[1])


def fits_model(inputs, outputs, index) -> tuple[bool, bool]:
    """(allowed, must_succeed): what the model x[B, 8] -> y[B, 4], s[B] permits. `allowed` is necessary for
    JB_OK; `must_succeed` means every check passes, so anything but JB_OK is a bug."""
    def ok_view(v, tail):
        return (v["dtype"] == FLOAT32 and v["rank"] == 1 + len(tail) and v["shape"][1:v["rank"]] == tail
                and v["shape"][0] >= 0 and (v["data"] is None or v["data"] % 4 == 0)
                and v.get("device", 0) in HOST)
    tails = {0: [4], 1: []}
    allowed = (len(inputs) == 1 and ok_view(inputs[0], [8]) and len(outputs) == len(index) >= 1
               and len(set(index)) == len(index) and all(k in tails for k in index)
               and all(o["data"] is None or ok_view(o, tails[k]) for o, k in zip(outputs, index)))
    if not allowed:
        return False, False
    batch = inputs[0]["shape"][0]
    buffers = [o for o in outputs if o["data"] is not None]
    must = (inputs[0]["data"] is not None and all(o["shape"][0] == batch for o in buffers)
            and all(claimed_bytes(v) is not None for v in [inputs[0], *outputs])
            and not any(overlap(o, inputs[0]) for o in buffers)
            and not any(overlap(a, b) for i, a in enumerate(buffers) for b in buffers[:i]))
    return True, must


@st.composite
def run_examples(draw):
    api = draw(st.sampled_from(["run", "run_outputs"]))
    batch = draw(st.one_of(small, small, dims))
    x = draw(st.one_of(float_view([8], batch), float_view([8], batch), any_view()))
    inputs = draw(st.one_of(st.just([x]), st.just([x]), st.lists(any_view(), max_size=2)))
    if api == "run":
        index = [0, 1]
        valid = st.tuples(float_view([4], batch), float_view([], batch)).map(list)
        outputs = draw(st.one_of(valid, valid, st.lists(any_view(), max_size=3)))
        index = index[:len(outputs)] if len(outputs) <= 2 else [0, 1, 2]
    else:
        index = draw(st.one_of(st.sampled_from([[0], [1], [0, 1], [1, 0]]),
                               st.lists(st.integers(-2, 3), min_size=1, max_size=2)))
        outputs = [draw(st.one_of(float_view(tail, batch), float_view(tail, batch), any_view(), st.just(
            {"data": None, "dtype": FLOAT32, "rank": 1 + len(tail), "shape": [batch, *tail] + [0] * (15 - len(tail)),
             "device": 0, "device_id": 0})))
            for tail in ([4] if k == 0 else [] for k in index)]
    return {"op": "run", "api": api, "inputs": inputs, "outputs": outputs, "index": index}


@settings(max_examples=10 * SCALE)
@given(example=run_examples())
def test_any_views_to_run_get_a_status_and_a_failed_run_leaves_the_callers_views(worker, example):
    assume(all(honest(v) for v in example["inputs"] + example["outputs"]))
    r = worker.ask(example)
    event(f"status {r['status']}")
    assert r["status"] in STATUSES and r["code"] == r["status"], r
    index = example["index"] if example["api"] == "run_outputs" else list(range(len(example["outputs"])))
    allowed, must = fits_model(example["inputs"], example["outputs"], index)
    if example["api"] == "run":  # every output, in model order, each with memory (or no elements and the
        # model's shape: jb_session_run allocates nothing, so a NULL output is still checked as a view)
        allowed = allowed and len(example["outputs"]) == 2
        nulls = [(o, tail) for o, tail in zip(example["outputs"], ([4], [])) if o["data"] is None]
        must = must and allowed and all(claimed_bytes(o) == 0 and o["rank"] == 1 + len(tail)
                                        and o["shape"][1:o["rank"]] == tail
                                        and o["shape"][0] == example["inputs"][0]["shape"][0] for o, tail in nulls)
    if r["status"] == 0:
        assert allowed, f"accepted views the model does not take: {r}"
        assert r["message"] == ""
    else:
        assert r["message"], r
        assert r["outputs_after"] == r["outputs_before"], "a failed call changed the caller's output views"
        assert not must, f"refused a valid run: {r['message']}"


@st.composite
def scatter_examples(draw):
    hits = draw(st.one_of(small, small, dims))
    channels = draw(st.one_of(st.integers(1, 3), st.integers(1, 3), dims))
    pmts = draw(st.one_of(st.integers(41, 64), st.integers(0, 64), dims))  # pool ids are -1..40

    def hit_array(dtype):
        fitting = st.builds(lambda off, device: {"data": off, "dtype": dtype, "rank": 1, "device": device,
                                                 "device_id": 0, "shape": [hits] + [0] * 15},
                            st.one_of(aligned, offsets), devices)
        return draw(st.one_of(fitting, fitting, any_view()))
    ids = hit_array(draw(st.sampled_from([INT32, INT64])))
    npe, time = hit_array(FLOAT32), draw(st.one_of(st.none(), st.just(hit_array(FLOAT32))))
    fitting = st.builds(lambda off, device: {"data": off, "dtype": FLOAT32, "rank": 2, "device": device,
                                             "device_id": 0, "shape": [channels, pmts] + [0] * 14},
                        st.one_of(aligned, offsets), devices)
    slot = draw(st.one_of(fitting, fitting, any_view()))
    return {"op": "scatter", "views": [ids, npe, time, slot], "empty": draw(st.floats(width=32))}


@settings(max_examples=10 * SCALE)
@given(example=scatter_examples())
def test_any_views_to_scatter_hits_get_a_status_and_a_refused_event_writes_nothing(worker, example):
    assume(all(honest(v) for v in example["views"]))
    ids, npe, time, slot = example["views"]
    r = worker.ask(example)
    event(f"status {r['status']}")
    assert r["status"] in STATUSES and r["code"] == r["status"], r
    if r["status"] == 0:
        assert ids["dtype"] in (INT32, INT64) and ids["rank"] == 1 and npe["rank"] == 1 and slot["rank"] == 2
        assert npe["dtype"] == FLOAT32 and slot["dtype"] == FLOAT32 and npe["shape"][0] == ids["shape"][0]
        assert not overlap(slot, ids) and not overlap(slot, npe)
        assert all(v["device"] in HOST for v in (ids, npe, slot)), "scattered into or from device memory"
    else:
        assert r["message"].startswith(("scatter_hits", "jb_scatter_hits")), r
        assert not r["pool_changed"], f"a refused event wrote memory: {r['message']}"


@st.composite
def empty_examples(draw):
    """jb_session_empty's arguments: small shapes, or ones with a negative or overflowing dim; ranks and
    dtype codes in and out of range; a NULL shape. The shape array always has MAX_RANK dims (zeros past
    those drawn), since the library reads `rank` of them."""
    shape = draw(st.lists(st.integers(0, 16), max_size=4))
    if draw(st.booleans()):
        shape.insert(draw(st.integers(0, len(shape))), draw(st.sampled_from([-1, -(2**63), 2**62, 2**63 - 1])))
        shape.append(draw(st.sampled_from([4, 2**40])))
    shape = (shape + [0] * MAX_RANK)[:MAX_RANK]
    rank = draw(st.one_of(st.integers(0, 6), ranks))
    return {"op": "empty", "dtype": draw(dtypes), "shape": shape, "rank": rank,
            "shape_null": draw(st.booleans()) and rank > 0}


def empty_nbytes(example) -> int | None:
    """The bytes jb_session_empty must hand, or None where it must refuse (as Session::empty counts)."""
    rank = example["rank"]
    itemsize = {**ITEMSIZE, 16: 2}.get(example["dtype"])  # bfloat16 too: any dtype with a size
    if itemsize is None or not 0 <= rank <= MAX_RANK or example["shape_null"]:
        return None
    n = itemsize
    for d in example["shape"][:rank]:
        if d < 0 or n * d > 2**63 - 1:
            return None
        n *= d
    return n


@settings(max_examples=5 * SCALE)
@given(example=empty_examples())
def test_session_empty_hands_exactly_the_tensor_asked_for_or_refuses_it(worker, example):
    nbytes = empty_nbytes(example)
    assume(nbytes is None or nbytes <= 1 << 16)  # a huge valid request is memory, not a finding (ASan aborts)
    r = worker.ask({**example, "nbytes": nbytes})
    event(f"status {r['status']}")
    if nbytes is None:
        assert r["status"] == 1 and r["code"] == 1 and r["message"] and not r["owned"], r  # owned cleared
    else:
        rank = example["rank"]
        data, dtype, got_rank, shape, device, device_id = r["view"]
        assert r["status"] == 0 and r["owned"] and data % 64 == 0, r
        assert (dtype, got_rank, shape[:rank], device, device_id) == (example["dtype"], rank,
                                                                      example["shape"][:rank], 0, 0), r


KEYS = ["backend", "intra_op_threads", "inter_op_threads", "optimization", "providers", "onnxruntime", "log_level",
        "execution_mode", "global_thread_pool", "require_providers", "shared", "", "session.no_such_entry",
        "intra_op_thread"]
VALUES = ["0", "1", "2", " 2", "-1", "all", "disable", "cpu", "cpu,,cpu", "", "verbose", "parallel", "sequential",
          "99999999999999999999", "onnxruntime", "torch", "cuda"]
# No free digits: a free count could ask for a million threads, which is slow, not wrong.
text = st.text(st.characters(blacklist_categories=("Cs", "Nd")), max_size=6)


@settings(max_examples=2 * SCALE)
@given(pairs=st.lists(st.tuples(st.one_of(st.sampled_from(KEYS), text), st.one_of(st.sampled_from(VALUES), text)),
                      max_size=4))
def test_any_options_give_a_status_and_a_failed_open_no_handle(worker, pairs):
    r = worker.ask({"op": "options", "pairs": pairs})
    assert set(r["set"]) <= STATUSES and r["status"] in STATUSES, r
    if r["status"] == 0:
        assert r["handle"] and r["message"] == ""
    else:
        assert not r["handle"] and r["message"], r


ops = st.tuples(st.sampled_from(["open", "run", "close", "run_shared", "num_inputs", "backend"]), st.integers(0, 1))


@settings(max_examples=SCALE)
@given(threads=st.lists(st.lists(ops, max_size=10), min_size=1, max_size=3))
def test_open_run_close_in_any_order_from_several_threads(worker, threads):
    r = worker.ask({"op": "sequence", "threads": threads})
    for results in r["results"]:
        for op, k, handle, status, message in results:
            if op in ("open", "close", "run_shared") or handle:
                assert status == 0, (op, k, message)
            else:  # a slot that was never opened, or closed: NULL
                assert status == 1 and "NULL" in message, (op, k, status, message)
