"""Triton python model that runs an exported network (``model.onnx`` beside this file) with ONNX Runtime: the
``python`` flavour, for a Triton without the onnxruntime backend (the CPU-only server on these machines).

Input and output names come from the model config (which the export writes from facecamo.spec). Requests merged by
dynamic batching are concatenated along the face dimension and run as one batch.
"""

import json
import os

import numpy as np
import onnxruntime
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        folder = os.path.join(args["model_repository"], args["model_version"])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(params.get("intra_op_threads", "0"))
        self.session = onnxruntime.InferenceSession(os.path.join(folder, "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        self.dtypes = {o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in config["output"]}

    def execute(self, requests):
        try:
            feeds = {name: [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for r in requests] for name in self.inputs}
            sizes = [len(x) for x in feeds[self.inputs[0]]]
            results = self.session.run(self.outputs, {name: np.concatenate(parts) for name, parts in feeds.items()})
        except Exception as error:  # noqa: BLE001 - every request gets the error; paste will fail closed upstream
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{type(error).__name__}: {error}")) for _ in requests]
        responses, start = [], 0
        for size in sizes:
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(name, value[start : start + size].astype(self.dtypes[name])) for name, value in zip(self.outputs, results)]))
            start += size
        return responses
