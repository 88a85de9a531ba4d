"""Writes the models the C/C++ test programs run under ctest (tests/native/cpp/CMakeLists.txt):

    make_models.py --can                 prints the families this Python can write: onnx torch tf juno_bridge
    make_models.py OUTDIR onnx [torch] [tf]

onnx: mlp.onnx (run_model.c/.cpp), slots.onnx and types.onnx (ort_slots.c), relu.onnx (onnx_without_python.cpp);
torch: tiny.pt2, tiny.pt (run_torch.cpp); tf: tiny.savedmodel (run_tf.cpp). The torch and tf models are
the pytest helpers' own (torch_models, tf_models), which export through the installed juno_bridge."""
from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

# A script run by ctest, outside pytest: the test helpers package (tests/helpers/) made importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def juno_bridge_installed() -> bool:
    """juno_bridge with its compiled modules (a source checkout on the path has none)."""
    try:
        import juno_bridge._core  # noqa: F401
    except ImportError:
        return False
    return True


def available() -> list[str]:
    have = [name for name in ("onnx", "torch", "tensorflow") if importlib.util.find_spec(name)]
    families = ["onnx"] if "onnx" in have else []
    if juno_bridge_installed():
        families += [f for f, m in (("torch", "torch"), ("tf", "tensorflow")) if m in have] + ["juno_bridge"]
    return families


def onnx_models(out: Path) -> None:
    import onnx
    from onnx import TensorProto, helper
    from helpers.native_build import write_mlp_model, write_slots_model, write_types_model

    write_mlp_model(out / "mlp.onnx", features=8)  # the FEATURES of tests/native/test_programs.py
    write_slots_model(out / "slots.onnx")
    write_types_model(out / "types.onnx")
    # relu: one float32 input [B, 32], one output (onnx_without_python.cpp).
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 32])
    relu = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y]),
                             opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(relu, str(out / "relu.onnx"))


def torch_models(out: Path) -> None:
    from helpers import torch_models as tm
    for suffix in (".pt2", ".pt"):
        shutil.copy(tm.tiny(suffix), out / f"tiny{suffix}")


def tf_models(out: Path) -> None:
    from helpers import tf_models as tm
    shutil.rmtree(out / "tiny.savedmodel", ignore_errors=True)
    shutil.copytree(tm.tiny(), out / "tiny.savedmodel")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--can"]:
        print(" ".join(available()))
        return 0
    out, families = Path(argv[0]), argv[1:]
    out.mkdir(parents=True, exist_ok=True)
    writers = {"onnx": onnx_models, "torch": torch_models, "tf": tf_models}
    for family in families:
        writers[family](out)
        print(f"wrote the {family} models into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
