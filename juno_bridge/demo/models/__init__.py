"""The models of the demo and the benchmarks: the built-in ONNX models (builtin), the default
reconstruction model (default: a network trained on toy events; its graph in network, its Keras form
in keras_port, its Python-algorithm form in default_algorithm) and the centroid model it replaced
(baseline, baseline_algorithm)."""
from juno_bridge.demo.models.builtin import BUILTIN_MODELS, builtin_input, builtin_model
from juno_bridge.paths import cache_dir

__all__ = ["BUILTIN_MODELS", "builtin_input", "builtin_model", "cache_dir"]
