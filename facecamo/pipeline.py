# SPDX-License-Identifier: Apache-2.0
"""The frame pipeline: detect -> landmarks and alignment -> identity encoder -> generator -> paste-back, for one frame
or a batch of frames, failing closed by construction. The Triton ``facecamo`` model, the client's embedded engine and
evaluation all run this one class; only the networks behind it differ (:class:`Networks`: ONNX Runtime sessions,
PyTorch modules, or Triton models called through BLS). No torch, no server: numpy, OpenCV and dlib.

Fail closed:

- every network output is checked against :mod:`facecamo.spec` (array, float32, shape, finite) before paste-back;
- a face that was detected but could not be camouflaged (too small, landmarks failed, a network failed or returned
  something wrong) is concealed (blurred or pixelated over its region) and reported as such, never returned as it was;
- a frame the pipeline fails on as a whole comes back concealed (every known face, or the whole frame when detection
  itself failed) with :attr:`FrameResult.failed` saying why;
- a frame without faces comes back unchanged.

Invalid requests (wrong dtype, shape, boxes, appearance indices) raise :class:`facecamo.request.RequestError` before
any work (:mod:`facecamo.request` checks them): the caller must fix them, and servers answer them as INVALID_ARGUMENT.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from facecamo import spec
from facecamo.align import (LANDMARK_MODELS, Detection, FaceDetector, FivePointLandmarkPredictor, LandmarkPredictor,
                            alignment_affine, landmark_predictor, warp_face)
from facecamo.design import Design, design_of_bank
from facecamo.conceal import conceal_frame
from facecamo.donor import donor_target
from facecamo.geometry import transform_points
from facecamo.paste import conceal_box, conceal_face, paste_face_inplace
from facecamo.request import (MAX_FRAME_HEIGHT, MAX_FRAME_WIDTH, RequestError, appearance_indices, rows_from_tracks,
                              validate_boxes, validate_frame, validate_tracks)
from facecamo.spec import (
    MAX_FACES_PER_FRAME, STATUS_CAMOUFLAGED, STATUS_CONCEALED, STATUS_FALLBACK, from_model_output, to_model_input,
)
from facecamo.tracking import box_iou, match_boxes

TRACK_BOX_IOU = 0.9
"""A caller's box that overlaps a track's box this much is that track's box (see :meth:`FramePipeline.prepare`)."""
TRACK_MATCH_CENTRE_SHIFT = 1.0
"""A face matches a caller's track when their centres are within this many box widths (or they overlap): hints may be
a few frames old (frames in flight) and cameras pan."""


class NetworkError(RuntimeError):
    """A network failed or returned something that breaks the spec; the faces it was for are concealed."""


# -- settings ------------------------------------------------------------------------------------------------------
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


# -- the networks ----------------------------------------------------------------------------------------------------
class Networks(Protocol):
    """The networks behind the pipeline. Arrays are float32 and batched over faces (or images).

    - ``encode_identity(faces (N, 3, 112, 112) in [-1, 1]) -> (N, C_id, 28, 28)``
    - ``generate(identity (N, C_id, 28, 28), appearance (N, C_app, 4, 1)) -> (N, 3, 112, 112) in [-1, 1]``
    - ``detect(images (B, 3, H, W)) -> {output name: array}`` (CenterFace's outputs, see :mod:`facecamo.spec`)
    """

    def encode_identity(self, faces: np.ndarray) -> np.ndarray: ...

    def generate(self, identity: np.ndarray, appearance: np.ndarray) -> np.ndarray: ...

    def detect(self, images: np.ndarray) -> dict[str, np.ndarray]: ...


def check_output(name: str, value: Any, shape: Sequence[int | None]) -> np.ndarray:
    """``value`` as a float32 array of ``shape`` (None: any size), or :class:`NetworkError` naming what is wrong.
    Finiteness is checked per face by the caller, so one bad face does not conceal its neighbours."""
    if not isinstance(value, np.ndarray):
        raise NetworkError(f"{name} returned {type(value).__name__}, not an array")
    if value.dtype != np.float32:
        raise NetworkError(f"{name} returned dtype {value.dtype}, expected float32")
    if value.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, value.shape)):
        expected = ["*" if s is None else s for s in shape]
        raise NetworkError(f"{name} returned shape {list(value.shape)}, expected {expected}")
    return value


