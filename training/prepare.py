# SPDX-License-Identifier: Apache-2.0
"""Data preparation: detect, align and split a folder of identities into a training-ready dataset.

    python -m training.prepare --data <folder of identities> --out <folder>

Input layout (LFW's): ``DATA/<identity>/<image>``. Output:

- ``OUT/faces/<identity>/<image stem>.png``: aligned 112x112 RGB crops (lossless);
- ``OUT/manifest.csv``: ``file, identity, label, source, split`` (``label`` is contiguous within its split,
  so the training split's labels index the softmax identity classifier directly);
- ``OUT/landmarks.npy``: float32 (rows, 68, 2) dlib landmarks of each manifest row's face in its crop's pixels (the
  donor-guided preset warps a donor face onto them: :mod:`facecamo.donor`);
- ``OUT/no_face.csv``: images where no face was found;
- ``OUT/progress.jsonl``: one line per processed image, so a rerun skips what is done.

The split is by identity, never by image. LFW's ``peopleDevTrain.txt``/``peopleDevTest.txt`` are used when they
sit in DATA or its parent; otherwise a seeded hash of the identity name decides.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import multiprocessing
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
MANIFEST_FIELDS = ["file", "identity", "label", "source", "split"]


@dataclass(frozen=True)
class SourceImage:
    identity: str
    path: Path


def list_identities(data: Path) -> list[SourceImage]:
    """Every image of ``DATA/<identity>/``, sorted.

    Raises:
        FileNotFoundError / ValueError: for a missing folder or one with no identity folders of images.
    """
    if not data.is_dir():
        raise FileNotFoundError(f"data folder {data} does not exist; pass DATA=<folder with one sub-folder per identity>")
    images = [
        SourceImage(person.name, image)
        for person in sorted(p for p in data.iterdir() if p.is_dir())
        for image in sorted(person.iterdir())
        if image.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not images:
        raise ValueError(
            f"{data} holds no images in identity folders; expected the layout DATA/<identity>/<image>.jpg (as LFW)"
        )
    return images


def read_lfw_split(data: Path) -> dict[str, str] | None:
    """identity -> "train"/"test" from LFW's peopleDevTrain/peopleDevTest files beside or above DATA."""
    for folder in (data, data.parent):
        train_file, test_file = folder / "peopleDevTrain.txt", folder / "peopleDevTest.txt"
        if train_file.is_file() and test_file.is_file():
            split: dict[str, str] = {}
            for name, file in (("train", train_file), ("test", test_file)):
                # First line is a count; the rest are "<name>\t<number of images>".
                for line in file.read_text().splitlines()[1:]:
                    if line.strip():
                        split[line.split()[0]] = name
            return split
    return None


