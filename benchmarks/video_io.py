# SPDX-License-Identifier: Apache-2.0
"""Video files as a player shows them, read and written with PyAV for the benchmarks, not through the product.

The leak benchmark (:mod:`benchmarks.leak`) compares the product's output with its input frame by frame, so it must
read both independently of the product's own reader (``facecamo_client.video``): here every frame is turned upright
by the container's display matrix, a file is probed for what a player shows, and a clip can be re-encoded with
nothing changed (the calibration of re-encoding noise) or with every frame transformed (its darkened copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np


@dataclass
class VideoFacts:
    """What a player shows of a video file: size after rotation, frame rate, frame count, streams."""

    path: str
    stored_size: tuple[int, int]  # (width, height) as encoded
    rotation_degrees: int  # the display matrix's counter-clockwise rotation, as PyAV reports it (0, 90, 180, -90)
    shown_size: tuple[int, int]  # (width, height) after the rotation, as a player shows it
    fps: float
    frame_count: int  # decoded frames
    codec: str
    has_audio: bool


def upright_rgb(frame) -> np.ndarray:
    """A decoded ``av.VideoFrame`` as a player shows it: uint8 [H, W, 3] RGB with the display matrix applied.

    PyAV's ``frame.rotation`` is FFmpeg's ``av_display_rotation_get``: the counter-clockwise angle the matrix turns
    the stored picture by; ``np.rot90(k)`` turns counter-clockwise by 90*k, so k = rotation / 90.
    """
    rgb = frame.to_ndarray(format="rgb24")
    quarter_turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, quarter_turns)) if quarter_turns else rgb


def iter_upright_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Every frame of the first video stream of ``path``, upright, uint8 [H, W, 3] RGB."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield upright_rgb(frame)


def probe(path: str | Path) -> VideoFacts:
    """Sizes, rotation, fps, codec and audio of ``path``; the frame count by demuxing (no decoding)."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise ValueError(f"cannot open video {path}: {error}") from error
    with container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        rotation = 0
        for frame in container.decode(stream):  # the display matrix travels as frame side data in PyAV >= 14
            rotation = int(round(getattr(frame, "rotation", 0) or 0))
            break
        container.seek(0)
        frame_count = sum(1 for packet in container.demux(stream) if packet.size)
        width, height = stream.codec_context.width, stream.codec_context.height
        shown = (height, width) if (rotation // 90) % 2 else (width, height)
        rate = stream.average_rate or stream.guessed_rate or 0
        return VideoFacts(str(path), (width, height), rotation, shown, round(float(rate), 3), frame_count,
                          stream.codec_context.name, bool(container.streams.audio))


def reencode_passthrough(source: str | Path, target: Path, crf: int,
                         transform: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
    """Re-encode ``source``'s upright frames as H.264 (libx264, yuv420p, ``crf``) with nothing else changed: the
    re-encoding noise a product output carries even where it changed nothing. ``transform``: applied to every
    uint8 [H, W, 3] RGB frame first (the darkened copy of a clip)."""
    import av

    facts = probe(source)
    rate = Fraction(facts.fps).limit_denominator(1001) if facts.fps else Fraction(25)
    target.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(target), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = facts.shown_size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for rgb in iter_upright_frames(source):
            rgb = np.ascontiguousarray(transform(rgb)) if transform is not None else rgb
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
