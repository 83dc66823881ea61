# SPDX-License-Identifier: Apache-2.0
"""What the command line does with each input: an image, a video file or stream, a folder's files, frame by frame.

Every frame goes through the engine and a :class:`~facecamo_client.run_summary.FrameChecker` (fail closed: a frame
the engine fails on is written concealed and counted); a video is written under its partial name until it was read
and written to its end. Argument parsing, path checks and the exit codes stay in :mod:`facecamo_client.cli`; these
functions only need the parsed ``args``, an open engine and the run's :class:`~facecamo_client.run_summary.Summary`.
"""

from __future__ import annotations

import collections
import os
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

from facecamo_client.errors import ServerUnavailableError
from facecamo_client.run_summary import Aborted, FrameChecker, Summary
from facecamo_client.video import (
    IMAGE_SUFFIXES, VIDEO_OUTPUT_SUFFIXES, VIDEO_SUFFIXES, VideoReader, VideoWriter, read_image, side_by_side, write_image,
)


def progress(total: int | None, unit: str, description: str, leave: bool = True):
    """A tqdm bar (it shows units/s: frames/s for videos); a plain counter when tqdm is not installed."""
    try:
        from tqdm import tqdm

        return tqdm(total=total, unit=unit, desc=description, dynamic_ncols=True, leave=leave)
    except ImportError:
        class Plain:
            def __init__(self):
                self.n = 0

            def update(self, count=1):
                self.n += count

            def set_postfix(self, *args, **kwargs):
                pass

            def close(self):
                print(f"{description}: {self.n} {unit}s", file=sys.stderr)

        return Plain()


# ------------------------------------------------------------------------------------------------------- frames

def camouflage_one(engine, image: np.ndarray, args, checker: FrameChecker, index: int | None = None) -> np.ndarray:
    """One frame through ``engine.camouflage``, concealed when the engine raises (a lost server aborts the run)."""
    try:
        result = engine.camouflage(image, appearance=args.appearance)
    except ServerUnavailableError as error:
        raise Aborted(f"the server went away: {error}") from error
    except Exception as error:  # noqa: BLE001 - fail closed whatever went wrong: the frame is concealed, counted
        return checker.error(image, error, index)
    return checker.result(image, result, index)


def stream_options(engine, args) -> dict:
    """Keyword arguments for ``engine.stream``; ``detect_every`` only where the engine's stream takes it. A fixed
    ``--appearance`` keeps tracking on: people the detector misses are still covered, with that entry."""
    options = {"max_in_flight": in_flight(args), "appearance": args.appearance, "track": not args.no_track}
    if args.detect_every is not None:
        options["detect_every"] = args.detect_every
    return options


def in_flight(args) -> int:
    """--max-in-flight, else 4 (2 with --live: each frame in flight adds to the latency)."""
    return args.max_in_flight if args.max_in_flight is not None else 2 if args.live else 4


def live_frames(engine, reader, args, checker: FrameChecker, facts: dict) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """--live: (source index, original, frame to write) for every frame the live stream yields; frames it drops are
    not yielded (``facts["live"]`` has its counters, kept up to date). A file is read at its own frame rate."""
    from facecamo_client.live import paced

    frames = iter(reader) if reader.is_stream else paced(iter(reader), reader.fps)
    live = engine.stream(frames, live=True, max_latency_s=args.max_latency, **stream_options(engine, args))
    try:
        for original, result in live.pairs():
            facts["live"] = live.stats()
            yield result.index, original, checker.result(original, result, result.index)
    except ServerUnavailableError as error:
        raise Aborted(f"the server went away: {error}") from error
    finally:
        live.close()  # the source's thread stops before the caller closes the reader
        facts["live"] = live.stats()
        checker.summary.frames_dropped += live.dropped


