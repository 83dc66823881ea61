# SPDX-License-Identifier: Apache-2.0
"""The interface both back-ends implement: the gRPC client and the embedded engine."""

from __future__ import annotations

import collections
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np

from facecamo.conceal import conceal_frame
from facecamo_client.errors import FacecamoError, InvalidInputError, RequestTimeoutError
from facecamo_client.result import CamouflageResult
from facecamo_client.tracking import FaceTracker


class CamouflageEngine:
    """Camouflage frames. Subclasses implement :meth:`submit`.

    Frames are uint8 (H, W, 3) **RGB** numpy arrays (OpenCV callers convert from BGR first).
    ``appearance``: None (the engine's default: people differ, left to right), one bank entry for every face, or one
    per face. ``boxes``: float (N, 4) left, top, right, bottom from the caller's own detector (None: detect).
    """

    max_tracks = 256
    """Tracks sent with a frame at most (the server's per-frame limit is higher); the most recently seen are kept."""

    @property
    def answer_timeout_s(self) -> float | None:
        """How long :meth:`stream` waits for one frame's answer before concealing that frame (None: no bound)."""
        return None

    def _wait(self, future: Future, timeout: float | None = None) -> CamouflageResult:
        """The future's result, or :class:`RequestTimeoutError` once :attr:`answer_timeout_s` (or the shorter
        ``timeout``) has passed: a server that died mid-request must not hold a stream forever (the frame is then
        concealed, never passed through)."""
        limits = [t for t in (self.answer_timeout_s, timeout) if t is not None]
        limit = min(limits) if limits else None
        try:
            return future.result(timeout=limit)
        except FutureTimeoutError:
            raise RequestTimeoutError(f"no answer for a frame within {limit:.1f} s") from None

    def submit(self, frame: np.ndarray, appearance=None, boxes=None, tracks=None) -> "Future[CamouflageResult]":
        raise NotImplementedError

    def _submit_rerun(self, frame: np.ndarray, appearance, tracks) -> "Future[CamouflageResult]":
        """Submit a frame again (:meth:`stream`'s re-run with corrected hints). A server is told it is not a new frame
        (its metrics count it apart); the embedded engine has nothing to tell."""
        return self.submit(frame, appearance, None, tracks)

    def camouflage(self, frame: np.ndarray, appearance=None, boxes=None) -> CamouflageResult:
        """Camouflage one frame and wait for it."""
        return self.submit(frame, appearance, boxes).result()

    def stream(self, frames: Iterable[np.ndarray], max_in_flight: int = 4, appearance=None, track: bool = True,
               tracker: FaceTracker | None = None, detect_every: int = 1, live: bool = False,
               max_latency_s: float | None = 1.0) -> Iterator[CamouflageResult]:
        """Camouflage a video: results come back complete and in order, with at most ``max_in_flight`` frames
        submitted and not yet returned.

        With ``track`` (the default) a tracker follows each person: they keep one appearance for as long as they are
        tracked, whatever the number in flight (hints are predicted to the frame they go with), and a person the
        detector misses in a frame is still covered there at their predicted box for up to ``tracker.max_missed``
        frames. ``detect_every=K`` runs detection on every K-th frame only; the tracks cover the frames in between
        (faster, and a newcomer may go uncovered for up to K-1 frames: keep 1 where that matters).

        ``appearance``: None (each person a different look), one bank entry for every face, or a mapping or callable
        from the SDK's track id (``FaceResult.track_id``: 0, 1, 2, ... in the order people appear) to a bank entry
        (None or a missing key: the default), asked once when the person's track starts (a first frame that came back
        under another look is run again, so nobody changes look). Tracking stays on whichever is given.

        ``live=True`` (cameras): returns a :class:`facecamo_client.live.LiveStream`, whose latency stays bounded
        when processing falls behind: the newest frame wins, older frames not yet submitted are dropped (never
        yielded: a viewer never sees an original face), and so is a frame whose result would be older than
        ``max_latency_s`` seconds after it was read; ``.dropped`` counts them.

        Fail closed: a frame the engine fails on (a server or model error, not invalid input) comes back with the
        whole frame concealed and ``result.failed`` set, never as it was. Invalid input raises
        :class:`InvalidInputError`.
        """
        if max_in_flight < 1:
            raise InvalidInputError(f"max_in_flight must be >= 1, got {max_in_flight}")
        if detect_every < 1:
            raise InvalidInputError(f"detect_every must be >= 1, got {detect_every}")
        fixed, choose = stream_appearance(appearance)
        if tracker is None and track:
            tracker = FaceTracker(appearance=choose)
        elif tracker is not None and choose is not None:
            tracker.appearance = choose
        if choose is not None and tracker is None:
            raise InvalidInputError("appearance per track id needs track=True (without tracking there are no track ids)")
        if detect_every > 1 and tracker is None:
            raise InvalidInputError("detect_every > 1 needs tracking (the tracks cover the frames without detection): "
                                    "keep track=True")
        if live:
            from facecamo_client.live import LiveStream

            return LiveStream(self, frames, max_in_flight, max_latency_s, fixed, tracker, detect_every)
        return self._ordered(frames, max_in_flight, fixed, tracker, detect_every)

    def _ordered(self, frames: Iterable[np.ndarray], max_in_flight: int, appearance, tracker: FaceTracker | None,
                 detect_every: int) -> Iterator[CamouflageResult]:
        pending: collections.deque = collections.deque()
        for index, frame in enumerate(frames):
            pending.append(self._submit_frame(index, frame, appearance, tracker, detect_every))
            if len(pending) >= max_in_flight:
                yield self._finish(pending.popleft(), tracker, appearance)
        while pending:
            yield self._finish(pending.popleft(), tracker, appearance)

    def _submit_frame(self, index: int, frame: np.ndarray, appearance, tracker: FaceTracker | None, detect_every: int) -> tuple:
        """Submit frame ``index`` of a stream with its tracks' hints (and, on a frame without detection, the tracks'
        boxes as its faces); returns the item :meth:`_finish` takes."""
        hints = tracker.hints(index, self.max_tracks) if tracker is not None else None
        skip_detection = tracker is not None and hints is not None and index % detect_every != 0
        boxes = _inside(hints[0], frame) if skip_detection else None
        if skip_detection and not len(boxes):
            boxes, skip_detection = None, False
        return index, frame, skip_detection, self.submit(frame, appearance, boxes, hints)

    def _finish(self, item, tracker: FaceTracker | None, appearance, timeout: float | None = None) -> CamouflageResult:
        index, frame, skipped_detection, future = item
        try:
            result = self._wait(future, timeout)
            corrected = (tracker.corrections(result.faces, index, self.max_tracks)
                         if tracker is not None and not skipped_detection else None)
            if corrected is not None:
                # A tracked person came back under another look (their hint was stale): this frame is run again
                # with hints that match its own faces exactly, so nobody flickers between looks.
                result = self._wait(self._submit_rerun(frame, appearance, corrected), timeout)
        except InvalidInputError:
            raise
        except FacecamoError as error:  # fail closed: the frame is concealed whole, never passed through
            result = CamouflageResult(conceal_frame(np.asarray(frame)), [], failed=str(error))
        result.index = index
        if tracker is not None:
            if skipped_detection:
                for face in result.faces:  # the boxes were the tracks' own predictions, not observations
                    face.source = "track"
            tracker.update(result.faces, index)
        return result

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def stream_appearance(appearance) -> tuple[np.ndarray | None, Callable[[int], int | None] | None]:
    """A stream's ``appearance`` as (the int32 [1] entry for every face, or None; the choice per track id, or None).

    Raises:
        InvalidInputError: a list of several entries (a stream's faces have no order known in advance: choose per
            track id), or an entry that is not exactly one integer.
    """
    from facecamo_client.validation import appearance_indices

    if appearance is None:
        return None, None
    if isinstance(appearance, Mapping):
        return None, appearance.get
    if callable(appearance):
        return None, appearance
    fixed = appearance_indices(appearance)
    if len(fixed) > 1:
        raise InvalidInputError(f"a stream's appearance is one bank entry for every face, or a mapping or callable from the "
                                f"track id to an entry; got {len(fixed)} entries (a stream's faces have no order known in advance)")
    return fixed, None


def _inside(boxes: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """float32 (T, 4) boxes clipped to the frame, dropping those left with no area (a track leaving the picture)."""
    height, width = np.asarray(frame).shape[:2]
    clipped = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    return clipped[(clipped[:, 2] - clipped[:, 0] >= 2) & (clipped[:, 3] - clipped[:, 1] >= 2)]
