# SPDX-License-Identifier: Apache-2.0
"""Where does a donor-design model lose the identity? A quick diagnostic on prepared crops, before a full `make eval`.

    python -m training.probe_identity --data <prepared folder> [--ckpt <.pt>] --teacher <onnx> [--faces 450]

On aligned crops of the chosen split (test identities by default: never seen in training), for every two faces:
cosine similarity of (a) the teacher's embeddings of the originals, (b) E_I's identity vectors of the originals,
(c) the teacher's embedding of one face's donor target (no network) against the other's original, (d) the teacher's
embedding of one face's camouflaged crop against the other's original, and (e) E_I's vector of the camouflaged crop
against the other's original. Each row reports the balanced verification accuracy at its best threshold (the mean of
the genuine and impostor accept rates), so (b) says how much identity E_I's vector holds and (d) how much of it G
carries into the face, as the teacher sees it. The teacher flatters models trained with it; judge releases with
`make eval` (dlib). Writes nothing; prints a table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facecamo.donor import donor_target
from facecamo.design import design_named
from training.data import FaceDataset, to_model_range
from training.donors import build_donor_pool
from training.models.face_embedder import OnnxFaceEmbedder
from training.weights import load_inference_net


def best_threshold_accuracy(similarity: np.ndarray, labels: np.ndarray) -> float:
    """Balanced verification accuracy at the best threshold over all pairs (i < j) of a float (N, N) similarity
    matrix with int (N,) identity labels: mean of the genuine accept rate and the impostor reject rate."""
    first, second = np.triu_indices(len(labels), 1)
    scores, same = similarity[first, second], labels[first] == labels[second]
    if not same.any() or same.all():
        raise ValueError("the faces need at least one genuine and one impostor pair: choose more faces or identities")
    best = 0.0
    for threshold in np.quantile(scores, np.linspace(0.005, 0.995, 199)):
        accept = scores > threshold
        best = max(best, 0.5 * (accept[same].mean() + (~accept[~same]).mean()))
    return float(best)


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """float (N, D) x (N, D) -> float (N, N) cosine similarities, row i of ``a`` against row j of ``b``."""
    return (F.normalize(a.flatten(1), dim=1) @ F.normalize(b.flatten(1), dim=1).T).numpy()


def probe(data: Path, ckpt: Path | None, teacher_path: Path, faces: int, split: str, seed: int) -> dict[str, float]:
    """The five accuracies (see the module docstring) on up to ``faces`` crops, three per identity with >= 2 photos."""
    dataset = FaceDataset(data, split=split, progress=False)
    if dataset.landmarks is None:
        raise ValueError(f"{data} has no landmarks.npy; rerun `make prepare` on it")
    chosen = [i for members in dataset.by_identity if len(members) >= 2 for i in members[:3].tolist()][:faces]
    images, landmarks = dataset.images.numpy()[chosen], dataset.landmarks[chosen]
    labels = dataset.labels.numpy()[chosen]
    net, config, _ = load_inference_net(ckpt)
    if design_named(config.model.design).identity_spatial:
        raise ValueError(f"{ckpt or 'the release'} is a {config.model.design}-design model; the probe reads the donor design's identity vector")
    teacher = OnnxFaceEmbedder(teacher_path).eval()
    pool, _ = build_donor_pool(images, landmarks, labels, min(64, len(images)), config.model.donors_per_blend, seed)
    donors = np.random.default_rng(seed).integers(len(pool), size=len(images))
    targets = np.stack([donor_target(images[i], landmarks[i], pool[donors[i]])[0] for i in range(len(images))])

    def batched(function, tensor: torch.Tensor) -> torch.Tensor:
        return torch.cat([function(tensor[i : i + 64]) for i in range(0, len(tensor), 64)])

    with torch.no_grad():
        originals, donor_targets = to_model_range(torch.from_numpy(images)), to_model_range(torch.from_numpy(targets))
        vectors = batched(net.identity_encoder, originals)
        outputs = torch.cat([net.generator(vectors[i : i + 64], donor_targets[i : i + 64]) for i in range(0, len(vectors), 64)])
        teacher_originals = batched(teacher, originals)
        rows = {
            "teacher: original vs original": cosine_matrix(teacher_originals, teacher_originals),
            "E_I vector: original vs original": cosine_matrix(vectors, vectors),
            "teacher: donor target vs original": cosine_matrix(batched(teacher, donor_targets), teacher_originals),
            "teacher: camouflaged vs original": cosine_matrix(batched(teacher, outputs), teacher_originals),
            "E_I vector: camouflaged vs original": cosine_matrix(batched(net.identity_encoder, outputs), vectors),
        }
    return {name: best_threshold_accuracy(matrix, labels) for name, matrix in rows.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a folder made by `make prepare` (with landmarks.npy)")
    parser.add_argument("--ckpt", type=Path, default=None, help="release weights or a training checkpoint (default: the release)")
    parser.add_argument("--teacher", type=Path, required=True, help="ONNX face embedder, e.g. ../shared/models/face_embedding/mobilefacenet.onnx")
    parser.add_argument("--faces", type=int, default=450)
    parser.add_argument("--split", default="test", choices=("test", "train"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        results = probe(args.data, args.ckpt, args.teacher, args.faces, args.split, args.seed)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"| pairs of {args.split} faces | balanced verification accuracy (best threshold) |\n|---|---|")
    for name, accuracy in results.items():
        print(f"| {name} | {accuracy:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