# -- per-frame state -------------------------------------------------------------------------------------------------
SOURCE_DETECTED, SOURCE_GIVEN, SOURCE_TRACK = "detected", "given", "track"


@dataclass
class Face:
    """One face of a frame on its way through the pipeline.

    Attributes:
        box: (left, top, right, bottom) in frame pixels, as detected (or given, or predicted by a track).
        source: ``detected``, ``given`` (the caller's box) or ``track`` (a tracked person the detector missed).
        row: appearance-bank entry.
        affine: float64 (2, 3) frame-to-crop affine once aligned, else None.
        crop: uint8 (112, 112, 3) aligned crop once aligned, else None.
        landmarks: float64 (68, 2) its landmarks in the crop's pixels once aligned, else None.
        mask: float32 (112, 112) the region its generated face is pasted through (donor design; None: the ellipse).
        generated: uint8 (112, 112, 3) generated face once generated, else None.
        concealed_why: why the face is concealed instead of camouflaged (None while it may still be camouflaged).
        small: narrower than ``min_face_px`` (concealed by design). over_limit: beyond ``max_faces`` (counted).
    """

    box: tuple[float, float, float, float]
    source: str
    row: int = 0
    affine: np.ndarray | None = None
    crop: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    mask: np.ndarray | None = None
    generated: np.ndarray | None = None
    concealed_why: str | None = None
    small: bool = False
    over_limit: bool = False


@dataclass
class PreparedFrame:
    """A frame after detection and alignment, before the networks (evaluation reuses one for many appearances)."""

    frame: np.ndarray
    faces: list[Face]
    failed: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def aligned(self) -> list[Face]:
        return [f for f in self.faces if f.affine is not None and f.concealed_why is None]

    @property
    def boxes(self) -> np.ndarray:
        """float32 (N, 4) face boxes."""
        return np.array([f.box for f in self.faces], np.float32).reshape(-1, 4)

    @property
    def affines(self) -> np.ndarray:
        """float64 (N, 2, 3) frame-to-crop affines (zeros for a face that was not aligned)."""
        return np.array([f.affine if f.affine is not None else np.zeros((2, 3)) for f in self.faces], np.float64).reshape(-1, 2, 3)

    @property
    def state(self) -> np.ndarray:
        """int32 (N,) ``spec.STATE_ALIGNED`` or ``spec.STATE_UNALIGNED`` per face."""
        return np.array([spec.STATE_ALIGNED if f.affine is not None else spec.STATE_UNALIGNED for f in self.faces], np.int32)

    def copy(self) -> "PreparedFrame":
        """A copy whose faces can go through the networks again (evaluation: one alignment, many appearances)."""
        return dataclasses.replace(self, faces=[dataclasses.replace(f) for f in self.faces], timings=dict(self.timings))


@dataclass
class FrameResult:
    """What the pipeline returns for one frame.

    Attributes:
        frame: uint8 (H, W, 3) RGB, every known face camouflaged or concealed.
        boxes: float32 (N, 4); status: int32 (N,) (``spec.STATUS_*``); appearance: int32 (N,) bank entries.
        sources: one of ``detected`` / ``given`` / ``track`` per face.
        failed: why the frame as a whole could not be processed (its faces, or all of it, concealed), else None.
        timings: seconds per stage (detect, align, identity_encoder, generator, paste).
    """

    frame: np.ndarray
    boxes: np.ndarray
    status: np.ndarray
    appearance: np.ndarray
    sources: list[str]
    failed: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    over_limit: int = 0  # faces beyond settings.max_faces (concealed without landmarks)

    @property
    def source_codes(self) -> np.ndarray:
        """int32 (N,) ``spec.SOURCE_*`` codes of :attr:`sources` (the FACE_SOURCE output)."""
        codes = {name: code for code, name in spec.SOURCE_NAMES.items()}
        return np.array([codes[s] for s in self.sources], np.int32)


