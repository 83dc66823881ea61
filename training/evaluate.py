# SPDX-License-Identifier: Apache-2.0
"""Evaluation: do machines still recognise the camouflaged person, and do people see a different face?

    python -m training.evaluate --data <prepared folder> --out <folder> [--ckpt <.pt>] [--compare NAME=CKPT ...]
        [--onnx-judge PATH:THRESHOLD] [--teacher PATH] [--clips VIDEO ...]

The paper's Table II protocol on the test identities (never seen in training), judged by face-recognition networks
that are not part of the model. Every processed image goes through the whole-image path users get (detect, align,
generate, paste back), and each judge then finds the face's landmarks afresh on the processed image, inside the
original detection box, as a recognition system would.

Methods compared on the same images, pairs and donors, so that no figure stands without its baselines (issue 17):
the model (``camouflage``; each query made with several donors), other models (``model_NAME``, e.g. the previous
release), ``original`` (no change), and for the donor design the trivial baselines any design must beat:
``donor_warp`` (the donor target alone, no network), ``crossfade_W`` (source faded into the donor target, W the
target's weight), ``inject`` (test-time injection: a bounded residual optimised per face against the training
teacher, :mod:`training.injection`) and ``copy`` (the donor target moved toward the source by at most the release's
residual bound, :func:`training.injection.bounded_copy`: what the aligned source gives with nothing learned); then
Gaussian blur and pixelation of the replaced region at several strengths.

Figures per method and judge: TAR at FAR 1e-3 and 1e-4 with thresholds taken from the evaluation's own impostor pairs
of originals (every pair of test images of different people), verification accuracy, TAR and FAR at the judge's own
threshold, rank-1 identification of processed queries against a gallery of originals; per method: SSIM, SSIM-28 (grey
crops area-downsampled to 28x28: coarse structure only) and mean absolute difference to the original, SSIM and SSIM-28
to the donor target, and realism per face (:mod:`training.realism`: colour difference, lightness change, colour
blotching) on LFW and, with ``--clips``, on the clips' faces as they are and darkened. Each method is held against
issue 17's targets (:func:`training.eval_report.check_targets`). Writes ``report.md``, ``results.json``,
``tar_at_far_ssim28.png`` (TAR at FAR 1e-3 against SSIM-28, every method), ``privacy_utility.png``,
``privacy_utility_ssim28.png`` and ``figure3.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from facecamo import spec
from facecamo.align import LANDMARK_MODELS, LandmarkPredictor, load_rgb, save_rgb, warp_face
from facecamo.settings import PipelineSettings
from facecamo.paste import blur_face, paste_face, pixelate_face
from facecamo.donor import donor_target, replaced_region
from training.camouflage import DETECTOR_ONNX, TorchCamouflager
from training.config import Config
from training.data import to_model_range, to_uint8
from training.injection import InjectionSettings, bounded_copy, inject_identity
from training.metrics import DlibJudge, Judge, OnnxJudge, mean_abs_difference, ssim, ssim_coarse
from training.models.face_embedder import OnnxFaceEmbedder
from training.eval_scores import score_methods
from training.far import warn_unresolved_fars
from training.eval_subjects import Subject, align_subjects, load_references, make_pairs, pick_donors, select_subjects
from training.eval_scenes import codes_for_scenes, scene_realism, write_scene_pictures
from training.eval_report import check_targets, markdown_report, plot_privacy_utility, plot_tar_at_far
from training.realism import Realism, realism, summarise
from training.trainer import figure3_grid
from training.weights import RELEASE_WEIGHTS, load_inference_net

BLUR_SIGMAS = (2.0, 4.0, 8.0, 16.0)
PIXEL_BLOCKS = (4, 8, 16, 28)
REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def repo_relative(path: Path) -> str:
    """``path`` relative to the repository (``../`` outside it): committed reports name no machine's folders."""
    return os.path.relpath(Path(path).resolve(), REPOSITORY_ROOT)


