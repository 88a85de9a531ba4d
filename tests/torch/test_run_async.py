"""Session.run_async on libtorch models (.pt2 and TorchScript .pt): 100 in flight, results equal to run."""
import numpy as np
import pytest

from helpers import torch_models as tm  # skips this file when the torch plugin is not built

import juno_bridge as jb
from helpers.async_runs import check_in_flight


@pytest.mark.parametrize("suffix", [".pt2", ".pt"])
def test_hundred_in_flight_equal_run(suffix):
    rng = np.random.default_rng(3)
    with jb.Session(tm.tiny(suffix)) as s:
        check_in_flight(s, [{"x": rng.standard_normal((4, 8)).astype(np.float32)} for _ in range(5)])
