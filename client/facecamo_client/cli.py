# SPDX-License-Identifier: Apache-2.0
"""Camouflage every face in an image, a folder of images and videos, a video file or a stream.

    facecamo-camouflage IN OUT [--server HOST:PORT]        (make camouflage IN=... OUT=... [SERVER=...])

IN: an image, a folder (the output mirrors its layout), a video file, or an RTSP/HTTP URL. The embedded engine runs
by default (no server; needs an exported model repository, see --repository); --server sends frames to Triton.

Videos come out the way players show the input (the container's rotation applied to the frames), as H.264 at the
input's frame rate with one output frame per input frame, and with the input's audio track.

--live (cameras): latency stays bounded when processing falls behind. The newest frame wins; frames that fell behind
are dropped, never written (not even concealed) and counted in the summary (frames_dropped); each frame written keeps
its place in time, so the recording keeps the input's timing. A video file with --live is read at its own frame rate,
as if it came from a camera.

What the command line promises:
- A frame the engine fails on is written concealed (never as it was) and counted.
- A video that cannot be read to its end (truncated, corrupt, a dropped stream) keeps what was written under a name
  that says so, OUT.partial.mp4; while a video is being written it carries that name too.
- One unreadable file in a folder does not stop the others; failures are listed at the end.
- The run ends with a summary (JSON on stdout); the exit code is 0 only when every frame and file went through:
  1 when a frame or file failed (or the engine refused its model repository), 2 for a usage error (bad input or
  output path, unreachable server, a package of the "video" or "embedded" extra not installed), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import collections
import inspect
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from facecamo.conceal import conceal_frame
from facecamo_client.errors import FacecamoError, MissingExtraError, ServerUnavailableError
from facecamo_client.video import (
    IMAGE_SUFFIXES, VIDEO_OUTPUT_SUFFIXES, VIDEO_SUFFIXES, VideoReader, VideoWriter, check_output_suffix,
    is_stream, kind_of, read_image, require_extra, side_by_side, write_image,
)

# Per-frame warnings printed for one file before they are only counted (the summary has them all).
WARNINGS_PER_FILE = 5


class UsageError(ValueError):
    """The command line was given something it cannot work with; nothing was processed (exit code 2)."""


class Aborted(Exception):
    """The run cannot go on (the server went away): what was written is kept, the rest is not processed."""


def _progress(total: int | None, unit: str, description: str, leave: bool = True):
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


def camouflage_one(engine, image: np.ndarray, args, checker: FrameChecker, index: int | None = None) -> np.ndarray:
    """One frame through ``engine.camouflage``, concealed when the engine raises (a lost server aborts the run)."""
    try:
        result = engine.camouflage(image, appearance=args.appearance)
    except ServerUnavailableError as error:
        raise Aborted(f"the server went away: {error}") from error
    except Exception as error:  # noqa: BLE001 - fail closed whatever went wrong: the frame is concealed, counted
        return checker.error(image, error, index)
    return checker.result(image, result, index)


def camouflage_image(engine, source: Path, target: Path, args, summary: Summary) -> None:
    image = read_image(source)
    output = camouflage_one(engine, image, args, FrameChecker(summary, str(source)))
    write_image(target, side_by_side(image, output) if args.side_by_side else output)


def partial_name(target: Path) -> Path:
    """``out.mp4`` -> ``out.partial.mp4``: what a video that was not written to its end is kept as."""
    return target.with_name(f"{target.stem}.partial{target.suffix}")


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


def camouflage_video(engine, source: str, target: Path, args, summary: Summary) -> dict:
    """Camouflage one video file or stream into ``target``; returns facts about it for the summary. The file is
    written as ``target``'s partial name and renamed to ``target`` once every frame the container announces was read
    and written; otherwise it keeps the partial name and the file is listed as failed."""
    reader = VideoReader(source)
    width, height = reader.size
    writing = partial_name(target)
    target.unlink(missing_ok=True)  # an older complete output must not pass for this run's
    writer = VideoWriter(writing, reader.rate, (2 * width, height) if args.side_by_side else (width, height),
                         audio_from=None if reader.is_stream else source, start_time=reader.start_time)
    checker = FrameChecker(summary, source)
    bar = _progress(reader.frame_count, "frame", Path(str(source)).name, leave=not Path(str(args.input)).is_dir())
    stopped: str | None = None
    interrupted = False
    live: dict = {}
    try:
        if args.live:
            results = live_frames(engine, reader, args, checker, live)
        else:
            results = ((None, original, frame) for original, frame in camouflaged_frames(engine, iter(reader), args, checker))
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
            if problem:
                summary.partial_outputs.append(str(writing))
                message = f"{problem}; the {writer.frames_written} frame(s) written are kept in {writing}"
                summary.add_failed_file(source, message)
                print(f"error: {source}: {message}", file=sys.stderr)
            else:
                os.replace(writing, target)
    facts = {"fps": round(reader.fps, 3), "frames_announced": reader.frame_count, "frames_read": reader.frames_read,
             "frames_written": writer.frames_written, "rotation": reader.rotation, "size": list(reader.size), "codec": writer.codec,
             "audio": writer.audio, "output": str(writing if problem else target)}
    if live:
        facts["live"] = live["live"]
    if interrupted:
        facts["stopped_by_user"] = True
    return facts


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


def check_paths(args) -> str:
    """Validate input and output before any work; returns the input's kind. Raises UsageError naming what to fix."""
    try:
        kind = kind_of(args.input)
    except ValueError as error:
        raise UsageError(str(error)) from error
    source = Path(str(args.input))
    if not is_stream(args.input) and not source.exists():
        raise UsageError(f"{args.input} does not exist")
    output: Path = args.output
    if not is_stream(args.input) and output.exists() and output.resolve() == source.resolve():
        raise UsageError(f"the output {output} is the input: choose another path, the input is never overwritten")
    try:
        if kind == "image" and not output.is_dir():
            check_output_suffix(output, "image")
        elif kind == "video" and not output.is_dir():
            check_output_suffix(output, "video")
        elif kind == "folder":
            if output.is_file():
                raise UsageError(f"the input is a folder, so the output must be a folder too; {output} is a file")
            if output.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                raise UsageError(f"the input is a folder, so the output must be a folder too, not {output}")
    except ValueError as error:
        raise UsageError(str(error)) from error
    if args.max_in_flight is not None and args.max_in_flight < 1:
        raise UsageError(f"--max-in-flight must be at least 1, got {args.max_in_flight}")
    if args.live and kind != "video":
        raise UsageError(f"--live works on a video stream (rtsp://, http://) or a video file (read at its frame rate), "
                         f"not on {'a folder' if kind == 'folder' else 'an image'}")
    if not args.max_latency > 0:
        raise UsageError(f"--max-latency must be more than 0 seconds, got {args.max_latency}")
    if args.detect_every is not None and args.detect_every < 1:
        raise UsageError(f"--detect-every must be at least 1, got {args.detect_every}")
    return kind


