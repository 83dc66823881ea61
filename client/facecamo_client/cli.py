"""Camouflage every face in an image, a folder of images and videos, a video file or a stream.

    facecamo-camouflage IN OUT [--server HOST:PORT]        (make camouflage IN=... OUT=... [SERVER=...])

IN: an image, a folder (the output mirrors its layout), a video file, or an RTSP/HTTP URL. The embedded engine runs
by default (no server; needs an exported model repository, see --repository); --server sends frames to Triton.
Videos keep their fps and frame count (H.264 when imageio-ffmpeg is installed, else mp4v).

A frame the engine fails on is written fully blurred (never as it was) and counted in the summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from facecamo_client.errors import FacecamoError, InvalidInputError, ServerError, ServerUnavailableError
from facecamo_client.video import (
    IMAGE_SUFFIXES, VIDEO_SUFFIXES, VideoReader, VideoWriter, conceal_frame, kind_of, read_image, side_by_side, write_image,
)


def _progress(total: int | None, unit: str, description: str):
    try:
        from tqdm import tqdm

        return tqdm(total=total, unit=unit, desc=description, dynamic_ncols=True)
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


class Summary:
    def __init__(self) -> None:
        self.frames = self.faces = self.fallbacks = self.failed_frames = 0
        self.started = time.perf_counter()

    def add(self, result) -> None:
        self.frames += 1
        self.faces += len(result.faces)
        self.fallbacks += sum(face.status != "camouflaged" for face in result.faces)

    def as_dict(self) -> dict:
        seconds = time.perf_counter() - self.started
        return {"frames": self.frames, "faces": self.faces, "faces_concealed_by_fallback": self.fallbacks,
                "frames_failed_and_blurred": self.failed_frames, "seconds": round(seconds, 2),
                "frames_per_second": round(self.frames / seconds, 2) if seconds > 0 else None}


def camouflage_image(engine, source: Path, target: Path, args, summary: Summary) -> None:
    image = read_image(source)
    try:
        result = engine.camouflage(image, appearance=args.appearance)
        output = result.frame
        summary.add(result)
    except ServerError as error:  # no camouflaged frame: conceal, never pass through
        print(f"warning: {source}: {error}; writing it blurred", file=sys.stderr)
        output = conceal_frame(image)
        summary.failed_frames += 1
        summary.frames += 1
    write_image(target, side_by_side(image, output) if args.side_by_side else output)


def camouflage_video(engine, source: str, target: Path, args, summary: Summary) -> dict:
    reader = VideoReader(source)
    width, height = reader.size
    writer = VideoWriter(target, reader.fps, (width * 2, height) if args.side_by_side else (width, height))
    originals: dict[int, object] = {}

    def frames():
        for index, frame in enumerate(reader):
            originals[index] = frame
            yield frame

    bar = _progress(reader.frame_count, "frame", Path(str(source)).name)
    try:
        for result in engine.stream(frames(), max_in_flight=args.max_in_flight, appearance=args.appearance, track=not args.no_track):
            original = originals.pop(result.index)
            writer.write(side_by_side(original, result.frame) if args.side_by_side else result.frame)
            summary.add(result)
            bar.update()
            bar.set_postfix(faces=len(result.faces), refresh=False)
    finally:
        bar.close()
        writer.close()
    return {"fps": reader.fps, "codec": writer.codec}


def run(args) -> dict:
    kind = kind_of(args.input)
    if args.server:
        from facecamo_client.grpc_client import CamouflageClient

        engine = CamouflageClient(args.server, ssl=args.ssl, root_certificates=args.root_certificates, private_key=args.private_key,
                                  certificate_chain=args.certificate_chain, timeout_s=args.timeout, retry_for_s=args.retry_for)
        engine.wait_until_ready()
    else:
        from facecamo_client.embedded import EmbeddedEngine

        engine = EmbeddedEngine(args.repository)
    summary = Summary()
    details: dict = {"input": str(args.input), "output": str(args.output), "engine": f"server {args.server}" if args.server else "embedded"}
    with engine:
        if kind == "image":
            target = args.output / Path(args.input).name if args.output.is_dir() else args.output
            camouflage_image(engine, Path(args.input), target, args, summary)
        elif kind == "video":
            target = args.output / (Path(str(args.input)).stem + ".mp4") if args.output.is_dir() else args.output
            details.update(camouflage_video(engine, str(args.input), target, args, summary))
        else:
            files = sorted(p for p in Path(args.input).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
            if not files:
                raise ValueError(f"{args.input} holds no images or videos")
            bar = _progress(len(files), "file", Path(args.input).name)
            for file in files:
                target = args.output / file.relative_to(args.input)
                if file.suffix.lower() in IMAGE_SUFFIXES:
                    camouflage_image(engine, file, target, args, summary)
                else:
                    camouflage_video(engine, str(file), target.with_suffix(".mp4"), args, summary)
                bar.update()
            bar.close()
    details.update(summary.as_dict())
    return details


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facecamo-camouflage", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="image, folder, video file or RTSP/HTTP URL")
    parser.add_argument("output", type=Path, help="output file (or folder)")
    parser.add_argument("-u", "--server", default=None, metavar="HOST:PORT", help="Triton gRPC endpoint; without it the embedded engine runs")
    parser.add_argument("--repository", type=Path, default=None, help="exported model repository for the embedded engine (default model_repository)")
    parser.add_argument("--appearance", type=int, default=None, help="one appearance-bank entry for every face (default: per person)")
    parser.add_argument("--side-by-side", action="store_true", help="write original | camouflaged for review")
    parser.add_argument("--max-in-flight", type=int, default=4, help="video frames in flight at once (default 4)")
    parser.add_argument("--no-track", action="store_true", help="do not keep each person's appearance across frames")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (server)")
    parser.add_argument("--retry-for", type=float, default=30.0, help="seconds to keep retrying an unavailable server")
    parser.add_argument("--ssl", action="store_true", help="TLS to the server")
    parser.add_argument("--root-certificates", default=None)
    parser.add_argument("--private-key", default=None)
    parser.add_argument("--certificate-chain", default=None)
    parser.add_argument("--summary", type=Path, default=None, help="also write the summary as JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        details = run(args)
    except ServerUnavailableError as error:
        print(f"error: cannot reach the server: {error}", file=sys.stderr)
        return 2
    except (InvalidInputError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FacecamoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(details, indent=2))
    print(json.dumps(details, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
