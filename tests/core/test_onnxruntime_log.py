"""ONNX Runtime's own log goes through ours: a failed run shows its error once (our exception), never as
a line of ONNX Runtime's on stderr; the line reaches Python logging ("juno_bridge.onnxruntime") and a C
callback, and the level is set in one place (jb.set_log_level / jb_set_log_level)."""
from __future__ import annotations

import json
import logging
import textwrap

import numpy as np
import pytest

import juno_bridge as jb

from helpers.jb_c import run_isolated


@pytest.fixture(scope="module")
def reshape_model(tmp_path_factory):
    """x float [N], shape int64 [2] -> Reshape: a shape that does not fit fails inside the kernel, where
    ONNX Runtime logs the error before returning it."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"]),
         helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path_factory.mktemp("model") / "reshape.onnx"
    onnx.save(model, str(path))
    return path


def failing_inputs():
    return {"x": np.zeros(10, np.float32), "shape": np.array([7, 7], np.int64)}


def test_a_failed_run_raises_once_and_prints_nothing_of_onnxruntime_on_stderr(reshape_model, capfd, caplog):
    s = jb.Session(str(reshape_model))
    with caplog.at_level(logging.ERROR, logger="juno_bridge.onnxruntime"):
        with pytest.raises(jb.RunError, match="Reshape"):
            s.run(failing_inputs())
    _, err = capfd.readouterr()
    assert "onnxruntime" not in err.lower() and "Reshape" not in err, err
    records = [r for r in caplog.records if r.name == "juno_bridge.onnxruntime"]
    assert len(records) == 1 and records[0].levelno == logging.ERROR and "Reshape" in records[0].getMessage(), (
        [r.getMessage() for r in caplog.records])


def test_the_level_is_set_in_one_place(reshape_model, caplog):
    s = jb.Session(str(reshape_model))
    try:
        jb.set_log_level("fatal")
        assert jb.get_log_level() == "fatal"
        with caplog.at_level(logging.DEBUG, logger="juno_bridge.onnxruntime"):
            with pytest.raises(jb.RunError):
                s.run(failing_inputs())
        assert not [r for r in caplog.records if r.name == "juno_bridge.onnxruntime"]
        with pytest.raises(jb.InvalidArgumentError, match="verbose, info, warning, error, fatal"):
            jb.set_log_level("loud")
    finally:
        jb.set_log_level("warning")
    assert jb.get_log_level() == "warning"


def run_c(model, body: str) -> dict:
    code = f"""
import json, ctypes
import numpy as np
from jb_c import *
lib = load()
s = ctypes.c_void_p()
assert lib.jb_session_open({str(model).encode()!r}, None, ctypes.byref(s)) == OK, last_error(lib)
x = np.zeros(10, np.float32)
shape = np.array([7, 7], np.int64)
inputs = (TensorView * 2)(view(x.ctypes.data, FLOAT32, [10]), view(shape.ctypes.data, INT64, [2]))
def failed_run():
    outs = (TensorView * 1)()
    owned = (ctypes.c_void_p * 1)()
    index = (ctypes.c_int32 * 1)(0)
    return lib.jb_session_run_outputs(s, inputs, 2, index, outs, owned, 1)
""" + textwrap.dedent(body) + "\nprint(json.dumps(result))"
    result = run_isolated(code)
    assert result.returncode == 0, result.stderr[-3000:]
    return {"result": json.loads(result.stdout.splitlines()[-1]), "stderr": result.stderr}


def test_a_c_callback_receives_the_line_and_stderr_stays_clean(reshape_model):
    out = run_c(reshape_model, """
lines = []
callback = LOG_CALLBACK(lambda user, level, source, message: lines.append([level, source.decode(), message.decode()]))
lib.jb_set_log_callback(callback, None)
status = failed_run()
result = {"status": status, "error": last_error(lib)[1], "lines": lines}
""")
    result = out["result"]
    assert result["status"] == 6 and "Reshape" in result["error"]
    assert len(result["lines"]) == 1, result["lines"]
    level, source, message = result["lines"][0]
    assert level == 3 and source == "onnxruntime" and "Reshape" in message
    assert "Reshape" not in out["stderr"], out["stderr"]


def test_without_a_callback_the_c_default_keeps_errors_off_stderr(reshape_model):
    out = run_c(reshape_model, """
lib.jb_set_log_callback(ctypes.cast(None, LOG_CALLBACK), None)
result = {"status": failed_run(), "bad_level": lib.jb_set_log_level(7), "error": last_error(lib)}
""")
    assert out["result"]["status"] == 6
    assert out["result"]["bad_level"] == 1 and "0 (verbose) .. 4 (fatal); got 7" in out["result"]["error"][1]
    assert "Reshape" not in out["stderr"] and "onnxruntime" not in out["stderr"].lower(), out["stderr"]
