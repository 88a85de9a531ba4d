"""`juno-bridge serve`: our models on a real NVIDIA Triton Inference Server (server.py), each model
instance running our Session inside Triton's python backend (triton_model.py, copied into the model
repository as model.py). The client side, ``Session("triton://...")``, is juno_bridge.remote."""
from juno_bridge.serve.server import (ServedModel, TritonServer, filtered_log, free_port, serve_forever, served_name,
                                      triton_home, write_repository)

__all__ = ["ServedModel", "TritonServer", "filtered_log", "free_port", "serve_forever", "served_name", "triton_home",
           "write_repository"]
