"""What the tests share: model builders (onnx_models, torch_models, tf_models), the reference runs, native
builds, test algorithms (pyalgos, dask_algos), Triton servers, and the optional-library markers.
tests/ is on sys.path (pytest's `pythonpath` setting), so tests write `from helpers import onnx_models`."""
