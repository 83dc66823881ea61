# SPDX-License-Identifier: Apache-2.0
"""Triton python model ``facecamo``: the public model. It runs the one frame pipeline
(:class:`facecamo.pipeline.FramePipeline`: detect, landmarks and alignment, paste-back, failing closed) and calls the
networks served beside it (``face_detector``, ``identity_encoder``, ``generator``) through BLS, so they are batched
across requests and streams by Triton and run on whatever runtime their flavour names (ONNX Runtime in a python
model, Triton's ONNX Runtime backend, TensorRT).

Settings are this model's ``parameters`` (written by the export from :class:`facecamo.settings.PipelineSettings`);
the appearance bank is ``bank.npy`` beside this file. Bad requests are answered INVALID_ARGUMENT with what to fix;
a failing network conceals the faces it was for (FACE_STATUS 1), never returns them as they were.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

from facecamo import spec
from facecamo.pipeline import FramePipeline
from facecamo.settings import PipelineSettings
from facecamo.request import RequestError
from facecamo.repository import load_bank, load_likeness

MAX_ERROR_CHARACTERS = 500


class TritonNetworks:
    """The pipeline's networks as BLS calls to the models served beside this one."""

    @staticmethod
    def _infer(model: str, inputs: dict, outputs: list) -> list:
        request = pb_utils.InferenceRequest(model_name=model, requested_output_names=outputs,
                                            inputs=[pb_utils.Tensor(name, np.ascontiguousarray(value)) for name, value in inputs.items()])
        response = request.exec()
        if response.has_error():
            raise RuntimeError(f"{model}: {response.error().message()[:MAX_ERROR_CHARACTERS]}")
        found = [pb_utils.get_output_tensor_by_name(response, name) for name in outputs]
        if any(tensor is None for tensor in found):
            raise RuntimeError(f"{model} did not return {outputs}")
        return [tensor.as_numpy() for tensor in found]

    def encode_identity(self, faces):
        return self._infer(spec.IDENTITY_ENCODER, {spec.FACE: faces}, [spec.IDENTITY_CODE])[0]

    def generate(self, identity, appearance):
        return self._infer(spec.GENERATOR, {spec.IDENTITY_CODE: identity, spec.APPEARANCE: appearance}, [spec.GENERATED_FACES])[0]

    def detect(self, images):
        names = [t.name for t in spec.DETECTOR_SPEC.outputs]
        return dict(zip(names, self._infer(spec.FACE_DETECTOR, {spec.DETECTOR_IMAGE: images}, names)))


def _flag(request, name: str) -> bool:
    """Whether the request carries the bool parameter ``name`` set to true."""
    try:
        return bool(json.loads(request.parameters() or "{}").get(name))
    except (AttributeError, ValueError):
        return False


class ProductMetrics:
    """The product's own counters on Triton's Prometheus endpoint (python backend custom metrics): what an operator
    alerts on. ``facecamo_faces_total{status}``: faces camouflaged, concealed by fallback (a failure), concealed by
    design (too small); ``facecamo_frames_total{result}``: frames ok, failed (concealed whole), rejected (bad input),
    rerun (a frame the client sent again, :data:`facecamo.spec.RERUN_PARAMETER`: not a new frame, its faces counted the
    first time); ``facecamo_faces_over_limit_total``: faces beyond the per-frame limit (concealed without landmarks)."""

    def __init__(self):
        faces = pb_utils.MetricFamily(name="facecamo_faces_total", description="Faces by outcome",
                                      kind=pb_utils.MetricFamily.COUNTER)
        frames = pb_utils.MetricFamily(name="facecamo_frames_total", description="Frames by outcome",
                                       kind=pb_utils.MetricFamily.COUNTER)
        over = pb_utils.MetricFamily(name="facecamo_faces_over_limit_total",
                                     description="Faces beyond the per-frame limit, concealed without landmarks",
                                     kind=pb_utils.MetricFamily.COUNTER)
        self.families = (faces, frames, over)  # a family must outlive its metrics
        self.faces = {code: faces.Metric(labels={"status": name}) for code, name in spec.STATUS_NAMES.items()}
        self.frames = {name: frames.Metric(labels={"result": name}) for name in ("ok", "failed", "rejected", "rerun")}
        self.over_limit = over.Metric(labels={})

    def record(self, result, rerun: bool = False) -> None:
        if rerun:
            self.frames["rerun"].increment(1)
            return
        for code, metric in self.faces.items():
            count = int((result.status == code).sum())
            if count:
                metric.increment(count)
        self.frames["failed" if result.failed else "ok"].increment(1)
        if result.over_limit:
            self.over_limit.increment(result.over_limit)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        folder = os.path.join(args["model_repository"], args["model_version"])
        # Refuse to load (so the server is not READY) rather than fail every request later.
        bank, design = load_bank(folder, params)
        likeness, members = load_likeness(folder, bank)
        self.pipeline = FramePipeline(TritonNetworks(), bank, PipelineSettings.from_strings(params), design=design,
                                      likeness=likeness, members=members)
        self.dtypes = {o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in config["output"]}
        self.metrics = ProductMetrics()

    def execute(self, requests):
        responses = []
        for request in requests:  # exactly one response per request
            try:
                responses.append(self._camouflage(request))
            except RequestError as error:
                self.metrics.frames["rejected"].increment(1)
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    str(error)[:MAX_ERROR_CHARACTERS], pb_utils.TritonError.INVALID_ARG)))
            except Exception as error:  # noqa: BLE001 - reported to the caller, the server keeps running
                self.metrics.frames["failed"].increment(1)
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    f"facecamo failed: {type(error).__name__}: {error}"[:MAX_ERROR_CHARACTERS])))
        return responses

    def _camouflage(self, request):
        def optional(name):
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            return None if tensor is None else tensor.as_numpy()

        frame = optional(spec.FRAME)
        if frame is None:
            raise RequestError("FRAME is required: uint8 [height, width, 3] RGB")
        result = self.pipeline.run(frame, optional(spec.APPEARANCE_INDEX), optional(spec.FACE_BOXES),
                                   optional(spec.TRACK_BOXES), optional(spec.TRACK_APPEARANCE))
        if not _flag(request, "facecamo_canary"):  # the launcher's health probes are not traffic
            self.metrics.record(result, rerun=_flag(request, spec.RERUN_PARAMETER))
        outputs = {spec.CAMOUFLAGED_FRAME: result.frame, spec.FACE_BOXES_OUT: result.boxes, spec.FACE_STATUS: result.status,
                   spec.FACE_APPEARANCE: result.appearance, spec.FACE_SOURCE: result.source_codes}
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor(name, value.astype(self.dtypes[name])) for name, value in outputs.items()])
