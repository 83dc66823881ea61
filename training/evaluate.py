"""Evaluation: do machines still recognise the camouflaged person, and do people see a different face?

    python -m training.evaluate --data <prepared folder> --out <folder> [--ckpt <.pt>] [--onnx-judge PATH:THRESHOLD]

The paper's Table II protocol on the test identities (never seen in training), judged by face-recognition networks
that are not part of the model. Every processed image goes through the whole-image path users get (detect, align,
generate, paste back), and each judge then finds the face's landmarks afresh on the processed image, inside the
original detection box, as a recognition system would.

Methods compared on the same images and pairs: the model (``camouflage``; each query made with several reference
faces of other identities), ``original`` (no change: the reference a method is held against), Gaussian blur and
pixelation of the face region at several strengths (pasted through the region the model replaces: the donor
design's :func:`facecamo.donor.replaced_region`, the paper design's ellipse) and, for the donor design,
``donor_warp``: the donor target pasted in without the network (what G starts from).

Figures per method and judge: verification accuracy on genuine + impostor pairs (processed query vs an original of
the same / another person), TAR and FAR at the judge's threshold, rank-1 identification of processed queries against
a gallery of originals; per method: SSIM, SSIM-28 (grey crops area-downsampled to 28x28: coarse structure only, so
added noise or texture cannot lower it) and mean absolute difference between the original and processed aligned
crops; for the model: SSIM and SSIM-28 between its versions of one face made with different references (diversity).
Each method is held against the targets (:data:`TARGETS`), judged by dlib.
Writes ``report.md``, ``results.json``, ``privacy_utility.png`` (SSIM), ``privacy_utility_ssim28.png`` (SSIM-28)
and ``figure3.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from facecamo import spec
from facecamo.align import LandmarkPredictor, load_rgb, save_rgb, warp_face
from facecamo.pipeline import PreparedFrame
from facecamo.tracking import nearest_to_centre
from facecamo.paste import blur_face, paste_face, pixelate_face
from facecamo.donor import donor_target, replaced_region
from training.camouflage import TorchCamouflager
from training.data import to_model_range
from training.metrics import DlibJudge, Judge, OnnxJudge, mean_abs_difference, rank1, ssim, ssim_coarse, verification
from training.trainer import figure3_grid
from training.weights import RELEASE_WEIGHTS, load_inference_net

BLUR_SIGMAS = (2.0, 4.0, 8.0, 16.0)
PIXEL_BLOCKS = (4, 8, 16, 28)
REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def repo_relative(path: Path) -> str:
    """``path`` relative to the repository (``../`` outside it): committed reports name no machine's folders."""
    return os.path.relpath(Path(path).resolve(), REPOSITORY_ROOT)


@dataclass(frozen=True)
class Target:
    """A bound a method's figure must meet (issue 11): people must not recognise the face, machines must."""

    name: str  # as the report prints it
    key: str  # the figure's name in results.json's ``targets`` entries
    bound: float
    at_least: bool  # True: the figure must be >= bound; False: <= bound

    def met(self, value: float) -> bool:
        return bool(value >= self.bound if self.at_least else value <= self.bound)


TARGET_JUDGE = "dlib"  # independent of training: the release never trained against it
TARGETS = (
    Target("genuine TAR / real-vs-real TAR", "tar_ratio", 0.90, at_least=True),
    Target("SSIM to original", "ssim", 0.60, at_least=False),
    Target("SSIM-28 to original", "ssim28", 0.67, at_least=False),  # a blur of sigma ~8 px on a 100 px face
)


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


