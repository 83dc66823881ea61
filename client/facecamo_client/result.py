# SPDX-License-Identifier: Apache-2.0
"""What a camouflage call returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facecamo.spec import SOURCE_NAMES, STATUS_NAMES


@dataclass
class FaceResult:
    """One face: ``box`` (left, top, right, bottom) in pixels; ``status`` ``"camouflaged"``, ``"fallback"`` (detected
    but concealed because landmarks or generation failed) or ``"concealed"`` (too small to camouflage, or a tracked
    person covered in a frame where they could not be aligned); ``appearance`` the bank entry it was given;
    ``track_id`` the SDK tracker's id for the person (None outside a stream)."""

    box: tuple[float, float, float, float]
    status: str
    appearance: int
    track_id: int | None = None
    source: str = "detected"  # "detected", "given" (the caller's box) or "track" (covered where detection missed them)


@dataclass
class CamouflageResult:
    """``frame``: uint8 (H, W, 3) RGB with every detected face camouflaged or concealed; ``faces``: one entry per face;
    ``failed``: why the frame as a whole could not be processed (then its faces, or all of it, come back concealed),
    else None; ``timings``: seconds per stage where the engine measured them (the embedded engine: detect, align,
    donor, identity_encoder, generator, paste; empty from a server)."""

    frame: np.ndarray
    faces: list[FaceResult] = field(default_factory=list)
    index: int = 0  # position in a stream
    failed: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def all_camouflaged(self) -> bool:
        return all(face.status == "camouflaged" for face in self.faces)


def faces_from_arrays(boxes: np.ndarray, status: np.ndarray, appearance: np.ndarray,
                      source: np.ndarray | None = None) -> list[FaceResult]:
    """Faces from the model's outputs: float32 (N, 4) boxes, int32 (N,) status, appearance and (optional) source."""
    count = len(boxes.reshape(-1, 4))
    source = np.zeros(count, np.int32) if source is None else source.reshape(-1)
    return [FaceResult(tuple(float(v) for v in box), STATUS_NAMES.get(int(s), "fallback"), int(a),
                       source=SOURCE_NAMES.get(int(o), "detected"))
            for box, s, a, o in zip(boxes.reshape(-1, 4), status.reshape(-1), appearance.reshape(-1), source)]
