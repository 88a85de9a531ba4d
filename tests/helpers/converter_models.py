"""Models as third-party converters make them, trained and converted at test time (the `converters` extra):
scikit-learn through skl2onnx, LightGBM and XGBoost through onnxmltools, a float16 model through
onnxconverter-common. Each comes with its library's own prediction, the yardstick besides onnxruntime.

Training sets are small (200 rows, 5 features) and the ensembles shallow, so the corpus builds in a few
seconds on a 2-core machine; every model is built once per test process."""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .optional import require

require("converters")  # a module-level skip (or failure under JUNO_BRIDGE_REQUIRE_ALL=1) for its importers

import lightgbm  # noqa: E402
import onnx  # noqa: E402
import onnx.numpy_helper  # noqa: E402
import onnxconverter_common  # noqa: E402
import onnxmltools  # noqa: E402
import skl2onnx  # noqa: E402
import sklearn  # noqa: E402
import xgboost  # noqa: E402
from onnxconverter_common.float16 import convert_float_to_float16  # noqa: E402
from onnxmltools.convert.common.data_types import FloatTensorType  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.neural_network import MLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

VERSIONS = {m.__name__: m.__version__ for m in (skl2onnx, onnxmltools, onnxconverter_common, sklearn, lightgbm,
                                                  xgboost, onnx)}

FEATURES = 5
ROWS = 200
_DIR = Path(tempfile.mkdtemp(prefix="jb-converter-models-"))
atexit.register(shutil.rmtree, _DIR, True)


@dataclass(frozen=True)
class Tolerance:
    """How close our outputs must be to the library's own prediction (float32 ONNX against float64
    libraries, float16 against float64): np.testing.assert_allclose's rtol and atol."""
    rtol: float
    atol: float


FLOAT32 = Tolerance(rtol=1e-5, atol=1e-5)
FLOAT16 = Tolerance(rtol=1e-2, atol=2e-2)  # float16 keeps 11 significant bits


@dataclass(frozen=True)
class Case:
    """One converted model: its file, its input, and the library's prediction of each tensor output."""
    name: str
    converter: str                      # which converter made it, and its version
    path: Path
    input_name: str
    input_dtype: type
    # output name -> the library's own prediction for a float32 batch (a class label is compared exactly)
    native: dict[str, Callable[[np.ndarray], np.ndarray]]
    tolerance: Tolerance = FLOAT32
    non_tensor_outputs: tuple[str, ...] = field(default=())

    def batch(self, rows: int, seed: int) -> np.ndarray:
        """A float32 batch like the training data (the library's input), in the model's input dtype."""
        x = np.random.default_rng(seed).normal(size=(rows, FEATURES)).astype(np.float32)
        return x.astype(self.input_dtype)

    @property
    def tensor_outputs(self) -> list[str]:
        return list(self.native)


def training_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """X float32 [200, 5]; a regression target; a binary and a 3-class label."""
    rng = np.random.default_rng(2024)
    x = rng.normal(size=(ROWS, FEATURES)).astype(np.float32)
    regression = (x @ rng.normal(size=FEATURES) + 0.1 * rng.normal(size=ROWS)).astype(np.float32)
    binary = (x[:, 0] + x[:, 1] ** 2 > 0.5).astype(np.int64)
    three = np.digitize(x[:, 0] + x[:, 2], [-0.5, 0.5]).astype(np.int64)
    return x, regression, binary, three


def _save(name: str, model: onnx.ModelProto) -> Path:
    path = _DIR / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _regressor(est) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: est.predict(x).reshape(-1, 1)  # converters emit [N, 1]


def _classifier(est, label: str, probabilities: str) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    return {label: est.predict, probabilities: est.predict_proba}


@functools.cache
def corpus() -> dict[str, Case]:
    """Every converted model of the corpus, by name (built on first use)."""
    with warnings.catch_warnings():  # the converters' and libraries' own deprecation chatter
        warnings.simplefilter("ignore")
        return _build()