def hash_split(identity: str, test_fraction: float, seed: int) -> str:
    digest = hashlib.sha256(f"{seed}:{identity}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


_worker_aligner = None


def _init_worker(upsample: int, min_score: float, landmarks: str = "dlib68") -> None:
    global _worker_aligner
    import cv2

    from facecamo.align import FaceAligner, FaceDetector

    cv2.setNumThreads(1)
    _worker_aligner = FaceAligner(FaceDetector("hog", upsample=upsample, min_score=min_score), landmarks=landmarks)


def _process(job: tuple[str, str, str]) -> dict:
    """Align the face nearest the image centre (LFW centres the labelled person) and save it."""
    from facecamo.align import load_rgb, save_rgb
    from facecamo.geometry import transform_points
    from facecamo.tracking import nearest_to_centre

    identity, source, target = job
    try:
        image = load_rgb(source)
    except ValueError as error:
        return {"source": source, "identity": identity, "status": "unreadable", "reason": str(error)}
    detections = _worker_aligner.detector(image)
    if not detections:
        return {"source": source, "identity": identity, "status": "no_face"}
    labelled = detections[nearest_to_centre(np.array([d.box for d in detections]), image.shape)]
    face = _worker_aligner.align_box(image, labelled)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    save_rgb(target, face.crop)
    # The landmarks in the crop's pixels (the alignment affine applied), kept to a hundredth of a pixel.
    in_crop = transform_points(face.affine, face.landmarks)
    return {"source": source, "identity": identity, "status": "ok", "file": target,
            "landmarks": np.round(in_crop, 2).reshape(-1).tolist()}


def _record(record: dict, done: dict, progress_file, bar, failures: int) -> int:
    done[record["source"]] = record
    progress_file.write(json.dumps(record) + "\n")
    progress_file.flush()
    failures += record["status"] != "ok"
    bar.update()
    bar.set_postfix(no_face=failures, refresh=False)
    return failures


def prepare(
    data: Path, out: Path, workers: int = 2, upsample: int = 0, min_score: float = 0.0,
    test_fraction: float = 0.2, seed: int = 0, limit: int | None = None, landmark_model: str = "dlib68",
) -> dict:
    """Run the preparation; return a summary dict (also written to ``OUT/summary.json``). ``landmark_model``: the landmark
    model faces are aligned with (:data:`facecamo.align.LANDMARK_MODELS`; ``dlib5`` keeps the 68-point model, whose
    training data's terms exclude commercial use, out of a commercial training pipeline)."""
    images = list_identities(data)
    if limit is not None:
        images = images[:limit]
    out.mkdir(parents=True, exist_ok=True)
    check_landmark_model(out, landmark_model)
    progress_path = out / "progress.jsonl"
    done = read_progress(progress_path)
    jobs = [(image.identity, str(image.path), str(out / "faces" / image.identity / (image.path.stem + ".png")))
            for image in images if str(image.path) not in done]
    started = time.time()
    align_images(jobs, done, progress_path, len(images), workers, upsample, min_score, landmark_model)
    elapsed = time.time() - started

    split_of = read_lfw_split(data)
    records = [done[source] for source in sorted({str(image.path) for image in images})]
    ok = [r for r in records if r["status"] == "ok"]
    rows = manifest_rows(ok, out, split_of, test_fraction, seed)
    failed = [r for r in records if r["status"] != "ok"]
    write_manifest(out, rows, ok, failed)
    summary = {
        "images": len(records),
        "faces": len(ok),
        "no_face": sum(r["status"] == "no_face" for r in failed),
        "unreadable": sum(r["status"] == "unreadable" for r in failed),
        "identities": {s: len({r["identity"] for r in rows if r["split"] == s}) for s in ("train", "test")},
        "crops": {s: sum(r["split"] == s for r in rows) for s in ("train", "test")},
        "split_source": "LFW peopleDevTrain/peopleDevTest" if split_of else f"hash of identity (test fraction {test_fraction})",
        "seconds_this_run": round(elapsed, 1),
        "processed_this_run": len(jobs),
        "detector": {"method": "hog", "upsample": upsample, "min_score": min_score}, "landmark_model": landmark_model,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def check_landmark_model(out: Path, landmark_model: str) -> None:
    """Refuse to resume a folder prepared with another landmark model (two alignments would mix).

    Raises:
        ValueError: naming both models."""
    summary = out / "summary.json"
    earlier = json.loads(summary.read_text()).get("landmark_model", "dlib68") if summary.is_file() else None
    if earlier not in (None, landmark_model):
        raise ValueError(f"{out} was prepared with the {earlier} landmark model; a rerun with {landmark_model} would mix two "
                         "alignments: pass another --out")


def read_progress(progress_path: Path) -> dict[str, dict]:
    """The records of an earlier run (source path -> record), so a rerun resumes; faces aligned before landmarks
    were kept are left out (aligned again)."""
    done: dict[str, dict] = {}
    if progress_path.exists():
        for line in progress_path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                if record["status"] == "ok" and "landmarks" not in record:
                    continue
                done[record["source"]] = record
    return done


def align_images(jobs: list[tuple[str, str, str]], done: dict[str, dict], progress_path: Path, total: int, workers: int,
                 upsample: int, min_score: float, landmark_model: str) -> None:
    """Detect, align and write every job's (identity, source, target) face, in ``workers`` processes, with a progress
    bar over all ``total`` images; each record is appended to ``progress_path`` and added to ``done``."""
    with open(progress_path, "a") as progress_file, tqdm(
        total=total, initial=total - len(jobs), desc="aligning", unit="img", dynamic_ncols=True
    ) as bar:
        failures = sum(r["status"] != "ok" for r in done.values())
        if jobs and workers > 1:
            with multiprocessing.get_context("spawn").Pool(
                workers, initializer=_init_worker, initargs=(upsample, min_score, landmark_model)
            ) as pool:
                for record in pool.imap_unordered(_process, jobs, chunksize=16):
                    failures = _record(record, done, progress_file, bar, failures)
        elif jobs:
            _init_worker(upsample, min_score, landmark_model)
            for job in jobs:
                failures = _record(_process(job), done, progress_file, bar, failures)


def manifest_rows(ok: list[dict], out: Path, split_of: dict[str, str] | None, test_fraction: float, seed: int) -> list[dict]:
    """One manifest row per aligned face: its file (relative to ``out``), identity, source, split (LFW's lists, else a
    hash of the identity) and label (the identity's number within its split)."""
    rows = []
    for record in ok:
        identity = record["identity"]
        split = (split_of or {}).get(identity) or hash_split(identity, test_fraction, seed)
        rows.append({"file": str(Path(record["file"]).relative_to(out)), "identity": identity, "source": record["source"], "split": split})
    for split in ("train", "test"):
        labels = {name: i for i, name in enumerate(sorted({r["identity"] for r in rows if r["split"] == split}))}
        for row in rows:
            if row["split"] == split:
                row["label"] = labels[row["identity"]]
    return rows


def write_manifest(out: Path, rows: list[dict], ok: list[dict], failed: list[dict]) -> None:
    """``manifest.csv``, ``landmarks.npy`` (float32 (N, 68, 2), in the manifest's order) and ``no_face.csv``."""
    with open(out / "manifest.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    by_file = {str(Path(r["file"]).relative_to(out)): r for r in ok}
    landmarks = np.array([by_file[row["file"]]["landmarks"] for row in rows], np.float32).reshape(-1, 68, 2)
    np.save(out / "landmarks.npy", landmarks)
    with open(out / "no_face.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, ["source", "identity", "status"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(failed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with one sub-folder of images per identity")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created; a rerun resumes)")
    parser.add_argument("--workers", type=int, default=2, help="detector processes (default 2)")
    parser.add_argument("--upsample", type=int, default=0, help="HOG upsampling for small faces (default 0)")
    parser.add_argument("--min-score", type=float, default=0.0, help="minimum HOG detection score (default 0)")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="test identities when no LFW split files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (for a quick look)")
    from facecamo.align import LANDMARK_MODELS

    parser.add_argument("--landmarks", choices=LANDMARK_MODELS, default="dlib68",
                        help="landmark model to align with: dlib68 (default) or dlib5 (public domain: for commercial use)")
    args = parser.parse_args(argv)
    try:
        summary = prepare(args.data, args.out, args.workers, args.upsample, args.min_score, args.test_fraction, args.seed,
                          args.limit, args.landmarks)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    print(f"manifest: {args.out / 'manifest.csv'}; images without a detectable face: {args.out / 'no_face.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