def camouflaged_frames(engine, frames: Iterator[np.ndarray], args, checker: FrameChecker) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(original, frame to write) for every frame of ``frames``, in order, through ``engine.stream``.

    When the stream raises, which frame failed is unknown (results come back in order, but a synchronous error
    belongs to the newest frame submitted): every frame in flight is retried alone and concealed if it fails again,
    and the stream restarts on the rest of the video (its tracks start afresh). Each restart follows at least one
    frame taken from ``frames``, so a broken engine cannot loop forever."""
    options = stream_options(engine, args)
    in_flight: collections.deque = collections.deque()  # (index, original) submitted, not yet returned
    next_index = 0

    def feed() -> Iterator[np.ndarray]:
        nonlocal next_index
        for frame in frames:  # a for loop does not close ``frames`` when this generator is dropped: the video goes on
            in_flight.append((next_index, frame))
            next_index += 1
            yield frame

    while True:
        try:
            for result in engine.stream(feed(), **options):
                index, original = in_flight.popleft()
                yield original, checker.result(original, result, index)
            return
        except ServerUnavailableError as error:
            raise Aborted(f"the server went away: {error}") from error
        except Exception as error:  # noqa: BLE001 - fail closed: retry what was in flight, conceal what fails again
            if not in_flight:
                raise  # the stream failed before taking a frame: not a frame's failure (a bad option, a closed engine)
            print(f"warning: {checker.source}: the engine's stream failed at frame {in_flight[0][0]} ({type(error).__name__}: "
                  f"{error}); retrying the {len(in_flight)} frame(s) in flight one by one", file=sys.stderr)
            while in_flight:
                index, original = in_flight.popleft()
                yield original, camouflage_one(engine, original, args, checker, index)


def frame_results(engine, reader: VideoReader, args, checker: FrameChecker,
                  live: dict) -> Iterator[tuple[int | None, np.ndarray, np.ndarray]]:
    """(index to write the frame at, original, frame to write) for ``reader``'s frames: with --live the live
    stream's source indices (``live`` gets its counters), otherwise None and every frame in order."""
    if args.live:
        return live_frames(engine, reader, args, checker, live)
    return ((None, original, frame) for original, frame in camouflaged_frames(engine, iter(reader), args, checker))


# ------------------------------------------------------------------------------------------------------- images

def camouflage_image(engine, source: Path, target: Path, args, summary: Summary) -> None:
    image = read_image(source)
    output = camouflage_one(engine, image, args, FrameChecker(summary, str(source)))
    write_image(target, side_by_side(image, output) if args.side_by_side else output)


# ------------------------------------------------------------------------------------------------------- videos

def partial_name(target: Path) -> Path:
    """``out.mp4`` -> ``out.partial.mp4``: what a video that was not written to its end is kept as."""
    return target.with_name(f"{target.stem}.partial{target.suffix}")


def open_writer(reader: VideoReader, source: str, path: Path, args) -> VideoWriter:
    """The writer of ``reader``'s camouflaged frames into ``path``: its frame rate and start time, its size (twice as
    wide with --side-by-side), and a file's audio track (a stream's is not copied)."""
    width, height = reader.size
    return VideoWriter(path, reader.rate, (2 * width, height) if args.side_by_side else (width, height),
                       audio_from=None if reader.is_stream else source, start_time=reader.start_time)


def settle_output(problem: str | None, source: str, writing: Path, target: Path, frames_written: int, summary: Summary) -> None:
    """A video written to its end is renamed from its partial name ``writing`` to ``target``; one stopped by
    ``problem`` keeps the partial name and is listed as failed in ``summary``."""
    if problem:
        summary.partial_outputs.append(str(writing))
        message = f"{problem}; the {frames_written} frame(s) written are kept in {writing}"
        summary.add_failed_file(source, message)
        print(f"error: {source}: {message}", file=sys.stderr)
    else:
        os.replace(writing, target)


def video_facts(reader: VideoReader, writer: VideoWriter, output: Path) -> dict:
    """What was read and written of one video, for the summary; ``output``: where the frames written are kept."""
    return {"fps": round(reader.fps, 3), "frames_announced": reader.frame_count, "frames_read": reader.frames_read,
            "frames_written": writer.frames_written, "rotation": reader.rotation, "size": list(reader.size), "codec": writer.codec,
            "audio": writer.audio, "output": str(output)}


