"""`make demo`: camouflage the committed portrait and sample video with the committed release model, in-process
(no server), and write the results and side-by-side pictures to out/demo/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "client"))


def main() -> int:
    from facecamo_client import EmbeddedEngine
    from facecamo_client.cli import main as cli_main
    from facecamo_client.video import VideoReader, read_image, write_image

    out = ROOT / "out" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    repository = ROOT / "model_repository"
    portrait = ROOT / "assets" / "portraits" / "nasa_eileen_collins.png"
    video = ROOT / "assets" / "video" / "video_01.mp4"
    for args in ([str(portrait), str(out / "portrait_camouflaged.png")],
                 [str(portrait), str(out / "portrait_side_by_side.png"), "--side-by-side"],
                 [str(video), str(out / "video_camouflaged.mp4")],
                 [str(video), str(out / "video_side_by_side.mp4"), "--side-by-side"]):
        code = cli_main([*args, "--repository", str(repository)])
        if code:
            return code
    # One picture for people who would rather look than read: the portrait and a video frame, before | after.
    engine = EmbeddedEngine(repository)
    frame = next(iter(VideoReader(str(video))))
    image = read_image(portrait)
    rows = []
    for original in (image[::, ::].copy(), frame):
        scale = 480 / original.shape[0]
        import cv2

        resized = cv2.resize(original, (int(round(original.shape[1] * scale)), 480), interpolation=cv2.INTER_AREA)
        rows.append(np.concatenate([resized, engine.camouflage(resized).frame], axis=1))
    width = max(r.shape[1] for r in rows)
    picture = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows], axis=0)
    write_image(out / "side_by_side.png", picture)
    print(f"\nDemo results in {out}:")
    for path in sorted(out.iterdir()):
        print(f"  {path.relative_to(ROOT)}")
    print("Left: original, right: camouflaged. Look at out/demo/side_by_side.png first.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
