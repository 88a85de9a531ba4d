"""The Triton python-backend model `juno-bridge serve` writes as model.py: each instance runs our Session.

Runs inside Triton's python backend stub, not in our process. Tensors cross the stub through DLPack
only: under numpy 2 the stub's ``as_numpy()`` returns zeros and ``pb_utils.Tensor(name, array)`` sends
an empty buffer, silently. Requests the dynamic batcher hands over together are run as one batch.
Every response carries its request's id (a number the triton:// client sets) as the output
``juno_bridge_tag``: the client then knows the answer is its own.
"""
import json
import sys

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        for path in reversed(json.loads(parameters["juno_bridge_sys_path"])):
            if path not in sys.path:
                sys.path.insert(0, path)
        import juno_bridge as jb

        self.session = jb.Session(parameters["juno_bridge_model"], **json.loads(parameters["juno_bridge_options"]))
        self.batched = config.get("max_batch_size", 0) > 0
        self.input_names = [t.name for t in self.session.inputs()]
        self.output_names = [t.name for t in self.session.outputs()]

    def tag(self, request, rows: int) -> np.ndarray:
        """The request's id as the tag output: [rows, 1] in a batched model, [1] otherwise; 0 where the
        id is not a number (a client other than ours)."""
        rid = request.request_id()
        value = int(rid) if rid.isdigit() and int(rid) < 2 ** 64 else 0
        return np.full((rows, 1) if self.batched else (1,), value, np.uint64)

    def execute(self, requests):
        try:
            # The stub's shared memory does not align tensors to their elements: such a tensor is copied.
            per_request = [{n: np.require(np.from_dlpack(pb_utils.get_input_tensor_by_name(r, n)),
                                          requirements="CA") for n in self.input_names} for r in requests]
        except Exception as err:
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(f"cannot read inputs: {err}"))
                    for _ in requests]
        if self.batched and len(requests) > 1:
            sizes = [len(inputs[self.input_names[0]]) for inputs in per_request]
            batch = {n: np.concatenate([inputs[n] for inputs in per_request]) for n in self.input_names}
            try:
                outputs = self.session.run(batch)
            except Exception as err:
                return [pb_utils.InferenceResponse(error=pb_utils.TritonError(str(err))) for _ in requests]
            bounds = np.cumsum([0] + sizes)
            results = [{n: outputs[n][bounds[i]:bounds[i + 1]] for n in self.output_names}
                       for i in range(len(requests))]
        else:
            results = []
            for inputs in per_request:
                try:
                    results.append(self.session.run(inputs))
                except Exception as err:
                    results.append(err)
        responses = []
        for request, inputs, result in zip(requests, per_request, results):
            if isinstance(result, Exception):
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(result))))
                continue
            tensors = [pb_utils.Tensor.from_dlpack(n, np.ascontiguousarray(result[n])) for n in self.output_names]
            rows = len(inputs[self.input_names[0]]) if self.batched and self.input_names else 1
            tensors.append(pb_utils.Tensor.from_dlpack("juno_bridge_tag", self.tag(request, rows)))
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self):
        self.session.close()
