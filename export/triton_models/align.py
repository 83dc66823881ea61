"""Triton python model ``align``: validate the request, detect faces (or take the caller's boxes), predict 68
landmarks and align every face into the batch the networks consume.

Configuration (``parameters`` in config.pbtxt): ``detector`` (hog|cnn), ``upsample``, ``min_score``,
``max_width``, ``max_height``, ``bank_size``. Bad requests are answered with INVALID_ARGUMENT and a message that
says what to fix; the model keeps serving.
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from facecamo import spec
from facecamo.align import FaceAligner, FaceDetector
from facecamo.pipeline import RequestError, align_frame, appearance_rows, validate_boxes, validate_frame


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        detector = FaceDetector(params.get("detector", "hog"), int(params.get("upsample", "0")), float(params.get("min_score", "0")))
        self.aligner = FaceAligner(detector)
        self.max_width = int(params.get("max_width", "3840"))
        self.max_height = int(params.get("max_height", "2160"))
        self.bank_size = int(params["bank_size"])
        self.dtypes = {o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in config["output"]}

    def execute(self, requests):
        responses = []
        for request in requests:  # exactly one response per request
            try:
                responses.append(self._align(request))
            except RequestError as error:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error), pb_utils.TritonError.INVALID_ARG)))
            except Exception as error:  # noqa: BLE001 - reported to the caller, the server keeps running
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"align failed: {type(error).__name__}: {error}")))
        return responses

    def _align(self, request):
        frame = validate_frame(pb_utils.get_input_tensor_by_name(request, spec.FRAME).as_numpy(), self.max_width, self.max_height)
        boxes_tensor = pb_utils.get_input_tensor_by_name(request, spec.FACE_BOXES)
        boxes = validate_boxes(boxes_tensor.as_numpy(), frame.shape) if boxes_tensor is not None else None
        if boxes is not None and len(boxes) == 0:
            boxes = None  # an empty box list means "detect for me", never "leave faces as they are"
        index_tensor = pb_utils.get_input_tensor_by_name(request, spec.APPEARANCE_INDEX)
        index = index_tensor.as_numpy() if index_tensor is not None else None
        faces = align_frame(self.aligner, frame, boxes)
        rows = appearance_rows(index, faces.count, self.bank_size)
        if faces.count == 0:
            rows = np.zeros(1, np.int32)  # the placeholder row of a frame without faces
        outputs = {spec.FACES: faces.faces, spec.AFFINES: faces.affines, spec.BOXES: faces.boxes,
                   spec.FACE_STATE: faces.state, spec.APPEARANCE_ROWS: rows.reshape(-1, 1)}
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor(name, value.astype(self.dtypes[name])) for name, value in outputs.items()])
