"""What a user of converter outputs meets when the bridge cannot do what they asked: a classifier's ZipMap
output (a sequence of maps) is named by its full type and refused with the outputs= that runs, and a model
with external data opened from bytes is refused with the reason, wherever the process runs."""
from __future__ import annotations

import os
import re

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given
from hypothesis import strategies as st

import juno_bridge as jb
from helpers import converter_models
from helpers.reference import assert_results_equal, bridge_session, reference_session

ZIPMAP = sorted(converter_models.zipmap_classifiers())
EXTERNAL_DATA_CASE = "MLPRegressor"  # weights in initializers, which external data hold


@pytest.mark.parametrize("name", ZIPMAP)
def test_a_zipmap_output_is_named_by_its_full_type(name):
    case = converter_models.zipmap_classifiers()[name]
    (zipmap,) = case.non_tensor_outputs
    info = {o.name: o for o in bridge_session(case.path).outputs()}[zipmap]
    assert (info.dtype, info.shape, info.type_name) == (None, None, "seq(map(int64,tensor(float)))")


@pytest.mark.parametrize("name", ZIPMAP)
def test_running_a_zipmap_model_without_outputs_names_the_outputs_to_pass_and_zipmap_false(name):
    case = converter_models.zipmap_classifiers()[name]
    (zipmap,) = case.non_tensor_outputs
    (label,) = case.tensor_outputs
    s = bridge_session(case.path)
    x = case.batch(4, 0)
    for call in (lambda: s.run({"X": x}), lambda: s.run({"X": x}, outputs=[label, zipmap]),
                 lambda: s.run_async({"X": x}).result(timeout=60)):
        with pytest.raises(jb.UnsupportedError) as info:
            call()
        message = str(info.value)
        assert f"output '{zipmap}' is of type seq(map(int64,tensor(float)))" in message, message
        assert f"outputs=['{label}']" in message, message
        assert "zipmap=False" in message and "options={id(model): {'zipmap': False}}" in message, message


@pytest.mark.parametrize("name", ZIPMAP)
@given(rows=st.integers(1, 64), seed=st.integers(0, 2**32 - 1))
def test_the_label_of_a_zipmap_model_runs_by_name_equal_to_onnxruntime_and_the_library(name, rows, seed):
    case = converter_models.zipmap_classifiers()[name]
    (label,) = case.tensor_outputs
    x = case.batch(rows, seed)
    got = bridge_session(case.path).run({"X": x}, outputs=[label])
    assert_results_equal(got, dict(zip([label], reference_session(case.path).run([label], {"X": x}))))
    np.testing.assert_array_equal(got[label], case.native[label](x))


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    """(the case, its model saved with external data, that directory)."""
    case = converter_models.corpus()[EXTERNAL_DATA_CASE]
    directory = tmp_path_factory.mktemp("external data")
    return case, converter_models.external_data_copy(case, directory), directory


@given(rows=st.integers(1, 64), seed=st.integers(0, 2**32 - 1))
def test_a_model_with_external_data_by_path_equals_onnxruntime_and_the_library(external, rows, seed):
    case, path, _ = external
    x = case.batch(rows, seed)
    got = bridge_session(path).run({"X": x})
    assert_results_equal(got, dict(zip(["variable"], reference_session(path).run(["variable"], {"X": x}))))
    assert_results_equal(got, bridge_session(case.path).run({"X": x}))  # the same model, weights inside
    np.testing.assert_allclose(got["variable"].astype(np.float64), case.native["variable"](x),
                               rtol=case.tolerance.rtol, atol=case.tolerance.atol)


EXTERNAL_DATA_MESSAGE = re.compile(r"loading a model from \d+ bytes in memory: its tensor '[^']+' keeps its data "
                                   r"in an external file \('weights\.bin'\), and external data need the model's "
                                   r"path.*open the model by its path")


@pytest.mark.parametrize("where", ["elsewhere", "the model's directory", "the filesystem root"])
@pytest.mark.parametrize("optimization", ["all", "disable"])
def test_a_model_with_external_data_from_bytes_is_refused_with_the_reason_whatever_the_working_directory(
        external, monkeypatch, tmp_path, where, optimization):
    """onnxruntime itself says "escapes working directory" in one directory, "model_path must not be empty"
    in the model's own, and with optimization off there it reads whatever weights.bin the directory has."""
    _, path, directory = external
    monkeypatch.chdir({"elsewhere": tmp_path, "the model's directory": directory, "the filesystem root": "/"}[where])
    with pytest.raises(jb.ModelLoadError, match=EXTERNAL_DATA_MESSAGE):
        jb.Session(path.read_bytes(), optimization=optimization)


def test_external_data_from_bytes_load_from_the_folder_named_by_onnxruntimes_config_entry(external, monkeypatch,
                                                                                           tmp_path):
    case, path, directory = external
    monkeypatch.chdir(tmp_path)
    folder = {"session.model_external_initializers_file_folder_path": os.fspath(directory)}
    x = case.batch(5, 1)
    got = bridge_session(path.read_bytes(), config=folder).run({"X": x})
    so = ort.SessionOptions()
    for key, value in folder.items():
        so.add_session_config_entry(key, value)
    expected = ort.InferenceSession(path.read_bytes(), so, providers=["CPUExecutionProvider"]).run(None, {"X": x})
    np.testing.assert_array_equal(got["variable"], expected[0])
    assert_results_equal(got, bridge_session(path).run({"X": x}))
