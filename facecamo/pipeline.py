"""The frame-level steps around the networks, shared by the Triton python models and the client's embedded engine:
request validation, aligning every face of a frame into a batch, and pasting the generated faces back (failing
closed). No torch, no server: numpy, OpenCV and dlib only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecamo.align import ALIGN_CROP, Detection, FaceAligner, warp_face
from facecamo.paste import conceal_box, conceal_face, paste_face_inplace
from facecamo.tracking import match_boxes
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


def assign_appearance(boxes: np.ndarray, bank_size: int, index: np.ndarray | None = None,
                      track_boxes: np.ndarray | None = None, track_appearance: np.ndarray | None = None) -> np.ndarray:
    """The bank entry of each face: int32 (N,) for face boxes float (N, 4). See :mod:`facecamo.spec` for the rule.

    Raises:
        RequestError: for indices out of range, or a count that matches neither 1 nor the number of faces.
    """
    count = len(boxes)

    def check(values: np.ndarray, name: str) -> np.ndarray:
        values = np.asarray(values).reshape(-1)
        if values.size and not np.issubdtype(values.dtype, np.integer):
            raise RequestError(f"{name} must be integers, got {values.dtype}")
        if np.any(values < 0) or np.any(values >= bank_size):
            raise RequestError(f"{name} {values.tolist()} out of range: the appearance bank has entries 0..{bank_size - 1}")
        return values.astype(np.int64)

    if index is not None and np.asarray(index).size:
        values = check(index, "APPEARANCE_INDEX")
        if count == 0:  # a frame without faces: the indices were valid, there is nothing to assign
            return np.zeros(0, np.int32)
        if len(values) == 1:
            return np.full(count, int(values[0]), np.int32)
        if len(values) != count:
            raise RequestError(f"APPEARANCE_INDEX has {len(values)} entries for {count} faces; give 1 (for all) or one per face")
        return values.astype(np.int32)
    hints = np.zeros((0, 4)) if track_boxes is None else np.asarray(track_boxes, np.float64).reshape(-1, 4)
    hint_rows = np.zeros(0, np.int64) if track_appearance is None else check(track_appearance, "TRACK_APPEARANCE")
    if len(hints) != len(hint_rows):
        raise RequestError(f"TRACK_BOXES has {len(hints)} rows but TRACK_APPEARANCE {len(hint_rows)}; give one entry per track")
    if len(hints) and not np.all(np.isfinite(hints)):
        raise RequestError("TRACK_BOXES contains NaN or infinite values")
    rows = np.full(count, -1, np.int64)
    for face, track in enumerate(match_boxes(boxes, hints)):
        if track >= 0:
            rows[face] = hint_rows[track]
    taken = set(hint_rows.tolist()) | set(rows[rows >= 0].tolist())
    free = iter([r for r in range(bank_size) if r not in taken])
    for face in sorted(np.flatnonzero(rows < 0), key=lambda f: (boxes[f][0], boxes[f][1])):
        rows[face] = next(free, face % bank_size)
    return rows.astype(np.int32)


@dataclass
class FrameFaces:
    """All faces of one frame, batched for the networks (at least one row: a placeholder when there is no face).

    Attributes:
        faces: float32 (N', 3, 112, 112) in [-1, 1].
        affines: float32 (N', 2, 3) frame-to-crop affines.
        boxes: float32 (N', 4).
        state: int32 (N',) STATE_ALIGNED / STATE_UNALIGNED / STATE_PLACEHOLDER.
        rows: int32 (N',) appearance-bank entry per face (0 for the placeholder).
    """

    faces: np.ndarray
    affines: np.ndarray
    boxes: np.ndarray
    state: np.ndarray
    rows: np.ndarray | None = None

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


def prepare_frame(aligner: FaceAligner, frame: np.ndarray, bank_size: int, index: np.ndarray | None = None,
                  boxes: np.ndarray | None = None, track_boxes: np.ndarray | None = None,
                  track_appearance: np.ndarray | None = None, max_width: int = MAX_FRAME_WIDTH,
                  max_height: int = MAX_FRAME_HEIGHT, max_faces: int = MAX_FACES_PER_FRAME) -> FrameFaces:
    """Everything before the networks, for one request: validate, detect (or take ``boxes``; an empty box list means
    "detect for me", never "leave the faces alone"), align, and pick each face's appearance-bank entry.

    Raises:
        RequestError: for any invalid input, with what to fix.
    """
    frame = validate_frame(frame, max_width, max_height)
    boxes = validate_boxes(boxes, frame.shape, max_faces)
    if boxes is not None and len(boxes) == 0:
        boxes = None
    faces = align_frame(aligner, frame, boxes, max_faces)
    real = faces.state != STATE_PLACEHOLDER
    rows = np.zeros(len(faces.state), np.int32)  # the placeholder row of a frame without faces looks up entry 0
    rows[real] = assign_appearance(faces.boxes[real], bank_size, index, track_boxes, track_appearance)
    faces.rows = rows
    return faces


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
