"""Models as the converters make them (tests/helpers/converter_models.py, built at test time): through our
Session each equals onnxruntime's own Python API on the same file bit for bit, and its library's own
prediction within the case's stated tolerance, at any batch size."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import converter_models
from helpers.reference import assert_results_equal, bridge_session, reference_session

CASES = sorted(converter_models.corpus())
MAX_BATCH = 64
batches = st.integers(1, MAX_BATCH)
seeds = st.integers(0, 2**32 - 1)


@pytest.fixture(scope="module")
def sessions():
    """Per case: (the case, our Session, onnxruntime's InferenceSession), opened once."""
    opened = {}

    def get(name):
        if name not in opened:
            case = converter_models.corpus()[name]
            opened[name] = (case, bridge_session(case.path), reference_session(case.path))
        return opened[name]
    return get


def run_both(case, ours, reference, x):
    names = case.tensor_outputs
    got = ours.run({case.input_name: x}, outputs=names)
    expected = dict(zip(names, reference.run(names, {case.input_name: x})))
    return got, expected


@pytest.mark.parametrize("name", CASES)
@given(rows=batches, seed=seeds)
def test_every_converted_model_equals_onnxruntime_bitwise_at_any_batch_size(sessions, name, rows, seed):
    case, ours, reference = sessions(name)
    got, expected = run_both(case, ours, reference, case.batch(rows, seed))
    assert_results_equal(got, expected)
    assert all(len(a) == rows for a in got.values())


@pytest.mark.parametrize("name", CASES)
@given(rows=batches, seed=seeds)
def test_every_converted_model_equals_its_library_within_the_stated_tolerance(sessions, name, rows, seed):
    case, ours, _ = sessions(name)
    x = case.batch(rows, seed)
    got = ours.run({case.input_name: x}, outputs=case.tensor_outputs)
    features = x.astype(np.float32)  # the library's own input: the same values (float16 ones widened)
    for output, predict in case.native.items():
        expected = predict(features)
        if got[output].dtype.kind in "iu":  # a class label: exact
            np.testing.assert_array_equal(got[output], expected, err_msg=f"{name}: {output}")
        else:
            np.testing.assert_allclose(got[output].astype(np.float64), expected, rtol=case.tolerance.rtol,
                                       atol=case.tolerance.atol, err_msg=f"{name}: {output}")


@pytest.mark.parametrize("name", CASES + sorted(converter_models.zipmap_classifiers()))
def test_type_names_are_onnxruntimes_own_spelling(name):
    case = {**converter_models.corpus(), **converter_models.zipmap_classifiers()}[name]
    ours, reference = bridge_session(case.path), reference_session(case.path)
    assert [(i.name, i.type_name) for i in ours.inputs()] == [(i.name, i.type) for i in reference.get_inputs()]
    assert [(o.name, o.type_name) for o in ours.outputs()] == [(o.name, o.type) for o in reference.get_outputs()]


def test_the_corpus_has_every_converter_and_model_family():
    cases = converter_models.corpus()
    converters = {case.converter.split()[0] for case in cases.values()}
    assert converters == {"skl2onnx", "onnxmltools"}
    assert {"LinearRegression", "RandomForestRegressor", "LogisticRegression", "RandomForestClassifier",
            "Pipeline(StandardScaler, LinearRegression)", "LGBMRegressor", "LGBMClassifier", "XGBRegressor",
            "XGBClassifier", "Pipeline float16"} <= set(cases)
    half = cases["Pipeline float16"]
    assert [i.dtype for i in bridge_session(half.path).inputs()] == [np.dtype(np.float16)]
    assert ort.InferenceSession(str(half.path), providers=["CPUExecutionProvider"]).get_outputs()[0].type == \
        "tensor(float16)"
