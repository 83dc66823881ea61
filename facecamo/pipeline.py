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

The parts: :mod:`facecamo.settings` (the typed settings), :mod:`facecamo.locate` (detectors and alignment),
:mod:`facecamo.stages` (the records each stage produces once), :mod:`facecamo.networks` (the networks' interface and
the checks on their outputs); this module runs the stages in order.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from facecamo import spec
from facecamo.align import FivePointLandmarkPredictor, LandmarkPredictor, landmark_predictor
from facecamo.conceal import conceal_frame
from facecamo.design import Design, design_of_bank
from facecamo.donor import likest_free, unit_vectors
from facecamo.locate import align_in_box, make_detector
from facecamo.networks import Networks, check_output, network_failure
from facecamo.paste import conceal_box, conceal_face, paste_face_inplace
from facecamo.request import (RequestError, appearance_indices, appearance_pairing_problem, rows_from_tracks, validate_boxes,
                              validate_frame, validate_tracks)
from facecamo.settings import PipelineSettings
from facecamo.spec import STATUS_CAMOUFLAGED, STATUS_CONCEALED, STATUS_FALLBACK, from_model_output, to_model_input
from facecamo.stages import (SOURCE_DETECTED, SOURCE_GIVEN, SOURCE_TRACK, Alignment, Concealment, Face, FrameResult, Generated,
                             Generation, PreparedFace, PreparedFrame)
from facecamo.tracking import box_iou, match_boxes

TRACK_BOX_IOU = 0.9
"""A caller's box that overlaps a track's box this much is that track's box (see :meth:`FramePipeline.prepare`)."""
TRACK_MATCH_CENTRE_SHIFT = 1.0
"""A face matches a caller's track when their centres are within this many box widths (or they overlap): hints may be
a few frames old (frames in flight) and cameras pan."""

