# SPDX-License-Identifier: Apache-2.0
"""Keep each person covered and their camouflage stable from frame to frame: a constant-velocity IoU/centre tracker of
the faces a stream returns.

The tracker hands the server (or the embedded engine) its tracks as hints (TRACK_BOXES, TRACK_APPEARANCE), predicted
to the frame being submitted, so hints stay accurate with several frames in flight. A face that matches a track keeps
that track's appearance; a tracked person the detector misses in a frame is still covered there at the predicted box
(the pipeline adds it), for up to ``max_missed`` frames; a new person gets an entry no current track uses, or the one
the caller's ``appearance`` chooses for the new track's id. A track's appearance is fixed when it starts: what a later
frame got never replaces it, so a person cannot flicker between looks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from facecamo.tracking import match_boxes
from facecamo_client.errors import InvalidInputError


MIN_HITS_FOR_MOTION = 3
MAX_EXTRAPOLATED_FRAMES = 8  # beyond this a prediction is a guess: the box waits where it was heading
MAX_SPEED = 0.3  # box widths per frame: faster "motion" is detector jitter, not a person
MATCH_CENTRE_SHIFT = 1.0  # box widths; hints are up to max_in_flight frames old, and cameras pan


@dataclass
class Track:
    """One person. ``box``: float (4,) where they were last seen, at frame ``seen_at``; ``velocity``: float (4,) box
    change per frame."""

    track_id: int
    box: np.ndarray
    appearance: int
    seen_at: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    hits: int = 1

    def predict(self, index: int) -> np.ndarray:
        """Where the box should be at frame ``index``: the centre moves at constant velocity once the track has been
        seen three times (two sightings give no trustworthy motion); the size stays as last seen."""
        centre, size = (self.box[:2] + self.box[2:]) / 2, self.box[2:] - self.box[:2]
        if self.hits >= MIN_HITS_FOR_MOTION:
            centre = centre + self.velocity * min(max(index - self.seen_at, 0), MAX_EXTRAPOLATED_FRAMES)
        return np.concatenate([centre - size / 2, centre + size / 2])


class FaceTracker:
    """Args:
        max_missed: frames a person may go undetected, still covered at their predicted box, before their track (and
            appearance) is forgotten (default 25: about a second of video).
        smoothing: weight of the newest motion in the velocity estimate.
        appearance: the bank entry of a new track, from its id (``FaceResult.track_id``: 0, 1, 2, ... in the order
            people appear), called once when the track starts; None from it (or no callable) keeps the entry the
            person's first frame gave them.
    """

    def __init__(self, max_missed: int = 25, smoothing: float = 0.5,
                 appearance: Callable[[int], int | None] | None = None) -> None:
        self.max_missed = max_missed
        self.smoothing = smoothing
        self.appearance = appearance
        self._chosen: dict[int, int] = {}  # appearance(id) for ids not yet started: asked once per id
        self.tracks: list[Track] = []
        self._next_id = 0
        self._last_index = -1

    def _look(self, track_id: int, given: int) -> int:
        """The entry a track starting as ``track_id`` keeps: the caller's choice for it, else ``given`` (its frame's)."""
        if self.appearance is None:
            return given
        from facecamo_client.validation import appearance_indices

        if track_id not in self._chosen:
            chosen = self.appearance(track_id)
            rows = None if chosen is None else appearance_indices(chosen, f"appearance for track {track_id}")
            if rows is not None and len(rows) != 1:
                raise InvalidInputError(f"appearance for track {track_id} must be one bank entry, got {len(rows)}")
            self._chosen[track_id] = -1 if rows is None else int(rows[0])
        return given if self._chosen[track_id] < 0 else self._chosen[track_id]

    def hints(self, index: int | None = None, limit: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(float32 (T, 4) boxes predicted to frame ``index``, int32 (T,) appearance) of the live tracks, or None;
        at most ``limit`` of them, the most recently seen first (an engine refuses more than its per-frame limit)."""
        if not self.tracks:
            return None
        index = self._last_index + 1 if index is None else index
        tracks = sorted(self.tracks, key=lambda t: -t.seen_at)[:limit]
        return (np.array([t.predict(index) for t in tracks], np.float32), np.array([t.appearance for t in tracks], np.int32))

    def update(self, faces: list, index: int | None = None) -> None:
        """Match frame ``index``'s :class:`FaceResult` list to the tracks (setting ``face.track_id``), start new
        tracks, age the others. Faces the pipeline only covered from a track (``source == "track"``) are not
        observations: they keep their track's id but do not move it or keep it alive."""
        index = self._last_index + 1 if index is None else index
        self._last_index = max(self._last_index, index)
        observed = [f for f in faces if getattr(f, "source", "detected") != "track"]
        boxes = np.array([f.box for f in observed], np.float64).reshape(-1, 4)
        predicted = np.array([t.predict(index) for t in self.tracks], np.float64).reshape(-1, 4)
        matches = match_boxes(boxes, predicted, max_centre_shift=MATCH_CENTRE_SHIFT)
        seen = set()
        for face, box, match in zip(observed, boxes, matches):
            if match >= 0:
                track = self.tracks[match]
                gap = max(index - track.seen_at, 1)
                motion = ((box[:2] + box[2:]) - (track.box[:2] + track.box[2:])) / 2 / gap
                limit = MAX_SPEED * (box[2] - box[0])
                motion = motion * min(1.0, limit / max(float(np.linalg.norm(motion)), 1e-9))
                track.velocity = motion if track.hits == 1 else (1 - self.smoothing) * track.velocity + self.smoothing * motion
                track.box, track.seen_at, track.hits = box, index, track.hits + 1
            else:
                track = Track(self._next_id, box, self._look(self._next_id, int(face.appearance)), index)
                self._chosen.pop(self._next_id, None)
                self._next_id += 1
                self.tracks.append(track)
            face.track_id = track.track_id
            seen.add(track.track_id)
        # A covered face carries the look of the track it was covered for: match it among the tracks with that look.
        for face in (f for f in faces if getattr(f, "source", "detected") == "track"):
            candidates = [t for t in self.tracks if t.appearance == int(face.appearance)]
            found = match_boxes(np.array([face.box], np.float64), np.array([t.predict(index) for t in candidates]).reshape(-1, 4),
                                max_centre_shift=MATCH_CENTRE_SHIFT)[0] if candidates else -1
            if found >= 0:
                face.track_id = candidates[found].track_id
        self.tracks = [t for t in self.tracks if t.track_id in seen or index - t.seen_at <= self.max_missed]

    def corrections(self, faces: list, index: int, limit: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """Hints that give every person in frame ``index`` their own look, when the frame came back with a tracked
        person under another one (their hint was stale: frames in flight, a sudden pan); None when every look is
        right, or with a newcomer under another look than :attr:`appearance` chooses for their track. The hints are the
        returned boxes themselves, so re-running the frame matches them exactly. Does not change the tracker."""
        observed = [f for f in faces if getattr(f, "source", "detected") != "track"]
        if not observed or not self.tracks and self.appearance is None:
            return None
        boxes = np.array([f.box for f in observed], np.float64).reshape(-1, 4)
        predicted = np.array([t.predict(index) for t in self.tracks], np.float64).reshape(-1, 4)
        matches = match_boxes(boxes, predicted, max_centre_shift=MATCH_CENTRE_SHIFT)
        newcomers = iter(range(self._next_id, self._next_id + len(observed)))  # the ids update() will give them, in order
        looks = [self.tracks[m].appearance if m >= 0 else self._look(next(newcomers), int(f.appearance))
                 for f, m in zip(observed, matches)]
        if all(int(f.appearance) == look for f, look in zip(observed, looks)):
            return None
        unmatched = sorted((t for number, t in enumerate(self.tracks) if number not in set(matches)), key=lambda t: -t.seen_at)
        unmatched = unmatched[: max(0, limit - len(observed))] if limit is not None else unmatched
        hint_boxes = np.concatenate([boxes, np.array([t.predict(index) for t in unmatched]).reshape(-1, 4)])
        hint_looks = looks + [t.appearance for t in unmatched]
        return hint_boxes.astype(np.float32), np.array(hint_looks, np.int32)
