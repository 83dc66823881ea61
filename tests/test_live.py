# SPDX-License-Identifier: Apache-2.0
"""Live cameras (``stream(..., live=True)``): when processing falls behind, latency stays bounded, the newest frame
wins, dropped frames are counted and never yielded. A stand-in engine with a fixed processing time (the command line's
test runs the real embedded engine on the committed clip)."""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from facecamo_client import InvalidInputError
from facecamo_client.engine import CamouflageEngine
from facecamo_client.live import paced
from facecamo_client.result import CamouflageResult


class Slow(CamouflageEngine):
    """Works on one frame at a time, ``seconds`` each; its output is the negative of the frame (never the frame)."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.worker, self.calls = seconds, ThreadPoolExecutor(max_workers=1), 0

    def submit(self, frame, appearance=None, boxes=None, tracks=None):
        self.calls += 1

        def run() -> CamouflageResult:
            time.sleep(self.seconds)
            return CamouflageResult(255 - frame, [])

        return self.worker.submit(run)


def numbered(count: int | None) -> list[np.ndarray] | itertools.count:
    """Frames whose pixels hold their index (mod 256); None: an endless camera."""
    source = range(count) if count is not None else itertools.count()
    return (np.full((8, 8, 3), index % 256, np.uint8) for index in source)


def test_the_newest_frame_wins_drops_are_counted_and_no_original_is_yielded():
    live = Slow(0.05).stream(paced(numbered(60), 100), live=True, max_in_flight=1, max_latency_s=0.3)
    results = list(live)
    indices = [r.index for r in results]
    assert live.read == 60 and live.yielded == len(results) and live.yielded + live.dropped == 60
    assert live.dropped >= 20, live.stats()  # 100 frames/s offered, 20 processed per second
    assert indices == sorted(set(indices)) and indices[0] == 0
    assert all(int(r.frame[0, 0, 0]) == 255 - r.index for r in results)  # the engine's output, never the frame as read
    assert live.latency_max_s <= 0.3 + 0.02


def test_frames_queued_in_a_slow_engine_are_given_up_and_latency_stays_bounded():
    """Four frames in flight in an engine that works one at a time at 0.12 s: the fourth would wait 0.48 s. Those
    are given up (counted late), fewer are sent at once, and what is shown stays within the bound."""
    engine = Slow(0.12)
    live = engine.stream(paced(numbered(150), 50), live=True, max_in_flight=4, max_latency_s=0.3)
    results = list(live)
    assert live.late >= 1 and live.superseded >= 1, live.stats()
    assert len(results) >= 10, live.stats()  # it recovers: one or two in flight fit the bound
    assert live.latency_max_s <= 0.3 + 0.02, live.stats()
    assert engine.calls <= live.read - live.superseded  # every frame submitted is counted once


def test_a_slow_consumer_does_not_build_a_queue():
    live = Slow(0.01).stream(paced(numbered(100), 100), live=True, max_in_flight=2, max_latency_s=0.3)
    seen = []
    for result in live:
        seen.append(result.index)
        time.sleep(0.1)  # the viewer is slower than the camera
    assert live.read == 100 and len(seen) <= 15 and live.dropped == 100 - len(seen)
    assert live.latency_max_s <= 0.3 + 0.02


def test_stopping_a_live_stream_stops_reading_an_endless_camera():
    live = Slow(0.01).stream(paced(numbered(None), 200), live=True, max_latency_s=0.5)
    for number, _ in enumerate(live):
        if number == 3:
            break
    live.close()
    assert not live._reader.is_alive()
    read = live.read
    time.sleep(0.1)
    assert live.read == read  # nothing more is taken from the camera


def test_live_options_are_checked():
    with pytest.raises(InvalidInputError, match="max_latency_s"):
        Slow(0.01).stream(numbered(3), live=True, max_latency_s=0)
    with pytest.raises(InvalidInputError, match="one bank entry for every face"):
        Slow(0.01).stream(numbered(3), live=True, appearance=[1, 2])
