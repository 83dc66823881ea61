# SPDX-License-Identifier: Apache-2.0
"""``make export``: checkpoint -> ONNX (parity-checked, linted) -> TensorRT (where possible) -> Triton repository.

    python -m export [--ckpt <.pt>] [--out model_repository] [--flavour python|onnxruntime|tensorrt]
                     [--references assets/portraits] [--detector centerface|hog|cnn] [--landmarks dlib68|dlib5]
                     [--set key=value ...]
                     [--instances facecamo=2 face_detector=2 identity_encoder=1 generator=1]

The pipeline's settings (:class:`facecamo.settings.PipelineSettings`: detector, thresholds, the smallest face that is
camouflaged rather than concealed, limits) are written into the served model's config, where the server and the
embedded engine read them. ``--instances`` sets how many instances of each model the server runs (the
``instance_group`` of each model's config; defaults in :data:`export.repository.DEFAULT_INSTANCES`).
``--landmarks dlib5`` serves dlib's public-domain 5-point model instead of the 68-point one, whose training data's
terms exclude commercial use; the bank's donors are aligned with the same model (:mod:`facecamo.align`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from export.detector import DetectorExportError
from export.onnx_export import ExportError, check_parity, export_onnx, lint, symbolic_sizes
from export.repository import DEFAULT_INSTANCES, FLAVOURS, MAX_INSTANCES, instance_counts, write_repository
from facecamo import spec
from facecamo.align import LANDMARK_MODELS, landmark_predictor, load_rgb
from facecamo.settings import PipelineSettings

ROOT = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


DONOR_BANK_SIZE = 16
"""Served donors: each a blend of ``model.donors_per_blend`` committed portraits, so no served face is a real person's."""


