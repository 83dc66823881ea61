# SPDX-License-Identifier: Apache-2.0
"""Leak benchmark: which faces come out of the command line unchanged, by face width; rotation and audio kept.

    python -m benchmarks.leak [--clips CLIP ...] [--out bench] [--name bench_leak] [--cli-args "--max-in-flight 4"]
    make bench-leak

For each clip the product's command line runs as a subprocess with default settings
(``python -m facecamo_client.cli IN OUT --summary S``), so this measures whatever the product does when it runs.
Then a *reference* face detector that is not the serving detector (YuNet, ``cv2.FaceDetectorYN``, full resolution)
finds the faces in every input frame as a player shows it (the container's display-matrix rotation applied, through
PyAV), and each face's region is compared with the same region of the output frame with the same index.

A face is **unchanged** when the mean absolute difference (MAD, 0-255 units, averaged over the three RGB channels)
between input and output, both smoothed by a Gaussian of sigma ``SMOOTHING_SIGMA`` px, over the inner 60% of its box
(width and height) is below ``UNCHANGED_MAD``. The smoothing removes most of H.264's re-encoding grain and keeps any
change a viewer can see. The threshold is checked on every run against a pass-through re-encode of the same clip
(upright frames -> libx264 at the product's CRF -> decoded): the re-encoding noise of every reference face is measured
and written to the report, so the threshold can be seen to sit well above it. Faces are counted in width buckets
(<16, 16-24, 24-48, 48-96, 96+ px).

With ``--dark`` (``make bench-leak`` passes it) every clip is also run darkened, as ``make eval`` darkens (gamma 2.2 at
40% brightness, :func:`training.realism.darken`): the darkened copy is written once (libx264 at the calibration CRF),
the command line runs on it, and its faces are the reference detector's on the *lit* frame of the same index (a face is
where it is, however dim: a detector that misses faces in the dark must not also hide them from the count). Dim faces
differ by fewer grey levels whatever is done to them, so they are compared with ``UNCHANGED_MAD_DARK``, calibrated
like ``UNCHANGED_MAD`` on the darkened copy's own pass-through re-encode (which every run measures and reports), and a
face counts as unchanged only where it also differs by less than ``NOISE_FACTOR`` times what that re-encode does to
the same face (in near-black a camouflaged face changes by a grey level or two, far more than re-encoding does).

Figures go to ``OUT/NAME.md`` and ``OUT/NAME.json``; the output videos and pass-through re-encodes to ``--work``.
"""

# This module: running the product on each clip and walking its frames (the figures in the docstring above). The measure
# of one face and its thresholds: benchmarks.leak_counting; the report: benchmarks.leak_report; PyAV: benchmarks.video_io.

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from benchmarks.leak_counting import (
    INNER_FRACTION, NOISE_FACTOR, SMOOTHING_SIGMA, UNCHANGED_MAD, UNCHANGED_MAD_DARK, WIDTH_BUCKETS, FaceTally, background_mad,
    compare_frame, orientation_against_input, percentiles, region_mad,
)
from benchmarks.leak_report import ROOT, product_facts, write_report
from benchmarks.video_io import VideoFacts, iter_upright_frames, probe, reencode_passthrough
from training.realism import darken

SHARED = Path(os.environ.get("FACECAMO_SHARED", ROOT.parent / "shared"))
DEFAULT_CLIPS = [SHARED / "samples" / "video" / name for name in ("video_01.mp4", "new_face_video-90.mp4", "person_video_02.mp4")]
DEFAULT_DETECTOR = SHARED / "models" / "face_detector" / "yunet.onnx"

# YuNet score threshold: low, because a reference detector must err towards finding faces; at 0.5 every detection
# 24 px or wider on the sample clips was a real face when inspected, while lower scores added background blobs.
DEFAULT_SCORE = 0.5
# The CLI writes H.264 at CRF 20 (client/facecamo_client/video.py); the pass-through calibration uses the same.
DEFAULT_CALIBRATION_CRF = 20


# -------------------------------------------------------------------------------------------- reference detector

