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

# This module: the arguments, the checks of paths and options, the engine, the closing report and the exit codes.
# What is done with each image, video and folder: facecamo_client.jobs; what a run counts: facecamo_client.run_summary.

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path

from facecamo_client.errors import FacecamoError, MissingExtraError, ServerUnavailableError
from facecamo_client.jobs import camouflage_folder, camouflage_image, camouflage_video, video_target
from facecamo_client.run_summary import Aborted, Summary, UsageError
from facecamo_client.video import (
    IMAGE_SUFFIXES, VIDEO_OUTPUT_SUFFIXES, VIDEO_SUFFIXES, check_output_suffix, is_stream, kind_of, require_extra,
)


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
    check_output(kind, output)
    check_options(args, kind)
    return kind


def check_output(kind: str, output: Path) -> None:
    """``output`` suits an input of ``kind``: an image or video file name the writers know, or a folder (which a
    folder input needs). Raises UsageError naming what to fix."""
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


def check_options(args, kind: str) -> None:
    """The numeric options are in range and --live is given a video. Raises UsageError naming what to fix."""
    if args.max_in_flight is not None and args.max_in_flight < 1:
        raise UsageError(f"--max-in-flight must be at least 1, got {args.max_in_flight}")
    if args.live and kind != "video":
        raise UsageError(f"--live works on a video stream (rtsp://, http://) or a video file (read at its frame rate), "
                         f"not on {'a folder' if kind == 'folder' else 'an image'}")
    if not args.max_latency > 0:
        raise UsageError(f"--max-latency must be more than 0 seconds, got {args.max_latency}")
    if args.detect_every is not None and args.detect_every < 1:
        raise UsageError(f"--detect-every must be at least 1, got {args.detect_every}")


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


def folder_files(folder: str) -> list[Path]:
    """The images and videos anywhere under ``folder``, sorted. Raises UsageError when it holds none."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
    if not files:
        raise UsageError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) or videos "
                         f"({', '.join(sorted(VIDEO_SUFFIXES))})")
    return files


def run(args, summary: Summary) -> dict:
    """Process ``args.input`` into ``args.output``; per-file failures go to ``summary``. Raises UsageError before any
    work when the paths or options are wrong."""
    kind = check_paths(args)
    files: list[Path] = folder_files(args.input) if kind == "folder" else []
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
            camouflage_folder(engine, Path(args.input), files, args, summary)
    return details


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
