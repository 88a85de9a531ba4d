"""Built-in models, generated deterministically on first use into the cache directory."""
from juno_bridge.models.builtin import BUILTIN_MODELS, builtin_model, cache_dir

__all__ = ["BUILTIN_MODELS", "builtin_model", "cache_dir"]
