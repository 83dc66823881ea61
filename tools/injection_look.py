# SPDX-License-Identifier: Apache-2.0
"""Look at what the per-face injection costs a face: test crops as source | donor target | the release | test-time
injection at each number of steps, side by side, enlarged.

    python -m tools.injection_look --data <prepared folder> --out <picture.jpg> [--teacher <onnx>] [--steps 20 100]

`make eval` scores the test-time injection (``inject``); this shows it. The residual is drawn over the whole aligned
crop (the evaluation pastes it through the face region only), so a pattern shows wherever the optimiser put one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from facecamo.donor import build_donor_pool, donor_target
from training.data import FaceDataset, to_model_range
from training.injection import InjectionSettings, inject_identity
from training.models.face_embedder import OnnxFaceEmbedder
from training.weights import load_inference_net

DEFAULT_TEACHER = Path("../shared/models/face_embedding/mobilefacenet.onnx")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3)."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="prepared folder (make prepare): its test split")
    parser.add_argument("--out", type=Path, required=True, help="picture to write (.jpg or .png)")
    parser.add_argument("--ckpt", type=Path, default=None, help="weights (default: the release)")
    parser.add_argument("--teacher", type=Path, default=DEFAULT_TEACHER, help="recogniser the injection optimises against")
    parser.add_argument("--steps", type=int, nargs="+", default=[20, 100], help="one column per number of Adam steps")
    parser.add_argument("--faces", type=int, default=6)
    parser.add_argument("--bound", type=float, default=12.0, help="largest |residual| in grey levels")
    args = parser.parse_args(argv)
    if not args.teacher.is_file():
        print(f"error: the teacher {args.teacher} is not there; pass --teacher <recogniser .onnx>", file=sys.stderr)
        return 2
    data = FaceDataset(args.data, split="test", progress=False)
    if data.landmarks is None:
        print(f"error: {args.data} has no landmarks.npy; rerun `make prepare` on it", file=sys.stderr)
        return 2
    chosen = [int(m[0]) for m in data.by_identity][:: max(len(data.by_identity) // args.faces, 1)][: args.faces]
    images, landmarks = data.images.numpy()[chosen], data.landmarks[chosen]
    labels = data.labels.numpy()
    pool_from = ~np.isin(labels, labels[chosen])  # donors blended from other people than the ones shown
    pool, _ = build_donor_pool(data.images.numpy()[pool_from], data.landmarks[pool_from], labels[pool_from], 16, 3,
                               seed=0)
    targets = np.stack([donor_target(images[i], landmarks[i], pool[i % len(pool)])[0] for i in range(len(images))])
    net, _, _ = load_inference_net(args.ckpt)
    teacher = OnnxFaceEmbedder(args.teacher).eval()
    sources, donor_targets = to_model_range(torch.from_numpy(images)), to_model_range(torch.from_numpy(targets))
    with torch.no_grad():
        release = net.generator(net.identity_encoder(sources), donor_targets)
    columns = [sources, donor_targets, release]
    for steps in args.steps:
        settings = InjectionSettings(steps=steps, bound=args.bound)
        columns.append(inject_identity(teacher, sources, donor_targets, settings).detach())
    faces = [to_uint8(c) for c in columns]
    grid = np.concatenate([np.concatenate([c[i] for c in faces], axis=1) for i in range(len(images))], axis=0)
    grid = cv2.resize(grid, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"written: {args.out} (columns: source, donor target, the release, injection at {args.steps} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
