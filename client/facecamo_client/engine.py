"""The interface both back-ends implement: the gRPC client and the embedded engine."""

from __future__ import annotations

import collections
from concurrent.futures import Future
from typing import Iterable, Iterator

import numpy as np

from facecamo_client.result import CamouflageResult
from facecamo_client.tracking import FaceTracker


class CamouflageEngine:
    """Camouflage frames. Subclasses implement :meth:`submit`.

    Frames are uint8 (H, W, 3) **RGB** numpy arrays (OpenCV callers convert from BGR first).
    ``appearance``: None (the engine's default: people differ, left to right), one bank entry for every face, or one
    per face. ``boxes``: float (N, 4) left, top, right, bottom from the caller's own detector (None: detect).
    """

    def submit(self, frame: np.ndarray, appearance=None, boxes=None, tracks=None) -> "Future[CamouflageResult]":
        raise NotImplementedError

    def camouflage(self, frame: np.ndarray, appearance=None, boxes=None) -> CamouflageResult:
        """Camouflage one frame and wait for it."""
        return self.submit(frame, appearance, boxes).result()

    def stream(self, frames: Iterable[np.ndarray], max_in_flight: int = 4, appearance=None, track: bool = True,
               tracker: FaceTracker | None = None) -> Iterator[CamouflageResult]:
        """Camouflage a video: results come back complete and in order, with at most ``max_in_flight`` frames
        submitted and not yet returned. With ``track`` the same person keeps the same appearance across frames
        (the tracker's hints go with each frame; a frame submitted before its predecessor returned uses the hints
        known at submission, and a newcomer's entry is chosen deterministically, so in-flight frames agree)."""
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        tracker = tracker or (FaceTracker() if track and appearance is None else None)
        pending: collections.deque = collections.deque()
        for index, frame in enumerate(frames):
            hints = tracker.hints() if tracker is not None else None
            pending.append((index, self.submit(frame, appearance, None, hints)))
            if len(pending) >= max_in_flight:
                yield self._finish(pending.popleft(), tracker)
        while pending:
            yield self._finish(pending.popleft(), tracker)

    @staticmethod
    def _finish(item, tracker: FaceTracker | None) -> CamouflageResult:
        index, future = item
        result = future.result()
        result.index = index
        if tracker is not None:
            tracker.update(result.faces)
        return result

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def as_int32(values) -> np.ndarray | None:
    if values is None:
        return None
    return np.asarray(values, np.int32).reshape(-1)


def as_boxes(values) -> np.ndarray | None:
    if values is None:
        return None
    return np.asarray(values, np.float32).reshape(-1, 4)