# -- the pipeline ----------------------------------------------------------------------------------------------------
class FramePipeline:
    """Camouflage frames.

    Args:
        networks: see :class:`Networks` (``detect`` is used only with the centerface detector).
        bank: the donor design's donors, uint8 (K, 112, 112, 3) RGB in the mean face shape, or the paper design's
            appearance codes, float32 (K, C_app, 4, 1) (see :mod:`facecamo.spec`).
        settings: :class:`PipelineSettings`.
        landmarks: a landmark predictor (default: the one named by ``settings.landmarks``, from face_recognition_models).
        design: the design the networks and the bank are of (:mod:`facecamo.design`; default: the one the bank's
            dtype implies, for callers holding a bank alone).

    Raises:
        ValueError: for a bank that is not the design's (saying what it should be).
    """

    def __init__(self, networks: Networks, bank: np.ndarray, settings: PipelineSettings | None = None,
                 landmarks: LandmarkPredictor | FivePointLandmarkPredictor | None = None, design: Design | None = None) -> None:
        self.networks = networks
        self.design = design or design_of_bank(bank)
        self.bank = self.design.bank_for_serving(bank)
        self.settings = settings or PipelineSettings()
        self.landmarks = landmarks or landmark_predictor(self.settings.landmarks)
        self.detector = make_detector(self.settings, networks)

    @property
    def bank_size(self) -> int:
        return len(self.bank)

    # -- stage 1: validate, detect, align ------------------------------------------------------------------------
    def prepare(self, frame: Any, appearance: Any = None, boxes: Any = None, track_boxes: Any = None,
                track_appearance: Any = None) -> PreparedFrame:
        """Validate the request, detect (unless ``boxes``: an empty box list means "detect for me", never "leave the
        faces alone"), add every tracked person the detector missed (at the track's box), pick each face's bank
        entry, predict landmarks and align.

        Raises:
            RequestError: for any invalid input, with what to fix.
        """
        settings = self.settings
        frame = validate_frame(frame, settings.max_width, settings.max_height)
        given = validate_boxes(boxes, frame.shape, settings.max_faces)
        hints, hint_rows = validate_tracks(track_boxes, track_appearance, self.bank_size, frame.shape, settings.max_faces)
        index = None if appearance is None or np.asarray(appearance).size == 0 else appearance_indices(appearance, self.bank_size, "APPEARANCE_INDEX")
        per_box = index is not None and len(index) > 1
        if per_box and (given is None or not len(given)):
            raise RequestError(f"APPEARANCE_INDEX has {len(index)} entries but no FACE_BOXES: several entries pair one with "
                               "each FACE_BOXES box (detected faces come in an order known only after the call); give 1 "
                               "entry for every face, or FACE_BOXES")
        if per_box and len(index) != len(given):
            raise RequestError(f"APPEARANCE_INDEX has {len(index)} entries for {len(given)} FACE_BOXES boxes; give 1 (for "
                               "every face) or one per box")
        started = time.perf_counter()
        prepared = PreparedFrame(frame, [])
        if given is not None and len(given):
            faces = [Face(tuple(map(float, b)), SOURCE_GIVEN) for b in given]
            if len(hints):
                # A given box that is a track's own box (the SDK skipping detection on this frame) is that track's
                # prediction of a detector box: it gets the detector's landmark mapping and the track's look (unless
                # APPEARANCE_INDEX fixes one).
                overlap = box_iou(given, hints)
                for number, (face, best) in enumerate(zip(faces, overlap.argmax(axis=1))):
                    if overlap[number, best] >= TRACK_BOX_IOU:
                        face.source, face.row = SOURCE_TRACK, int(hint_rows[best])
        else:
            try:
                faces = [Face(d.box, SOURCE_DETECTED) for d in self.detector(frame)]
            except Exception as error:  # noqa: BLE001 - fail closed: the whole frame is concealed
                prepared.failed = f"detection failed: {type(error).__name__}: {error}"
                return prepared
        detected = time.perf_counter()
        # Tracked people the detector missed in this frame are covered at their track's box.
        height, width = frame.shape[:2]
        matches = match_boxes(np.array([f.box for f in faces], np.float64).reshape(-1, 4), hints,
                              max_centre_shift=TRACK_MATCH_CENTRE_SHIFT)
        matched_tracks = {m for m in matches if m >= 0}
        for track in range(len(hints)):
            if track in matched_tracks:
                continue
            left, top, right, bottom = hints[track]
            left, top, right, bottom = max(left, 0.0), max(top, 0.0), min(right, float(width)), min(bottom, float(height))
            if right - left >= 2 and bottom - top >= 2:
                faces.append(Face((left, top, right, bottom), SOURCE_TRACK, row=int(hint_rows[track])))
                matches.append(track)
        # Bank entries by the spec's rule: one explicit entry is every face's, tracked people covered here included;
        # several pair with the given boxes (which come first in ``faces``), a person covered for a track keeping the
        # track's entry; without APPEARANCE_INDEX the caller's faces (detected or given) get the default.
        if index is not None:
            for number, face in enumerate(faces):
                if not per_box:
                    face.row = int(index[0])
                elif number < len(given):
                    face.row = int(index[number])
        else:
            own = [number for number, f in enumerate(faces) if f.source != SOURCE_TRACK]
            own_boxes = np.array([faces[n].box for n in own], np.float64).reshape(-1, 4)
            rows = rows_from_tracks(own_boxes, self.bank_size, hint_rows, [matches[n] for n in own])
            for number, row in zip(own, rows):
                faces[number].row = int(row)
        for number, face in enumerate(faces):
            if number >= settings.max_faces:
                face.concealed_why, face.over_limit = f"over the limit of {settings.max_faces} faces per frame", True
                continue
            self._align(frame, face)
        prepared.faces = faces
        prepared.timings = {"detect": detected - started, "align": time.perf_counter() - detected}
        return prepared

    def _align(self, frame: np.ndarray, face: Face) -> None:
        left, top, right, bottom = face.box
        if min(right - left, bottom - top) < self.settings.min_face_px:
            face.small = True
            face.concealed_why = f"narrower than {self.settings.min_face_px:g} px"
            return
        try:
            box = face.box if face.source == SOURCE_GIVEN else self.detector.landmark_box(face.box)
            face.affine, face.crop, face.landmarks = align_in_box(frame, box, self.landmarks)
        except ValueError as error:  # degenerate landmarks: concealed, never passed through
            face.affine, face.crop, face.landmarks = None, None, None
            face.concealed_why = f"landmarks failed: {error}"

    # -- stage 2: networks ---------------------------------------------------------------------------------------
    def generate(self, prepared: Sequence[PreparedFrame], codes: np.ndarray | None = None) -> dict[str, float]:
        """Run the networks over the aligned faces of ``prepared`` frames in batches of ``max_batch``, setting each
        face's ``generated`` crop or ``concealed_why``. ``codes``: one bank entry to use for every face instead of the
        bank's (evaluation's references): a donor, uint8 (1, 112, 112, 3), or a code, float32 (1, C_app, 4, 1).
        Returns seconds per stage."""
        faces = [face for frame in prepared for face in frame.aligned]
        timings = {"donor": 0.0, "identity_encoder": 0.0, "generator": 0.0}
        step = self.settings.max_batch
        for start in range(0, len(faces), step):
            chunk = faces[start : start + step]
            batch = to_model_input(np.stack([f.crop for f in chunk]))
            began = time.perf_counter()
            try:
                appearance = self._appearance(chunk, codes)
            except Exception as error:  # noqa: BLE001 - fail closed: these faces are concealed
                for face in chunk:
                    face.concealed_why = f"donor target failed: {type(error).__name__}: {error}"
                continue
            timings["donor"] += time.perf_counter() - began
            began = time.perf_counter()
            try:
                identity = check_output(spec.IDENTITY_ENCODER, self.networks.encode_identity(batch),
                                        (len(chunk), None, None, None))
                encoded = time.perf_counter()
                generated = check_output(spec.GENERATOR, self.networks.generate(identity, appearance),
                                         (len(chunk), 3, spec.FACE_SIZE, spec.FACE_SIZE))
            except Exception as error:  # noqa: BLE001 - fail closed: these faces are concealed
                why = error if isinstance(error, NetworkError) else f"{type(error).__name__}: {error}"
                for face in chunk:
                    face.concealed_why = f"generation failed: {why}"
                encoded = time.perf_counter()
                generated = None
            finished = time.perf_counter()
            timings["identity_encoder"] += encoded - began
            timings["generator"] += finished - encoded
            if generated is None:
                continue
            finite = np.isfinite(generated.reshape(len(chunk), -1)).all(axis=1)
            pixels = from_model_output(generated)
            for face, ok, image in zip(chunk, finite, pixels):
                if ok:
                    face.generated = image
                else:
                    face.concealed_why = "generation failed: the generator returned non-finite values"
        return timings

    def _appearance(self, chunk: list[Face], override: np.ndarray | None) -> np.ndarray:
        """The generator's APPEARANCE_CODE input for a chunk of aligned faces: float32 (N, 3, 112, 112) donor targets
        (each face's region kept in ``face.mask`` for paste-back), or float32 (N, C_app, 4, 1) codes."""
        if not self.design.donors:
            if override is not None:
                return np.repeat(np.asarray(override, np.float32)[:1], len(chunk), axis=0)
            return self.bank[[f.row for f in chunk]]
        targets = []
        for face in chunk:
            donor = np.asarray(override)[0] if override is not None else self.bank[face.row]
            target, face.mask = donor_target(face.crop, face.landmarks, donor)
            targets.append(target)
        return to_model_input(np.stack(targets))

    # -- stage 3: paste back ---------------------------------------------------------------------------------------
    def paste(self, prepared: PreparedFrame) -> FrameResult:
        """Paste every generated face back into a copy of the frame and conceal every other face."""
        frame = prepared.frame
        out = frame.copy()
        if prepared.failed is not None and not prepared.faces:
            out = conceal_frame(frame)  # detection failed: no face is known, so nothing of the frame is shown
        status = np.full(len(prepared.faces), STATUS_FALLBACK, np.int32)
        for number, face in enumerate(prepared.faces):
            try:
                if face.generated is not None and face.concealed_why is None:
                    left, top, right, bottom = face.box
                    written = paste_face_inplace(out, face.generated, face.affine, face.mask)
                    if written >= 0.25 * (right - left) * (bottom - top):  # the new face covers the detected one
                        status[number] = STATUS_CAMOUFLAGED
                        continue
                    face.concealed_why = "the generated face would not cover the detected one"
                if face.small or face.source == SOURCE_TRACK and face.affine is None:
                    status[number] = STATUS_CONCEALED
                if face.affine is not None:
                    conceal_face(out, face.crop, face.affine)
                conceal_box(out, face.box)
            except Exception:  # noqa: BLE001 - the face region is concealed by the simplest means left
                status[number] = STATUS_FALLBACK
                conceal_box(out, face.box)
        over_limit = sum(f.over_limit for f in prepared.faces)
        return FrameResult(out, np.array([f.box for f in prepared.faces], np.float32).reshape(-1, 4), status,
                           np.array([f.row for f in prepared.faces], np.int32), [f.source for f in prepared.faces],
                           prepared.failed, dict(prepared.timings), over_limit)

    # -- everything ------------------------------------------------------------------------------------------------
    def run(self, frame: Any, appearance: Any = None, boxes: Any = None, track_boxes: Any = None,
            track_appearance: Any = None) -> FrameResult:
        """Camouflage one frame. Raises :class:`RequestError` for invalid input; never returns a detected face as
        it was."""
        return self.run_batch([frame], [appearance], [boxes], [(track_boxes, track_appearance)])[0]

    def complete(self, prepared: PreparedFrame, codes: np.ndarray | None = None) -> FrameResult:
        """Networks and paste-back for a copy of ``prepared`` (which stays reusable); ``codes`` as in :meth:`generate`."""
        return self._finish(self._generate_all([prepared.copy()], codes)[0])

    def run_batch(self, frames: Sequence[Any], appearance: Sequence[Any] | None = None, boxes: Sequence[Any] | None = None,
                  tracks: Sequence[tuple[Any, Any]] | None = None) -> list[FrameResult]:
        """Camouflage several frames, their faces sharing network batches. Per-frame arguments as in :meth:`run`."""
        count = len(frames)
        appearance = appearance or [None] * count
        boxes = boxes or [None] * count
        tracks = tracks or [(None, None)] * count
        prepared = [self.prepare(f, a, b, t[0], t[1]) for f, a, b, t in zip(frames, appearance, boxes, tracks)]
        return [self._finish(p) for p in self._generate_all(prepared)]

    def _generate_all(self, prepared: list[PreparedFrame], codes: np.ndarray | None = None) -> list[PreparedFrame]:
        try:
            timings = self.generate(prepared, codes)
        except Exception as error:  # noqa: BLE001 - a bug past the per-chunk guard: every face is concealed
            for frame in (f for f in prepared if f.faces):  # a frame without faces still passes unchanged
                frame.failed = frame.failed or f"generation failed: {type(error).__name__}: {error}"
                for face in frame.faces:
                    face.concealed_why = face.concealed_why or "generation failed"
            timings = {}
        share = 1.0 / max(len(prepared), 1)
        for frame in prepared:
            frame.timings.update({k: v * share for k, v in timings.items()})
        return prepared

    def _finish(self, prepared: PreparedFrame) -> FrameResult:
        started = time.perf_counter()
        try:
            result = self.paste(prepared)
        except Exception as error:  # noqa: BLE001 - never return the input: conceal the whole frame
            result = FrameResult(conceal_frame(prepared.frame), np.array([f.box for f in prepared.faces], np.float32).reshape(-1, 4),
                                 np.full(len(prepared.faces), STATUS_FALLBACK, np.int32),
                                 np.array([f.row for f in prepared.faces], np.int32), [f.source for f in prepared.faces],
                                 f"paste failed: {type(error).__name__}: {error}")
        result.timings["paste"] = time.perf_counter() - started
        return result


