"""The frame-level steps around the networks, shared by the Triton python models and the client's embedded engine:
request validation, aligning every face of a frame into a batch, and pasting the generated faces back (failing
closed). No torch, no server: numpy, OpenCV and dlib only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecamo.align import ALIGN_CROP, Detection, FaceAligner, warp_face
from facecamo.paste import conceal_box, conceal_face, paste_face_inplace
from facecamo.spec import (
    MAX_FACES_PER_FRAME, STATE_ALIGNED, STATE_PLACEHOLDER, STATE_UNALIGNED, STATUS_CAMOUFLAGED, STATUS_FALLBACK,
    from_model_output, to_model_input,
)

MAX_FRAME_WIDTH = 3840
MAX_FRAME_HEIGHT = 2160


class RequestError(ValueError):
    """A request the caller must fix; the message says what was expected. Servers answer it as INVALID_ARGUMENT."""


def validate_frame(frame: np.ndarray, max_width: int = MAX_FRAME_WIDTH, max_height: int = MAX_FRAME_HEIGHT) -> np.ndarray:
    """Check a frame: uint8 (H, W, 3) RGB, non-empty, within the size limit (either orientation)."""
    if not isinstance(frame, np.ndarray):
        raise RequestError(f"FRAME must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise RequestError(f"FRAME must be uint8 RGB, got {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise RequestError(f"FRAME must have shape [height, width, 3] (RGB), got {list(frame.shape)}")
    height, width = frame.shape[:2]
    if height == 0 or width == 0:
        raise RequestError(f"FRAME is empty ({width}x{height}); send a decoded image")
    long_side, short_side = max(height, width), min(height, width)
    if long_side > max(max_width, max_height) or short_side > min(max_width, max_height):
        raise RequestError(f"FRAME is {width}x{height}, larger than the {max_width}x{max_height} limit; downscale it first")
    return np.ascontiguousarray(frame)


def validate_boxes(boxes: np.ndarray | None, frame_shape: tuple[int, ...], max_faces: int = MAX_FACES_PER_FRAME) -> np.ndarray | None:
    """Check caller-given face boxes: float (N, 4) (left, top, right, bottom), finite, non-empty, inside the frame."""
    if boxes is None:
        return None
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise RequestError(f"FACE_BOXES must have shape [N, 4] (left, top, right, bottom), got {list(boxes.shape)}")
    boxes = boxes.astype(np.float64)
    if len(boxes) > max_faces:
        raise RequestError(f"FACE_BOXES has {len(boxes)} boxes; at most {max_faces} faces per frame")
    if not np.all(np.isfinite(boxes)):
        raise RequestError("FACE_BOXES contains NaN or infinite values")
    height, width = frame_shape[:2]
    for index, (left, top, right, bottom) in enumerate(boxes):
        if right <= left or bottom <= top:
            raise RequestError(f"FACE_BOXES[{index}] = {[left, top, right, bottom]} must have right > left and bottom > top")
        if left < 0 or top < 0 or right > width or bottom > height:
            raise RequestError(f"FACE_BOXES[{index}] = {[left, top, right, bottom]} lies outside the {width}x{height} frame")
    return boxes


def appearance_rows(index: np.ndarray | None, faces: int, bank_size: int) -> np.ndarray:
    """Bank row per face: int32 (faces,). ``index`` may be absent/empty (default: row 0 for every face), hold one
    entry (for every face) or one entry per face.

    The default is fixed rather than per-face so that the same person keeps the same look from frame to frame without
    any server-side state; callers that want different people to differ pass one index per face (the client's
    tracker does).
    """
    if index is None or np.asarray(index).size == 0:
        return np.zeros(faces, np.int32)
    values = np.asarray(index).reshape(-1)
    if not np.issubdtype(values.dtype, np.integer):
        raise RequestError(f"APPEARANCE_INDEX must be integers, got {values.dtype}")
    if np.any(values < 0) or np.any(values >= bank_size):
        raise RequestError(f"APPEARANCE_INDEX {values.tolist()} out of range: the appearance bank has entries 0..{bank_size - 1}")
    if faces == 0:
        return np.zeros(0, np.int32)
    if len(values) == 1:
        return np.full(faces, int(values[0]), np.int32)
    if len(values) != faces:
        raise RequestError(f"APPEARANCE_INDEX has {len(values)} entries for {faces} faces; give 1 (for all) or one per face")
    return values.astype(np.int32)


@dataclass
class FrameFaces:
    """All faces of one frame, batched for the networks (at least one row: a placeholder when there is no face).

    Attributes:
        faces: float32 (N', 3, 112, 112) in [-1, 1].
        affines: float32 (N', 2, 3) frame-to-crop affines.
        boxes: float32 (N', 4).
        state: int32 (N',) STATE_ALIGNED / STATE_UNALIGNED / STATE_PLACEHOLDER.
    """

    faces: np.ndarray
    affines: np.ndarray
    boxes: np.ndarray
    state: np.ndarray

    @property
    def count(self) -> int:
        """Real faces (placeholder excluded)."""
        return int(np.sum(self.state != STATE_PLACEHOLDER))


def align_frame(aligner: FaceAligner, frame: np.ndarray, boxes: np.ndarray | None = None,
                max_faces: int = MAX_FACES_PER_FRAME) -> FrameFaces:
    """Detect (unless ``boxes`` are given), predict landmarks and align every face of a validated frame."""
    detections = ([Detection(tuple(float(v) for v in box), 1.0) for box in boxes] if boxes is not None
                  else aligner.detector(frame)[:max_faces])
    crops, affines, out_boxes, state = [], [], [], []
    for detection in detections:
        try:
            face = aligner.align_box(frame, detection)
            crops.append(face.crop)
            affines.append(face.affine)
            state.append(STATE_ALIGNED)
        except ValueError:  # degenerate landmarks: the face is concealed by paste, never passed through
            crops.append(np.zeros((ALIGN_CROP, ALIGN_CROP, 3), np.uint8))
            affines.append(np.zeros((2, 3)))
            state.append(STATE_UNALIGNED)
        out_boxes.append(detection.box)
    if not detections:
        crops, affines, out_boxes, state = [np.zeros((ALIGN_CROP, ALIGN_CROP, 3), np.uint8)], [np.zeros((2, 3))], [(0, 0, 0, 0)], [STATE_PLACEHOLDER]
    return FrameFaces(to_model_input(np.stack(crops)), np.asarray(affines, np.float32), np.asarray(out_boxes, np.float32),
                      np.asarray(state, np.int32))


def paste_frame(frame: np.ndarray, generated: np.ndarray, affines: np.ndarray, boxes: np.ndarray, state: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paste generated faces back into a copy of the frame, failing closed.

    Args:
        frame: uint8 (H, W, 3). generated: float32 (N', 3, 112, 112) in [-1, 1]. affines: (N', 2, 3).
        boxes: (N', 4). state: int32 (N',).
    Returns: (uint8 (H, W, 3) frame, float32 (N, 4) boxes, int32 (N,) FACE_STATUS), placeholders dropped.
    A face whose generated pixels are not finite, or that could not be aligned, is blurred and marked
    STATUS_FALLBACK: it is never returned as it was.
    """
    out = frame.copy()
    real = state != STATE_PLACEHOLDER
    status = np.full(int(real.sum()), STATUS_FALLBACK, np.int32)
    finite = np.isfinite(generated.reshape(len(generated), -1)).all(axis=1)
    faces = from_model_output(generated)
    for slot, index in enumerate(np.flatnonzero(real)):
        affine = affines[index].astype(np.float64)
        if state[index] == STATE_ALIGNED and finite[index]:
            paste_face_inplace(out, faces[index], affine)
            status[slot] = STATUS_CAMOUFLAGED
        elif state[index] == STATE_ALIGNED:
            conceal_face(out, warp_face(frame, affine), affine)
        else:
            conceal_box(out, tuple(boxes[index]))
    return out, boxes[real].astype(np.float32), status
