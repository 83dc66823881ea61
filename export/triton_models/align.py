"""Triton python model ``align``: validate the request, detect faces (or take the caller's boxes), predict 68
landmarks and align every face into the batch the networks consume.

Configuration (``parameters`` in config.pbtxt): ``detector`` (hog|cnn), ``upsample``, ``min_score``,
``max_width``, ``max_height``, ``bank_size``. Bad requests are answered with INVALID_ARGUMENT and a message that
says what to fix; the model keeps serving.
"""

import json

import triton_python_backend_utils as pb_utils

from facecamo import spec
from facecamo.align import FaceAligner, FaceDetector
from facecamo.pipeline import RequestError, prepare_frame


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        self.aligner = FaceAligner(FaceDetector.from_settings(params))
        self.max_width = int(params.get("max_width", "3840"))
        self.max_height = int(params.get("max_height", "2160"))
        self.bank_size = int(params["bank_size"])
        self.max_faces = int(params.get("max_faces", "64"))
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
        def optional(name):
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            return None if tensor is None else tensor.as_numpy()

        faces = prepare_frame(
            self.aligner, pb_utils.get_input_tensor_by_name(request, spec.FRAME).as_numpy(), self.bank_size,
            index=optional(spec.APPEARANCE_INDEX), boxes=optional(spec.FACE_BOXES), track_boxes=optional(spec.TRACK_BOXES),
            track_appearance=optional(spec.TRACK_APPEARANCE), max_width=self.max_width, max_height=self.max_height,
            max_faces=self.max_faces)
        outputs = {spec.FACES: faces.faces, spec.AFFINES: faces.affines, spec.BOXES: faces.boxes,
                   spec.FACE_STATE: faces.state, spec.APPEARANCE_ROWS: faces.rows.reshape(-1, 1)}
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor(name, value.astype(self.dtypes[name])) for name, value in outputs.items()])
