# SPDX-License-Identifier: Apache-2.0
"""The evaluation's test images: which are chosen (test identities with 2-4 images each), how each is aligned by the
served pipeline, its genuine and impostor pairs, and the reference faces (donors) each version is made with."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facecamo.align import load_rgb, warp_face
from facecamo.stages import PreparedFrame
from facecamo.tracking import nearest_to_centre
from training.camouflage import TorchCamouflager


@dataclass
class Subject:
    """One test image: its identity, original full image, and the labelled face's box, landmarks and alignment."""

    index: int
    identity: str
    source: str
    box: tuple
    affine: np.ndarray
    crop: np.ndarray
    faces: PreparedFrame  # every face of the image, aligned once and reused for each reference
    landmarks: np.ndarray  # float64 (68, 2) the labelled face's landmarks in its crop's pixels


def crop_landmarks(data: Path) -> dict[str, np.ndarray]:
    """Crop file (as :func:`select_subjects` names it) -> float (68, 2) landmarks in its pixels, from the prepared
    folder's landmarks.npy; empty when the folder has none (prepared before they were kept)."""
    path = data / "landmarks.npy"
    if not path.is_file():
        return {}
    with open(data / "manifest.csv", newline="") as file:
        files = [str(data / row["file"]) for row in csv.DictReader(file)]
    points = np.load(path)
    return dict(zip(files, points.astype(np.float64))) if len(points) == len(files) else {}


def select_subjects(data: Path, count: int, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """Up to ``count`` (identity, source, crop file) test rows from identities with >= 2 images, 2-4 per identity."""
    manifest = data / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found; DATA must be a folder made by `make prepare`")
    by_identity: dict[str, list[dict]] = defaultdict(list)
    with open(manifest, newline="") as file:
        for row in csv.DictReader(file):
            if row["split"] == "test":
                by_identity[row["identity"]].append(row)
    names = sorted(n for n, rows in by_identity.items() if len(rows) >= 2)
    if len(names) < 2:
        raise ValueError(f"{manifest} needs at least 2 test identities with 2 or more images, has {len(names)}")
    rng.shuffle(names)
    chosen: list[tuple[str, str, str]] = []
    for name in names:
        rows = sorted(by_identity[name], key=lambda r: r["source"])
        picks = rng.permutation(len(rows))[: min(4, len(rows))]
        chosen.extend((name, rows[i]["source"], str(data / rows[i]["file"])) for i in sorted(picks))
        if len(chosen) >= count:
            break
    return chosen


def make_pairs(subjects: list[Subject], pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``pairs`` genuine and ``pairs`` impostor (query, gallery-original) index pairs, drawn with replacement."""
    by_identity: dict[str, list[int]] = defaultdict(list)
    for s in subjects:
        by_identity[s.identity].append(s.index)
    with_partner = [s.index for s in subjects if len(by_identity[s.identity]) >= 2]
    genuine, impostor = [], []
    while len(genuine) < pairs:
        q = with_partner[rng.integers(len(with_partner))]
        others = [i for i in by_identity[subjects[q].identity] if i != q]
        genuine.append((q, others[rng.integers(len(others))]))
    while len(impostor) < pairs:
        q, g = rng.integers(len(subjects), size=2)
        if subjects[q].identity != subjects[g].identity:
            impostor.append((int(q), int(g)))
    return np.array(genuine), np.array(impostor)


def align_subjects(camouflager: "TorchCamouflager", rows: list[tuple[str, str, str]]) -> list[Subject]:
    """Detect and align each test image's labelled face (the one nearest the centre) with the served pipeline."""
    subjects: list[Subject] = []
    for identity, source, _ in tqdm(rows, desc="aligning test images", unit="img", dynamic_ncols=True):
        image = load_rgb(source)
        faces = camouflager.prepare(image)
        aligned = [face for face in faces.faces if face.alignment is not None]
        if not aligned:
            continue
        centre = aligned[nearest_to_centre(np.array([f.box for f in aligned], np.float32), image.shape)]
        alignment = centre.alignment
        subjects.append(Subject(len(subjects), identity, source, tuple(np.float32(v) for v in centre.box), alignment.affine,
                                warp_face(image, alignment.affine), faces, alignment.landmarks))
    if len(subjects) < 4:
        raise ValueError(f"only {len(subjects)} test faces could be aligned; need at least 4")
    return subjects


def load_references(data: Path, pool: list[tuple[str, str, str]], donor_design: bool
                    ) -> tuple[dict[str, list[np.ndarray]], dict[str, list[np.ndarray | None]]]:
    """The reference faces (aligned crops) and, for the donor design, their landmarks, by identity."""
    crops: dict[str, list[np.ndarray]] = {}
    points: dict[str, list[np.ndarray | None]] = {}
    known = crop_landmarks(data) if donor_design else {}
    for identity, _, crop_file in pool:
        if donor_design and crop_file not in known:
            raise ValueError(f"{data} has no landmarks for {crop_file}; the donor design needs them: rerun `make prepare`")
        crops.setdefault(identity, []).append(load_rgb(crop_file))
        points.setdefault(identity, []).append(known.get(crop_file))
    return crops, points


def pick_donors(subject: Subject, reference_names: list[str], references: int, per_reference: int,
                rng: np.random.Generator, blend_rng: np.random.Generator) -> list[str]:
    """The reference identities of one test image's versions: ``references`` groups of ``per_reference`` names.

    One reference identity per version from ``rng``, as for the paper design, so that both designs are judged on the
    same pairs (drawn from ``rng`` afterwards); the donor design's other blend members come from ``blend_rng`` (with
    replacement only when a small dataset has too few identities)."""
    candidates = [n for n in reference_names if n != subject.identity]
    first = [candidates[i] for i in rng.choice(len(candidates), size=references, replace=len(candidates) < references)]
    picked = []
    for name in first:
        others_names = [n for n in candidates if n != name]
        extra = blend_rng.choice(len(others_names), size=per_reference - 1, replace=len(others_names) < per_reference - 1)
        picked += [name] + [others_names[i] for i in extra]
    return picked
