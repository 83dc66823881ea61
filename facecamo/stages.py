# SPDX-License-Identifier: Apache-2.0
"""The records the frame pipeline's stages produce, each once and never changed afterwards: locate gives a
:class:`Face`, align a :class:`PreparedFace` (an :class:`Alignment` or a :class:`Concealment`), both together a
:class:`PreparedFrame`; the networks a :class:`Generation`; paste-back a :class:`FrameResult`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facecamo import spec

SOURCE_DETECTED, SOURCE_GIVEN, SOURCE_TRACK = "detected", "given", "track"


@dataclass(frozen=True)
class Face:
    """Stage 1 (locate): one face of a frame.

    Attributes:
        box: (left, top, right, bottom) in frame pixels, as detected (or given, or predicted by a track).
        source: ``detected``, ``given`` (the caller's box) or ``track`` (a tracked person the detector missed).
        row: its appearance-bank entry.
        default_row: ``row`` is the default rule's (no APPEARANCE_INDEX, no track): with the bank's likeness vectors
            the networks' stage gives the face the free entry most like it instead (:func:`facecamo.donor.likest_free`).
    """

    box: tuple[float, float, float, float]
    source: str
    row: int
    default_row: bool = False


@dataclass(frozen=True)
class Alignment:
    """Stage 2 (align): float64 (2, 3) frame-to-crop ``affine``, uint8 (112, 112, 3) ``crop``, float64 (68, 2)
    ``landmarks`` in crop pixels."""

    affine: np.ndarray
    crop: np.ndarray
    landmarks: np.ndarray


@dataclass(frozen=True)
class Concealment:
    """Why a face is concealed instead of camouflaged. ``by_design``: on purpose (narrower than ``min_face_px``, a
    tracked person without landmarks), reported as ``STATUS_CONCEALED``; otherwise a failure, ``STATUS_FALLBACK``."""

    why: str
    by_design: bool = False


@dataclass(frozen=True)
class PreparedFace:
    """A located face after alignment: ``alignment`` (None where it could not be aligned) and ``concealment`` (None
    while it goes on to the networks)."""

    face: Face
    alignment: Alignment | None
    concealment: Concealment | None = None

    @property
    def box(self) -> tuple[float, float, float, float]:
        return self.face.box


@dataclass(frozen=True)
class PreparedFrame:
    """Stages 1 and 2 for one frame: its faces located and aligned, before the networks. Never changed afterwards, so
    evaluation runs the networks over one preparation with many appearances."""

    frame: np.ndarray
    faces: tuple[PreparedFace, ...]
    failed: str | None = None  # why the frame could not be prepared (detection failed: the whole frame is concealed)
    timings: dict[str, float] = field(default_factory=dict)
    reserved: frozenset[int] = frozenset()  # bank entries the request's tracks and its fixed-entry faces hold

    @property
    def aligned(self) -> list[Alignment]:
        """The alignments of the faces that go on to the networks, in face order."""
        return [f.alignment for f in self.faces if f.alignment is not None and f.concealment is None]


@dataclass(frozen=True)
class Generated:
    """Stage 3 (networks): uint8 (112, 112, 3) ``image``, float32 (112, 112) ``region`` it is pasted through (the
    donor design's; None: the paper design's ellipse), and the bank ``row`` it was made with."""

    image: np.ndarray
    region: np.ndarray | None = None
    row: int | None = None


@dataclass(frozen=True)
class Generation:
    """Stage 3 for one frame: per face number, a :class:`Generated` face or the :class:`Concealment` of a face the
    networks failed on (faces that never reached them are absent); ``failed``: why every face was concealed."""

    outcomes: dict[int, "Generated | Concealment"]
    failed: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class FrameResult:
    """What the pipeline returns for one frame.

    Attributes:
        frame: uint8 (H, W, 3) RGB, every known face camouflaged or concealed.
        boxes: float32 (N, 4); status: int32 (N,) (``spec.STATUS_*``); appearance: int32 (N,) bank entries.
        sources: one of ``detected`` / ``given`` / ``track`` per face.
        failed: why the frame as a whole could not be processed (its faces, or all of it, concealed), else None.
        timings: seconds per stage (detect, align, donor, identity_encoder, generator, paste).
        over_limit: faces beyond ``settings.max_faces`` (concealed without landmarks).
    """

    frame: np.ndarray
    boxes: np.ndarray
    status: np.ndarray
    appearance: np.ndarray
    sources: list[str]
    failed: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    over_limit: int = 0

    @property
    def source_codes(self) -> np.ndarray:
        """int32 (N,) ``spec.SOURCE_*`` codes of :attr:`sources` (the FACE_SOURCE output)."""
        codes = {name: code for code, name in spec.SOURCE_NAMES.items()}
        return np.array([codes[s] for s in self.sources], np.int32)
