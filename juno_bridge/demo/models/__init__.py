"""The models of the demo and the benchmarks: the built-in ONNX models (builtin), the default
reconstruction model (default) and its Python-algorithm form (default_algorithm)."""
from juno_bridge.demo.models.builtin import BUILTIN_MODELS, builtin_input, builtin_model
from juno_bridge.paths import cache_dir

__all__ = ["BUILTIN_MODELS", "builtin_input", "builtin_model", "cache_dir"]
