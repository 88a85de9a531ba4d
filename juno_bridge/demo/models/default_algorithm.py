"""The default model as a Python algorithm (the third method): the torch module called from Python,
declared for the bridge. The bridge hands the algorithm views of its buffers; torch wraps them without
a copy, and the outputs are written into the bridge's output buffers.

    jb.Session("python:juno_bridge.demo.models.default_algorithm:reconstruct")
    jb.Session("python:juno_bridge.models.default_algorithm:reconstruct")   # the name it had before, kept
"""
from juno_bridge.demo.models import default
from juno_bridge.demo.models.forms import vertex_energy_algorithm

reconstruct = vertex_energy_algorithm(default.reconstruct, prepare=default.prepare)  # the module built at open
MODEL = f"python:{__name__}:reconstruct"