# -- detectors -------------------------------------------------------------------------------------------------------
class DlibDetector:
    """dlib's HOG or CNN detector behind the pipeline's detector interface (its boxes are what the landmark
    predictor was trained on, so :meth:`landmark_box` is the identity)."""

    def __init__(self, settings: PipelineSettings) -> None:
        self._detector = FaceDetector(settings.detector, settings.upsample, settings.min_score)

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        return self._detector(frame)

    @staticmethod
    def landmark_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        return box


class CenterFaceBoxes:
    """The CenterFace detector behind the pipeline's detector interface; its boxes are mapped to the rectangle
    dlib's landmark predictor expects (:func:`facecamo.detect.landmark_box`)."""

    def __init__(self, settings: PipelineSettings, networks: Networks) -> None:
        from facecamo.detect import CENTERFACE_DEFAULTS, CenterFaceDetector

        threshold = CENTERFACE_DEFAULTS["threshold"] if settings.detector_threshold is None else settings.detector_threshold
        self._detector = CenterFaceDetector(networks.detect, threshold=threshold, input_scale=settings.detector_input_scale)

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        return self._detector(frame)

    @staticmethod
    def landmark_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        from facecamo.detect import landmark_box

        return landmark_box(Detection(box, 1.0))


def align_in_box(frame: np.ndarray, box: tuple[float, float, float, float],
                 landmarks: LandmarkPredictor | FivePointLandmarkPredictor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The served alignment of the face in ``box`` (the rectangle the landmark model expects: a detector's
    ``landmark_box``): (float64 (2, 3) frame-to-crop affine, uint8 (112, 112, 3) crop, float64 (68, 2) landmarks in
    crop pixels). The export aligns the donor bank's portraits with it too, so donors and served faces match.

    Raises:
        ValueError: for degenerate landmarks."""
    points = landmarks(frame, box)
    affine = alignment_affine(points)
    return affine, warp_face(frame, affine), transform_points(affine, points)


def make_detector(settings: PipelineSettings, networks: Networks) -> "DlibDetector | CenterFaceBoxes":
    """The detector the settings name; CenterFace runs through ``networks.detect``."""
    return CenterFaceBoxes(settings, networks) if settings.detector == "centerface" else DlibDetector(settings)
