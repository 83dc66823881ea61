# SPDX-License-Identifier: Apache-2.0
"""What a request may hold, checked once before any work (:meth:`facecamo.pipeline.FramePipeline.prepare`): the frame,
the caller's face boxes, tracks and appearance indices, and the rule that gives each face its bank entry. Every
problem raises :class:`RequestError` saying what to fix; servers answer it as INVALID_ARGUMENT. numpy alone."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from facecamo import spec
from facecamo.spec import MAX_FACES_PER_FRAME
from facecamo.tracking import match_boxes

MAX_FRAME_WIDTH = 3840
MAX_FRAME_HEIGHT = 2160
MAX_MESSAGE_ITEMS = 8
"""Error messages quote at most this many offending values: a message must never echo a whole array."""
MAX_BOX_COVER = 4.0
"""FACE_BOXES (and, apart, TRACK_BOXES) may cover at most this many times the frame's area together. Paste-back costs
time and memory in proportion to a face's area (64 full-frame boxes on a 3840x2160 frame held one model instance for
26 to 57 s and grew it by 0.9 GB); real faces barely overlap, and this leaves room for a few duplicate boxes per face."""


class RequestError(ValueError):
    """A request the caller must fix; the message says what was expected. Servers answer it as INVALID_ARGUMENT."""


def _quote(values: np.ndarray) -> str:
    flat = np.asarray(values).reshape(-1)
    shown = flat[:MAX_MESSAGE_ITEMS].tolist()
    return f"{shown}{' ... (' + str(flat.size) + ' values)' if flat.size > MAX_MESSAGE_ITEMS else ''}"


def validate_frame(frame: Any, max_width: int = MAX_FRAME_WIDTH, max_height: int = MAX_FRAME_HEIGHT) -> np.ndarray:
    """Check a frame: uint8 (H, W, 3) RGB, non-empty, within the size limit (either orientation)."""
    problem = spec.frame_problem(frame)
    if problem:
        raise RequestError(problem)
    height, width = frame.shape[:2]
    long_side, short_side = max(height, width), min(height, width)
    if long_side > max(max_width, max_height) or short_side > min(max_width, max_height):
        raise RequestError(f"FRAME is {width}x{height}, larger than the {max_width}x{max_height} limit; downscale it first")
    return np.ascontiguousarray(frame)


def validate_boxes(boxes: Any, frame_shape: tuple[int, ...], max_faces: int = MAX_FACES_PER_FRAME * 8,
                   name: str = "FACE_BOXES", inside: bool = True) -> np.ndarray | None:
    """Check boxes: float (N, 4) (left, top, right, bottom), finite, non-empty, inside the frame (``inside``)."""
    if boxes is None:
        return None
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise RequestError(f"{name} must have shape [N, 4] (left, top, right, bottom), got {list(boxes.shape)}")
    if not (np.issubdtype(boxes.dtype, np.floating) or np.issubdtype(boxes.dtype, np.integer)):
        raise RequestError(f"{name} must be numbers, got {boxes.dtype}")
    boxes = boxes.astype(np.float64)
    if len(boxes) > max_faces:
        raise RequestError(f"{name} has {len(boxes)} boxes; at most {max_faces} per frame")
    if not np.all(np.isfinite(boxes)):
        raise RequestError(f"{name} contains NaN or infinite values")
    height, width = frame_shape[:2]
    for index, (left, top, right, bottom) in enumerate(boxes):
        if right <= left or bottom <= top:
            raise RequestError(f"{name}[{index}] = {[left, top, right, bottom]} must have right > left and bottom > top")
        if inside and (left < 0 or top < 0 or right > width or bottom > height):
            raise RequestError(f"{name}[{index}] = {[left, top, right, bottom]} lies outside the {width}x{height} frame")
    _check_cover(boxes, frame_shape, name)
    return boxes


def _check_cover(boxes: np.ndarray, frame_shape: tuple[int, ...], name: str) -> None:
    """RequestError when float (N, 4) ``boxes``, clipped to the frame, cover more than MAX_BOX_COVER frames."""
    height, width = frame_shape[:2]
    clipped = np.clip(boxes, 0, [width, height, width, height])
    cover = float(np.sum(np.clip(clipped[:, 2] - clipped[:, 0], 0, None) * np.clip(clipped[:, 3] - clipped[:, 1], 0, None)))
    if cover > MAX_BOX_COVER * width * height:
        raise RequestError(f"{name} cover {cover / (width * height):.1f} times the {width}x{height} frame's area together; "
                           f"at most {MAX_BOX_COVER:g}: boxes that overlap this much are not separate faces (one box per face)")


def appearance_indices(values: Any, bank_size: int, name: str) -> np.ndarray:
    """int64 (N,) bank entries from a request's ``values``, or :class:`RequestError` for non-integers or entries
    outside 0..bank_size-1 (``name`` is the request tensor, for the message)."""
    values = np.asarray(values).reshape(-1)
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise RequestError(f"{name} must be integers, got {values.dtype}")
    bad = (values < 0) | (values >= bank_size)
    if np.any(bad):
        raise RequestError(f"{name} {_quote(values[bad])} out of range: the appearance bank has entries 0..{bank_size - 1}")
    return values.astype(np.int64)


def appearance_pairing_problem(entries: int, boxes: int, entry_name: str = "APPEARANCE_INDEX",
                               box_name: str = "FACE_BOXES") -> str | None:
    """What is wrong with ``entries`` appearance entries given with ``boxes`` boxes, or None: one entry is every
    face's; several pair one with each given box, so they need exactly as many boxes (detected faces come in an order
    known only after the call). The names are the caller's (tensors for the server, arguments for the SDK)."""
    if entries <= 1:
        return None
    if not boxes:
        return (f"{entry_name} has {entries} entries but no {box_name}: several entries pair one with each of "
                f"{box_name} (detected faces come in an order known only after the call); give 1 entry for every face, "
                f"or {box_name}")
    if entries != boxes:
        return f"{entry_name} has {entries} entries for {boxes} {box_name}; give 1 (for every face) or one per box"
    return None


