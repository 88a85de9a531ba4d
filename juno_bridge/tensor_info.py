"""TensorInfo: a model input or output as the model declares it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """``shape`` has -1 for a dynamic dim (``None`` when the model does not state the rank), and
    ``dim_names`` the symbolic name of each dim or ``None``. ``dtype`` is ``None`` for types the bridge
    cannot pass (strings, sequences, maps): ``type_name`` says which, in ONNX's full spelling as onnxruntime
    gives it ("tensor(string)", "seq(map(int64,tensor(float)))")."""

    name: str
    dtype: np.dtype | None
    shape: tuple[int, ...] | None
    dim_names: tuple[str | None, ...] | None
    type_name: str

    def __repr__(self) -> str:
        if self.shape is None:
            dims = "?"
        else:
            dims = ", ".join(n if (d < 0 and n) else ("?" if d < 0 else str(d))
                             for d, n in zip(self.shape, self.dim_names or ()))
        dtype = self.dtype if self.dtype is not None else self.type_name
        return f"TensorInfo({self.name!r}, {dtype}, [{dims}])"
