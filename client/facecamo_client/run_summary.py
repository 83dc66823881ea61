# SPDX-License-Identifier: Apache-2.0
"""What a run of the command line did, and how one frame's answer from the engine becomes the frame written.

``Summary`` counts frames, faces and failures for the closing report; ``FrameChecker`` fails closed on every frame
(anything but a uint8 frame of the input's shape is written concealed, and counted). They live apart from the
command line's argument handling (:mod:`facecamo_client.cli`) and its file processing (:mod:`facecamo_client.jobs`),
which both report into them; ``UsageError`` and ``Aborted`` are the two ways a run ends early.
"""

from __future__ import annotations

import collections
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from facecamo.conceal import conceal_frame

# Per-frame warnings printed for one file before they are only counted (the summary has them all).
WARNINGS_PER_FILE = 5


class UsageError(ValueError):
    """The command line was given something it cannot work with; nothing was processed (exit code 2)."""


class Aborted(Exception):
    """The run cannot go on (the server went away): what was written is kept, the rest is not processed."""


@dataclass
class Summary:
    """What a run did, for the closing report. ``files_failed``: (file, reason) for every file not fully processed."""

    frames: int = 0
    frames_failed: int = 0
    frames_dropped: int = 0  # --live: frames read but not written because processing fell behind
    faces_by_status: collections.Counter = field(default_factory=collections.Counter)
    faces_by_source: collections.Counter = field(default_factory=collections.Counter)
    failure_reasons: collections.Counter = field(default_factory=collections.Counter)
    failed_frame_indices: dict[str, list[int]] = field(default_factory=dict)  # video file -> indices written concealed
    files_done: int = 0
    files_failed: list[tuple[str, str]] = field(default_factory=list)
    partial_outputs: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def add_faces(self, faces) -> None:
        self.faces_by_status.update(str(face.status) for face in faces)
        self.faces_by_source.update(str(getattr(face, "source", "detected")) for face in faces)

    def add_failed_frame(self, reason: str, source: str, index: int | None) -> None:
        self.frames_failed += 1
        self.failure_reasons[reason] += 1
        if index is not None:
            self.failed_frame_indices.setdefault(source, []).append(index)

    def add_failed_file(self, source: str, reason: str) -> None:
        self.files_failed.append((str(source), reason))

    @property
    def ok(self) -> bool:
        return not self.frames_failed and not self.files_failed

    def as_dict(self) -> dict:
        seconds = time.perf_counter() - self.started
        camouflaged = self.faces_by_status.get("camouflaged", 0)
        faces = sum(self.faces_by_status.values())
        return {"frames": self.frames, "faces": faces, "faces_camouflaged": camouflaged, "faces_concealed": faces - camouflaged,
                "faces_by_status": dict(self.faces_by_status), "faces_by_source": dict(self.faces_by_source),
                "frames_failed": self.frames_failed, "frames_dropped": self.frames_dropped,
                "frame_failure_reasons": dict(self.failure_reasons),
                "frames_failed_by_file": {file: as_ranges(indices) for file, indices in self.failed_frame_indices.items()},
                "files_done": self.files_done,
                "files_failed": [{"file": f, "reason": r} for f, r in self.files_failed], "partial_outputs": self.partial_outputs,
                "seconds": round(seconds, 2), "frames_per_second": round(self.frames / seconds, 2) if seconds > 0 else None}


def as_ranges(indices: list[int]) -> list[list[int]]:
    """[3, 4, 5, 9] -> [[3, 5], [9, 9]]: first and last index of each run, so a long failure stays short in JSON."""
    ranges: list[list[int]] = []
    for index in sorted(indices):
        if ranges and index == ranges[-1][1] + 1:
            ranges[-1][1] = index
        else:
            ranges.append([index, index])
    return ranges


class FrameChecker:
    """Turns an engine's answer for one frame into the frame to write, counting failures in the summary.

    Fail closed: a result whose frame is not a uint8 array of the input's shape is concealed here; a result with
    ``failed`` set was concealed by the engine and is written as returned; an exception means no frame came back,
    so the input is concealed here."""

    def __init__(self, summary: Summary, source: str) -> None:
        self.summary, self.source, self.warned = summary, source, 0

    def _failed(self, index: int | None, reason: str) -> None:
        self.summary.add_failed_frame(reason, self.source, index)
        self.warned += 1
        if self.warned <= WARNINGS_PER_FILE:
            where = "" if index is None else f" frame {index}"
            print(f"warning: {self.source}{where}: {reason}; written concealed", file=sys.stderr)
        elif self.warned == WARNINGS_PER_FILE + 1:
            print(f"warning: {self.source}: more frames failed (counted in the summary)", file=sys.stderr)

    def result(self, original: np.ndarray, result, index: int | None = None) -> np.ndarray:
        """The uint8 (H, W, 3) frame to write for ``original`` given the engine's ``result``."""
        self.summary.frames += 1
        self.summary.add_faces(getattr(result, "faces", None) or [])
        frame = getattr(result, "frame", None)
        reason = getattr(result, "failed", None)
        if not isinstance(frame, np.ndarray) or frame.shape != original.shape or frame.dtype != np.uint8:
            frame, reason = conceal_frame(original), (
                f"the engine returned a frame of shape {getattr(frame, 'shape', None)} ({getattr(frame, 'dtype', type(frame).__name__)}) "
                f"for an input of {original.shape}")
        if reason:
            self._failed(index, str(reason))
        return frame

    def error(self, original: np.ndarray, error: BaseException, index: int | None = None) -> np.ndarray:
        """The concealed frame to write for ``original`` when the engine raised ``error``."""
        self.summary.frames += 1
        self._failed(index, f"{type(error).__name__}: {error}")
        return conceal_frame(original)
