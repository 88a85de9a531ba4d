"""The baseline model as a Python algorithm: the numpy form, declared for the bridge.

    jb.Session("python:juno_bridge.demo.models.baseline_algorithm:reconstruct")
"""
from juno_bridge.algorithm import algorithm
from juno_bridge.demo.detector import N_LPMT
from juno_bridge.demo.models import baseline


@algorithm(inputs={"pmt": ("float32", ("B", 2, N_LPMT))},
           outputs={"vertex": ("float32", ("B", 3)), "energy": ("float32", ("B",))})
def reconstruct(inputs, outputs):
    vertex, energy = baseline.reconstruct(inputs["pmt"])
    outputs["vertex"][...] = vertex
    outputs["energy"][...] = energy


MODEL = f"python:{__name__}:reconstruct"
