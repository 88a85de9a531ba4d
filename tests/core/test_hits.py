"""scatter_hits: sparse PMT hits into a dense [C, N] slot, checked against a plain numpy reference."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import juno_bridge as jb

SETTINGS = settings(max_examples=60, deadline=None)


def reference(ids, npe, time, channels, n, empty):
    """What the scatter must give, the slow obvious way (numpy's unbuffered ufunc.at)."""
    out = np.full((channels, n), empty, np.float32)
    lit = np.zeros(n, bool)
    lit[ids] = True
    out[0, lit] = 0
    np.add.at(out[0], ids, npe)
    if channels >= 2:
        out[1, lit] = np.inf
        np.minimum.at(out[1], ids, time)
    return out


@st.composite
def events(draw, max_pmts=64):
    n = draw(st.integers(1, max_pmts))
    hits = draw(st.integers(0, 3 * n))
    # Ids drawn from a small pool as well as the edges, so duplicates and 0 / N-1 come up often.
    ids = draw(st.lists(st.one_of(st.integers(0, n - 1), st.sampled_from([0, n - 1])), min_size=hits, max_size=hits))
    floats = st.floats(-1e4, 1e4, width=32, allow_nan=False)
    npe = draw(st.lists(floats, min_size=hits, max_size=hits))
    time = draw(st.lists(floats, min_size=hits, max_size=hits))
    id_dtype = draw(st.sampled_from([np.int32, np.int64]))
    return (np.array(ids, id_dtype), np.array(npe, np.float32), np.array(time, np.float32), n)


@SETTINGS
@given(event=events(), empty=st.sampled_from([0.0, -1.0, 1e9]), channels=st.sampled_from([1, 2]))
def test_scatter_equals_the_numpy_reference_with_duplicates_and_edges(event, empty, channels):
    ids, npe, time, n = event
    out = np.full((channels, n), np.nan, np.float32)
    jb.scatter_hits(ids, npe, time, out, empty=empty)
    expected = reference(ids, npe, time, channels, n, empty)
    # Summation order may differ from numpy's for duplicated ids: compare sums closely, minima exactly.
    np.testing.assert_allclose(out[0], expected[0], rtol=1e-5, atol=1e-2)
    if channels == 2:
        np.testing.assert_array_equal(out[1], expected[1])


@SETTINGS
@given(n=st.integers(1, 100), empty=st.floats(-5, 5, width=32))
def test_an_empty_event_is_all_empty(n, empty):
    out = jb.scatter_hits(np.empty(0, np.int32), np.empty(0, np.float32), np.empty(0, np.float32),
                          num_pmts=n, empty=empty)
    assert out.shape == (2, n) and out.dtype == np.float32
    assert (out == np.float32(empty)).all()


@SETTINGS
@given(n=st.integers(1, 50), bad=st.sampled_from(["minus_one", "n", "far"]), where=st.integers(0, 5))
def test_ids_out_of_range_raise_naming_the_id_and_leave_the_slot_untouched(n, bad, where):
    bad_id = {"minus_one": -1, "n": n, "far": 10 * n + 7}[bad]
    ids = np.zeros(6, np.int64)
    ids[where] = bad_id
    out = np.full((2, n), 42, np.float32)
    with pytest.raises(jb.InputError) as e:
        jb.scatter_hits(ids, np.ones(6, np.float32), np.ones(6, np.float32), out)
    assert f"pmt id {bad_id} (hit {where})" in str(e.value) and f"[0, {n})" in str(e.value)
    assert (out == 42).all()


def test_every_edge_id_of_a_full_detector():
    n = 17612
    ids = np.array([0, n - 1, 0, n - 1], np.int32)
    out = jb.scatter_hits(ids, np.array([1, 2, 3, 4], np.float32), np.array([9, 8, 7, 10], np.float32))
    assert out.shape == (2, n)
    assert out[0, 0] == 4 and out[0, n - 1] == 6 and out[1, 0] == 7 and out[1, n - 1] == 8
    assert not out[:, 1:n - 1].any()


def test_a_slot_of_a_batch_is_written_in_place_and_its_neighbours_untouched():
    batch = np.full((3, 2, 10), 5, np.float32)
    result = jb.scatter_hits(np.array([2], np.int32), np.array([1.5], np.float32), np.array([3], np.float32),
                             batch[1])
    assert result.ctypes.data == batch[1].ctypes.data
    assert batch[1, 0, 2] == 1.5 and batch[1, 1, 2] == 3 and batch[1, 0, 0] == 0
    assert (batch[0] == 5).all() and (batch[2] == 5).all()


def test_extra_channels_are_left_to_the_caller():
    out = np.full((3, 4), 7, np.float32)
    jb.scatter_hits(np.array([1], np.int32), np.ones(1, np.float32), np.ones(1, np.float32), out)
    assert (out[2] == 7).all() and out[0, 1] == 1 and out[0, 0] == 0


def test_nan_times_propagate_like_numpy_minimum():
    out = jb.scatter_hits(np.array([0, 0], np.int32), np.ones(2, np.float32), np.array([1, np.nan], np.float32),
                          num_pmts=2)
    assert np.isnan(out[1, 0])


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(pmt_ids=np.array([0.0], np.float32)), jb.InputTypeError, ["pmt_ids", "float32"]),
    (dict(pmt_ids=np.array([0], np.uint8)), jb.InputTypeError, ["pmt_ids", "uint8"]),
    (dict(npe=np.ones(1, np.float64)), jb.InputTypeError, ["npe", "float64"]),
    (dict(npe=np.ones(2, np.float32)), jb.InputError, ["npe", "[1]", "[2]"]),
    (dict(time=np.ones(3, np.float32)), jb.InputError, ["time", "[1]", "[3]"]),
    (dict(time=None), jb.InputError, ["time", "expected shape [1]", "got [0]"]),  # two channels need times
    (dict(out=np.zeros((2, 4), np.float64)), jb.InputTypeError, ["out", "float64"]),
    (dict(out=np.zeros(8, np.float32)), jb.InputError, ["slot", "rank 2"]),
    (dict(out=np.zeros((4, 2), np.float32).T), jb.InputError, ["out", "C-contiguous"]),
    (dict(pmt_ids=[0]), jb.InputTypeError, ["pmt_ids", "list"]),
])
def test_bad_arguments_are_named(kwargs, error, words):
    args = dict(pmt_ids=np.array([0], np.int32), npe=np.ones(1, np.float32), time=np.ones(1, np.float32),
                out=np.zeros((2, 4), np.float32))
    args.update(kwargs)
    with pytest.raises(error) as e:
        jb.scatter_hits(args["pmt_ids"], args["npe"], args["time"], args["out"])
    for w in words:
        assert w in str(e.value)