class ReferenceDetector:
    """YuNet (``cv2.FaceDetectorYN``): an independent judge of where the faces are, never the serving detector.

    Call with uint8 [H, W, 3] RGB; returns float32 [N, 5]: left, top, width, height (input pixels), score.
    """

    def __init__(self, model: Path = DEFAULT_DETECTOR, score_threshold: float = DEFAULT_SCORE, upscale: float = 1.0) -> None:
        if not Path(model).is_file():
            raise FileNotFoundError(f"reference detector {model} not found: pass --detector with the path of yunet.onnx "
                                    f"(../shared/models/face_detector/yunet.onnx in this workplace)")
        self.upscale = upscale
        # nms 0.3 and top_k 5000: crowds of small faces must not be cut by the detector's own limits.
        self._detector = cv2.FaceDetectorYN.create(str(model), "", (320, 320), score_threshold, 0.3, 5000)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if self.upscale != 1.0:
            bgr = cv2.resize(bgr, None, fx=self.upscale, fy=self.upscale, interpolation=cv2.INTER_LINEAR)
        self._detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = self._detector.detect(bgr)
        if faces is None:
            return np.zeros((0, 5), np.float32)
        boxes = faces[:, [0, 1, 2, 3, 14]].astype(np.float32)
        boxes[:, :4] /= self.upscale
        return boxes


# ------------------------------------------------------------------------------------------------------- one clip

