"""Keep each person covered and their camouflage stable from frame to frame: a constant-velocity IoU/centre tracker of
the faces a stream returns.

The tracker hands the server (or the embedded engine) its tracks as hints (TRACK_BOXES, TRACK_APPEARANCE), predicted
to the frame being submitted, so hints stay accurate with several frames in flight. A face that matches a track keeps
that track's appearance; a tracked person the detector misses in a frame is still covered there at the predicted box
(the pipeline adds it), for up to ``max_missed`` frames; a new person gets an entry no current track uses. A track's
appearance is fixed when it starts: what a later frame got never replaces it, so a person cannot flicker between looks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facecamo.tracking import match_boxes


@dataclass
class Track:
    """One person. ``box``: float (4,) where they were last seen, at frame ``seen_at``; ``velocity``: float (4,) box
    change per frame."""

    track_id: int
    box: np.ndarray
    appearance: int
    seen_at: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    hits: int = 1

    def predict(self, index: int) -> np.ndarray:
        """Where the box should be at frame ``index`` (constant velocity; width and height kept positive)."""
        box = self.box + self.velocity * max(index - self.seen_at, 0)
        centre, size = (box[:2] + box[2:]) / 2, np.maximum(box[2:] - box[:2], 1.0)
        return np.concatenate([centre - size / 2, centre + size / 2])


class FaceTracker:
    """Args:
        max_missed: frames a person may go undetected, still covered at their predicted box, before their track (and
            appearance) is forgotten (default 25: about a second of video).
        smoothing: weight of the newest motion in the velocity estimate.
    """

    def __init__(self, max_missed: int = 25, smoothing: float = 0.5) -> None:
        self.max_missed = max_missed
        self.smoothing = smoothing
        self.tracks: list[Track] = []
        self._next_id = 0
        self._last_index = -1

    def hints(self, index: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(float32 (T, 4) boxes predicted to frame ``index``, int32 (T,) appearance) of the live tracks, or None."""
        if not self.tracks:
            return None
        index = self._last_index + 1 if index is None else index
        return (np.array([t.predict(index) for t in self.tracks], np.float32),
                np.array([t.appearance for t in self.tracks], np.int32))

    def update(self, faces: list, index: int | None = None) -> None:
        """Match frame ``index``'s :class:`FaceResult` list to the tracks (setting ``face.track_id``), start new
        tracks, age the others. Faces the pipeline only covered from a track (``source == "track"``) are not
        observations: they keep their track's id but do not move it or keep it alive."""
        index = self._last_index + 1 if index is None else index
        self._last_index = max(self._last_index, index)
        observed = [f for f in faces if getattr(f, "source", "detected") != "track"]
        boxes = np.array([f.box for f in observed], np.float64).reshape(-1, 4)
        predicted = np.array([t.predict(index) for t in self.tracks], np.float64).reshape(-1, 4)
        matches = match_boxes(boxes, predicted)
        seen = set()
        for face, box, match in zip(observed, boxes, matches):
            if match >= 0:
                track = self.tracks[match]
                gap = max(index - track.seen_at, 1)
                motion = (box - track.box) / gap
                track.velocity = motion if track.hits == 1 else (1 - self.smoothing) * track.velocity + self.smoothing * motion
                track.box, track.seen_at, track.hits = box, index, track.hits + 1
            else:
                track = Track(self._next_id, box, int(face.appearance), index)
                self._next_id += 1
                self.tracks.append(track)
            face.track_id = track.track_id
            seen.add(track.track_id)
        covered = [f for f in faces if getattr(f, "source", "detected") == "track"]
        if covered and self.tracks:
            by_box = match_boxes(np.array([f.box for f in covered], np.float64).reshape(-1, 4),
                                 np.array([t.predict(index) for t in self.tracks], np.float64).reshape(-1, 4))
            for face, match in zip(covered, by_box):
                if match >= 0:
                    face.track_id = self.tracks[match].track_id
        self.tracks = [t for t in self.tracks if t.track_id in seen or index - t.seen_at <= self.max_missed]

    def coast(self, index: int) -> None:
        """A frame without detection (``detect_every``): the tracks were covered at their predictions; age them."""
        self._last_index = max(self._last_index, index)
        self.tracks = [t for t in self.tracks if index - t.seen_at <= self.max_missed]