def validate_tracks(track_boxes: Any, track_appearance: Any, bank_size: int, frame_shape: tuple[int, ...] | None = None,
                    max_tracks: int = MAX_FACES_PER_FRAME * 8) -> tuple[np.ndarray, np.ndarray]:
    """The caller's tracks: (float64 (T, 4) boxes, int64 (T,) bank entries); empty arrays when there are none.

    A track box may reach outside the frame (a person leaving it), but must not be inverted; at most ``max_tracks``
    tracks, and (given ``frame_shape``) their boxes clipped to the frame cover at most MAX_BOX_COVER frames: every
    track the detector misses becomes a face to cover."""
    if track_boxes is None and track_appearance is None:
        return np.zeros((0, 4)), np.zeros(0, np.int64)
    if track_boxes is None or track_appearance is None:
        raise RequestError("TRACK_BOXES and TRACK_APPEARANCE go together: give both or neither")
    hints = np.asarray(track_boxes)
    if hints.size == 0:
        hints = np.zeros((0, 4))
    if hints.ndim != 2 or hints.shape[1] != 4:
        raise RequestError(f"TRACK_BOXES must have shape [T, 4], got {list(hints.shape)}")
    hints = hints.astype(np.float64)
    rows = appearance_indices(track_appearance, bank_size, "TRACK_APPEARANCE")
    if len(hints) != len(rows):
        raise RequestError(f"TRACK_BOXES has {len(hints)} rows but TRACK_APPEARANCE {len(rows)}; give one entry per track")
    if len(hints) > max_tracks:
        raise RequestError(f"TRACK_BOXES has {len(hints)} tracks; at most {max_tracks} per frame")
    if len(hints) and not np.all(np.isfinite(hints)):
        raise RequestError("TRACK_BOXES contains NaN or infinite values")
    inverted = np.flatnonzero((hints[:, 2] <= hints[:, 0]) | (hints[:, 3] <= hints[:, 1]))
    if len(inverted):
        raise RequestError(f"TRACK_BOXES[{inverted[0]}] = {hints[inverted[0]].tolist()} must have right > left and bottom > top"
                           f"{f' ({len(inverted)} such rows)' if len(inverted) > 1 else ''}")
    if frame_shape is not None and len(hints):
        _check_cover(hints, frame_shape, "TRACK_BOXES")
    return hints, rows


def assign_appearance(boxes: np.ndarray, bank_size: int, index: np.ndarray | None = None,
                      track_boxes: np.ndarray | None = None, track_appearance: np.ndarray | None = None,
                      matches: list[int] | None = None) -> np.ndarray:
    """The bank entry of each face: int32 (N,) for face boxes float (N, 4). See :mod:`facecamo.spec` for the rule.

    ``matches`` (one track index or -1 per face) may be given when the caller already matched faces to tracks.

    Raises:
        RequestError: for indices out of range, or a count that matches neither 1 nor the number of faces.
    """
    count = len(boxes)
    if index is not None and np.asarray(index).size:
        values = appearance_indices(index, bank_size, "APPEARANCE_INDEX")
        if count == 0:  # a frame without faces: the indices were valid, there is nothing to assign
            return np.zeros(0, np.int32)
        if len(values) == 1:
            return np.full(count, int(values[0]), np.int32)
        if len(values) != count:
            raise RequestError(f"APPEARANCE_INDEX has {len(values)} entries for {count} faces; give 1 (for all) or one per face")
        return values.astype(np.int32)
    hints, hint_rows = validate_tracks(track_boxes, track_appearance, bank_size) if track_boxes is not None or \
        track_appearance is not None else (np.zeros((0, 4)), np.zeros(0, np.int64))
    return rows_from_tracks(boxes, bank_size, hint_rows, matches if matches is not None else match_boxes(boxes, hints))


def rows_from_tracks(boxes: np.ndarray, bank_size: int, track_rows: np.ndarray, matches: Sequence[int]) -> np.ndarray:
    """The bank entry of each face without APPEARANCE_INDEX: int32 (N,) for face boxes float (N, 4), a face matched
    to a track (``matches``: one track index or -1 per face) keeping the track's entry ``track_rows`` (int64 (T,),
    as :func:`validate_tracks` returns them) and every other face the next entry no track holds, left to right."""
    rows = np.full(len(boxes), -1, np.int64)
    for face, track in enumerate(matches):
        if track >= 0:
            rows[face] = track_rows[track]
    taken = set(track_rows.tolist()) | set(rows[rows >= 0].tolist())
    free = iter([r for r in range(bank_size) if r not in taken])
    for face in sorted(np.flatnonzero(rows < 0), key=lambda f: (boxes[f][0], boxes[f][1])):
        rows[face] = next(free, face % bank_size)
    return rows.astype(np.int32)
