"""The toy detector and event generator: reproducible, physically sane, in range."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from juno_bridge.demo.detector import LPMT_RADIUS_M, LS_RADIUS_M, MCP, N_LPMT, N_SPMT, toy_detector
from juno_bridge.demo.toymc import LIGHT_YIELD_PE_PER_MEV, _poisson, generate


def test_detector_has_juno_counts_on_its_spheres():
    det = toy_detector()
    assert det.lpmt_pos.shape == (N_LPMT, 3) and det.spmt_pos.shape == (N_SPMT, 3)
    np.testing.assert_allclose(np.linalg.norm(det.lpmt_pos, axis=1), LPMT_RADIUS_M)
    assert abs(np.mean(det.lpmt_type == MCP) - 0.75) < 0.02
    # Evenly spread: the centroid of the PMTs is the centre, nearest neighbours are all alike.
    assert np.abs(det.lpmt_pos.mean(axis=0)).max() < 0.01
    sample = det.lpmt_pos[::50]
    d = np.linalg.norm(sample[:, None, :] - det.lpmt_pos[None, :, :], axis=2)
    d[d == 0] = np.inf
    nearest = d.min(axis=1)
    assert nearest.std() / nearest.mean() < 0.15
    assert not det.lpmt_pos.flags.writeable


def test_same_seed_same_events_other_seed_other_events():
    a, b, c = generate(20, seed=3), generate(20, seed=3), generate(20, seed=4)
    for field in ("vertex", "energy", "offsets", "pmt_id", "npe", "time"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.energy, c.energy)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1), lo=st.floats(0, 5), width=st.floats(0.1, 5))
def test_events_stay_in_their_ranges(n, seed, lo, width):
    ev = generate(n, seed=seed, energy_mev=(lo, lo + width))
    assert len(ev) == n and ev.offsets[0] == 0 and ev.offsets[-1] == len(ev.pmt_id)
    assert np.all(np.diff(ev.offsets) >= 0)
    assert np.all(np.linalg.norm(ev.vertex, axis=1) <= LS_RADIUS_M + 1e-4)
    assert np.all((ev.energy >= lo) & (ev.energy <= lo + width + 1e-5))
    assert ev.pmt_id.dtype == np.int32 and (ev.pmt_id.min(initial=0) >= 0) and ev.pmt_id.max(initial=0) < N_LPMT
    assert np.all(ev.npe == 1.0)
    assert np.all(np.isfinite(ev.time))


def test_total_npe_grows_linearly_with_energy_at_the_centre():
    energies = np.array([1.0, 2.0, 4.0, 8.0])
    means = []
    for e in energies:
        ev = generate(60, seed=11, vertex=np.zeros((60, 3)), energy=np.full(60, e))
        means.append(np.diff(ev.offsets).mean())
    slope, intercept = np.polyfit(energies, means, 1)
    assert slope == pytest.approx(LIGHT_YIELD_PE_PER_MEV, rel=0.02)
    assert abs(intercept) < 30
    # Poisson-sampled: the spread at 1 MeV is the statistical one.
    ev = generate(400, seed=12, vertex=np.zeros((400, 3)), energy=np.full(400, 1.0))
    counts = np.diff(ev.offsets)
    assert counts.var() == pytest.approx(counts.mean(), rel=0.2)


def test_earliest_hits_are_on_the_pmts_nearest_the_vertex():
    det = toy_detector()
    vertex = np.array([[12.0, -5.0, 3.0]])
    ev = generate(1, seed=5, vertex=vertex, energy=np.array([5.0]))
    pmt, _, time = ev.hits(0)
    distance = np.linalg.norm(det.lpmt_pos[pmt] - vertex[0], axis=1)
    early = time < np.quantile(time, 0.05)
    late = time > np.quantile(time, 0.95)
    assert distance[early].mean() < 0.5 * distance[late].mean()
    # Off-centre events see more light on the near side.
    near = np.linalg.norm(det.lpmt_pos - vertex[0], axis=1) < 10
    assert np.isin(pmt, np.flatnonzero(near)).mean() > near.mean()


def test_hits_are_views_not_copies():
    ev = generate(3, seed=1)
    pmt, npe, time = ev.hits(1)
    assert np.shares_memory(pmt, ev.pmt_id) and np.shares_memory(time, ev.time)


@settings(max_examples=20, deadline=None)
@given(mean=st.floats(0.0, 30.0), seed=st.integers(0, 1000))
def test_poisson_sampler_has_poisson_moments(mean, seed):
    x = _poisson(np.random.default_rng(seed), np.full(20000, mean, np.float32))
    assert x.min() >= 0
    sigma = np.sqrt(max(mean, 1e-3) / len(x))
    assert abs(x.mean() - mean) < 6 * sigma + 1e-3
    assert abs(x.var() - mean) < 0.1 * mean + 0.01


def test_dense_batches_through_the_core_scatter_match_numpy():
    ev = generate(12, seed=8)
    dense = ev.dense(2, 10, empty=-1.0)
    event = np.repeat(np.arange(len(ev)), np.diff(ev.offsets))
    sel = (event >= 2) & (event < 10)
    ref = np.zeros((8, 2, N_LPMT), np.float32)
    ref[:, 1] = np.inf
    np.add.at(ref[:, 0], (event[sel] - 2, ev.pmt_id[sel]), ev.npe[sel])
    np.minimum.at(ref[:, 1], (event[sel] - 2, ev.pmt_id[sel]), ev.time[sel])
    dark = np.isinf(ref[:, 1])
    ref[:, 0][dark] = -1.0
    ref[:, 1][dark] = -1.0
    np.testing.assert_allclose(dense, ref, rtol=1e-6)
    out = np.zeros((8, 2, N_LPMT), np.float32)
    assert ev.dense(2, 10, out=out, empty=-1.0) is out