def open_engine(args):
    if args.server:
        from facecamo_client.grpc_client import CamouflageClient

        engine = CamouflageClient(args.server, ssl=args.ssl, root_certificates=args.root_certificates, private_key=args.private_key,
                                  certificate_chain=args.certificate_chain, timeout_s=args.timeout, retry_for_s=args.retry_for)
        engine.wait_until_ready()
    else:
        from facecamo_client.embedded import EmbeddedEngine

        engine = EmbeddedEngine(args.repository)
    if args.detect_every is not None and "detect_every" not in inspect.signature(engine.stream).parameters:
        engine.close()
        raise UsageError(f"--detect-every: this engine ({type(engine).__name__}) cannot skip detection between frames; "
                         "leave the option out to detect on every frame")
    return engine


def run(args, summary: Summary) -> dict:
    """Process ``args.input`` into ``args.output``; per-file failures go to ``summary``. Raises UsageError before any
    work when the paths or options are wrong."""
    kind = check_paths(args)
    files: list[Path] = []
    if kind == "folder":
        files = sorted(p for p in Path(args.input).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        if not files:
            raise UsageError(f"{args.input} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) or videos "
                             f"({', '.join(sorted(VIDEO_SUFFIXES))})")
    require_extra(videos=kind == "video" or any(file.suffix.lower() in VIDEO_SUFFIXES for file in files))
    details: dict = {"input": str(args.input), "output": str(args.output),
                     "engine": f"server {args.server}" if args.server else "embedded"}
    with open_engine(args) as engine:
        if kind == "image":  # a single input that cannot be read is a usage error (exit 2), not a listed failure
            target = args.output / Path(args.input).name if args.output.is_dir() else args.output
            camouflage_image(engine, Path(args.input), target, args, summary)
            summary.files_done += not summary.files_failed
        elif kind == "video":
            details["video"] = camouflage_video(engine, str(args.input), video_target(args.output, args.input), args, summary)
            summary.files_done += not summary.files_failed
        else:
            bar = _progress(len(files), "file", Path(args.input).name)
            try:
                for position, file in enumerate(files):
                    try:
                        process_file(engine, file, folder_target(args.output, Path(args.input), file), args, summary)
                    except Aborted:
                        for rest in files[position + 1:]:
                            summary.add_failed_file(str(rest), "not processed: the run was aborted")
                        raise
                    bar.update()
            finally:
                bar.close()
    return details


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facecamo-camouflage", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="image, folder, video file or RTSP/HTTP URL")
    parser.add_argument("output", type=Path, help=f"output file (images: {', '.join(sorted(IMAGE_SUFFIXES))}; videos: "
                                                  f"{', '.join(sorted(VIDEO_OUTPUT_SUFFIXES))}) or folder")
    parser.add_argument("-u", "--server", default=None, metavar="HOST:PORT", help="Triton gRPC endpoint; without it the embedded engine runs")
    parser.add_argument("--repository", type=Path, default=None, help="exported model repository for the embedded engine (default model_repository)")
    parser.add_argument("--appearance", type=int, default=None,
                        help="one appearance-bank entry for every face, tracking kept on (default: each person their own)")
    parser.add_argument("--side-by-side", action="store_true", help="write original | camouflaged for review")
    parser.add_argument("--max-in-flight", type=int, default=None, help="video frames in flight at once (default 4; 2 with --live)")
    parser.add_argument("--live", action="store_true",
                        help="bounded latency for cameras: the newest frame wins, frames that fall behind are dropped (never "
                             "written) and counted; a video file is read at its frame rate, as if live")
    parser.add_argument("--max-latency", type=float, default=1.0, metavar="SECONDS",
                        help="--live: a frame not camouflaged within this many seconds of being read is dropped (default 1)")
    parser.add_argument("--detect-every", type=int, default=None, metavar="K",
                        help="detect faces on every K-th frame only, tracks covering the frames between (faster, may miss "
                             "newcomers for up to K-1 frames; default: every frame)")
    parser.add_argument("--no-track", action="store_true", help="do not keep each person's appearance across frames")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (server)")
    parser.add_argument("--retry-for", type=float, default=30.0, help="seconds to keep retrying an unavailable server")
    parser.add_argument("--ssl", action="store_true", help="TLS to the server")
    parser.add_argument("--root-certificates", default=None)
    parser.add_argument("--private-key", default=None)
    parser.add_argument("--certificate-chain", default=None)
    parser.add_argument("--summary", type=Path, default=None, help="also write the summary as JSON here")
    return parser


def report(details: dict, summary: Summary, args) -> None:
    """The closing summary: JSON on stdout (and in --summary), failures in words on stderr."""
    details.update(summary.as_dict())
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(details, indent=2))
    print(json.dumps(details, indent=2))
    if summary.frames_failed:
        print(f"FAILED: {summary.frames_failed} of {summary.frames} frame(s) could not be camouflaged and were written concealed",
              file=sys.stderr)
    if summary.files_failed:
        print(f"FAILED: {len(summary.files_failed)} file(s) not fully processed:", file=sys.stderr)
        for file, reason in summary.files_failed:
            print(f"  {file}: {reason}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    summary = Summary()
    details: dict = {"input": str(args.input), "output": str(args.output)}
    try:
        details = run(args, summary)
    except (UsageError, MissingExtraError) as error:  # MissingExtraError: before any work, or at the engine's start
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ServerUnavailableError as error:  # at start: nothing was processed
        print(f"error: cannot reach the server: {error}", file=sys.stderr)
        return 2
    except Aborted as error:
        print(f"error: {error}; stopped", file=sys.stderr)
        report(details, summary, args)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        report(details, summary, args)
        return 130
    except (ValueError, FileNotFoundError) as error:  # e.g. the single input could not be opened as what it claims to be
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FacecamoError as error:  # e.g. the embedded engine refused the model repository
        print(f"error: {error}", file=sys.stderr)
        return 1
    report(details, summary, args)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