def camouflage_video(engine, source: str, target: Path, args, summary: Summary) -> dict:
    """Camouflage one video file or stream into ``target``; returns facts about it for the summary. The file is
    written as ``target``'s partial name and renamed to ``target`` once every frame the container announces was read
    and written; otherwise it keeps the partial name and the file is listed as failed."""
    reader = VideoReader(source)
    writing = partial_name(target)
    target.unlink(missing_ok=True)  # an older complete output must not pass for this run's
    writer = open_writer(reader, source, writing, args)
    checker = FrameChecker(summary, source)
    bar = progress(reader.frame_count, "frame", Path(str(source)).name, leave=not Path(str(args.input)).is_dir())
    stopped: str | None = None
    interrupted = False
    live: dict = {}
    try:
        results = frame_results(engine, reader, args, checker, live)
        for index, original, frame in results:
            writer.write(side_by_side(original, frame) if args.side_by_side else frame, index)
            bar.update()
    except Aborted as error:
        stopped = str(error)
        raise
    except KeyboardInterrupt:
        interrupted = True
        # Stopping a live stream with Ctrl-C is how a recording ends; stopping a file leaves it unfinished.
        stopped = None if reader.is_stream else "interrupted"
        if not reader.is_stream:
            raise
    except Exception as error:
        stopped = f"{type(error).__name__}: {error}"
        raise
    finally:
        bar.close()
        if args.live:
            results.close()  # stops the live stream's reading thread before the reader is closed
        reader.close()
        try:
            writer.close()
        except Exception:
            stopped = stopped or "the output could not be finished"
            raise
        finally:
            problem = stopped or reader.problem
            settle_output(problem, source, writing, target, writer.frames_written, summary)
    facts = video_facts(reader, writer, writing if problem else target)
    if live:
        facts["live"] = live["live"]
    if interrupted:
        facts["stopped_by_user"] = True
    return facts


# ------------------------------------------------------------------------------------------------------ folders

def video_target(output: Path, source: str) -> Path:
    """Where a single video input goes: into ``output`` when it is a folder, else ``output`` itself."""
    return output / (Path(str(source)).stem + ".mp4") if output.is_dir() else output


def folder_target(output: Path, folder: Path, file: Path) -> Path:
    """A file's place in the output folder: the same relative path; a video whose container cannot be written keeps
    its name with .mp4."""
    target = output / file.relative_to(folder)
    if file.suffix.lower() in VIDEO_SUFFIXES and file.suffix.lower() not in VIDEO_OUTPUT_SUFFIXES:
        target = target.with_suffix(".mp4")
    return target


def camouflage_folder(engine, folder: Path, files: list[Path], args, summary: Summary) -> None:
    """Every file of ``files`` (inside ``folder``) into its place under ``args.output``; when the run is aborted the
    files not reached are listed as not processed."""
    bar = progress(len(files), "file", folder.name)
    try:
        for position, file in enumerate(files):
            try:
                process_file(engine, file, folder_target(args.output, folder, file), args, summary)
            except Aborted:
                for rest in files[position + 1:]:
                    summary.add_failed_file(str(rest), "not processed: the run was aborted")
                raise
            bar.update()
    finally:
        bar.close()


def process_file(engine, source: Path, target: Path, args, summary: Summary) -> None:
    """One image or video of a folder; a failure of this file (unreadable, undecodable, unwritable) is listed in
    ``summary`` and does not stop the run. Aborted (the server went away) and KeyboardInterrupt do."""
    failures_before = len(summary.files_failed)
    try:
        if source.suffix.lower() in IMAGE_SUFFIXES:
            camouflage_image(engine, source, target, args, summary)
        else:
            camouflage_video(engine, str(source), target, args, summary)
    except Aborted as error:
        if len(summary.files_failed) == failures_before:
            summary.add_failed_file(str(source), str(error))
        raise
    except Exception as error:  # noqa: BLE001 - one bad file must not stop an archive: list it and go on
        if len(summary.files_failed) == failures_before:  # not yet listed (a video lists its own partial output)
            reason = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
            summary.add_failed_file(str(source), reason)
            print(f"error: {source}: {reason}", file=sys.stderr)
        return
    if len(summary.files_failed) == failures_before:
        summary.files_done += 1
