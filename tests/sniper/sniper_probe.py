"""A python: model for the JSON-job test: the default model's arithmetic, and a record of where the
embedded interpreter found its packages (written at every event to $SNIPER_PROBE_OUT)."""
import json
import os
import sys

import numpy as np

from juno_bridge.algorithm import algorithm

_events = [0]


@algorithm(inputs={"pmt": ("float32", ("B", 2, 17612))}, outputs={"energy": ("float32", ("B",))})
def reconstruct(inputs, outputs):
    outputs["energy"][...] = inputs["pmt"][:, 0, :].sum(axis=1) / 1345.0
    _events[0] += 1
    with open(os.environ["SNIPER_PROBE_OUT"], "w") as f:
        json.dump({"events": _events[0], "path": sys.path, "numpy": np.__file__,
                   "site": os.path.dirname(os.path.dirname(os.path.abspath(__import__("juno_bridge").__file__)))},
                  f)
