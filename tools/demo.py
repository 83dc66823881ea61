# SPDX-License-Identifier: Apache-2.0
"""`make demo`: camouflage the committed portrait and sample video with the committed release model, in-process
(no server), and write the results and side-by-side pictures to out/demo/.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def describe_faces(statuses: Counter) -> str:
    """Faces by what happened to them (:attr:`facecamo_client.FaceResult.status`), in words."""
    words = {"camouflaged": "camouflaged", "concealed": "pixelated (too small to camouflage)",
             "fallback": "concealed because camouflaging failed (fallback)"}
    return ", ".join(f"{statuses[status]} {text}" for status, text in words.items()
                     if statuses[status] or status == "camouflaged")


def fit_height(image: np.ndarray, height: int) -> np.ndarray:
    scale = height / image.shape[0]
    return cv2.resize(image, (int(round(image.shape[1] * scale)), height), interpolation=cv2.INTER_AREA)


def main() -> int:
    from tqdm import tqdm

    from facecamo_client import EmbeddedEngine
    from facecamo_client.video import VideoReader, VideoWriter, read_image, side_by_side, write_image

    out = ROOT / "out" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    engine = EmbeddedEngine(ROOT / "model_repository")

    portrait = read_image(ROOT / "assets" / "portraits" / "nasa_eileen_collins.png")
    result = engine.camouflage(portrait)
    write_image(out / "portrait_camouflaged.png", result.frame)
    write_image(out / "portrait_side_by_side.png", side_by_side(portrait, result.frame))
    print(f"portrait: {len(result.faces)} face(s), {[f.status for f in result.faces]}")

    reader = VideoReader(str(ROOT / "assets" / "video" / "video_01.mp4"))
    width, height = reader.size
    camouflaged = VideoWriter(out / "video_camouflaged.mp4", reader.fps, (width, height))
    review = VideoWriter(out / "video_side_by_side.mp4", reader.fps, (2 * width, height))
    originals, first = {}, None

    def frames():
        for index, frame in enumerate(reader):
            originals[index] = frame
            yield frame

    statuses, failed = Counter(), 0
    for result in tqdm(engine.stream(frames(), max_in_flight=1), total=reader.frame_count, unit="frame", desc="video"):
        original = originals.pop(result.index)
        camouflaged.write(result.frame)
        review.write(side_by_side(original, result.frame))
        statuses.update(face.status for face in result.faces)
        failed += bool(result.failed)
        if first is None:
            first = (original, result.frame)
    camouflaged.close()
    review.close()
    print(f"video: {reader.frame_count} frames at {reader.fps:.2f} fps ({camouflaged.codec}); faces: {describe_faces(statuses)}"
          + (f"; {failed} frame(s) failed and were concealed whole" if failed else ""))

    # One picture for people who would rather look than read: before | after, portrait above, a video frame below.
    rows = [side_by_side(fit_height(portrait, 480), engine.camouflage(fit_height(portrait, 480)).frame), side_by_side(*first)]
    width = max(r.shape[1] for r in rows)
    picture = np.concatenate([np.pad(r, ((0, 8), ((width - r.shape[1]) // 2, width - r.shape[1] - (width - r.shape[1]) // 2), (0, 0)),
                                     constant_values=255) for r in rows], axis=0)
    write_image(out / "side_by_side.png", picture)
    print(f"\nDemo results in {out.relative_to(ROOT)}/ (left: original, right: camouflaged):")
    for path in sorted(out.iterdir()):
        print(f"  {path.relative_to(ROOT)}")
    print("Look at out/demo/side_by_side.png first.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
