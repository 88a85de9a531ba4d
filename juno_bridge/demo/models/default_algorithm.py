"""The default model as a Python algorithm (the third method): the torch module called from Python,
declared for the bridge. The bridge hands the algorithm views of its buffers; torch wraps them without
a copy, and the outputs are written into the bridge's output buffers.

    jb.Session("python:juno_bridge.demo.models.default_algorithm:reconstruct")
    jb.Session("python:juno_bridge.models.default_algorithm:reconstruct")   # the name it had before, kept
"""
from juno_bridge.algorithm import algorithm
from juno_bridge.demo.detector import N_LPMT
from juno_bridge.demo.models import default


@algorithm(inputs={"pmt": ("float32", ("B", 2, N_LPMT))},
           outputs={"vertex": ("float32", ("B", 3)), "energy": ("float32", ("B",))})
def reconstruct(inputs, outputs):
    vertex, energy = default.reconstruct(inputs["pmt"])
    outputs["vertex"][...] = vertex
    outputs["energy"][...] = energy


MODEL = f"python:{__name__}:reconstruct"
