"""The baseline model as a Python algorithm: the numpy form, declared for the bridge.

    jb.Session("python:juno_bridge.demo.models.baseline_algorithm:reconstruct")
"""
from juno_bridge.demo.models import baseline
from juno_bridge.demo.models.forms import vertex_energy_algorithm

reconstruct = vertex_energy_algorithm(baseline.reconstruct)
MODEL = f"python:{__name__}:reconstruct"
