"""Keep each person's camouflage from frame to frame: IoU/centre tracking of the faces a stream returns.

The tracker hands the server (or the embedded engine) its tracks as hints (TRACK_BOXES, TRACK_APPEARANCE); a face
that matches a track keeps its appearance, a new person gets an entry no current track uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facecamo.tracking import match_boxes


@dataclass
class Track:
    track_id: int
    box: np.ndarray  # float (4,)
    appearance: int
    missed: int = 0


class FaceTracker:
    """Args:
        max_missed: frames a person may go undetected before their track (and appearance) is forgotten.
    """

    def __init__(self, max_missed: int = 15) -> None:
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self._next_id = 0

    def hints(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(float32 (T, 4) boxes, int32 (T,) appearance) of the live tracks, or None when there are none."""
        if not self.tracks:
            return None
        return (np.array([t.box for t in self.tracks], np.float32), np.array([t.appearance for t in self.tracks], np.int32))

    def update(self, faces: list) -> None:
        """Match a frame's :class:`FaceResult` list to the tracks (setting ``face.track_id``), start new tracks, age old ones."""
        boxes = np.array([f.box for f in faces], np.float64).reshape(-1, 4)
        matches = match_boxes(boxes, np.array([t.box for t in self.tracks], np.float64).reshape(-1, 4))
        seen = set()
        for face, box, match in zip(faces, boxes, matches):
            if match >= 0:
                track = self.tracks[match]
                track.box, track.appearance, track.missed = box, face.appearance, 0
            else:
                track = Track(self._next_id, box, face.appearance)
                self._next_id += 1
                self.tracks.append(track)
            face.track_id = track.track_id
            seen.add(track.track_id)
        for track in self.tracks:
            if track.track_id not in seen:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
