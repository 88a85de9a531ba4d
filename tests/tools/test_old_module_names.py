"""What users wrote before the package was laid out by role still works: the model string of the default
Python algorithm and the modules of juno_bridge.models, now in juno_bridge.demo.models."""
import numpy as np

import juno_bridge as jb
from juno_bridge._hits import NUM_LPMT


def test_the_default_algorithm_keeps_its_model_string():
    old = jb.Session("python:juno_bridge.models.default_algorithm:reconstruct")
    new = jb.Session("python:juno_bridge.demo.models.default_algorithm:reconstruct")
    pmt = np.random.default_rng(0).random((3, 2, NUM_LPMT), dtype=np.float32)
    before, after = old.run({"pmt": pmt}), new.run({"pmt": pmt})
    assert list(before) == ["vertex", "energy"]
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


def test_the_old_module_names_are_the_demo_modules():
    import juno_bridge.models.builtin as old_builtin
    import juno_bridge.models.default as old_default
    from juno_bridge.demo.models import builtin, default
    from juno_bridge.models import builtin_model, cache_dir

    assert old_builtin is builtin and old_default is default
    assert builtin_model("tiny") == builtin.builtin_model("tiny") and builtin_model("tiny").exists()
    assert cache_dir().is_dir()
