# SPDX-License-Identifier: Apache-2.0
"""Pack a prepared folder's training split for a leased GPU machine: JPEG crops, manifest, landmarks and the teacher,
in one ignored folder small enough to travel with the repository (the device tool carries at most 64 MiB in all).

    python -m tools.pack_training --data ../data/lfw --out .gpu [--quality 80] [--teacher ../shared/models/face_embedding/mobilefacenet.onnx]

Then run ``tools/gpu_train.sh`` there with ``.gpu`` carried (LFW's training split: 37 MB at quality 80).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm


def pack(data: Path, out: Path, quality: int, teacher: Path | None) -> int:
    """Write ``out/lfw/{faces/*.jpg, manifest.csv, landmarks.npy}`` (train rows only) and the teacher; returns the
    number of faces."""
    with open(data / "manifest.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    landmarks = np.load(data / "landmarks.npy")
    if len(landmarks) != len(rows):
        raise ValueError(f"{data}/landmarks.npy does not match manifest.csv; rerun `make prepare` on {data}")
    keep = [i for i, row in enumerate(rows) if row["split"] == "train"]
    faces = out / "lfw" / "faces"
    faces.mkdir(parents=True, exist_ok=True)
    packed = []
    for index in tqdm(keep, desc="packing", unit="face", dynamic_ncols=True):
        row = dict(rows[index])
        name = row["file"].removeprefix("faces/").replace("/", "__").rsplit(".", 1)[0] + ".jpg"
        image = cv2.imread(str(data / row["file"]), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read {data / row['file']}")
        cv2.imwrite(str(faces / name), image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        row["file"] = f"faces/{name}"
        packed.append(row)
    with open(out / "lfw" / "manifest.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(packed)
    np.save(out / "lfw" / "landmarks.npy", landmarks[keep].astype(np.float32))
    if teacher is not None:
        shutil.copy(teacher, out / teacher.name)
    return len(packed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a folder made by `make prepare`")
    parser.add_argument("--out", type=Path, default=Path(".gpu"))
    parser.add_argument("--quality", type=int, default=80)
    parser.add_argument("--teacher", type=Path, default=Path("../shared/models/face_embedding/mobilefacenet.onnx"))
    args = parser.parse_args(argv)
    count = pack(args.data, args.out, args.quality, args.teacher if args.teacher.is_file() else None)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"packed {count} training faces into {args.out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
