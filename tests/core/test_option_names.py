"""Every option is understood by some part (the session, ONNX Runtime, the chosen plugin) or refused by
name with the valid ones listed; backend-specific entries go through config= (config.<key> in C)."""
import numpy as np
import pytest

import juno_bridge as jb


def test_a_misspelt_option_is_refused_by_name_listing_the_valid_ones(add_f32):
    with pytest.raises(jb.InvalidArgumentError) as e:
        jb.Session(add_f32, config={"intra_op_thread": 2})
    message = str(e.value)
    assert "unknown option 'intra_op_thread' for the onnxruntime backend" in message
    assert "intra_op_threads" in message and "execution_mode" in message


def test_another_backends_option_is_refused_by_onnx_runtime(add_f32):
    with pytest.raises(jb.InvalidArgumentError, match="unknown option 'num_runners' for the onnxruntime backend"):
        jb.Session(add_f32, config={"num_runners": "2"})


@pytest.mark.parametrize("key", ["session.intra_op.allow_spinning", "config.session.intra_op.allow_spinning"])
def test_onnx_runtime_session_config_entries_pass_bare_or_namespaced(add_f32, key):
    with jb.Session(add_f32, config={key: "0"}) as s:
        a = np.ones((2, 3), np.float32)
        np.testing.assert_array_equal(s.run({"a": a, "b": a})["c"], 2 * a)


def test_the_namespace_alone_names_no_entry(add_f32):
    with pytest.raises(jb.InvalidArgumentError, match=r"option 'config\.' names no entry"):
        jb.Session(add_f32, config={"config.": "1"})


@pytest.mark.parametrize("kwargs, fragment", [
    ({"intra_op_threads": " 2"}, "option 'intra_op_threads' needs a non-negative integer; got ' 2'"),
    ({"inter_op_threads": "+2"}, "option 'inter_op_threads' needs a non-negative integer; got '+2'"),
    ({"providers": ""}, "option 'providers' needs one or more names"),
    ({"providers": "cpu,,cpu"}, "option 'providers': an empty name in 'cpu,,cpu'"),
    ({"providers": ("cpu", "cpu")}, "option 'providers': 'cpu' named twice"),
])
def test_malformed_option_values_are_refused_with_what_came(add_f32, kwargs, fragment):
    with pytest.raises(jb.InvalidArgumentError) as e:
        jb.Session(add_f32, **kwargs)
    assert fragment in str(e.value)


@pytest.mark.parametrize("key", ["global_thread_pool", "require_providers", "shared"])
def test_a_flag_is_0_or_1_in_the_c_abi(key):
    from helpers.jb_c import last_error, load

    lib = load()
    options = lib.jb_options_new()
    try:
        assert lib.jb_options_set(options, key.encode(), b"1") == 0
        status = lib.jb_options_set(options, key.encode(), b"2")
        assert status != 0
        assert last_error(lib) == (status, f"option '{key}' is 0 or 1; got '2'")
    finally:
        lib.jb_options_free(options)
