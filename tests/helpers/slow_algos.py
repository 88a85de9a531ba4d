"""A Python algorithm that stalls on demand, for the Triton fault tests (served by `juno-bridge serve`,
whose model instances import it through `python:helpers.slow_algos:sleepy`)."""
import time

import juno_bridge as jb


@jb.algorithm(inputs={"x": ("float32", ("B", 4))}, outputs={"y": ("float32", ("B", 4))})
def sleepy(inputs, outputs):
    """y = x + 1, after sleeping x[0, 0] seconds."""
    time.sleep(float(inputs["x"][0, 0]))
    outputs["y"][:] = inputs["x"] + 1
