"""What a camouflage call returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facecamo.spec import STATUS_NAMES


@dataclass
class FaceResult:
    """One detected face: ``box`` (left, top, right, bottom) in pixels; ``status`` ``"camouflaged"`` or ``"fallback"``
    (detected but concealed by blur because it could not be camouflaged); ``appearance`` the bank entry it was given;
    ``track_id`` the SDK tracker's id for the person (None outside a stream)."""

    box: tuple[float, float, float, float]
    status: str
    appearance: int
    track_id: int | None = None


@dataclass
class CamouflageResult:
    """``frame``: uint8 (H, W, 3) RGB with every detected face camouflaged or concealed; ``faces``: one entry per face."""

    frame: np.ndarray
    faces: list[FaceResult] = field(default_factory=list)
    index: int = 0  # position in a stream

    @property
    def all_camouflaged(self) -> bool:
        return all(face.status == "camouflaged" for face in self.faces)


def faces_from_arrays(boxes: np.ndarray, status: np.ndarray, appearance: np.ndarray) -> list[FaceResult]:
    return [FaceResult(tuple(float(v) for v in box), STATUS_NAMES.get(int(s), "fallback"), int(a))
            for box, s, a in zip(boxes.reshape(-1, 4), status.reshape(-1), appearance.reshape(-1))]
