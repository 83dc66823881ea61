# SPDX-License-Identifier: Apache-2.0
"""Client-side checks of what a caller passes to the SDK, before anything is sent: every value is converted exactly or
rejected with :class:`InvalidInputError` (never silently wrapped, truncated or rounded), and every message is bounded
(:data:`MAX_MESSAGE_CHARACTERS`) however large the offending array is.

Both back-ends (the gRPC client and the embedded engine) call these, so they accept and refuse the same inputs.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from facecamo.request import appearance_pairing_problem
from facecamo_client.errors import InvalidInputError

MAX_MESSAGE_CHARACTERS = 200
INT32_MIN, INT32_MAX = int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max)
FLOAT32_MAX = float(np.finfo(np.float32).max)


def bounded(text: str, limit: int = MAX_MESSAGE_CHARACTERS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out (a message never echoes a whole array)."""
    if len(text) <= limit:
        return text
    marker = f"... ({len(text) - limit} more characters)"
    return text[: max(limit - len(marker), 0)] + marker


def _sample(values: Any, limit: int = 5) -> str:
    """A short rendering of the first few items of ``values`` (any sequence or array)."""
    items = list(np.asarray(values, dtype=object).reshape(-1)[:limit]) if np.ndim(values) else [values]
    shown = ", ".join(bounded(repr(item), 40) for item in items)
    total = int(np.size(values)) if np.ndim(values) else 1
    return f"[{shown}{', ...' if total > limit else ''}]"


def _reject(message: str) -> InvalidInputError:
    return InvalidInputError(bounded(message))