# -- the pipeline ----------------------------------------------------------------------------------------------------
class FramePipeline:
    """Camouflage frames: :meth:`prepare` (locate and align), :meth:`generate` (the networks), :meth:`paste`; each
    stage returns a record the next one reads, none changes what an earlier one produced.

    Args:
        networks: see :class:`Networks` (``detect`` is used only with the centerface detector).
        bank: the donor design's donors, uint8 (K, 112, 112, 3) RGB in the mean face shape, or the paper design's
            appearance codes, float32 (K, C_app, 4, 1) (see :mod:`facecamo.spec`).
        settings: :class:`PipelineSettings`.
        landmarks: a landmark predictor (default: the one named by ``settings.landmarks``, from face_recognition_models).
        design: the design the networks and the bank are of (:mod:`facecamo.design`; default: the one the bank's
            dtype implies, for callers holding a bank alone).
        likeness: float32 (K, D) the identity encoder's unit vectors of the bank's donors (the export's
            ``bank_likeness.npy``): a face without APPEARANCE_INDEX or a track gets the free donor most like it
            (same kind of face: a woman a woman's blend) instead of the next free one. None: the next free one.
        members: float32 (K, M, D) the same encoder's unit vectors of the portraits blended into each donor (the
            export's ``bank_members.npy``): a face matching one of them is never given that donor (its own face).

    Raises:
        ValueError: for a bank that is not the design's, or likeness vectors that are not one per entry.
    """

    def __init__(self, networks: Networks, bank: np.ndarray, settings: PipelineSettings | None = None,
                 landmarks: LandmarkPredictor | FivePointLandmarkPredictor | None = None, design: Design | None = None,
                 likeness: np.ndarray | None = None, members: np.ndarray | None = None) -> None:
        self.networks = networks
        self.design = design or design_of_bank(bank)
        self.bank = self.design.bank_for_serving(bank)
        if likeness is not None:
            likeness = np.asarray(likeness, np.float32)
            if not self.design.donors or likeness.ndim != 2 or len(likeness) != len(self.bank) or not np.all(np.isfinite(likeness)):
                raise ValueError(f"likeness vectors must be finite float32 [K={len(self.bank)}, D], one per donor of a "
                                 f"donor-design bank; got shape {list(likeness.shape)} for the {self.design.name} design")
            likeness = unit_vectors(likeness)
        self.likeness = likeness
        if members is not None:
            members = np.asarray(members, np.float32)
            if likeness is None or members.ndim != 3 or len(members) != len(self.bank) or members.shape[2] != likeness.shape[1]:
                raise ValueError(f"member vectors must be float32 [K={len(self.bank)}, M, D] beside likeness vectors of "
                                 f"the same D; got shape {list(members.shape)}")
            members = unit_vectors(members)
        self.members = members
        self.settings = settings or PipelineSettings()
        self.landmarks = landmarks or landmark_predictor(self.settings.landmarks)
        self.detector = make_detector(self.settings, networks)

    @property
    def bank_size(self) -> int:
        return len(self.bank)

    # -- stages 1 and 2: validate, locate, align -------------------------------------------------------------------
    def prepare(self, frame: Any, appearance: Any = None, boxes: Any = None, track_boxes: Any = None,
                track_appearance: Any = None) -> PreparedFrame:
        """Validate the request, locate its faces (:meth:`_locate`), predict landmarks and align each.

        Raises:
            RequestError: for any invalid input, with what to fix.
        """
        settings = self.settings
        frame = validate_frame(frame, settings.max_width, settings.max_height)
        given = validate_boxes(boxes, frame.shape, settings.max_faces)
        hints, hint_rows = validate_tracks(track_boxes, track_appearance, self.bank_size, frame.shape, settings.max_faces)
        index = None if appearance is None or np.asarray(appearance).size == 0 else appearance_indices(appearance, self.bank_size, "APPEARANCE_INDEX")
        problem = appearance_pairing_problem(0 if index is None else len(index), 0 if given is None else len(given))
        if problem:
            raise RequestError(problem)
        started = time.perf_counter()
        try:
            faces = self._locate(frame, given, hints, hint_rows, index)
        except Exception as error:  # noqa: BLE001 - fail closed: the whole frame is concealed
            return PreparedFrame(frame, (), f"detection failed: {type(error).__name__}: {error}")
        located = time.perf_counter()
        prepared = tuple(self._align(frame, face) if number < settings.max_faces else
                         PreparedFace(face, None, Concealment(f"over the limit of {settings.max_faces} faces per frame",
                                                              by_design=face.source == SOURCE_TRACK))
                         for number, face in enumerate(faces))
        reserved = frozenset(int(r) for r in hint_rows) | {f.row for f in faces if not f.default_row}
        return PreparedFrame(frame, prepared, timings={"detect": located - started, "align": time.perf_counter() - located},
                             reserved=reserved)

    def _locate(self, frame: np.ndarray, given: np.ndarray | None, hints: np.ndarray, hint_rows: np.ndarray,
                index: np.ndarray | None) -> list[Face]:
        """Stage 1: the frame's faces, each with its bank entry.

        Detection runs unless the caller gives boxes (an empty box list means "detect for me", never "leave the faces
        alone"); every tracked person the detector missed is added at the track's box. Bank entries follow the spec's
        rule: one explicit entry is every face's, tracked people covered here included; several pair with the given
        boxes (which come first), a person covered for a track keeping the track's entry; without APPEARANCE_INDEX a
        face matched to a track keeps the track's entry and the others get free ones (:func:`rows_from_tracks`).
        """
        # (box, source, the row a track fixes or None) for the caller's or the detector's faces, then the tracks'
        found: list[tuple[tuple[float, float, float, float], str, int | None]] = []
        if given is not None and len(given):
            overlap = box_iou(given, hints) if len(hints) else np.zeros((len(given), 0))
            for number, box in enumerate(given):
                best = int(overlap[number].argmax()) if overlap.shape[1] else -1
                # A given box that is a track's own box (the SDK skipping detection on this frame) is that track's
                # prediction of a detector box: the detector's landmark mapping and the track's look.
                if best >= 0 and overlap[number, best] >= TRACK_BOX_IOU:
                    found.append((tuple(map(float, box)), SOURCE_TRACK, int(hint_rows[best])))
                else:
                    found.append((tuple(map(float, box)), SOURCE_GIVEN, None))
        else:
            found = [(d.box, SOURCE_DETECTED, None) for d in self.detector(frame)]
        matches = match_boxes(np.array([f[0] for f in found], np.float64).reshape(-1, 4), hints,
                              max_centre_shift=TRACK_MATCH_CENTRE_SHIFT)
        own = len(found)
        height, width = frame.shape[:2]
        for track in sorted(set(range(len(hints))) - {m for m in matches if m >= 0}):
            left, top, right, bottom = hints[track]
            left, top, right, bottom = max(left, 0.0), max(top, 0.0), min(right, float(width)), min(bottom, float(height))
            if right - left >= 2 and bottom - top >= 2:
                found.append(((left, top, right, bottom), SOURCE_TRACK, int(hint_rows[track])))
        default = [False] * len(found)
        if index is not None:
            explicit = [int(index[0])] * len(found) if len(index) == 1 else [int(index[n]) if n < own else None
                                                                             for n in range(len(found))]
            rows = [row if row is not None else fixed for row, (_, _, fixed) in zip(explicit, found)]
        else:
            rows = [fixed for _, _, fixed in found]
            free = [n for n in range(own) if found[n][1] != SOURCE_TRACK]
            chosen = rows_from_tracks(np.array([found[n][0] for n in free], np.float64).reshape(-1, 4), self.bank_size,
                                      hint_rows, [matches[n] for n in free])
            for n, row, track in zip(free, chosen, [matches[n] for n in free]):
                rows[n], default[n] = int(row), track < 0  # a face matched to a track keeps the track's entry
        return [Face(box, source, int(row), is_default) for (box, source, _), row, is_default in zip(found, rows, default)]

    def _align(self, frame: np.ndarray, face: Face) -> PreparedFace:
        """Stage 2 for one face: its landmarks and alignment, or why it is concealed."""
        left, top, right, bottom = face.box
        if min(right - left, bottom - top) < self.settings.min_face_px:
            return PreparedFace(face, None, Concealment(f"narrower than {self.settings.min_face_px:g} px", by_design=True))
        try:
            box = face.box if face.source == SOURCE_GIVEN else self.detector.landmark_box(face.box)
            return PreparedFace(face, Alignment(*align_in_box(frame, box, self.landmarks)))
        except ValueError as error:  # degenerate landmarks: concealed, never passed through
            return PreparedFace(face, None, Concealment(f"landmarks failed: {error}", by_design=face.source == SOURCE_TRACK))

    # -- stage 3: networks -----------------------------------------------------------------------------------------
    def generate(self, prepared: Sequence[PreparedFrame], codes: np.ndarray | None = None) -> list[Generation]:
        """Run the networks over the aligned faces of ``prepared`` frames in batches of ``max_batch``: one
        :class:`Generation` per frame. ``codes``: one bank entry to use for every face instead of the bank's
        (evaluation's references): a donor, uint8 (1, 112, 112, 3), or a code, float32 (1, C_app, 4, 1)."""
        queue = [(frame_number, face_number, face) for frame_number, frame in enumerate(prepared)
                 for face_number, face in enumerate(frame.faces) if face.alignment is not None and face.concealment is None]
        outcomes: list[dict[int, Generated | Concealment]] = [{} for _ in prepared]
        timings = {"donor": 0.0, "identity_encoder": 0.0, "generator": 0.0}
        taken = [set(frame.reserved) for frame in prepared]  # per frame: entries no face may be given by likeness
        try:
            for start in range(0, len(queue), self.settings.max_batch):
                chunk = queue[start : start + self.settings.max_batch]
                results = self._generate_chunk([f for _, _, f in chunk], codes, timings, [taken[n] for n, _, _ in chunk])
                for (frame_number, face_number, _), outcome in zip(chunk, results):
                    outcomes[frame_number][face_number] = outcome
        except Exception as error:  # noqa: BLE001 - a bug past the per-chunk guards: every face is concealed
            failed = f"generation failed: {type(error).__name__}: {error}"
            return [Generation({n: Concealment("generation failed") for n, f in enumerate(frame.faces) if f.concealment is None},
                               failed if frame.faces else None) for frame in prepared]  # a frame without faces passes
        share = 1.0 / max(len(prepared), 1)
        return [Generation(frame_outcomes, timings={k: v * share for k, v in timings.items()}) for frame_outcomes in outcomes]

    def _generate_chunk(self, chunk: list[PreparedFace], codes: np.ndarray | None, timings: dict[str, float],
                        taken: list[set[int]]) -> list[Generated | Concealment]:
        """The networks over at most ``max_batch`` aligned faces: each face's outcome; adds seconds to ``timings``.
        ``taken``: per face, its frame's set of entries not to give by likeness (the chosen ones are added to it)."""
        began = time.perf_counter()
        try:
            batch = to_model_input(np.stack([f.alignment.crop for f in chunk]))
            identity = check_output(spec.IDENTITY_ENCODER, self.networks.encode_identity(batch), (len(chunk), None, None, None))
        except Exception as error:  # noqa: BLE001 - fail closed: these faces are concealed
            timings["identity_encoder"] += time.perf_counter() - began
            return [Concealment(f"generation failed: {network_failure(error)}")] * len(chunk)
        building = time.perf_counter()
        timings["identity_encoder"] += building - began
        rows = [self._row(face, vector, frame_taken, codes) for face, vector, frame_taken in zip(chunk, identity, taken)]
        try:
            appearance, regions = self._appearance(chunk, codes, rows)
        except Exception as error:  # noqa: BLE001 - fail closed: these faces are concealed
            return [Concealment(f"donor target failed: {type(error).__name__}: {error}")] * len(chunk)
        generating = time.perf_counter()
        timings["donor"] += generating - building
        try:
            generated = check_output(spec.GENERATOR, self.networks.generate(identity, appearance),
                                     (len(chunk), 3, spec.FACE_SIZE, spec.FACE_SIZE))
        except Exception as error:  # noqa: BLE001 - fail closed: these faces are concealed
            timings["generator"] += time.perf_counter() - generating
            return [Concealment(f"generation failed: {network_failure(error)}")] * len(chunk)
        timings["generator"] += time.perf_counter() - generating
        finite = np.isfinite(generated.reshape(len(chunk), -1)).all(axis=1)
        return [Generated(image, region, row) if ok else Concealment("generation failed: the generator returned non-finite values")
                for ok, image, region, row in zip(finite, from_model_output(generated), regions, rows)]

    def _row(self, face: PreparedFace, identity: np.ndarray, taken: set[int], codes: np.ndarray | None) -> int:
        """The bank entry a face is made with: its own, or (a default entry, with likeness vectors, no override) the
        free entry most like its identity vector, which is then taken for the rest of its frame."""
        row = face.face.row
        if face.face.default_row and self.likeness is not None and codes is None:
            row = likest_free(identity, self.likeness, taken, self.members)
            row = face.face.row if row is None else row  # every entry taken: the default rule's
        taken.add(row)
        return row

    def _appearance(self, chunk: list[PreparedFace], override: np.ndarray | None,
                    rows: list[int]) -> tuple[np.ndarray, list[np.ndarray | None]]:
        """The generator's APPEARANCE input for a chunk of aligned faces made with bank entries ``rows``, and each
        face's paste region: float32 (N, 3, 112, 112) donor targets and their regions, float32 (112, 112) each; or
        float32 (N, C_app, 4, 1) codes and no regions (the ellipse)."""
        made = [self.design.appearance(face.alignment.crop, face.alignment.landmarks,
                                       np.asarray(override)[0] if override is not None else self.bank[row])
                for face, row in zip(chunk, rows)]
        return np.stack([appearance for appearance, _ in made]), [region for _, region in made]

    # -- stage 4: paste back ---------------------------------------------------------------------------------------
    def paste(self, prepared: PreparedFrame, generation: Generation) -> FrameResult:
        """Every generated face pasted back into a copy of the frame, every other face concealed."""
        frame = prepared.frame
        if prepared.failed is not None and not prepared.faces:
            out = conceal_frame(frame)  # detection failed: no face is known, so nothing of the frame is shown
        else:
            out = frame.copy()
        status = np.full(len(prepared.faces), STATUS_FALLBACK, np.int32)
        for number, face in enumerate(prepared.faces):
            outcome = generation.outcomes.get(number)
            try:
                if isinstance(outcome, Generated):
                    left, top, right, bottom = face.box
                    written = paste_face_inplace(out, outcome.image, face.alignment.affine, outcome.region)
                    if written >= 0.25 * (right - left) * (bottom - top):  # the new face covers the detected one
                        status[number] = STATUS_CAMOUFLAGED
                        continue
                if face.concealment is not None and face.concealment.by_design:
                    status[number] = STATUS_CONCEALED
                if face.alignment is not None:
                    conceal_face(out, face.alignment.crop, face.alignment.affine)
                conceal_box(out, face.box)
            except Exception:  # noqa: BLE001 - the face region is concealed by the simplest means left
                status[number] = STATUS_FALLBACK
                conceal_box(out, face.box)
        rows = [outcome.row if isinstance(outcome := generation.outcomes.get(n), Generated) and outcome.row is not None
                else f.face.row for n, f in enumerate(prepared.faces)]
        return FrameResult(out, frame_boxes(prepared), status, np.array(rows, np.int32),
                           [f.face.source for f in prepared.faces], prepared.failed or generation.failed,
                           {**prepared.timings, **generation.timings}, max(0, len(prepared.faces) - self.settings.max_faces))

    # -- everything ------------------------------------------------------------------------------------------------
    def run(self, frame: Any, appearance: Any = None, boxes: Any = None, track_boxes: Any = None,
            track_appearance: Any = None) -> FrameResult:
        """Camouflage one frame. Raises :class:`RequestError` for invalid input; never returns a detected face as
        it was."""
        return self.run_batch([frame], [appearance], [boxes], [(track_boxes, track_appearance)])[0]

    def complete(self, prepared: PreparedFrame, codes: np.ndarray | None = None) -> FrameResult:
        """Networks and paste-back for ``prepared`` (which stays reusable); ``codes`` as in :meth:`generate`."""
        return self._finish(prepared, self.generate([prepared], codes)[0])

    def run_batch(self, frames: Sequence[Any], appearance: Sequence[Any] | None = None, boxes: Sequence[Any] | None = None,
                  tracks: Sequence[tuple[Any, Any]] | None = None) -> list[FrameResult]:
        """Camouflage several frames, their faces sharing network batches. Per-frame arguments as in :meth:`run`."""
        count = len(frames)
        appearance = appearance or [None] * count
        boxes = boxes or [None] * count
        tracks = tracks or [(None, None)] * count
        prepared = [self.prepare(f, a, b, t[0], t[1]) for f, a, b, t in zip(frames, appearance, boxes, tracks)]
        return [self._finish(p, g) for p, g in zip(prepared, self.generate(prepared))]

    def _finish(self, prepared: PreparedFrame, generation: Generation) -> FrameResult:
        started = time.perf_counter()
        try:
            result = self.paste(prepared, generation)
        except Exception as error:  # noqa: BLE001 - never return the input: conceal the whole frame
            result = FrameResult(conceal_frame(prepared.frame), frame_boxes(prepared),
                                 np.full(len(prepared.faces), STATUS_FALLBACK, np.int32),
                                 np.array([f.face.row for f in prepared.faces], np.int32),
                                 [f.face.source for f in prepared.faces], f"paste failed: {type(error).__name__}: {error}")
        result.timings["paste"] = time.perf_counter() - started
        return result


def frame_boxes(prepared: PreparedFrame) -> np.ndarray:
    """float32 (N, 4): the boxes of a prepared frame's faces."""
    return np.array([f.box for f in prepared.faces], np.float32).reshape(-1, 4)
