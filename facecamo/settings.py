# SPDX-License-Identifier: Apache-2.0
"""The frame pipeline's settings, typed once: the export writes them into the served ``config.pbtxt`` as strings and
every reader (the Triton model, the embedded engine, evaluation) turns them back into this one record."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from facecamo.align import LANDMARK_MODELS
from facecamo.request import MAX_FRAME_HEIGHT, MAX_FRAME_WIDTH
from facecamo.spec import MAX_FACES_PER_FRAME


@dataclass(frozen=True)
class PipelineSettings:
    """Every setting of the frame pipeline; the export writes them into the served model's ``config.pbtxt``
    (``parameters``, as strings) and the embedded engine reads them from there, so both behave the same.

    Attributes:
        detector: ``centerface`` (the CNN detector network), ``hog`` or ``cnn`` (dlib).
        detector_threshold: CenterFace score threshold (None: its measured default).
        detector_input_scale: CenterFace input scale (1.0: full resolution; above 1 finds smaller faces, slower).
        upsample, min_score: dlib detectors' settings.
        landmarks: the landmark model faces are aligned with, and the donor warped and pasted by: ``dlib68`` (dlib's
            68-point model; its training data's terms exclude commercial use) or ``dlib5`` (dlib's public-domain 5-point
            model and a fitted map to the 68 points: the choice for commercial use). The export builds the donor bank
            with the same model.
        min_face_px: faces narrower than this are concealed, not camouflaged: too few pixels for landmarks and a
            generated face to be worth it, and too few for a viewer to recognise once pixelated.
        max_faces: faces handled per frame; more are concealed without landmarks (counted as concealed).
        max_batch: faces per network call (the networks' max batch); more faces take further passes.
        max_width, max_height: the largest frame accepted (either orientation).
        dim_luma: a frame whose mean luma (0-255) is below this is brightened for the detector alone
            (:func:`facecamo.locate.brightened_for_detection`; the faces are still aligned, camouflaged and pasted on the frame as it
            is); 0 turns it off. Dim scenes are where detectors miss faces, and a missed face is published.
    """

    detector: str = "centerface"
    detector_threshold: float | None = None
    detector_input_scale: float = 1.0
    upsample: int = 1
    min_score: float = 0.3
    landmarks: str = "dlib68"
    min_face_px: float = 32.0
    max_faces: int = 512
    max_batch: int = MAX_FACES_PER_FRAME
    max_width: int = MAX_FRAME_WIDTH
    max_height: int = MAX_FRAME_HEIGHT
    dim_luma: float = 60.0

    def __post_init__(self) -> None:
        if self.detector not in ("centerface", "hog", "cnn"):
            raise ValueError(f"detector must be centerface, hog or cnn, got {self.detector!r}")
        if self.landmarks not in LANDMARK_MODELS:
            raise ValueError(f"landmarks must be one of {', '.join(LANDMARK_MODELS)}, got {self.landmarks!r}")
        if self.max_batch < 1 or self.max_faces < 1:
            raise ValueError("max_batch and max_faces must be at least 1")

    @classmethod
    def from_strings(cls, values: dict[str, str]) -> "PipelineSettings":
        """Settings from string values (a config.pbtxt's parameters); unknown keys are ignored (other parameters
        live beside them), a value of the wrong type is a ValueError naming the key."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, text in values.items():
            if key not in known:
                continue
            default = known[key].default
            try:
                if text in ("", "none", "None") and default is None:
                    kwargs[key] = None
                elif isinstance(default, bool):
                    kwargs[key] = text.lower() in ("1", "true", "yes")
                elif isinstance(default, int):
                    kwargs[key] = int(text)
                elif isinstance(default, float) or default is None:
                    kwargs[key] = float(text)
                else:
                    kwargs[key] = str(text)
            except ValueError:
                kind = "number" if default is None or isinstance(default, float) else type(default).__name__
                raise ValueError(f"pipeline setting {key}={text!r} is not a valid {kind}") from None
        return cls(**kwargs)

    def as_strings(self) -> dict[str, str]:
        return {k: ("" if v is None else str(v)) for k, v in dataclasses.asdict(self).items()}