def evaluate(ckpt: Path | None, data: Path, out: Path, count: int, references: int, pairs: int, seed: int,
             onnx_judges: list[tuple[str, float]], teacher_note: str | None = None) -> dict:
    started = time.time()
    rng = np.random.default_rng(seed)
    blend_rng = np.random.default_rng(seed + 2)
    torch.manual_seed(seed)
    net, config, info = load_inference_net(ckpt)
    camouflager = TorchCamouflager(net)  # the served pipeline settings: its figures describe what users get
    landmarks = LandmarkPredictor()
    judges: list[Judge] = [DlibJudge()] + [OnnxJudge(path, threshold) for path, threshold in onnx_judges]

    rows = select_subjects(data, count, rng)
    reference_pool = select_subjects(data, 10 * references + 40, np.random.default_rng(seed + 1))
    subjects: list[Subject] = []
    for identity, source, _ in tqdm(rows, desc="aligning test images", unit="img", dynamic_ncols=True):
        image = load_rgb(source)
        faces = camouflager.prepare(image)
        aligned = np.flatnonzero(faces.state == spec.STATE_ALIGNED)
        if not len(aligned):
            continue
        centre = aligned[nearest_to_centre(faces.boxes[aligned], image.shape)]
        affine = faces.affines[centre].astype(np.float64)
        subjects.append(Subject(len(subjects), identity, source, tuple(faces.boxes[centre]), affine, warp_face(image, affine),
                                faces, faces.faces[centre].landmarks))
    if len(subjects) < 4:
        raise ValueError(f"only {len(subjects)} test faces could be aligned; need at least 4")

    # The donor design is held against its own warped donor without the network (``donor_warp``: what G starts from),
    # and its baselines are pasted through the region it replaces, the paper design's through its ellipse.
    methods = (["original", "camouflage"] + (["donor_warp"] if camouflager.donor_design else [])
               + [f"blur_{s:g}" for s in BLUR_SIGMAS] + [f"pixelate_{b}" for b in PIXEL_BLOCKS])
    embeddings = {j.name: {m: [] for m in methods} for j in judges}
    appearance_ssim: dict[str, list[float]] = {m: [] for m in methods}
    appearance_ssim28: dict[str, list[float]] = {m: [] for m in methods}
    appearance_mad: dict[str, list[float]] = {m: [] for m in methods}
    diversity: list[float] = []
    diversity28: list[float] = []
    faces_concealed = 0

    reference_crops: dict[str, list[np.ndarray]] = {}
    reference_points: dict[str, list[np.ndarray]] = {}
    known_points = crop_landmarks(data) if camouflager.donor_design else {}
    for identity, _, crop_file in reference_pool:
        if camouflager.donor_design and crop_file not in known_points:
            raise ValueError(f"{data} has no landmarks for {crop_file}; the donor design needs them: rerun `make prepare`")
        reference_crops.setdefault(identity, []).append(load_rgb(crop_file))
        reference_points.setdefault(identity, []).append(known_points.get(crop_file))
    reference_names = sorted(reference_crops)
    # The donor design blends each reference from several people (as the served bank does).
    per_reference = config.model.donors_per_blend if camouflager.donor_design else 1

    for subject in tqdm(subjects, desc="camouflaging and judging", unit="img", dynamic_ncols=True):
        image = load_rgb(subject.source)
        faces = subject.faces
        candidates = [n for n in reference_names if n != subject.identity]
        # One reference identity per camouflaged version from ``rng``, as for the paper design, so that both designs
        # are judged on the same pairs (drawn from ``rng`` afterwards); the donor design's other blend members come from
        # ``blend_rng`` (with replacement only when a small dataset has too few identities).
        first = [candidates[i] for i in rng.choice(len(candidates), size=references, replace=len(candidates) < references)]
        picked = []
        for name in first:
            others = [n for n in candidates if n != name]
            extra = blend_rng.choice(len(others), size=per_reference - 1, replace=len(others) < per_reference - 1)
            picked += [name] + [others[i] for i in extra]
        codes = camouflager.appearance_codes(np.stack([reference_crops[n][0] for n in picked]),
                                             np.stack([reference_points[n][0] for n in picked]) if camouflager.donor_design
                                             else None, per_blend=per_reference)
        processed: dict[str, list[np.ndarray]] = {"original": [image], "camouflage": []}
        for k in range(references):
            result, _, status = camouflager.camouflage(image, codes[k : k + 1], faces)
            faces_concealed += int(np.sum(status == spec.STATUS_FALLBACK))
            processed["camouflage"].append(result)
        region = replaced_region(subject.landmarks) if camouflager.donor_design else None  # None: the ellipse
        if camouflager.donor_design:
            processed["donor_warp"] = [paste_face(image, donor_target(subject.crop, subject.landmarks, codes[k])[0],
                                                  subject.affine, region) for k in range(references)]
        for sigma in BLUR_SIGMAS:
            processed[f"blur_{sigma:g}"] = [paste_face(image, blur_face(subject.crop, sigma), subject.affine, region)]
        for block in PIXEL_BLOCKS:
            processed[f"pixelate_{block}"] = [paste_face(image, pixelate_face(subject.crop, block), subject.affine, region)]
        camouflaged_crops = []
        for method, images in processed.items():
            per_judge = {j.name: [] for j in judges}
            for variant in images:
                crop = warp_face(variant, subject.affine)
                appearance_ssim[method].append(ssim(subject.crop, crop))
                appearance_ssim28[method].append(ssim_coarse(subject.crop, crop))
                appearance_mad[method].append(mean_abs_difference(subject.crop, crop))
                if method == "camouflage":
                    camouflaged_crops.append(crop)
                points = landmarks(variant, subject.box)  # the judge aligns the processed face itself
                for judge in judges:
                    per_judge[judge.name].append(judge.embed(variant, points))
            for judge in judges:
                embeddings[judge.name][method].append(np.stack(per_judge[judge.name]))
        for a in range(len(camouflaged_crops)):
            for b in range(a + 1, len(camouflaged_crops)):
                diversity.append(ssim(camouflaged_crops[a], camouflaged_crops[b]))
                diversity28.append(ssim_coarse(camouflaged_crops[a], camouflaged_crops[b]))

    genuine, impostor = make_pairs(subjects, pairs, rng)
    gallery_index: dict[str, int] = {}
    for s in subjects:
        gallery_index.setdefault(s.identity, s.index)
    probes = np.array([s.index for s in subjects if gallery_index[s.identity] != s.index])
    gallery = np.array(sorted(gallery_index.values()))
    labels = np.array([s.identity for s in subjects])

    results: dict = {"methods": {}, "judges": {}}
    for judge in judges:
        results["judges"][judge.name] = {"threshold": judge.threshold, "rule": "distance <" if judge.lower_is_same else "cosine >"}
        originals = np.stack([e[0] for e in embeddings[judge.name]["original"]])
        for method in methods:
            per_subject = embeddings[judge.name][method]

            def query(i: int, pair_number: int) -> np.ndarray:
                versions = per_subject[i]
                return versions[pair_number % len(versions)]

            g_scores = judge.pair_scores(np.stack([query(q, n) for n, (q, _) in enumerate(genuine)]), originals[genuine[:, 1]])
            i_scores = judge.pair_scores(np.stack([query(q, n) for n, (q, _) in enumerate(impostor)]), originals[impostor[:, 1]])
            v = verification(judge.accepts(g_scores), judge.accepts(i_scores))
            probe_embeddings = np.stack([query(p, n) for n, p in enumerate(probes)]) if len(probes) else np.zeros((0, originals.shape[1]))
            r1 = rank1(probe_embeddings, labels[probes] if len(probes) else np.array([]), originals[gallery], labels[gallery], judge)
            entry = results["methods"].setdefault(method, {"judges": {}})
            entry["judges"][judge.name] = {**asdict(v), "rank1": r1, "genuine_mean_score": float(g_scores.mean()),
                                           "impostor_mean_score": float(i_scores.mean())}
    for method in methods:
        results["methods"][method]["ssim_to_original"] = float(np.mean(appearance_ssim[method]))
        results["methods"][method]["ssim28_to_original"] = float(np.mean(appearance_ssim28[method]))
        results["methods"][method]["mad_to_original"] = float(np.mean(appearance_mad[method]))
    results["methods"]["camouflage"]["diversity_ssim_between_references"] = float(np.mean(diversity)) if diversity else None
    results["methods"]["camouflage"]["diversity_ssim28_between_references"] = float(np.mean(diversity28)) if diversity28 else None
    results["targets"] = check_targets(results["methods"])
    results["setup"] = {
        "checkpoint": repo_relative(ckpt or RELEASE_WEIGHTS), "step": info.get("step"), "preset": config.preset,
        "lineage": info.get("lineage") or [],
        "teacher": config.loss.teacher_path if config.loss.teacher > 0 else None, "teacher_note": teacher_note,
        "data": repo_relative(data), "test_images": len(subjects), "identities": len(set(labels)), "references_per_image": references,
        "genuine_pairs": int(len(genuine)), "impostor_pairs": int(len(impostor)), "identification_probes": int(len(probes)),
        "identification_gallery": int(len(gallery)), "seed": seed, "faces_concealed_by_fallback": faces_concealed,
        "seconds": round(time.time() - started, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    plot_privacy_utility(results, out / "privacy_utility.png", "ssim_to_original")
    plot_privacy_utility(results, out / "privacy_utility_ssim28.png", "ssim28_to_original")
    save_rgb(out / "figure3.png", test_figure3(net, subjects, reference_crops, reference_names, camouflager,
                                               reference_points, per_reference))
    (out / "report.md").write_text(markdown_report(results))
    return results


def test_figure3(net, subjects: list[Subject], reference_crops: dict, reference_names: list[str], camouflager: TorchCamouflager,
                 reference_points: dict, per_reference: int = 1, count: int = 4) -> np.ndarray:
    """The paper's Figure 3 from test identities: sources down the side, references across (the donor design's
    blended donors), generated inside (aligned crops, before paste-back)."""
    seen, chosen = set(), []
    for s in subjects:
        if s.identity not in seen:
            seen.add(s.identity)
            chosen.append(s)
        if len(chosen) == count:
            break
    names = [n for n in reference_names if n not in seen][: count * per_reference]
    crops = np.stack([reference_crops[n][0] for n in names])
    sources = to_model_range(torch.from_numpy(np.stack([s.crop for s in chosen])))
    if not camouflager.donor_design:
        with torch.no_grad():
            return figure3_grid(net, sources, to_model_range(torch.from_numpy(crops)))
    donors = camouflager.appearance_codes(crops, np.stack([reference_points[n][0] for n in names]), per_reference)
    targets = np.stack([np.stack([donor_target(s.crop, s.landmarks, d)[0] for d in donors]) for s in chosen])
    as_model = to_model_range(torch.from_numpy(targets.reshape(-1, *targets.shape[2:]))).reshape(*targets.shape[:2], 3, *targets.shape[2:4])
    with torch.no_grad():
        return figure3_grid(net, sources, to_model_range(torch.from_numpy(donors)), as_model)


def check_targets(methods: dict) -> dict:
    """Each method's figures against :data:`TARGETS` (judge :data:`TARGET_JUDGE`).

    Args:
        methods: ``results["methods"]``, with ``original`` among them (the real-vs-real TAR).
    Returns: ``{"judge", "bounds": {key: {"name", "bound", "at_least"}}, "methods": {method: {key: value,
        key + "_met": bool, ..., "all_met": bool}}}``.
    """
    real_tar = methods["original"]["judges"][TARGET_JUDGE]["tar"]
    checked = {}
    for method, entry in methods.items():
        values = {
            "tar_ratio": entry["judges"][TARGET_JUDGE]["tar"] / real_tar if real_tar > 0 else float("nan"),
            "ssim": entry["ssim_to_original"],
            "ssim28": entry["ssim28_to_original"],
        }
        row: dict = {}
        for target in TARGETS:
            row[target.key] = values[target.key]
            row[f"{target.key}_met"] = target.met(values[target.key])
        row["all_met"] = all(row[f"{t.key}_met"] for t in TARGETS)
        checked[method] = row
    return {"judge": TARGET_JUDGE, "real_tar": real_tar,
            "bounds": {t.key: {"name": t.name, "bound": t.bound, "at_least": t.at_least} for t in TARGETS},
            "methods": checked}


PLOT_AXES = {  # x axis of a privacy-utility plot: its label and the target bound drawn on it
    "ssim_to_original": ("SSIM to the original face", "ssim"),
    "ssim28_to_original": ("SSIM-28 (grey, 28x28) to the original face", "ssim28"),
}


def plot_privacy_utility(results: dict, path: Path, x_key: str = "ssim_to_original") -> None:
    """Verification accuracy against a similarity to the original (``x_key``: one of :data:`PLOT_AXES`), one point
    per method and strength, a panel per judge; the target's bound on that similarity as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_label, target_key = PLOT_AXES[x_key]
    bound = next(t.bound for t in TARGETS if t.key == target_key)
    judges = list(results["judges"])
    figure, axes = plt.subplots(1, len(judges), figsize=(6 * len(judges), 4.5), squeeze=False)
    methods = results["methods"]
    for axis, judge in zip(axes[0], judges):
        for family, marker, colour in (("blur_", "o", "tab:blue"), ("pixelate_", "s", "tab:orange")):
            names = [m for m in methods if m.startswith(family)]
            xs = [methods[m][x_key] for m in names]
            ys = [methods[m]["judges"][judge]["accuracy"] for m in names]
            order = np.argsort(xs)
            axis.plot(np.array(xs)[order], np.array(ys)[order], marker=marker, color=colour, label=family.rstrip("_"))
            for m, x, y in zip(names, xs, ys):
                axis.annotate(m.split("_")[1], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        for name, marker, colour, label in (("original", "^", "black", "no change"),
                                            ("donor_warp", "D", "tab:green", "donor warp alone (no network)"),
                                            ("camouflage", "*", "tab:red", "camouflage (model)")):
            if name in methods:
                axis.scatter(methods[name][x_key], methods[name]["judges"][judge]["accuracy"], marker=marker,
                             s=160 if name == "camouflage" else 80, color=colour, label=label, zorder=5)
        axis.axvline(bound, color="grey", linestyle="--", linewidth=1, label=f"target: at most {bound:g}")
        axis.set_xlabel(f"{x_label}; lower: looks more different")
        axis.set_ylabel(f"verification accuracy ({judge} judge)")
        axis.set_title(f"privacy-utility, {judge} judge (up and left is better)")
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown_report(results: dict) -> str:
    setup = results["setup"]
    lineage = reversed(setup.get("lineage", []))
    ancestry = "".join(f", fine-tuned from {parent['weights']} at step {parent['step']}" for parent in lineage)
    lines = [
        "# Evaluation report", "",
        f"Checkpoint `{setup['checkpoint']}` (preset {setup['preset']}, step {setup['step']}{ancestry}); data `{setup['data']}`.",
        f"{setup['test_images']} test images of {setup['identities']} test identities; {setup['references_per_image']} reference faces "
        f"per image; {setup['genuine_pairs']} genuine + {setup['impostor_pairs']} impostor pairs; rank-1 over "
        f"{setup['identification_probes']} probes against a gallery of {setup['identification_gallery']} originals; seed {setup['seed']}.",
        f"Faces concealed by the fail-closed fallback: {setup['faces_concealed_by_fallback']}. Took {setup['seconds']} s.", "",
    ]
    if setup.get("teacher"):
        lines += [f"**Note:** the model was trained with `{setup['teacher']}` as an identity teacher; a judge that was the teacher "
                  "flatters the model. " + (setup.get("teacher_note") or ""), ""]
    lines += targets_section(results["targets"])
    for judge, info in results["judges"].items():
        lines += [f"## Judge: {judge} (same person when {info['rule']} {info['threshold']})", "",
                  "| method | accuracy | TAR | FAR | rank-1 | SSIM to original | SSIM-28 to original | MAD to original |",
                  "|---|---|---|---|---|---|---|---|"]
        for method, entry in results["methods"].items():
            j = entry["judges"][judge]
            lines.append(f"| {method} | {j['accuracy']:.4f} | {j['tar']:.4f} | {j['far']:.4f} | {j['rank1']:.4f} | "
                         f"{entry['ssim_to_original']:.3f} | {entry['ssim28_to_original']:.3f} | {entry['mad_to_original']:.1f} |")
        lines.append("")
    camouflage = results["methods"]["camouflage"]
    div, div28 = camouflage.get("diversity_ssim_between_references"), camouflage.get("diversity_ssim28_between_references")
    if div is not None:
        lines += [f"Diversity: mean SSIM between camouflaged versions of one face made with different references: {div:.3f} "
                  f"(SSIM-28: {div28:.3f}).", ""]
    lines += ["SSIM-28: both aligned crops turned grey (BT.601 luma), area-downsampled to 28x28, then SSIM with an 11x11 "
              "Gaussian window of sigma 1.5. Noise, texture and colour do not lower it; a different face shape, layout of "
              "features or hairline does.", "",
              "![privacy-utility, SSIM](privacy_utility.png)", "", "![privacy-utility, SSIM-28](privacy_utility_ssim28.png)", "",
              "![figure 3](figure3.png)", ""]
    return "\n".join(lines)


def targets_section(targets: dict) -> list[str]:
    """The report's statement of the targets: met or not met for the model, and which methods meet them all."""
    bounds, rows = targets["bounds"], targets["methods"]
    keys = list(bounds)

    def rule(key: str) -> str:
        return f"{'>=' if bounds[key]['at_least'] else '<='} {bounds[key]['bound']:g}"

    model = rows["camouflage"]
    lines = [f"## Targets ({targets['judge']} judge; real-vs-real TAR {targets['real_tar']:.4f})", "",
             "| target | camouflage | bound | |", "|---|---|---|---|"]
    for key in keys:
        lines.append(f"| {bounds[key]['name']} | {model[key]:.3f} | {rule(key)} | {'met' if model[f'{key}_met'] else '**not met**'} |")
    met = [bounds[k]["name"] for k in keys if model[f"{k}_met"]]
    lines += ["", f"The model meets {len(met)} of {len(keys)} targets" + (f" ({', '.join(met)})." if met else "."), ""]
    lines += ["| method | " + " | ".join(bounds[k]["name"] for k in keys) + " | all met |", "|---" * (len(keys) + 2) + "|"]
    for method, row in rows.items():
        cells = [f"{row[k]:.3f} {'met' if row[f'{k}_met'] else 'not met'}" for k in keys]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {'yes' if row['all_met'] else 'no'} |")
    winners = [m for m, row in rows.items() if row["all_met"]]
    lines += ["", "Methods meeting every target: " + (", ".join(winners) if winners else "none") + ".", ""]
    return lines


def parse_judge(text: str) -> tuple[str, float]:
    path, sep, threshold = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"--onnx-judge takes PATH:THRESHOLD (cosine), got {text!r}")
    return path, float(threshold)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, default=None, help=f"checkpoint or release weights (default {RELEASE_WEIGHTS})")
    parser.add_argument("--data", type=Path, required=True, help="a prepared folder (make prepare) with a test split")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--images", type=int, default=600, help="test images (default 600)")
    parser.add_argument("--references", type=int, default=3, help="reference faces per test image (default 3)")
    parser.add_argument("--pairs", type=int, default=4000, help="genuine pairs, and as many impostor pairs (default 4000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--onnx-judge", type=parse_judge, action="append", default=[], metavar="PATH:THRESHOLD",
                        help="an extra ONNX face-embedding judge and its cosine threshold (repeatable)")
    parser.add_argument("--teacher-note", default=None, help="a sentence for the report about the teacher")
    args = parser.parse_args(argv)
    try:
        evaluate(args.ckpt, args.data, args.out, args.images, args.references, args.pairs, args.seed, args.onnx_judge, args.teacher_note)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print((args.out / "report.md").read_text())
    print(f"written: {args.out / 'report.md'}, results.json, privacy_utility.png, privacy_utility_ssim28.png, figure3.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
