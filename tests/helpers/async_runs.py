"""What the run_async tests of every backend check: many runs in flight give what `run` gives."""
from __future__ import annotations

import concurrent.futures

import numpy as np


def check_in_flight(session, batches: list, n: int = 100) -> None:
    """Starts n run_async calls at once (inputs cycling through `batches`, each a dict or list) and
    checks each result against `run` on the same inputs, name by name and value by value."""
    expected = [session.run(b) for b in batches]
    futures = [session.run_async(batches[i % len(batches)]) for i in range(n)]
    done, not_done = concurrent.futures.wait(futures, timeout=300)
    assert not not_done, f"{len(not_done)} of {n} runs still in flight after 300 s"
    for i, future in enumerate(futures):
        got, want = future.result(), expected[i % len(batches)]
        assert list(got) == list(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
