"""Triton python model ``paste``: put the generated faces back into the frame (feathered, inverse affine), and fail
closed: a face that could not be aligned, or whose generated pixels are not finite, is blurred and marked
FACE_STATUS=1 (fallback). The placeholder row of a frame without faces is dropped, so that frame comes back unchanged."""

import json

import triton_python_backend_utils as pb_utils

from facecamo import spec
from facecamo.pipeline import paste_frame


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.dtypes = {o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in config["output"]}

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                get = lambda name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()  # noqa: E731
                state = get(spec.FACE_STATE)
                frame, boxes, status = paste_frame(get(spec.FRAME), get(spec.GENERATED_FACES), get(spec.AFFINES),
                                                   get(spec.BOXES), state)
                rows = get(spec.APPEARANCE_ROWS).reshape(-1)[state != spec.STATE_PLACEHOLDER]
                outputs = {spec.CAMOUFLAGED_FRAME: frame, spec.FACE_BOXES_OUT: boxes, spec.FACE_STATUS: status,
                           spec.FACE_APPEARANCE: rows}
                responses.append(pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor(name, value.astype(self.dtypes[name])) for name, value in outputs.items()]))
            except Exception as error:  # noqa: BLE001 - the caller gets an error, never the unprocessed frame
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"paste failed: {type(error).__name__}: {error}")))
        return responses
