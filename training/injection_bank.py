# SPDX-License-Identifier: Apache-2.0
"""Per-face injection residuals of the training set, for distilling the test-time injection into G (issue 17).

    python -m training.injection_bank --data <prepared folder> --out <file.npz> [--preset inject_cpu] [--faces 3000]
        [--minutes 40] [--steps 20] [--copies 3]

The evaluation measured the amortisation gap: the test-time injection (:func:`training.injection.inject_identity`),
with its bound scaled by v5's own visibility mask, reached dlib TAR 0.231 at FAR 1e-3 where v5's generator reached
0.020 (same 100 LFW images, donors and pairs, SSIM to the donor target 0.966 against 0.954): the limit v5 works within
is not what holds it back, the network is. Training G against the teacher alone gives it one number per face to learn
from; this file gives it the residual a per-face optimiser found, a 3x112x112 target per face
(``loss.injection_distill``).

Each training face ``i`` (a random subset, in a fixed order) gets the masked injection on its first donor target
``targets[i, 0]``, exactly the target the trainer builds from the same preset and seed
(:meth:`training.data.FaceDataset.add_donor_targets`); a fingerprint of those targets is stored and checked when
training loads the file, so a file made for other targets is refused. The file is written after every chunk and a
rerun resumes it (written every few minutes and at the end): start it in the background and stop it when enough faces are done.

File (numpy ``.npz``): ``faces`` int64 (M,) training-face indices; ``residuals`` int8 (M, 3, 112, 112), the residual in
model range times 127 / ``scale``; ``scale`` float32 (the injection's bound in model range); ``fingerprint`` the
targets' check; ``settings`` the injection's settings as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from training.data import FaceDataset, to_model_range
from training.injection import InjectionSettings, inject_identity


SAVE_EVERY_S = 300.0
"""How often the file is rewritten while injecting (it holds every face done so far, tens of MB)."""


def targets_fingerprint(targets: torch.Tensor, faces: np.ndarray) -> str:
    """sha256 of the first donor targets of ``faces`` (uint8 (N, R, 112, 112, 3) ``targets``): which targets the
    residuals belong to."""
    digest = hashlib.sha256()
    for i in faces:
        digest.update(targets[int(i), 0].numpy().tobytes())
    return digest.hexdigest()


def read_bank(path: Path) -> dict:
    """The file's arrays (``faces``, ``residuals`` int8, ``scale``, ``fingerprint``, ``settings``)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def load_residuals(path: Path, dataset: FaceDataset) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The residuals of ``path`` for the faces of ``dataset`` (with its donor targets built).

    Returns: (int8 (N, 3, 112, 112) residual per training face, zero where none, in units of ``scale`` / 127 of model
        range (int8 keeps LFW's 9,500 faces at 360 MB, not 1.4 GB); bool (N,) which faces have one; scale).
    Raises:
        FileNotFoundError: no such file. ValueError: a file made for other donor targets (another preset, seed or
        dataset), or faces outside the dataset."""
    if not path.is_file():
        raise FileNotFoundError(f"injection residuals {path} not found; make them with `python -m training.injection_bank`")
    bank = read_bank(path)
    faces = bank["faces"].astype(np.int64)
    if dataset.targets is None or (len(faces) and faces.max() >= len(dataset)):
        raise ValueError(f"{path} names faces this dataset does not have (or it has no donor targets)")
    if str(bank["fingerprint"]) != targets_fingerprint(dataset.targets, faces):
        raise ValueError(f"{path} was made for other donor targets than this run builds (another preset, seed or dataset); "
                         "make it again with this run's --preset and --data")
    residuals = torch.zeros((len(dataset), 3, 112, 112), dtype=torch.int8)
    residuals[torch.from_numpy(faces)] = torch.from_numpy(bank["residuals"])
    have = torch.zeros(len(dataset), dtype=torch.bool)
    have[torch.from_numpy(faces)] = True
    return residuals, have, float(bank["scale"])


def write_bank(path: Path, faces: list[int], residuals: list[np.ndarray], scale: float, fingerprint: str,
               settings: InjectionSettings) -> None:
    tmp = path.with_suffix(".partial.npz")
    np.savez(tmp, faces=np.array(faces, np.int64), residuals=np.concatenate(residuals) if residuals else
             np.zeros((0, 3, 112, 112), np.int8), scale=np.float32(scale), fingerprint=np.array(fingerprint),
             settings=np.array(json.dumps(asdict(settings))))
    tmp.replace(path)


def build(data: Path, out: Path, preset: str, faces: int, settings: InjectionSettings, batch: int = 16,
          minutes: float | None = None, seed: int = 0, threads: int = 2) -> int:
    """Make (or extend) ``out`` to ``faces`` training faces; returns how many it holds."""
    from training.config import load_config
    from training.models.face_embedder import OnnxFaceEmbedder
    from training.train import resolve_teacher_path

    torch.set_num_threads(threads)
    config = load_config(preset, [])
    dataset = FaceDataset(data, "train")
    dataset.add_donor_targets(config.train.donor_targets, config.train.donor_pool, config.model.donors_per_blend, seed=config.train.seed)
    order = np.random.default_rng(seed).permutation(len(dataset))[:faces]
    done_faces: list[int] = []
    done_residuals: list[np.ndarray] = []
    scale = 2.0 * settings.bound / 255.0
    if out.is_file():
        earlier = read_bank(out)
        done_faces, done_residuals = [int(i) for i in earlier["faces"]], [earlier["residuals"]]
        if done_faces != [int(i) for i in order[: len(done_faces)]]:
            raise ValueError(f"{out} holds other faces than this run would make (another seed or dataset); pass another --out")
    teacher = OnnxFaceEmbedder(resolve_teacher_path(config)).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    started = saved = time.time()
    todo = order[len(done_faces):]
    with tqdm(total=len(order), initial=len(done_faces), desc="injecting", unit="face", dynamic_ncols=True) as bar:
        for first in range(0, len(todo), batch):
            if minutes is not None and time.time() - started > 60 * minutes:
                break
            chunk = todo[first : first + batch]
            index = torch.from_numpy(chunk)
            sources = to_model_range(dataset.images[index])
            targets = to_model_range(dataset.targets[index, 0])
            injected = inject_identity(teacher, sources, targets, settings, seed=int(chunk[0]))
            residual = (injected - targets).numpy()
            done_residuals.append(np.clip(np.rint(residual * 127.0 / scale), -127, 127).astype(np.int8))
            done_faces += [int(i) for i in chunk]
            bar.update(len(chunk))
            if time.time() - saved > SAVE_EVERY_S:
                write_bank(out, done_faces, done_residuals, scale, targets_fingerprint(dataset.targets, np.array(done_faces)), settings)
                saved = time.time()
    write_bank(out, done_faces, done_residuals, scale, targets_fingerprint(dataset.targets, np.array(done_faces)), settings)
    return len(done_faces)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a folder made by `make prepare`")
    parser.add_argument("--out", type=Path, required=True, help="the .npz file (a rerun extends it)")
    parser.add_argument("--preset", default="inject_cpu", help="the preset the residuals are for (its donor targets and teacher)")
    parser.add_argument("--faces", type=int, default=3000, help="training faces to inject (default 3000)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long (a rerun goes on)")
    parser.add_argument("--steps", type=int, default=InjectionSettings.steps)
    parser.add_argument("--copies", type=int, default=InjectionSettings.copies)
    parser.add_argument("--unmasked", action="store_true", help="the full bound everywhere (default: v5's visibility mask)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    settings = InjectionSettings(steps=args.steps, copies=args.copies, masked=not args.unmasked)
    try:
        held = build(args.data, args.out, args.preset, args.faces, settings, args.batch, args.minutes, threads=args.threads)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.out}: {held} faces")
    return 0


if __name__ == "__main__":
    sys.exit(main())
