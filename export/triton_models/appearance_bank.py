"""Triton python model ``appearance_bank``: looks up precomputed appearance codes (``bank.npy`` beside this file,
float32 [K, C_app, 4, 1], made by the export from reference faces) by row, so no request carries a reference photo."""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.bank = np.load(os.path.join(args["model_repository"], args["model_version"], "bank.npy")).astype(np.float32)
        self.input = config["input"][0]["name"]
        self.output = config["output"][0]["name"]

    def execute(self, requests):
        responses = []
        for request in requests:
            rows = pb_utils.get_input_tensor_by_name(request, self.input).as_numpy().reshape(-1)
            if np.any(rows < 0) or np.any(rows >= len(self.bank)):
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    f"appearance row out of range 0..{len(self.bank) - 1}: {rows.tolist()}", pb_utils.TritonError.INVALID_ARG)))
                continue
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(self.output, self.bank[rows])]))
        return responses
