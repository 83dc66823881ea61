# SPDX-License-Identifier: Apache-2.0
"""Where camouflage stops being worth it: how well faces of a given width are found and aligned.

    python -m benchmarks.min_face_size [--repository model_repository] [--lfw ../shared/data/lfw/images] [--out bench]

For each face (the committed portraits, and LFW photos when ../shared is there) the landmarks found at full size are
the reference. The image is then shrunk so the face is W pixels wide, and the served pipeline's own detector and
landmark step run on it. Reported per W: the share of faces detected, and the 68-landmark error (mean distance to the
scaled reference, as a fraction of the distance between the eyes). Camouflage builds the new face on that alignment:
where the error climbs past about 10% of the eye distance the generated face no longer sits on the real one, and
concealing (pixelation) is the honest choice. Writes ``OUT/min_face_size.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = (16, 20, 24, 28, 32, 40, 48, 64)


def eye_distance(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[36:42].mean(axis=0) - points[42:48].mean(axis=0)))


def measure(pipeline, images: list[np.ndarray]) -> dict[int, dict]:
    from facecamo.tracking import box_iou

    rows: dict[int, dict] = {w: {"faces": 0, "detected": 0, "errors": []} for w in WIDTHS}
    for image in images:
        found = pipeline.detector(image)
        if not found:
            continue
        best = max(found, key=lambda d: d.width * d.height)
        reference = pipeline.landmarks(image, pipeline.detector.landmark_box(best.box))
        for width in WIDTHS:
            scale = width / best.width
            if scale >= 1:
                continue
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            rows[width]["faces"] += 1
            expected = np.array(best.box) * scale
            hits = [d for d in pipeline.detector(small) if box_iou(np.array([d.box]), expected[None])[0, 0] > 0.3]
            if not hits:
                continue
            rows[width]["detected"] += 1
            points = pipeline.landmarks(small, pipeline.detector.landmark_box(hits[0].box))
            truth = reference * scale
            rows[width]["errors"].append(float(np.linalg.norm(points - truth, axis=1).mean()) / max(eye_distance(truth), 1e-6))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "data" / "lfw" / "images")
    parser.add_argument("--lfw-images", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    args = parser.parse_args(argv)
    from facecamo.align import load_rgb
    from facecamo.repository import open_pipeline

    pipeline = open_pipeline(args.repository)
    files = sorted(p for p in (ROOT / "assets" / "portraits").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    if args.lfw.is_dir():
        people = sorted(p for p in args.lfw.iterdir() if p.is_dir())
        step = max(1, len(people) // args.lfw_images)
        files += [next(iter(sorted(p.glob("*.jpg")))) for p in people[::step][: args.lfw_images]]
    else:
        print(f"{args.lfw} is absent: measuring on the committed portraits only", file=sys.stderr)
    rows = measure(pipeline, [load_rgb(str(f)) for f in files])
    report = {"images": len(files), "widths": {}}
    lines = [f"Faces shrunk to a given width ({len(files)} images: the committed portraits and LFW photos), the served "
             "detector and landmarks run on them (`python -m benchmarks.min_face_size`). Landmark error: mean distance of the "
             "68 points to the full-size ones, scaled, as a fraction of the eye distance.", "",
             "| face width px | faces | detected | landmark error median | 90th percentile | share over 0.10 |",
             "|---|---|---|---|---|---|"]
    for width, row in rows.items():
        errors = np.array(row["errors"])
        entry = {"faces": row["faces"], "detected": row["detected"],
                 "error_median": round(float(np.median(errors)), 3) if len(errors) else None,
                 "error_p90": round(float(np.percentile(errors, 90)), 3) if len(errors) else None,
                 "share_over_0_10": round(float((errors > 0.10).mean()), 3) if len(errors) else None}
        report["widths"][width] = entry
        lines.append(f"| {width} | {entry['faces']} | {entry['detected']} | {entry['error_median']} | {entry['error_p90']} | "
                     f"{entry['share_over_0_10']} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "min_face_size.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "min_face_size.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
