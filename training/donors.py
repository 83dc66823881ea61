# SPDX-License-Identifier: Apache-2.0
"""Donor targets for training the donor design: blended donors (nobody's face) and, for every training face, a few
targets made with :func:`facecamo.donor.donor_target`, the very function the frame pipeline serves with.

Targets are made once per run, before the first step, in a pool of processes, and then live beside the images (on
the GPU when there is one): a step only gathers them, so making them costs no step time.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facecamo.donor import build_donor_pool, donor_target

__all__ = ["build_donor_pool", "build_targets"]

_SHARED: dict = {}  # the arrays the workers read (each spawned worker maps them once, not per task)


def _init_worker(folder: str | None = None) -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already
    if folder is not None:  # memory-mapped, not pickled: 16 workers share one copy of the images
        _SHARED.update({name.stem: np.load(name, mmap_mode="r") for name in Path(folder).glob("*.npy")})


def _targets_for(index: int) -> np.ndarray:
    images, landmarks, donors, choice = (_SHARED[k] for k in ("images", "landmarks", "donors", "choice"))
    return np.stack([donor_target(images[index], landmarks[index], donors[d])[0] for d in choice[index]])


def build_targets(images: np.ndarray, landmarks: np.ndarray, labels: np.ndarray, donors: np.ndarray,
                  donor_labels: np.ndarray, per_face: int, seed: int, workers: int | None = None,
                  progress: bool = True) -> np.ndarray:
    """``per_face`` donor targets for every face, each from a random donor that blends none of the face's identity.

    Returns: uint8 (N, per_face, 112, 112, 3).
    """
    rng = np.random.default_rng(seed + 1)
    choice = np.empty((len(images), per_face), np.int64)
    for index in range(len(images)):
        allowed = np.flatnonzero(~(donor_labels == labels[index]).any(axis=1))
        if len(allowed) == 0:
            raise ValueError(f"every one of the {len(donors)} donors blends identity {labels[index]}: "
                             "raise train.donor_pool or lower model.donors_per_blend")
        choice[index] = rng.choice(allowed, per_face, replace=len(allowed) < per_face)
    _SHARED.update(images=images, landmarks=landmarks, donors=donors, choice=choice)
    workers = workers or min(os.cpu_count() or 1, 16)
    out = np.empty((len(images), per_face, *images.shape[1:]), np.uint8)
    bar = tqdm(total=len(images), desc="donor targets", unit="face", disable=not progress, dynamic_ncols=True)
    try:
        if workers > 1:
            # Spawned, not forked: a fork after CUDA and OpenCV's thread pool have started can deadlock (it did on
            # the GPU machine). The arrays go through .npy files the workers memory-map: pickling them to 16 workers
            # took 100 s there.
            with tempfile.TemporaryDirectory(prefix="donor_targets_") as folder:
                for name, array in _SHARED.items():
                    np.save(Path(folder) / f"{name}.npy", np.ascontiguousarray(array))
                with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(folder,)) as pool:
                    for index, targets in enumerate(pool.imap(_targets_for, range(len(images)), chunksize=64)):
                        out[index] = targets
                        bar.update()
        else:
            for index in range(len(images)):
                out[index] = _targets_for(index)
                bar.update()
    finally:
        bar.close()
        _SHARED.clear()
    return out
