"""close() while other threads run the same Session: the runs in flight finish with the right numbers,
the runs that start later raise "the session is closed", and nothing crashes (Python threads here; the
C++ form is tests/native/cpp/stress.cpp)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import juno_bridge as jb
from helpers.native_build import write_mlp_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    pytest.importorskip("onnx")
    return write_mlp_model(tmp_path_factory.mktemp("model") / "mlp.onnx")


def test_close_while_eight_threads_run_lets_each_run_finish_or_say_closed(model):
    x = np.random.default_rng(1).standard_normal((16, 8)).astype(np.float32)
    for round_ in range(5):
        s = jb.Session(str(model), intra_op_threads=1)
        expected = s.run({"x": x})
        outcomes: list[str] = []
        started = threading.Barrier(9)

        def work():
            started.wait()
            while True:
                try:
                    out = s.run({"x": x})
                except jb.InvalidArgumentError as e:
                    outcomes.append("closed" if "closed" in str(e) else f"error: {e}")
                    return
                except Exception as e:  # noqa: BLE001 - any other failure is the bug
                    outcomes.append(f"{type(e).__name__}: {e}")
                    return
                if not (np.array_equal(out["y"], expected["y"]) and np.array_equal(out["s"], expected["s"])):
                    outcomes.append("wrong numbers")
                    return

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        started.wait()
        time.sleep(0.002 * round_)
        s.close()
        for t in threads:
            t.join(timeout=60)
        assert outcomes == ["closed"] * 8, outcomes
        assert s.closed
        with pytest.raises(jb.InvalidArgumentError, match="the session is closed"):
            s.run({"x": x})
