"""The models' former place, kept so that what users wrote still works: ``juno_bridge.models.builtin``,
``.default`` and ``.default_algorithm`` (``python:juno_bridge.models.default_algorithm:reconstruct``)
are the modules of juno_bridge.demo.models, under their old names (``default`` is now the trained
network; the centroid model it was is ``juno_bridge.demo.models.baseline``)."""
import sys

from juno_bridge.demo.models import BUILTIN_MODELS, builtin_input, builtin_model, cache_dir
from juno_bridge.demo.models import builtin, default, default_algorithm

for _module in (builtin, default, default_algorithm):
    sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module

__all__ = ["BUILTIN_MODELS", "builtin", "builtin_input", "builtin_model", "cache_dir", "default", "default_algorithm"]