@dataclass(frozen=True)
class Baselines:
    """The trivial and strong baselines every design is judged beside, in the same run (issue 17).

    crossfades: weights of the donor target in a cross-fade from the source (0.5: half each), pasted through the
        replaced region. injection: the test-time injection's settings (None: not run), which needs ``teacher``:
        an ONNX face embedder (the model's training teacher: the point is what a network can amortise).
        inject_masked: also run the injection with its bound scaled per pixel by v5's visibility mask (``inject_masked``:
        what a per-face optimiser reaches within the limit the release's generator works in). copy_bound: the bounded
        copy's limit in grey levels (None: not run)."""

    crossfades: tuple[float, ...] = (0.3, 0.5, 0.7)
    injection: InjectionSettings | None = InjectionSettings()
    teacher: Path | None = None
    copy_bound: float | None = 12.0
    inject_masked: bool = True


# Methods whose versions are made from the donor targets, version k from donor k: SSIM to the donor target is theirs.
def donor_relative(method: str) -> bool:
    return method in ("camouflage", "donor_warp", "inject", "inject_masked", "copy") or method.startswith(("crossfade_", "model_"))


def method_names(donor_design: bool, compare: dict[str, "TorchCamouflager"], baselines: Baselines, injecting: bool) -> list[str]:
    """Every method of one evaluation, in the report's order."""
    injections = (["inject"] + (["inject_masked"] if baselines.inject_masked else [])) if injecting else []
    donor = (["donor_warp"] + [f"crossfade_{w:g}" for w in baselines.crossfades] + injections
             + (["copy"] if baselines.copy_bound else []) if donor_design else [])
    return (["original", "camouflage"] + [f"model_{name}" for name in compare] + donor
            + [f"blur_{s:g}" for s in BLUR_SIGMAS] + [f"pixelate_{b}" for b in PIXEL_BLOCKS])


