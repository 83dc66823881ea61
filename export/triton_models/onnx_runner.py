# SPDX-License-Identifier: Apache-2.0
"""Triton python model that runs an exported network (``model.onnx`` beside this file) with ONNX Runtime: the
``python`` flavour, for a Triton without the onnxruntime backend (the CPU-only server on these machines).

At load time the network is checked against :mod:`facecamo.spec` (names, dtypes, shapes, one tiny inference): a
model that cannot work fails to load, so the server never reports it READY. Requests merged by dynamic batching are
concatenated along the batch dimension and run as one batch.
"""

import json
import os

import numpy as np
import onnxruntime
import triton_python_backend_utils as pb_utils

from facecamo.networks import _session, check_onnx_network, network_spec

RELEASE_ABOVE_BYTES = 32 * 2**20
"""A batch whose inputs exceed this (one 3840x2160 frame is 100 MB for the detector; a full batch of 640x480 frames
30 MB) grows ONNX Runtime's memory arena by more than a gigabyte per run, kept for good and growing again on the next
such run (a 3840x2160 frame with 64 faces took the detector's process from 0.2 to 2.8 GB in two requests). Such a run
shrinks the arena back at its end; smaller ones keep it warm (no cost to ordinary traffic)."""


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        folder = os.path.join(args["model_repository"], args["model_version"])
        self.session = _session(os.path.join(folder, "model.onnx"), int(params.get("intra_op_threads", "0")))
        wanted = network_spec(config["name"])
        # Symbolic sizes (C_id, C_app) as this model's config states them, for a model that leaves them open.
        dims = {i["name"]: i["dims"] for i in config["input"]}
        sizes = {d: int(v) for t in wanted.inputs for d, v in zip(t.dims, dims.get(t.name, [])) if isinstance(d, str)}
        check_onnx_network(config["name"], self.session, sizes)
        self.inputs = [t.name for t in wanted.inputs]
        self.outputs = [t.name for t in wanted.outputs]
        self.dtypes = {o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in config["output"]}
        self.release_memory = onnxruntime.RunOptions()
        self.release_memory.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def execute(self, requests):
        try:
            feeds = {name: [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for r in requests] for name in self.inputs}
            sizes = [len(x) for x in feeds[self.inputs[0]]]
            batch = {name: np.concatenate(parts) for name, parts in feeds.items()}
            large = sum(value.nbytes for value in batch.values()) > RELEASE_ABOVE_BYTES
            results = self.session.run(self.outputs, batch, self.release_memory if large else None)
            if any(len(value) != sum(sizes) for value in results):
                raise RuntimeError(f"the network returned {[len(v) for v in results]} rows for a batch of {sum(sizes)}")
        except Exception as error:  # noqa: BLE001 - every request gets the error; the pipeline conceals those faces
            message = f"{type(error).__name__}: {error}"[:500]
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(message)) for _ in requests]
        responses, start = [], 0
        for size in sizes:
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(name, value[start : start + size].astype(self.dtypes[name])) for name, value in zip(self.outputs, results)]))
            start += size
        return responses