def _build() -> dict[str, Case]:
    x, regression, binary, three = training_data()
    skl, mlt, occ = (f"skl2onnx {skl2onnx.__version__}", f"onnxmltools {onnxmltools.__version__}",
                     f"skl2onnx {skl2onnx.__version__} + onnxconverter-common {onnxconverter_common.__version__}")
    cases: list[Case] = []

    def sklearn_case(name, est, y, native=None, **convert):
        est.fit(x, y)
        path = _save(name, to_onnx(est, x[:1], **convert))
        cases.append(Case(name, skl, path, "X", np.float32, native or {"variable": _regressor(est)}))
        return est, path

    sklearn_case("LinearRegression", LinearRegression(), regression)
    sklearn_case("RandomForestRegressor", RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0, n_jobs=1),
                 regression)
    logistic = LogisticRegression()
    sklearn_case("LogisticRegression", logistic, three, _classifier(logistic, "label", "probabilities"),
                 options={id(logistic): {"zipmap": False}})
    forest = RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0, n_jobs=1)
    sklearn_case("RandomForestClassifier", forest, binary, _classifier(forest, "label", "probabilities"),
                 options={"zipmap": False})
    pipeline, pipeline_path = sklearn_case("Pipeline(StandardScaler, LinearRegression)",
                                           make_pipeline(StandardScaler(), LinearRegression()), regression)
    sklearn_case("MLPRegressor", MLPRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0), regression)

    # A float16 model: onnxconverter-common's conversion of the pipeline, float16 in and out.
    half = convert_float_to_float16(onnx.load(str(pipeline_path)), keep_io_types=False)
    cases.append(Case("Pipeline float16", occ, _save("Pipeline float16", half), "X", np.float16,
                      {"variable": _regressor(pipeline)}, FLOAT16))

    types = [("X", FloatTensorType([None, FEATURES]))]
    lgbm_regressor = lightgbm.LGBMRegressor(n_estimators=20, num_leaves=8, n_jobs=1, deterministic=True, verbose=-1)
    lgbm_regressor.fit(x, regression)
    cases.append(Case("LGBMRegressor", mlt, _save("LGBMRegressor", onnxmltools.convert_lightgbm(
        lgbm_regressor, initial_types=types)), "X", np.float32, {"variable": _regressor(lgbm_regressor)}))
    lgbm_classifier = lightgbm.LGBMClassifier(n_estimators=20, num_leaves=8, n_jobs=1, deterministic=True, verbose=-1)
    lgbm_classifier.fit(x, three)
    cases.append(Case("LGBMClassifier", mlt, _save("LGBMClassifier", onnxmltools.convert_lightgbm(
        lgbm_classifier, initial_types=types, zipmap=False)), "X", np.float32,
        _classifier(lgbm_classifier, "label", "probabilities")))

    xgb_regressor = xgboost.XGBRegressor(n_estimators=20, max_depth=3, n_jobs=1).fit(x, regression)
    cases.append(Case("XGBRegressor", mlt, _save("XGBRegressor", onnxmltools.convert_xgboost(
        xgb_regressor, initial_types=types)), "X", np.float32, {"variable": _regressor(xgb_regressor)}))
    xgb_classifier = xgboost.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(x, three)
    cases.append(Case("XGBClassifier", mlt, _save("XGBClassifier", onnxmltools.convert_xgboost(
        xgb_classifier, initial_types=types)), "X", np.float32, _classifier(xgb_classifier, "label", "probabilities")))
    return {case.name: case for case in cases}


@functools.cache
def zipmap_classifiers() -> dict[str, Case]:
    """Classifiers converted with their default ZipMap output (a sequence of maps class -> probability)
    beside the label: skl2onnx's RandomForestClassifier and onnxmltools' LightGBM classifier."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _build_zipmap()


def _build_zipmap() -> dict[str, Case]:
    x, _, binary, three = training_data()
    forest = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0, n_jobs=1).fit(x, binary)
    lgbm = lightgbm.LGBMClassifier(n_estimators=10, num_leaves=8, n_jobs=1, deterministic=True, verbose=-1)
    lgbm.fit(x, three)
    lgbm_onnx = onnxmltools.convert_lightgbm(lgbm, initial_types=[("X", FloatTensorType([None, FEATURES]))])
    return {
        "RandomForestClassifier+ZipMap": Case(
            "RandomForestClassifier+ZipMap", f"skl2onnx {skl2onnx.__version__}",
            _save("RandomForestClassifier+ZipMap", to_onnx(forest, x[:1])), "X", np.float32,
            {"output_label": forest.predict}, non_tensor_outputs=("output_probability",)),
        "LGBMClassifier+ZipMap": Case(
            "LGBMClassifier+ZipMap", f"onnxmltools {onnxmltools.__version__}",
            _save("LGBMClassifier+ZipMap", lgbm_onnx), "X", np.float32,
            {"label": lgbm.predict}, non_tensor_outputs=("probabilities",)),
    }


def external_data_copy(case: Case, directory: Path) -> Path:
    """The case's model saved into `directory` with its weights in one external file, weights.bin: the
    tensors of 256 bytes and more (a small shape tensor stays inside: onnxruntime's shape inference cannot
    read one from a file)."""
    path = directory / "model.onnx"
    model = onnx.load(str(case.path))
    for tensor in model.graph.initializer:  # onnx moves only raw_data out; skl2onnx writes float_data
        tensor.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(tensor), tensor.name))
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location="weights.bin",
              size_threshold=256)
    assert (directory / "weights.bin").stat().st_size > 0
    return path