def crossfade(crop: np.ndarray, target: np.ndarray, weight: float) -> np.ndarray:
    """uint8 (112, 112, 3): ``weight`` of the donor target over ``1 - weight`` of the source crop."""
    return np.clip(np.rint(crop * (1.0 - weight) + target.astype(np.float64) * weight), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class EvalSettings:
    """What one evaluation measures on: ``images`` test images, ``references`` donors per image, ``pairs`` genuine
    (and impostor) pairs, ``seed``; the clips' every ``clip_every``-th frame; the camouflaging pipeline's
    ``landmarks`` model (``dlib68`` or ``dlib5``, as served: the measuring side, the judges' alignment and the
    references' blends from the prepared crops, stays on the 68-point model so both paths are measured alike) and its
    face ``detector`` (the ONNX file ``python -m export.detector PATH`` makes)."""

    images: int = 600
    references: int = 3
    pairs: int = 4000
    seed: int = 0
    clip_every: int = 15
    landmarks: str = "dlib68"
    detector: Path = DETECTOR_ONNX


@dataclass
class Models:
    """The candidate (``camouflager``, with its network, config and checkpoint info) and the models compared with it."""

    camouflager: TorchCamouflager
    net: torch.nn.Module
    config: Config
    info: dict
    others: dict[str, TorchCamouflager]

    @property
    def per_reference(self) -> int:
        """References blended into one donor (1 for the paper design, whose references are codes)."""
        return self.config.model.donors_per_blend if self.camouflager.donor_design else 1


def load_models(ckpt: Path | None, compare: dict[str, Path], settings: EvalSettings) -> Models:
    """The candidate and the compared models, on the served pipeline's settings (the figures describe what users get).

    Raises: ValueError for a compared model of another design (the donor targets are shared)."""
    net, config, info = load_inference_net(ckpt)
    pipeline = PipelineSettings(landmarks=settings.landmarks)
    camouflager = TorchCamouflager(net, pipeline, detector=settings.detector)
    others = {name: TorchCamouflager(load_inference_net(path)[0], pipeline, detector=settings.detector) for name, path in compare.items()}
    for name, other in others.items():
        if other.design != camouflager.design:
            raise ValueError(f"--compare {name}: another design than the candidate's; compare models of one design "
                             "(the donor targets are shared), or evaluate it on its own and use training.compare")
    return Models(camouflager, net, config, info, others)


def injection_teacher(models: Models, baselines: Baselines) -> OnnxFaceEmbedder | None:
    """The frozen teacher the test-time injection baseline runs against, or None (not asked for, the paper design,
    or no teacher file: then a note says how to run it)."""
    if not models.camouflager.donor_design or baselines.injection is None:
        return None
    teacher_path = baselines.teacher or (Path(models.config.loss.teacher_path) if models.config.loss.teacher_path else None)
    if teacher_path is None or not teacher_path.is_file():
        print(f"note: the test-time injection baseline is skipped: no teacher network ({teacher_path or 'none named'}); "
              "pass --teacher PATH to run it", file=sys.stderr)
        return None
    teacher = OnnxFaceEmbedder(teacher_path).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


class Measurements:
    """What every processed version of every test image measures, per method: each judge's embeddings, SSIM and
    SSIM-28 to the original and the donor target, realism; and the candidate's diversity between its versions."""

    APPEARANCE_KEYS = ("ssim", "ssim28", "mad", "ssim_donor", "ssim28_donor")

    def __init__(self, methods: list[str], judges: list[Judge]) -> None:
        self.methods, self.judges = methods, judges
        self.judge_landmarks = LandmarkPredictor()  # the measuring side's: the 68-point model whatever the camouflage used
        self.embeddings = {j.name: {m: [] for m in methods} for j in judges}
        self.appearance = {key: {m: [] for m in methods} for key in self.APPEARANCE_KEYS}
        self.colour: dict[str, list[Realism]] = {m: [] for m in methods}
        self.diversity: list[float] = []
        self.diversity28: list[float] = []

    def add(self, subject: Subject, processed: dict[str, list[np.ndarray]]) -> None:
        """Measure one test image's processed versions: method -> uint8 (H, W, 3) images, version k of a donor-relative
        method made with donor k (``donor_warp``'s version k is the target it is compared with)."""
        donor_crops = [warp_face(v, subject.affine) for v in processed.get("donor_warp", [])]
        camouflaged_crops = []
        for method, images in processed.items():
            per_judge = {j.name: [] for j in self.judges}
            for k, variant in enumerate(images):
                crop = warp_face(variant, subject.affine)
                self.appearance["ssim"][method].append(ssim(subject.crop, crop))
                self.appearance["ssim28"][method].append(ssim_coarse(subject.crop, crop))
                self.appearance["mad"][method].append(mean_abs_difference(subject.crop, crop))
                if donor_relative(method) and donor_crops:
                    self.appearance["ssim_donor"][method].append(ssim(donor_crops[k], crop))
                    self.appearance["ssim28_donor"][method].append(ssim_coarse(donor_crops[k], crop))
                self.colour[method].append(realism(subject.crop, crop, subject.landmarks))
                if method == "camouflage":
                    camouflaged_crops.append(crop)
                points = self.judge_landmarks(variant, subject.box)  # the judge aligns the processed face itself
                for judge in self.judges:
                    per_judge[judge.name].append(judge.embed(variant, points))
            for judge in self.judges:
                self.embeddings[judge.name][method].append(np.stack(per_judge[judge.name]))
        for a in range(len(camouflaged_crops)):
            for b in range(a + 1, len(camouflaged_crops)):
                self.diversity.append(ssim(camouflaged_crops[a], camouflaged_crops[b]))
                self.diversity28.append(ssim_coarse(camouflaged_crops[a], camouflaged_crops[b]))

    def results(self, subjects: list[Subject], genuine: np.ndarray, impostor: np.ndarray) -> dict:
        """results.json's ``judges`` and ``methods`` (and ``probes`` / ``gallery``, which the caller moves to setup)."""
        results = score_methods(self.judges, self.embeddings, self.methods, subjects, genuine, impostor)
        for method in self.methods:
            entry = results["methods"][method]
            entry["ssim_to_original"] = float(np.mean(self.appearance["ssim"][method]))
            entry["ssim28_to_original"] = float(np.mean(self.appearance["ssim28"][method]))
            entry["mad_to_original"] = float(np.mean(self.appearance["mad"][method]))
            if self.appearance["ssim_donor"][method]:
                entry["ssim_to_donor"] = float(np.mean(self.appearance["ssim_donor"][method]))
                entry["ssim28_to_donor"] = float(np.mean(self.appearance["ssim28_donor"][method]))
            entry["realism"] = {"lfw": summarise(self.colour[method])}
        camouflage = results["methods"]["camouflage"]
        camouflage["diversity_ssim_between_references"] = float(np.mean(self.diversity)) if self.diversity else None
        camouflage["diversity_ssim28_between_references"] = float(np.mean(self.diversity28)) if self.diversity28 else None
        return results


def process_subject(subject: Subject, codes: np.ndarray, models: Models, baselines: Baselines,
                    teacher: OnnxFaceEmbedder | None) -> tuple[dict[str, list[np.ndarray]], int]:
    """Every method's versions of one test image (method -> uint8 (H, W, 3) images, version k made with ``codes[k]``),
    and how many of the candidate's faces were concealed by the fallback."""
    image = load_rgb(subject.source)
    references = len(codes)
    processed: dict[str, list[np.ndarray]] = {"original": [image]}
    concealed = 0
    for method, model in (("camouflage", models.camouflager), *((f"model_{n}", m) for n, m in models.others.items())):
        processed[method] = []
        for k in range(references):
            result, _, status = model.camouflage(image, codes[k : k + 1], subject.faces)
            if method == "camouflage":
                concealed += int(np.sum(status == spec.STATUS_FALLBACK))
            processed[method].append(result)
    region = replaced_region(subject.landmarks) if models.camouflager.donor_design else None  # None: the ellipse
    if models.camouflager.donor_design:
        targets = [donor_target(subject.crop, subject.landmarks, codes[k])[0] for k in range(references)]
        processed["donor_warp"] = [paste_face(image, t, subject.affine, region) for t in targets]
        for weight in baselines.crossfades:
            processed[f"crossfade_{weight:g}"] = [paste_face(image, crossfade(subject.crop, t, weight), subject.affine, region)
                                                 for t in targets]
        source = to_model_range(torch.from_numpy(subject.crop[None]))
        if teacher is not None:  # one version (donor 0): about a second a face
            variants = [("inject", baselines.injection)] + ([("inject_masked", replace(baselines.injection, masked=True))]
                                                            if baselines.inject_masked else [])
            for method, injection in variants:
                injected = inject_identity(teacher, source, to_model_range(torch.from_numpy(targets[0][None])), injection,
                                           seed=subject.index)
                processed[method] = [paste_face(image, to_uint8(injected)[0].numpy(), subject.affine, region)]
        if baselines.copy_bound:
            copied = bounded_copy(source.expand(len(targets), -1, -1, -1), to_model_range(torch.from_numpy(np.stack(targets))),
                                  baselines.copy_bound)
            processed["copy"] = [paste_face(image, c, subject.affine, region) for c in to_uint8(copied).numpy()]
    for sigma in BLUR_SIGMAS:
        processed[f"blur_{sigma:g}"] = [paste_face(image, blur_face(subject.crop, sigma), subject.affine, region)]
    for block in PIXEL_BLOCKS:
        processed[f"pixelate_{block}"] = [paste_face(image, pixelate_face(subject.crop, block), subject.affine, region)]
    return processed, concealed


def evaluate(ckpt: Path | None, data: Path, out: Path, settings: EvalSettings = EvalSettings(),
             onnx_judges: list[tuple[str, float]] | None = None, baselines: Baselines = Baselines(),
             compare: dict[str, Path] | None = None, clips: list[Path] | None = None, teacher_note: str | None = None) -> dict:
    """Run the whole evaluation and write its files to ``out`` (see the module's docstring). Returns results.json's dict.

    Args:
        ckpt: the candidate model (None: the committed release).
        settings: images, donors, pairs, seed and the pipeline's landmarks and detector (:class:`EvalSettings`).
        onnx_judges: extra ONNX embedders (path, cosine threshold) beside dlib's recogniser.
        baselines: the cross-fades, the test-time injection and the bounded copy run in the same evaluation.
        compare: other models by name (donor design), each judged on the same images, pairs and donors (e.g. the
            previous release).
        clips: videos whose faces (every ``settings.clip_every``-th frame), as they are and darkened, are measured
            for realism.
        teacher_note: a sentence for the report about the teacher.
    """
    started = time.time()
    rng = np.random.default_rng(settings.seed)
    blend_rng = np.random.default_rng(settings.seed + 2)
    torch.manual_seed(settings.seed)
    models = load_models(ckpt, compare or {}, settings)
    camouflager = models.camouflager
    teacher = injection_teacher(models, baselines)
    judges: list[Judge] = [DlibJudge()] + [OnnxJudge(path, threshold) for path, threshold in onnx_judges or []]
    subjects = align_subjects(camouflager, select_subjects(data, settings.images, rng))
    warn_unresolved_fars(np.array([s.identity for s in subjects]))
    reference_crops, reference_points = load_references(
        data, select_subjects(data, 10 * settings.references + 40, np.random.default_rng(settings.seed + 1)), camouflager.donor_design)
    reference_names = sorted(reference_crops)
    methods = method_names(camouflager.donor_design, models.others, baselines, teacher is not None)
    measured = Measurements(methods, judges)
    faces_concealed = 0
    for subject in tqdm(subjects, desc="camouflaging and judging", unit="img", dynamic_ncols=True):
        picked = pick_donors(subject, reference_names, settings.references, models.per_reference, rng, blend_rng)
        codes = camouflager.appearance_codes(np.stack([reference_crops[n][0] for n in picked]),
                                             np.stack([reference_points[n][0] for n in picked]) if camouflager.donor_design
                                             else None, per_blend=models.per_reference)
        processed, concealed = process_subject(subject, codes, models, baselines, teacher)
        faces_concealed += concealed
        measured.add(subject, processed)

    genuine, impostor = make_pairs(subjects, settings.pairs, rng)
    results = measured.results(subjects, genuine, impostor)
    if clips:
        out.mkdir(parents=True, exist_ok=True)
        scene_codes = codes_for_scenes(camouflager, reference_crops, reference_points, reference_names, models.per_reference)
        write_scene_pictures(out, camouflager, models.others, clips[0], scene_codes[:1])
        for method, by_scene in scene_realism(camouflager, models.others, clips, scene_codes, settings.clip_every).items():
            results["methods"][method]["realism"].update(by_scene)
    results["targets"] = check_targets(results["methods"])
    results["setup"] = {
        "checkpoint": repo_relative(ckpt or RELEASE_WEIGHTS), "step": models.info.get("step"), "preset": models.config.preset,
        "lineage": models.info.get("lineage") or [], "compared": {n: repo_relative(p) for n, p in (compare or {}).items()},
        "teacher": models.config.loss.teacher_path if models.config.loss.teacher > 0 else None, "teacher_note": teacher_note,
        "data": repo_relative(data), "test_images": len(subjects), "identities": len({s.identity for s in subjects}),
        "references_per_image": settings.references, "genuine_pairs": int(len(genuine)), "impostor_pairs": int(len(impostor)),
        "identification_probes": results.pop("probes"), "identification_gallery": results.pop("gallery"), "seed": settings.seed,
        "faces_concealed_by_fallback": faces_concealed, "crossfades": list(baselines.crossfades),
        "injection": asdict(baselines.injection) if teacher is not None else None,
        "inject_masked": teacher is not None and baselines.inject_masked, "copy_bound": baselines.copy_bound,
        "clips": [repo_relative(c) for c in clips or []], "clip_every": settings.clip_every, "landmarks": settings.landmarks,
        "seconds": round(time.time() - started, 1),
    }
    write_results(out, results, models, subjects, reference_crops, reference_names, reference_points)
    return results


def write_results(out: Path, results: dict, models: Models, subjects: list[Subject], reference_crops: dict,
                  reference_names: list[str], reference_points: dict) -> None:
    """results.json, report.md, the plots and Figure 3, in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    plot_privacy_utility(results, out / "privacy_utility.png", "ssim_to_original")
    plot_privacy_utility(results, out / "privacy_utility_ssim28.png", "ssim28_to_original")
    plot_tar_at_far(results, out / "tar_at_far_ssim28.png")
    save_rgb(out / "figure3.png", test_figure3(models.net, subjects, reference_crops, reference_names, models.camouflager,
                                               reference_points, models.per_reference))
    (out / "report.md").write_text(markdown_report(results))


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
    parser.add_argument("--images", type=int, default=EvalSettings.images, help="test images (default 600)")
    parser.add_argument("--references", type=int, default=EvalSettings.references, help="reference faces per test image (default 3)")
    parser.add_argument("--pairs", type=int, default=EvalSettings.pairs, help="genuine pairs, and as many impostor pairs (default 4000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--onnx-judge", type=parse_judge, action="append", default=[], metavar="PATH:THRESHOLD",
                        help="an extra ONNX face-embedding judge and its cosine threshold (repeatable)")
    parser.add_argument("--teacher-note", default=None, help="a sentence for the report about the teacher")
    parser.add_argument("--compare", type=parse_named, action="append", default=[], metavar="NAME=CKPT",
                        help="another model of the same design judged on the same images, pairs and donors (repeatable), "
                             "e.g. v3=models/release/v3.pt")
    parser.add_argument("--crossfades", type=lambda t: tuple(float(v) for v in t.split(",") if v), default=(0.3, 0.5, 0.7),
                        help="donor-target weights of the cross-fade baselines, comma-separated (default 0.3,0.5,0.7; '' for none)")
    parser.add_argument("--teacher", type=Path, default=None,
                        help="ONNX face embedder for the test-time injection baseline (default: the model's training teacher)")
    parser.add_argument("--inject-steps", type=int, default=InjectionSettings.steps, help="test-time injection: Adam steps per face (0: skip the baseline)")
    parser.add_argument("--inject-bound", type=float, default=InjectionSettings.bound, help="test-time injection: largest |residual| in 0..255 grey levels")
    parser.add_argument("--inject-copies", type=int, default=InjectionSettings.copies, help="test-time injection: degraded copies per step")
    parser.add_argument("--no-inject-masked", dest="inject_masked", action="store_false",
                        help="skip the second injection row, whose bound is scaled per pixel by v5's visibility mask")
    parser.add_argument("--copy-bound", type=float, default=Baselines.copy_bound,
                        help="the bounded-copy baseline's limit in grey levels (default 12, v5's residual bound; 0: skip it)")
    parser.add_argument("--detector", type=Path, default=DETECTOR_ONNX,
                        help=f"the served face detector's ONNX file (default {DETECTOR_ONNX.relative_to(REPOSITORY_ROOT)}: "
                             "python -m export.detector PATH makes it)")
    parser.add_argument("--clips", type=Path, nargs="*", default=[], help="videos whose faces are measured for realism, as they are and darkened")
    parser.add_argument("--clip-every", type=int, default=15, help="every N-th frame of the clips (default 15)")
    parser.add_argument("--landmarks", choices=LANDMARK_MODELS, default="dlib68",
                        help="the landmark model the camouflage is made with: dlib68 (default) or dlib5 (commercial use)")
    args = parser.parse_args(argv)
    injection = (InjectionSettings(steps=args.inject_steps, bound=args.inject_bound, copies=args.inject_copies)
                 if args.inject_steps > 0 else None)
    missing = [str(c) for c in args.clips if not c.is_file()]
    if missing:
        print(f"error: clips not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    settings = EvalSettings(args.images, args.references, args.pairs, args.seed, args.clip_every, args.landmarks, args.detector)
    baselines = Baselines(args.crossfades, injection, args.teacher, args.copy_bound or None, args.inject_masked)
    try:
        evaluate(args.ckpt, args.data, args.out, settings, args.onnx_judge, baselines, dict(args.compare), args.clips, args.teacher_note)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print((args.out / "report.md").read_text())
    print(f"written: {args.out / 'report.md'}, results.json, tar_at_far_ssim28.png, privacy_utility.png, "
          "privacy_utility_ssim28.png, figure3.png")
    return 0


def parse_named(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--compare takes NAME=CKPT, got {text!r}")
    return name, Path(path)


if __name__ == "__main__":
    sys.exit(main())
