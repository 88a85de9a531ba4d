"""One torch Session used from many threads at once, and what intra_op_threads means for torch:
its thread pool is one per process, so the last session opened with a thread count sets it for all."""
import threading

import numpy as np
import pytest

from helpers import torch_models as tm
from helpers.torch_models import torch

import juno_bridge as jb


@pytest.mark.parametrize("suffix", [".pt2", ".pt"])
def test_one_session_many_threads_each_gets_its_own_answer(suffix):
    s = jb.Session(tm.tiny(suffix))
    errors, results = [], {}

    def work(k):
        try:
            for i in range(25):
                x = np.full((k + 1, 8), k + i / 100, np.float32)
                results[(k, i)] = (x, s.run({"x": x})["y"])
        except Exception as e:  # reported below, with the thread that failed
            errors.append((k, e))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with torch.inference_mode():
        for x, y in results.values():
            np.testing.assert_allclose(y, tm.TINY(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)
    assert len(results) == 6 * 25


def test_intra_op_threads_is_process_wide_last_session_decides():
    before = torch.get_num_threads()
    try:
        a = jb.Session(tm.tiny(".pt"), intra_op_threads=2)
        assert torch.get_num_threads() == 2
        b = jb.Session(tm.tiny(".pt2"), intra_op_threads=1)
        assert torch.get_num_threads() == 1  # also for session a, and for Python torch
        jb.Session(tm.tiny(".pt"))  # 0: leaves the process setting alone
        assert torch.get_num_threads() == 1
        x = np.ones((2, 8), np.float32)
        np.testing.assert_allclose(a.run({"x": x})["y"], b.run({"x": x})["y"], rtol=1e-5)
    finally:
        torch.set_num_threads(before)
