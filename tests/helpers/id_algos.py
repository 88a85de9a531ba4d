"""A Python algorithm with an output named ``event_id``, which every output file of `juno-bridge run` keeps
for the events' ids (`python:helpers.id_algos:ids_out`)."""
import numpy as np

import juno_bridge as jb


@jb.algorithm(inputs={"x": ("float32", ("B", 8))}, outputs={"event_id": ("int64", ("B",))})
def ids_out(inputs, outputs):
    outputs["event_id"][:] = np.arange(len(inputs["x"]))