def _as_array(values: Any, name: str) -> np.ndarray:
    """``np.asarray(values)`` with numpy's own conversion errors (ragged lists, huge ints) as InvalidInputError."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError, OverflowError) as error:
        raise _reject(f"{name} must be a number or a rectangular list/array of numbers ({bounded(str(error), 60)})") from None
    if array.dtype == object and array.ndim > 0 and any(isinstance(item, (list, tuple, np.ndarray)) for item in array.reshape(-1)):
        raise _reject(f"{name} must be a rectangular array of numbers (got rows of different lengths)")
    return array


def appearance_indices(values: Any, name: str = "appearance", allow_empty: bool = False) -> np.ndarray | None:
    """An appearance-bank selection as int32 [K].

    Args:
        values: None (the engine's default), one integer (one entry for every face) or a 1-D sequence/array of
            integers (one per face). Python ``int`` and numpy integer types only: ``1.5``, ``2.0``, ``"3"`` and
            ``True`` are refused, not converted.
        allow_empty: accept zero entries (a track list may be empty; an appearance selection may not).
    Returns:
        int32 array of shape [K] (K >= 1), or None.
    Raises:
        InvalidInputError: a non-integer, a value outside int32, an empty selection or more than one dimension.
            Whether an entry exists in the bank is checked by the engine, which knows the bank's size.
    """
    if values is None:
        return None
    if isinstance(values, (str, bytes)):
        raise _reject(f"{name} must be an integer bank entry or a list of them, got the string {values!r}")
    array = _as_array(values, name)
    if array.ndim > 1:
        raise _reject(f"{name} must be one integer or a 1-D list (one per face), got shape {list(array.shape)}")
    flat = array.reshape(-1)
    if flat.size == 0:
        if allow_empty:
            return np.zeros(0, np.int32)
        raise _reject(f"{name} is empty: pass None for the default, one entry for all faces, or one per face")
    if array.dtype.kind == "b" or (array.dtype == object and any(isinstance(v, (bool, np.bool_)) for v in flat)):
        raise _reject(f"{name} must be integers, got booleans {_sample(flat)}")
    if array.dtype.kind in "iu":
        low, high = int(flat.min()), int(flat.max())
    elif array.dtype == object and all(isinstance(v, numbers.Integral) for v in flat):
        ints = [int(v) for v in flat]
        low, high = min(ints), max(ints)
    else:
        wrong = [v for v in flat.tolist() if isinstance(v, bool) or not isinstance(v, numbers.Integral)]
        raise _reject(f"{name} must be integers (bank entries), got {type(wrong[0]).__name__} values {_sample(wrong)}")
    if low < INT32_MIN or high > INT32_MAX:
        outside = [int(v) for v in flat.tolist() if not INT32_MIN <= int(v) <= INT32_MAX]
        raise _reject(f"{name} {_sample(outside)} does not fit a 32-bit bank entry ({INT32_MIN}..{INT32_MAX})")
    return np.array([int(v) for v in flat.tolist()], dtype=np.int32) if array.dtype == object else flat.astype(np.int32)


def face_boxes(values: Any, name: str = "boxes") -> np.ndarray | None:
    """Face boxes as float32 [N, 4] (left, top, right, bottom in pixels).

    Args:
        values: None, one box of 4 numbers, or an [N, 4] list/array of real numbers (ints or floats; not strings,
            booleans or complex numbers).
    Returns:
        float32 array of shape [N, 4], or None.
    Raises:
        InvalidInputError: another shape, a non-numeric value, NaN/infinity, or a value beyond float32's range.
            Whether a box lies inside the frame is checked by the engine.
    """
    if values is None:
        return None
    if isinstance(values, (str, bytes)):
        raise _reject(f"{name} must be numbers [N, 4] (left, top, right, bottom), got the string {values!r}")
    array = _as_array(values, name)
    if array.ndim == 1 and array.shape[0] == 4:
        array = array.reshape(1, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise _reject(f"{name} must have shape [N, 4] (left, top, right, bottom), got {list(array.shape)}")
    if array.dtype.kind not in "iuf":
        if array.dtype == object and all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in array.reshape(-1)):
            array = array.astype(np.float64)
        else:
            kind = "booleans" if array.dtype.kind == "b" else f"{array.dtype} values"
            raise _reject(f"{name} must be real numbers, got {kind} {_sample(array.reshape(-1))}")
    as_float = array.astype(np.float64)
    if not np.isfinite(as_float).all():
        raise _reject(f"{name} contains NaN or infinite values: {_sample(as_float[~np.isfinite(as_float)])}")
    if np.abs(as_float).max(initial=0.0) > FLOAT32_MAX:
        raise _reject(f"{name} has values beyond float32's range: {_sample(as_float[np.abs(as_float) > FLOAT32_MAX])}")
    return np.ascontiguousarray(as_float, dtype=np.float32)


def appearance_and_boxes(appearance: Any, boxes: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """A request's ``appearance`` and ``boxes``, each checked (:func:`appearance_indices`, :func:`face_boxes`) and then
    together: several entries pair one with each given box, in the order of ``boxes``, so they need exactly as many
    boxes (detected faces come back in an order known only after the call).

    Raises:
        InvalidInputError: either one invalid, several entries without boxes, or counts that differ (naming both).
    """
    rows, given = appearance_indices(appearance), face_boxes(boxes)
    problem = appearance_pairing_problem(0 if rows is None else len(rows), 0 if given is None else len(given), "appearance", "boxes")
    if problem:
        raise _reject(problem)
    return rows, given


def tracks(value: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """The caller's tracks: ``(boxes, appearance)`` -> (float32 [T, 4], int32 [T]), or None.

    Raises:
        InvalidInputError: not a pair, a missing half, or a different number of boxes and entries.
    """
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise _reject(f"tracks must be a pair (boxes [T, 4], appearance [T]), got {type(value).__name__}")
    if value[0] is None or value[1] is None:
        raise _reject("tracks needs both halves: (boxes [T, 4], appearance [T]); pass tracks=None for none")
    boxes = face_boxes(value[0], "track boxes")
    rows = appearance_indices(value[1], "track appearance", allow_empty=True)
    if len(boxes) != len(rows):
        raise _reject(f"tracks has {len(boxes)} boxes but {len(rows)} appearance entries; give one entry per track")
    return boxes, rows


def frame_array(frame: Any) -> np.ndarray:
    """A frame as a C-contiguous uint8 [H, W, 3] RGB array.

    Raises:
        InvalidInputError: not a numpy array, not uint8 (no conversion: 0..1 floats would silently come out black),
            not [H, W, 3], or empty. Size limits are checked by the engine.
    """
    from facecamo.spec import frame_problem

    problem = frame_problem(frame)
    if problem:
        raise _reject(problem)
    return np.ascontiguousarray(frame)