def aligned_reference_faces(folder: Path, settings: PipelineSettings, detector_model: Path | None = None
                            ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The best-scoring face of every image in ``folder``, found and aligned as served faces are (the pipeline's
    detector named by ``settings``, CenterFace running ``detector_model`` in ONNX Runtime, its landmark box and
    landmark model): (names, uint8 (K, 112, 112, 3) crops, float64 (K, 68, 2) their landmarks in crop pixels).
    Aligning the donors like the faces they are warped onto keeps the two from differing by the detectors' habits."""
    from types import SimpleNamespace

    from facecamo.detect import CenterFaceDetector
    from facecamo.locate import align_in_box, make_detector

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no reference images in {folder}; pass --references <folder of face photos>")
    networks = SimpleNamespace(detect=CenterFaceDetector.from_onnx(detector_model).run if detector_model else None)
    detector, landmarks = make_detector(settings, networks), landmark_predictor(settings.landmarks)
    names, crops, points = [], [], []
    for file in files:
        image = load_rgb(str(file))
        faces = detector(image)
        if faces:
            _, crop, crop_points = align_in_box(image, detector.landmark_box(faces[0].box), landmarks)
            names.append(file.name)
            crops.append(crop)
            points.append(crop_points)
        else:
            print(f"  skipped {file.name}: no face found", file=sys.stderr)
    if not crops:
        raise FileNotFoundError(f"no face found in any reference image of {folder}")
    return names, np.stack(crops), np.stack(points)


def donor_settings(config) -> dict:
    """What the donor design's served faces depend on beyond the networks, recorded in ``export.json``: the bank's size
    and blend, and the donor warp's and paste region's constants (:mod:`facecamo.donor`)."""
    from facecamo import donor

    return {"bank_size": DONOR_BANK_SIZE, "donors_per_blend": config.model.donors_per_blend,
            "blends": "portraits alike by the identity encoder (facecamo.donor.like_blends)",
            "default_donor": "the free donor most like the face (bank_likeness.npy, facecamo.donor.likest_free)",
            "shape_blend": donor.SHAPE_BLEND, "forehead_lift": donor.FOREHEAD_LIFT, "region_feather": donor.REGION_FEATHER,
            "sharpness_sigmas": list(donor.SHARPNESS_SIGMAS)}


def make_bank(net, config, onnx_paths: dict[str, Path], names: list[str], crops: np.ndarray,
              landmarks: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray | None, np.ndarray | None]:
    """The served bank, a description of each entry, and the entries' likeness vectors: blended donors (donor
    design: uint8 (K, 112, 112, 3), each a blend of portraits alike by the exported identity encoder,
    :func:`facecamo.donor.like_blends`, float32 (K, D) that encoder's unit vectors of the donors, by which the
    pipeline gives a face the donor most like it, and float32 (K, M, D) its vectors of each donor's portraits, by
    which a face matching one of them is never given that donor), or the appearance encoder's codes of the reference faces (paper
    design: float32 (K, C_app, 4, 1); no likeness)."""
    import onnxruntime

    from facecamo.donor import blend_donors, like_blends, unit_vectors
    from facecamo.networks import OnnxNetworks

    if net.design.donors:
        encoder = OnnxNetworks(identity_encoder=onnx_paths[spec.IDENTITY_ENCODER])  # the served one, checked

        def identity(faces: np.ndarray) -> np.ndarray:
            return unit_vectors(encoder.encode_identity(spec.to_model_input(faces)).reshape(len(faces), -1))

        per_blend = min(config.model.donors_per_blend, len(crops))
        portraits = identity(crops)
        members = like_blends(portraits, DONOR_BANK_SIZE, per_blend)
        donors = np.stack([blend_donors(crops[row], landmarks[row]) for row in members])
        return donors, [" + ".join(names[m] for m in row) for row in members], identity(donors), portraits[members]
    session = onnxruntime.InferenceSession(str(onnx_paths[spec.APPEARANCE_ENCODER]), providers=["CPUExecutionProvider"])
    return session.run(None, {spec.FACE: spec.to_model_input(crops)})[0], names, None, None


def build_tensorrt(onnx_paths: dict[str, Path], out: Path, max_batch: int) -> tuple[dict[str, Path], str]:
    """FP16 engines with a min/opt/max batch profile (1 / 8 / max_batch). Returns (plans, why skipped or '')."""
    try:
        import tensorrt as trt
    except ImportError:
        return {}, "TensorRT is not installed here (it cannot be pip-installed on these machines; use NVIDIA's container)"
    try:
        import torch

        if not torch.cuda.is_available():
            return {}, "no CUDA GPU is visible, and TensorRT engines are built for the GPU they run on"
    except ImportError:
        pass
    logger = trt.Logger(trt.Logger.WARNING)
    plans = {}
    for name in (spec.IDENTITY_ENCODER, spec.GENERATOR):
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_paths[name].read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ExportError(f"TensorRT could not parse {onnx_paths[name]}: {errors}")
        config = builder.create_builder_config()
        config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        for index in range(network.num_inputs):
            tensor = network.get_input(index)
            dims = tuple(tensor.shape)[1:]
            profile.set_shape(tensor.name, (1, *dims), (min(8, max_batch), *dims), (max_batch, *dims))
        config.add_optimization_profile(profile)
        engine = builder.build_serialized_network(network, config)
        if engine is None:
            raise ExportError(f"TensorRT failed to build an engine for {name}")
        path = out / f"{name}.plan"
        path.write_bytes(bytes(engine))
        plans[name] = path
    return plans, ""


def run_export(ckpt: Path | None, out: Path, flavour: str, references: Path, settings: PipelineSettings, work: Path,
               instances: dict[str, int] | None = None) -> dict:
    import torch

    from training.weights import RELEASE_WEIGHTS, load_inference_net

    instances = instance_counts(instances or {}, settings.detector)  # a bad count fails before any work
    started = time.time()
    print(f"[1/5] loading {ckpt or RELEASE_WEIGHTS}", file=sys.stderr)
    net, config, info = load_inference_net(ckpt)
    sizes = symbolic_sizes(net)
    print(f"[2/5] exporting ONNX (opset {spec.OPSET}, dynamic batch) to {work}", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_paths = export_onnx(net, work)
    print("[3/5] checking ONNX Runtime against PyTorch and linting", file=sys.stderr)
    detector_path = None
    if settings.detector == "centerface":
        from export.detector import export_detector

        detector_path = export_detector(work / f"{spec.FACE_DETECTOR}.onnx")
        print(f"  {spec.FACE_DETECTOR:<19} CenterFace rewritten to dynamic batch and size, parity checked", file=sys.stderr)
    names, reference_crops, reference_landmarks = aligned_reference_faces(references, settings, detector_path)
    real = spec.to_model_input(reference_crops[:8])
    parity = check_parity(net, onnx_paths, real)
    for result in parity:
        print(f"  {result.name:<19} {result.case:<24} max |onnx - torch| = {result.max_abs_difference:.2e}"
              f" {'ok' if result.ok else 'FAIL'}", file=sys.stderr)
    failures = [r for r in parity if not r.ok]
    if failures:
        raise ExportError("ONNX Runtime disagrees with PyTorch beyond 1e-4: " + ", ".join(
            f"{r.name} ({r.case}): {r.max_abs_difference:.3e}" for r in failures))
    problems = lint(onnx_paths)
    if problems:
        raise ExportError("\n".join(problems))
    if detector_path is not None:
        onnx_paths[spec.FACE_DETECTOR] = detector_path
    print(f"[4/5] bank from {len(names)} reference faces in {references}", file=sys.stderr)
    bank, entries, likeness, members = make_bank(net, config, onnx_paths, names, reference_crops, reference_landmarks)
    onnx_paths.pop(spec.APPEARANCE_ENCODER, None)  # made the bank; not served
    plans, skipped = build_tensorrt(onnx_paths, work, settings.max_batch)
    print(f"  TensorRT: {'built ' + ', '.join(plans) if plans else 'skipped: ' + skipped}", file=sys.stderr)
    if flavour == "tensorrt" and not plans:
        print("  the tensorrt flavour's configs are written without engines; build them where they will run "
              "(python -m export --flavour tensorrt on the serving GPU)", file=sys.stderr)
    print(f"[5/5] writing the {flavour} repository to {out}", file=sys.stderr)
    # The networks' batch limit is the pipeline's: it sends at most max_batch faces per call.
    write_repository(out, flavour, onnx_paths, bank, sizes, settings, net.design, plans, max_batch=settings.max_batch,
                     instances=instances, likeness=likeness, members=members)
    manifest = {
        "checkpoint": str(ckpt or RELEASE_WEIGHTS), "step": info.get("step"), "preset": config.preset, "flavour": flavour,
        "design": net.design.name, "donor_settings": donor_settings(config) if net.design.donors else None,
        "opset": spec.OPSET, "sizes": sizes, "bank": entries, "settings": settings.as_strings(),
        "instances": instances,
        "parity": [{"model": r.name, "case": r.case, "max_abs_difference": r.max_abs_difference} for r in parity],
        "tensorrt": sorted(plans) if plans else f"skipped: {skipped}", "seconds": round(time.time() - started, 1),
        "torch": torch.__version__,
    }
    (out / "export.json").write_text(json.dumps(manifest, indent=2))
    (out / spec.ENSEMBLE / "1" / "bank.json").write_text(json.dumps({"entries": entries}, indent=2))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, default=None, help="checkpoint or release weights (default: the committed release model)")
    parser.add_argument("--out", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--flavour", choices=FLAVOURS, default="python")
    parser.add_argument("--references", type=Path, default=ROOT / "assets" / "portraits", help="reference faces for the appearance bank")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "onnx", help="where the ONNX files (and plans) are written")
    parser.add_argument("--detector", choices=("centerface", "hog", "cnn"), default=PipelineSettings.detector,
                        help="centerface (default: a CNN that finds faces down to about 10 px), hog or cnn (dlib)")
    parser.add_argument("--landmarks", choices=LANDMARK_MODELS, default=PipelineSettings.landmarks,
                        help="dlib68 (default; dlib's 68-point model, whose training data's terms exclude commercial use) "
                             "or dlib5 (dlib's public-domain 5-point model: the choice for commercial use)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="other pipeline settings, e.g. min_face_px=32 detector_threshold=0.4 upsample=2 "
                             "(see facecamo.settings.PipelineSettings)")
    parser.add_argument("--instances", nargs="*", default=[], metavar="MODEL=COUNT",
                        help="instances per served model, e.g. facecamo=4 face_detector=2 (default: "
                             + " ".join(f"{k}={v}" for k, v in DEFAULT_INSTANCES.items()) + f"; 1 to {MAX_INSTANCES})")
    args = parser.parse_args(argv)
    try:
        pairs = dict(item.split("=", 1) for item in args.set if "=" in item)
        if len(pairs) != len(args.set):
            raise ValueError(f"--set takes KEY=VALUE items, got {args.set}")
        settings = PipelineSettings.from_strings({**pairs, "detector": args.detector, "landmarks": args.landmarks})
        unknown = set(pairs) - set(settings.as_strings())
        if unknown:
            raise ValueError(f"unknown pipeline settings {sorted(unknown)}; known: {sorted(settings.as_strings())}")
        instances = instance_counts(args.instances, settings.detector)
        manifest = run_export(args.ckpt, args.out, args.flavour, args.references, settings, args.work, instances)
    except (ExportError, DetectorExportError, FileNotFoundError, ValueError) as error:
        print(f"export failed: {error}", file=sys.stderr)
        return 2
    print(f"exported {args.out} ({args.flavour} flavour, {len(manifest['bank'])} appearance entries) in {manifest['seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
