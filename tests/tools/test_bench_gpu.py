"""`juno-bridge bench --only gpu`: on a machine without a GPU it says what is missing and measures nothing;
its targets are those of issue 21, computed from the rows (on a GPU: the command itself, see the module)."""
import subprocess
import sys

import pytest

from juno_bridge.bench.common import Row
from juno_bridge.bench.gpu import group_targets, missing


@pytest.mark.skipif(missing() is None, reason="a GPU is here: the rows are measured, not refused")
def test_without_a_gpu_the_group_says_what_is_missing_and_measures_nothing():
    done = subprocess.run([sys.executable, "-m", "juno_bridge.cli", "bench", "--only", "gpu", "--quick"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"gpu: not measured: no GPU rows: {missing()}" in done.stdout, done.stdout
    assert "(a) onnxruntime" not in done.stdout


def test_the_targets_are_per_event_and_side_by_side_ratios():
    def row(batch, label, us):
        return Row("gpu", "net", batch, label + " method", "python", us, us)

    rows = [row(1024, "(a)", 24000.0), row(1024, "(c)", 4096.0), row(1024, "(c'')", 3072.0), row(1024, "(b)", 2000.0),
            row(1024, "(d)", 2100.0), row(1, "(b)", 1500.0), row(1, "(d)", 1800.0), row(1, "(d')", 300.0),
            row(1024, "(b'')", 2500.0), row(1024, "(e)", 2600.0), row(1024, "(c''')", 6144.0)]
    targets = group_targets(rows)

    def target(prefix):
        (found,) = [t[1:] for t in targets if t[0].startswith(prefix)]
        return found

    assert target("B=1024: (c) juno-bridge from host arrays, us per event") == (4.0, 5.0, False)
    assert target("B=1024: (c'') juno-bridge from Session.empty arrays") == (3.0, 5.0, False)
    assert target("B=1024: (c''') juno-bridge from host arrays, staging='pinned'") == (6.0, 5.0, False)
    assert target("B=1024: (c''')/(a)") == (6144 / 24000, 0.25, False)
    assert target("B=1024: (c)/(a)") == (4096 / 24000, 0.25, False)  # against onnxruntime's Python API
    assert target("B=1024: (d)/(b)") == (2100 / 2000, 1.1, False)
    assert target("B=1: (d)/(b)") == (1.2, 1.1, False)
    assert target("B=1: (d') juno-bridge with cuda_graph") == (300.0, 400.0, False)
    assert target("B=1024: (e)/(b'')") == (2600 / 2500, 1.1, False)  # GPU outputs vs io_binding allocating
    assert len(targets) == 9  # B=64 has no rows here, nor B=1 (e): no target
