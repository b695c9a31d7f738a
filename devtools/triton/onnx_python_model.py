"""Triton Python-backend model that runs an ONNX file with onnxruntime.

Copied as `model.py` into the CPU Triton repository: the Triton build that runs on CPUs here
(bundled in nvidia-pytriton) has only the Python backend, so this stands in for Triton's
onnxruntime backend, which the GPU configs in model_repository/ use. It runs inside Triton's
own Python environment (numpy<2), so it imports nothing from this project.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        (self.input_name,) = [tensor["name"] for tensor in config["input"]]
        (self.output_name,) = [tensor["name"] for tensor in config["output"]]
        onnx_file = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(onnx_file, options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        """One onnxruntime call for everything Triton's dynamic batcher handed over."""
        batches = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        try:
            (features,) = self.session.run([self.output_name], {self.input_name: np.concatenate(batches)})
        except Exception as exc:  # errors go back as responses, one per request
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))) for _ in requests]
        responses, start = [], 0
        for batch in batches:
            rows = features[start : start + len(batch)].astype(np.float32)
            start += len(batch)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(self.output_name, rows)]))
        return responses
