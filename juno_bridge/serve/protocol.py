"""What `juno-bridge serve`'s models and the triton:// client agree on beyond Triton's own protocol.

Every response of a served model carries its request's id (a decimal number the client sets) as the
output ``TAG_OUTPUT``, uint64, [1] per request or [rows, 1] in a batched model (juno_bridge/serve/
triton_model.py writes it; juno_bridge.remote checks it and hides it from the model's signature).
"""
TAG_OUTPUT = "juno_bridge_tag"
