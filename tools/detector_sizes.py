"""Which face sizes each detection setting catches on the committed samples: figures to bench/detector_sizes.{json,md}.

    python -m tools.detector_sizes

Faces are counted on every 10th frame of the sample video and on downscaled copies of the committed portraits
(face heights from about 130 px down to about 20 px), so the smallest face each setting still finds is visible.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [("hog", 0), ("hog", 1), ("hog", 2), ("cnn", 0), ("cnn", 1)]


def main() -> int:
    sys.path.insert(0, str(ROOT / "client"))
    from facecamo.align import FaceDetector, load_rgb
    from facecamo_client.video import VideoReader

    frames = [f for i, f in enumerate(VideoReader(str(ROOT / "assets" / "video" / "video_01.mp4"))) if i % 10 == 0]
    portraits = [load_rgb(str(p)) for p in sorted((ROOT / "assets" / "portraits").glob("congress_*.jpg"))[:8]]
    scales = [1.0, 0.7, 0.5, 0.35, 0.25, 0.18]
    rows = []
    for method, upsample in SETTINGS:
        detector = FaceDetector(method, upsample)
        started = time.perf_counter()
        video_faces = [d for frame in frames for d in detector(frame)]
        video_seconds = (time.perf_counter() - started) / len(frames)
        by_scale = {}
        for scale in scales:
            found, heights = 0, []
            for portrait in portraits:
                small = cv2.resize(portrait, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                canvas = np.full((max(small.shape[0] + 40, 120), max(small.shape[1] + 40, 120), 3), 90, np.uint8)
                canvas[20 : 20 + small.shape[0], 20 : 20 + small.shape[1]] = small
                hits = detector(canvas)
                found += bool(hits)
                heights += [d.height for d in hits[:1]]
            by_scale[scale] = {"found": found, "of": len(portraits), "face_height_px": round(float(np.median(heights)), 1) if heights else None}
        rows.append({"detector": method, "upsample": upsample, "video_faces": len(video_faces), "video_frames": len(frames),
                     "video_smallest_face_px": round(min((d.height for d in video_faces), default=0), 1),
                     "video_ms_per_640x480_frame": round(video_seconds * 1000, 1), "portraits_by_scale": by_scale})
        print(f"{method} upsample {upsample}: {len(video_faces)} faces in {len(frames)} video frames", file=sys.stderr)
    out = ROOT / "bench"
    out.mkdir(exist_ok=True)
    (out / "detector_sizes.json").write_text(json.dumps(rows, indent=2))
    face_heights = [next((r["portraits_by_scale"][s]["face_height_px"] for r in rows if r["portraits_by_scale"][s]["face_height_px"]), None) for s in scales]
    header = "| detector | upsample | ms per 640x480 frame | faces in the sample video (" + str(len(frames)) + " frames) | smallest video face px | " + \
             " | ".join(f"portraits at ~{h:.0f} px" if h else f"portraits x{s}" for s, h in zip(scales, face_heights)) + " |"
    lines = [header, "|" + "---|" * (5 + len(scales))]
    for r in rows:
        lines.append(f"| {r['detector']} | {r['upsample']} | {r['video_ms_per_640x480_frame']} | {r['video_faces']} | {r['video_smallest_face_px']} | " +
                     " | ".join(f"{r['portraits_by_scale'][s]['found']}/{r['portraits_by_scale'][s]['of']}" for s in scales) + " |")
    (out / "detector_sizes.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
