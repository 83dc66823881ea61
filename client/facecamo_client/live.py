# SPDX-License-Identifier: Apache-2.0
"""Live cameras: camouflage with bounded latency (``engine.stream(frames, live=True)``).

A camera does not wait for its viewer. When processing falls behind (a slow engine, a busy server, a slow consumer),
an ordinary stream would queue frames in the source without limit and show them later and later. A
:class:`LiveStream` reads the source on its own thread instead and keeps only the newest frame not yet submitted:

- the newest frame wins: a frame still waiting when a newer one arrives is dropped (``superseded``);
- at most ``max_in_flight`` frames are submitted and not yet answered (a frame given up as late counts until the
  engine is done with it, so a slow engine is never handed more); after a late frame one fewer are sent at once
  (down to one), and one more again once frames come back within half the bound: frames queued in an engine that
  works one at a time would otherwise all wait too long;
- a frame whose result is not back (or would be yielded) more than ``max_latency_s`` after it was read is dropped too
  (``late``); so every frame yielded is at most ``max_latency_s`` old.

Dropped frames are **never yielded**, neither as they were nor concealed: a viewer sees fewer frames, never an
original face. Results come in source order; ``result.index`` is the frame's index in the source, so a gap says
where frames were dropped. A frame the engine fails on comes back concealed, as in any stream.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Iterable, Iterator

import numpy as np

from facecamo_client.errors import InvalidInputError
from facecamo_client.result import CamouflageResult


class LiveStream:
    """Iterate for the results (or :meth:`pairs` for (original, result) pairs, to review side by side).

    Made by :meth:`facecamo_client.engine.CamouflageEngine.stream` with ``live=True``; the arguments are its own.
    Iterable once; stopping early (``break``, :meth:`close`, leaving a ``with`` block) stops reading the source.

    Attributes:
        read: frames taken from the source so far.
        yielded: results yielded.
        superseded: frames dropped because a newer one arrived before they could be submitted.
        late: frames dropped because their result would have been older than ``max_latency_s``.
        latency_max_s: the largest latency of a yielded frame (read from the source -> yielded), in seconds.
    """

    def __init__(self, engine, frames: Iterable[np.ndarray], max_in_flight: int = 2, max_latency_s: float | None = 1.0,
                 appearance=None, tracker=None, detect_every: int = 1) -> None:
        if max_latency_s is not None and not max_latency_s > 0:
            raise InvalidInputError(f"max_latency_s must be > 0 seconds (or None: drop only superseded frames), got {max_latency_s}")
        self.engine, self.max_in_flight, self.max_latency_s = engine, max_in_flight, max_latency_s
        self._appearance, self._tracker, self._detect_every = appearance, tracker, detect_every
        self._frames = frames
        self.read = self.yielded = self.superseded = self.late = 0
        self.latency_max_s = 0.0
        self._condition = threading.Condition()
        self._waiting: tuple[int, np.ndarray, float] | None = None  # (index, frame, read at) not yet submitted
        self._pending: collections.deque = collections.deque()  # (stream item, read at) submitted, not yet returned
        self._abandoned: list = []  # futures of late frames the engine may still be working on: still in flight
        self.in_flight_limit = max_in_flight  # lowered after a late frame, raised again after quick ones
        self._ended = self._stopping = self._started = False
        self._error: BaseException | None = None
        self._reader = threading.Thread(target=self._read, name="facecamo-live-reader", daemon=True)

    @property
    def dropped(self) -> int:
        """Frames read and not yielded: ``superseded + late``."""
        return self.superseded + self.late

    def stats(self) -> dict:
        """The counters as a dict (the command line's summary)."""
        return {"frames_read": self.read, "frames_yielded": self.yielded, "frames_dropped": self.dropped,
                "frames_superseded": self.superseded, "frames_late": self.late, "max_latency_s": self.max_latency_s,
                "latency_max_s": round(self.latency_max_s, 3)}

    # -- the source's thread ---------------------------------------------------------------------------------------
    def _read(self) -> None:
        try:
            for frame in self._frames:
                with self._condition:
                    if self._stopping:
                        return
                    if self._waiting is not None:
                        self.superseded += 1
                    self._waiting = (self.read, frame, time.monotonic())
                    self.read += 1
                    self._condition.notify_all()
        except BaseException as error:  # noqa: BLE001 - handed to the consumer's thread, raised there
            self._error = error
        finally:
            with self._condition:
                self._ended = True
                self._condition.notify_all()

    def _wake(self, _future=None) -> None:
        with self._condition:
            self._condition.notify_all()

    def _was_late(self) -> None:
        self.late += 1
        self.in_flight_limit = max(self.in_flight_limit - 1, 1)

    def _too_old(self, read_at: float) -> bool:
        return self.max_latency_s is not None and time.monotonic() - read_at > self.max_latency_s

    # -- the consumer's thread -------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[CamouflageResult]:
        for _, result in self.pairs():
            yield result

    def pairs(self) -> Iterator[tuple[np.ndarray, CamouflageResult]]:
        """(original frame, result) for every frame yielded, in source order. The original is for review only."""
        if self._started:
            raise RuntimeError("a LiveStream can be iterated only once")
        self._started = True
        self._reader.start()
        try:
            while True:
                taken, oldest = None, None
                with self._condition:
                    while True:
                        ready = bool(self._pending) and self._pending[0][0][3].done()
                        self._abandoned = [future for future in self._abandoned if not future.done()]
                        busy = len(self._pending) + len(self._abandoned)
                        room = busy < self.in_flight_limit and self._waiting is not None
                        if room or ready or (self._ended and self._waiting is None and not self._pending):
                            break
                        timeout = None
                        if self._pending and self.max_latency_s is not None:
                            timeout = self._pending[0][1] + self.max_latency_s - time.monotonic()
                            if timeout <= 0:
                                break  # the oldest frame in flight is late
                        self._condition.wait(timeout)
                    if room:
                        taken, self._waiting = self._waiting, None
                    elif self._pending:
                        oldest = self._pending.popleft()
                    else:
                        break  # the source ended and everything was returned
                if taken is not None:
                    index, frame, read_at = taken
                    if self._too_old(read_at):  # waited while the consumer was away, and the source stopped
                        self.late += 1
                        continue
                    item = self.engine._submit_frame(index, frame, self._appearance, self._tracker, self._detect_every)
                    self._pending.append((item, read_at))
                    item[3].add_done_callback(self._wake)
                    continue
                item, read_at = oldest
                if not item[3].done():  # not back within max_latency_s: given up, never yielded
                    if not item[3].cancel():
                        self._abandoned.append(item[3])  # counts as in flight until the engine is done with it
                    self._was_late()
                    continue
                left = None if self.max_latency_s is None else max(read_at + self.max_latency_s - time.monotonic(), 0.001)
                result = self.engine._finish(item, self._tracker, self._appearance, timeout=left)
                if self._too_old(read_at):  # a re-run for a stale hint made it late
                    self._was_late()
                    continue
                latency = time.monotonic() - read_at
                if self.max_latency_s is not None and latency < self.max_latency_s / 2:
                    self.in_flight_limit = min(self.in_flight_limit + 1, self.max_in_flight)
                self.yielded += 1
                self.latency_max_s = max(self.latency_max_s, latency)
                yield item[1], result
            if self._error is not None:
                raise self._error
        finally:
            self.close()

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop reading the source (its thread ends with the frame it is reading, within ``timeout_s``) and cancel
        the frames still waiting for the engine."""
        with self._condition:
            self._stopping = True
            self._waiting = None
            pending, self._pending = list(self._pending), collections.deque()
            self._condition.notify_all()
        for item, _ in pending:
            item[3].cancel()
        if self._reader.is_alive() and self._reader is not threading.current_thread():
            self._reader.join(timeout_s)

    def __enter__(self) -> "LiveStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def paced(frames: Iterable[np.ndarray], fps: float) -> Iterator[np.ndarray]:
    """``frames`` no faster than ``fps`` per second, as a camera delivers them (a file read as if it were live):
    frame ``i`` is handed on at ``i / fps`` seconds after the first, or as soon as it is decoded when later."""
    started = time.monotonic()
    for number, frame in enumerate(frames):
        delay = started + number / fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield frame