def run_cli(clip: Path, output: Path, summary: Path, cli_args: list[str]) -> dict:
    """The product's command line, default settings plus ``cli_args``; returns its command, exit code, wall time
    and summary (the CLI's --summary JSON, when it wrote one)."""
    command = [sys.executable, "-m", "facecamo_client.cli", str(clip), str(output), "--summary", str(summary), *cli_args]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    summary.unlink(missing_ok=True)
    log = output.with_suffix(".cli.log")
    started = time.perf_counter()
    with log.open("w") as stderr:  # a file, not a pipe: the CLI's progress bar can be followed while it runs
        completed = subprocess.run(command, stderr=stderr, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    result = {"command": shlex.join(command), "returncode": completed.returncode, "wall_s": round(wall, 1),
              "summary": json.loads(summary.read_text()) if summary.is_file() else None}
    if completed.returncode:
        result["stderr_tail"] = log.read_text(errors="replace")[-2000:]
    return result


def measure_clip(clip: Path, work: Path, detector: ReferenceDetector, cli_args: list[str], threshold: float, crf: int,
                 dark: bool = False, dark_threshold: float = UNCHANGED_MAD_DARK) -> dict:
    """Run the CLI on ``clip`` (with ``dark``, on its darkened copy) and count its input faces left unchanged; see
    the module docstring."""
    lit = clip
    if dark:
        clip = darkened_copy(lit, work, crf)
    output = work / f"{clip.stem}.out.mp4"
    passthrough = work / f"{clip.stem}.passthrough_crf{crf}.mp4"
    facts_in = probe(clip)
    print(f"{clip.name}: running the command line", file=sys.stderr, flush=True)
    cli = run_cli(clip, output, work / f"{clip.stem}.summary.json", cli_args)
    result: dict = {"clip": f"{lit.name} (dark)" if dark else clip.name, "dark": dark, "input": asdict(facts_in), "cli": cli}
    print(f"{clip.name}: CLI exit {cli['returncode']} in {cli['wall_s']} s", file=sys.stderr, flush=True)
    if cli["returncode"] or not output.is_file():
        result["error"] = f"the command line failed (exit {cli['returncode']}): {cli.get('stderr_tail', '')[-400:]}"
    else:
        print(f"{clip.name}: re-encoding a pass-through for calibration", file=sys.stderr, flush=True)
        reencode_passthrough(clip, passthrough, crf)
        facts_out = probe(output)
        result["output"] = asdict(facts_out)
        result["cli"]["frames_per_s"] = round(facts_out.frame_count / cli["wall_s"], 2) if cli["wall_s"] else None
        orientation = output_orientation(clip, output, facts_in, facts_out)
        if orientation is None:
            result["error"] = f"{output.name} has no frame to compare"
            result["frames"] = {"input": facts_in.frame_count, "output": facts_out.frame_count}
            return result
        turned = orientation["output_turned_against_input_degrees"]
        result["orientation"] = orientation
        result["audio"] = {"input": facts_in.has_audio, "output": facts_out.has_audio,
                           "kept": facts_out.has_audio or not facts_in.has_audio}
        result["unchanged_mad"] = dark_threshold if dark else threshold
        result.update(count_faces(clip, output, passthrough, detector, turned, dark_threshold if dark else threshold,
                                  facts_in.frame_count, lit if dark else None))
    result["frames"] = {"input": facts_in.frame_count, "output": result.get("output", {}).get("frame_count")}
    return result


def darkened_copy(lit: Path, work: Path, crf: int) -> Path:
    """``lit`` darkened as ``make eval`` darkens (:func:`training.realism.darken`), written once into ``work`` as
    libx264 at ``crf``; returns its path."""
    clip = work / f"{lit.stem}.dark.mp4"
    print(f"{lit.name}: writing the darkened copy", file=sys.stderr, flush=True)
    reencode_passthrough(lit, clip, crf, darken)
    return clip


def output_orientation(clip: Path, output: Path, facts_in: VideoFacts, facts_out: VideoFacts) -> dict | None:
    """How ``output`` is turned against ``clip`` as shown, from every 10th of the first 60 frames, before faces are
    compared: the mean correlation per turn, the best turn, and whether the orientation was kept. None when
    ``output`` has no frame to compare."""
    samples = [orientation_against_input(a, b) for index, a, b in zip(range(60), iter_upright_frames(clip), iter_upright_frames(output))
               if index % 10 == 0]
    if not samples:
        return None
    mean_correlation = {angle: float(np.mean([s[angle] for s in samples])) for angle in (0, 90, 180, 270)}
    turned = max(mean_correlation, key=mean_correlation.get)
    return {
        # String keys: the report must read back the same from JSON.
        "correlation_by_input_turn_degrees": {str(angle): round(value, 3) for angle, value in mean_correlation.items()},
        "output_turned_against_input_degrees": turned,
        "kept": turned == 0 and facts_out.shown_size == facts_in.shown_size
                and mean_correlation[0] > max(mean_correlation[90], mean_correlation[270]) + 0.2}


def count_faces(clip: Path, output: Path, passthrough: Path, detector: ReferenceDetector, turned: int, threshold: float,
                total: int, lit: Path | None = None) -> dict:
    """Walk the input, its pass-through re-encode and the product's output in step, frame by frame: reference faces
    in the input, their MAD in the pass-through (calibration) and in the output (the count). ``lit``: the clip that
    ``clip`` is the darkened copy of, in whose frames the faces are then found."""
    from tqdm import tqdm

    tally, calibration, output_mads, background, examples = FaceTally(), [], [], [], []
    compared = 0
    outputs = iter_upright_frames(output)
    located = iter_upright_frames(lit) if lit is not None else None
    bar = tqdm(total=total, desc=clip.name, unit="frame", dynamic_ncols=True, file=sys.stderr)
    for index, (frame_in, frame_pass) in enumerate(zip(iter_upright_frames(clip), iter_upright_frames(passthrough))):
        bar.update()
        frame_lit = next(located, None) if located is not None else frame_in
        frame_out = next(outputs, None)
        if frame_out is None or frame_lit is None:
            continue  # no output frame: its faces are not published, so not counted as leaks (frames in/out shows it)
        frame_out = np.ascontiguousarray(np.rot90(frame_out, -turned // 90)) if turned else frame_out
        if frame_out.shape != frame_in.shape:
            return {"error": f"output frames {frame_out.shape[1]}x{frame_out.shape[0]} cannot be compared with input "
                             f"frames {frame_in.shape[1]}x{frame_in.shape[0]}", "faces": None}
        boxes = detector(frame_lit)
        noise = [region_mad(frame_in, frame_pass, box) for box in boxes]
        calibration += [(float(box[2]), mad) for box, mad in zip(boxes, noise)]
        mads = compare_frame(frame_in, frame_out, boxes, tally, threshold, noise if lit is not None else None)
        output_mads += mads
        compared += 1
        if index % 5 == 0:
            background.append(background_mad(frame_in, frame_out, boxes))
        for box, mad, own_noise in zip(boxes, mads, noise):
            if mad < threshold and (lit is None or mad < NOISE_FACTOR * own_noise) and box[2] >= 24 and len(examples) < 40:
                examples.append({"frame": index, "box_ltwh": [round(float(v), 1) for v in box[:4]],
                                 "score": round(float(box[4]), 3), "mad": round(mad, 2)})
    bar.close()
    return {
        "frames_compared": compared,
        "faces": {label: {"found": tally.found[label], "unchanged": tally.unchanged[label]} for label, _, _ in WIDTH_BUCKETS},
        "calibration_passthrough_mad": calibration_noise(calibration, threshold),
        "output_face_mad": percentiles(output_mads),
        "output_face_mad_bands": mad_bands(output_mads, threshold),
        "background_mad_median": round(float(np.nanmedian(background)), 2) if background else None,
        "unchanged_faces_24px_or_wider": examples,
    }


def calibration_noise(calibration: list[tuple[float, float]], threshold: float) -> dict:
    """The pass-through re-encoding MADs of (face width, MAD) pairs, for faces >= 16 px and under 16 px apart: their
    percentiles and how many reach ``threshold`` (re-encoding noise alone would count as a change)."""
    summary = {}
    for name, keep in (("faces_16px_or_wider", lambda width: width >= 16), ("faces_under_16px", lambda width: width < 16)):
        noise = [mad for width, mad in calibration if keep(width)]
        summary[name] = {**percentiles(noise), "over_threshold": int(np.sum(np.asarray(noise) >= threshold))}
    return summary


def mad_bands(mads: list[float], threshold: float) -> dict[str, int]:
    """How many output faces sit in each MAD band around ``threshold`` (0-t/2, t/2-t, t-2t, 2t+): a crowd just
    above it would make the count fragile."""
    if not mads:
        return {}
    values = np.asarray(mads)
    return {f"{low:g}-{high:g}": int(np.sum((values >= low) & (values < high)))
            for low, high in ((0, threshold / 2), (threshold / 2, threshold), (threshold, 2 * threshold), (2 * threshold, math.inf))}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="+", type=Path, default=DEFAULT_CLIPS, help="videos to run (default: the three sample clips)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="folder for NAME.md and NAME.json (default bench/)")
    parser.add_argument("--name", default="bench_leak", help="report file name without extension (default bench_leak)")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench_leak", help="folder for output videos and re-encodes")
    parser.add_argument("--cli-args", default="", help="extra command-line flags for the product, one string (default: none)")
    parser.add_argument("--detector", type=Path, default=DEFAULT_DETECTOR, help="YuNet ONNX file")
    parser.add_argument("--score-threshold", type=float, default=DEFAULT_SCORE)
    parser.add_argument("--upscale", type=float, default=1.0, help="run the reference detector on frames scaled by this")
    parser.add_argument("--unchanged-mad", type=float, default=UNCHANGED_MAD)
    parser.add_argument("--unchanged-mad-dark", type=float, default=UNCHANGED_MAD_DARK)
    parser.add_argument("--calibration-crf", type=int, default=DEFAULT_CALIBRATION_CRF)
    parser.add_argument("--dark", action="store_true",
                        help="also run every clip darkened (gamma 2.2 at 40%% brightness), faces located on the lit frames")
    parser.add_argument("--note", default="", help="free text for the report, e.g. which version of the product ran")
    return parser.parse_args(argv)


def new_report(args: argparse.Namespace, argv: list[str] | None, cli_args: list[str]) -> dict:
    """The report before any clip is measured: when, the command, which product, the settings; ``clips`` empty."""
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join([Path(sys.executable).name, "-m", "benchmarks.leak", *(argv if argv is not None else sys.argv[1:])]),
            "product": product_facts(), "note": args.note,
            "settings": {"detector": str(args.detector), "score_threshold": args.score_threshold, "upscale": args.upscale,
                         "unchanged_mad": args.unchanged_mad, "smoothing_sigma": SMOOTHING_SIGMA, "inner_fraction": INNER_FRACTION,
                         "calibration_crf": args.calibration_crf, "dark": args.dark, "unchanged_mad_dark": args.unchanged_mad_dark,
                         "noise_factor": NOISE_FACTOR,
                         "cli_args": cli_args, "width_buckets_px": [label for label, _, _ in WIDTH_BUCKETS]},
            "clips": []}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [str(clip) for clip in args.clips if not clip.is_file()]
    if missing:
        print(f"error: clips not found: {', '.join(missing)} (pass --clips, or put the samples in {SHARED / 'samples' / 'video'})", file=sys.stderr)
        return 2
    try:
        detector = ReferenceDetector(args.detector, args.score_threshold, args.upscale)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    cli_args = shlex.split(args.cli_args)
    report = new_report(args, argv, cli_args)
    for clip in args.clips:
        for dark in (False, True) if args.dark else (False,):
            report["clips"].append(measure_clip(clip, args.work, detector, cli_args, args.unchanged_mad, args.calibration_crf, dark,
                                                args.unchanged_mad_dark))
    print(write_report(report, args.out, args.name))
    return 1 if any(clip.get("error") for clip in report["clips"]) else 0


if __name__ == "__main__":
    sys.exit(main())
