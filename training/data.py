# SPDX-License-Identifier: Apache-2.0
"""The prepared dataset in memory and the pair sampler that builds each step's batch."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm


class FaceDataset:
    """Aligned crops of one split of a prepared folder (``make prepare``), decoded once into memory.

    Attributes:
        images: uint8 (N, 112, 112, 3) RGB.
        labels: int64 (N,) identity labels, contiguous 0..num_identities-1.
        identities: identity names indexed by label.
    """

    def __init__(self, root: str | Path, split: str = "train", progress: bool = True) -> None:
        root = Path(root)
        manifest = root / "manifest.csv"
        if not root.is_dir():
            raise FileNotFoundError(f"dataset folder {root} does not exist; create it with `make prepare DATA=<images> OUT={root}`")
        if not manifest.is_file():
            raise FileNotFoundError(f"{manifest} not found; {root} is not a prepared dataset (run `make prepare` first)")
        with open(manifest, newline="") as file:
            rows = [row for row in csv.DictReader(file) if row["split"] == split]
        if not rows:
            raise ValueError(f"{manifest} has no {split!r} rows; was preparation interrupted, or were no faces found?")
        self.identities = sorted({row["identity"] for row in rows})
        label_of = {name: index for index, name in enumerate(self.identities)}
        self.files = [root / row["file"] for row in rows]
        self.labels = torch.tensor([label_of[row["identity"]] for row in rows], dtype=torch.int64)
        images = []
        for file in tqdm(self.files, desc=f"loading {split} faces", unit="img", disable=not progress, dynamic_ncols=True):
            bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"cannot read {file} listed in {manifest}; rerun `make prepare`")
            images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        self.images = torch.from_numpy(np.stack(images))
        # The landmarks of every crop (``make prepare`` keeps them), when the folder has them: the donor design needs
        # them to warp donors onto each face.
        landmark_file = root / "landmarks.npy"
        self.landmarks: np.ndarray | None = None
        if landmark_file.is_file():
            with open(manifest, newline="") as file:
                in_split = np.array([row["split"] == split for row in csv.DictReader(file)])
            all_landmarks = np.load(landmark_file)
            if len(all_landmarks) == len(in_split):
                self.landmarks = all_landmarks[in_split].astype(np.float64)
        self.targets: torch.Tensor | None = None  # uint8 (N, R, 112, 112, 3) donor targets (see add_donor_targets)
        self.by_identity = [torch.nonzero(self.labels == label).flatten() for label in range(len(self.identities))]

    def add_donor_targets(self, per_face: int, donors: int, per_blend: int, seed: int, progress: bool = True) -> None:
        """Make ``per_face`` donor targets for every face (:mod:`training.donors`) from ``donors`` blended donors.

        Raises:
            ValueError: if the prepared folder has no landmarks (prepared before they were kept: rerun ``make prepare``).
        """
        from training.donors import build_donor_pool, build_targets

        if self.landmarks is None:
            raise ValueError("the donor design needs each face's landmarks (landmarks.npy beside manifest.csv); "
                             "rerun `make prepare` on this folder: it keeps what is done and adds them")
        images, labels = self.images.numpy(), self.labels.numpy()
        pool, members = build_donor_pool(images, self.landmarks, labels, donors, per_blend, seed)
        self.donors = pool
        self.targets = torch.from_numpy(build_targets(images, self.landmarks, labels, pool, members, per_face, seed,
                                                      progress=progress))

    def add_injection_residuals(self, path: Path) -> None:
        """Load per-face injection residuals made for this dataset's donor targets (:mod:`training.injection_bank`):
        ``injection_residuals`` int8 (N, 3, 112, 112) in units of ``injection_scale`` / 127, ``has_injection`` bool (N,).

        Raises:
            FileNotFoundError, ValueError: no such file, or one made for other targets."""
        from training.injection_bank import load_residuals

        self.injection_residuals, self.has_injection, self.injection_scale = load_residuals(Path(path), self)

    @property
    def num_identities(self) -> int:
        return len(self.identities)

    def __len__(self) -> int:
        return len(self.files)


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) RGB -> float (B, 3, H, W) in [-1, 1]."""
    return images.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float (B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3)."""
    return images.detach().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


@dataclass
class Batch:
    """One step's images, float (P, 3, 112, 112) in [-1, 1] each, and int64 (P,) labels of the sources.

    ``partner[i]`` shows the same person as ``source[i]``; ``reference[i]`` a different one; ``target[i]`` (donor
    design only, else None) a donor warped onto ``source[i]`` (:func:`facecamo.donor.donor_target`).
    ``injected[i]``: the per-face injection's residual on that target (float (P, 3, 112, 112) in model range, zero
    where none) and ``injected_mask[i]`` float (P,) 1 where there is one (``loss.injection_distill``; else None).
    """

    source: torch.Tensor
    partner: torch.Tensor
    reference: torch.Tensor
    labels: torch.Tensor
    target: torch.Tensor | None = None
    injected: torch.Tensor | None = None
    injected_mask: torch.Tensor | None = None

    def to(self, device: torch.device) -> "Batch":
        moved = [t.to(device, non_blocking=True) if t is not None else None
                 for t in (self.source, self.partner, self.reference, self.labels, self.target, self.injected,
                           self.injected_mask)]
        return Batch(*moved)


# Keep the dataset's uint8 images on the GPU when they take at most this share of its free memory (LFW's training
# split is about 0.35 GB): each batch is then gathered and converted there, with no host work or copy per step.
DEVICE_IMAGES_MAX_SHARE = 0.25


def images_on(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Where the sampler gathers batches from: ``images`` itself on the CPU; on a CUDA device, a copy there when it
    fits (:data:`DEVICE_IMAGES_MAX_SHARE`), else ``images`` (batches then go through pinned memory)."""
    if device.type != "cuda":
        return images
    free_bytes, _ = torch.cuda.mem_get_info(device)
    if images.numel() * images.element_size() <= DEVICE_IMAGES_MAX_SHARE * free_bytes:
        return images.to(device)
    return images


class PairSampler:
    """Draws P = batch_size/2 distinct identities and two images of each, flips at random, and splits every pair at
    random into a source and a target image. All randomness comes from its own ``torch.Generator``, whose state
    is checkpointed so that a resumed run draws exactly the batches the uninterrupted run would have.

    The random draws are made on the CPU in this process (a few hundred numbers: cheap, and exactly resumable; a
    DataLoader's workers would draw ahead of the step being checkpointed). The pixels are gathered, converted and
    flipped on ``device``: on a GPU the images live there (:func:`images_on`), or are copied in through pinned memory
    without blocking. Nothing in a draw waits for the GPU.

    Args:
        dataset: a :class:`FaceDataset` (or anything with ``images`` uint8 (N, 112, 112, 3), ``num_identities`` and
            ``by_identity``: int64 index tensors per label).
        batch_size: images per step, an even number >= 4.
        seed: seed of the sampler's generator.
        device: where the batches are wanted (default CPU).
        injected_share: share of the pairs (0..1) whose source is drawn from the faces with an injection residual
            (a partial bank holds a tenth of LFW's faces: drawn uniformly, a batch of 16 would hold one).
    """

    def __init__(self, dataset: FaceDataset, batch_size: int, seed: int, device: torch.device | str = "cpu",
                 injected_share: float = 0.0) -> None:
        if batch_size < 4 or batch_size % 2:
            raise ValueError(f"batch_size must be an even number >= 4 (pairs of images), got {batch_size}")
        self.pairs = batch_size // 2
        if dataset.num_identities < max(2, self.pairs):
            raise ValueError(f"the dataset has {dataset.num_identities} identities; a batch of {batch_size} needs {max(2, self.pairs)}")
        self.dataset = dataset
        self.device = torch.device(device)
        self.images = images_on(dataset.images, self.device)
        targets = getattr(dataset, "targets", None)
        self.targets = images_on(targets, self.device) if targets is not None else None
        # per-face injection residuals on each face's first target (FaceDataset.add_injection_residuals), or None
        residuals = getattr(dataset, "injection_residuals", None)
        self.residuals = images_on(residuals, self.device) if residuals is not None else None
        self.has_residual = dataset.has_injection if residuals is not None else None  # bool (N,), on the CPU: drawn there
        self.gather_on_device = self.images.device.type == self.device.type  # else: host images, CUDA batches
        self.generator = torch.Generator().manual_seed(seed)
        if not 0.0 <= injected_share <= 1.0:
            raise ValueError(f"injected_share must be within 0..1, got {injected_share}")
        self.injected_pairs = round(injected_share * self.pairs) if self.has_residual is not None else 0
        if self.injected_pairs:  # each identity's faces with a residual
            banked = {label: members[self.has_residual[members]] for label, members in enumerate(dataset.by_identity)}
            self.banked = {label: members for label, members in banked.items() if len(members)}
            self.banked_labels = torch.tensor(sorted(self.banked), dtype=torch.long)
            self.injected_pairs = min(self.injected_pairs, len(self.banked_labels))  # pairs hold distinct identities

    def __call__(self) -> Batch:
        g = self.generator
        labels = self._labels()
        first, second = [], []
        for position, label in enumerate(labels.tolist()):
            members = self.dataset.by_identity[label]
            if position < self.injected_pairs:  # the source is one of the identity's faces with a residual
                source = self.banked[label][torch.randint(len(self.banked[label]), (1,), generator=g)][0]
                others = members[members != source]
                partner = others[torch.randint(len(others), (1,), generator=g)][0] if len(others) else source
                first.append(source)
                second.append(partner)
                continue
            if len(members) >= 2:
                chosen = members[torch.randperm(len(members), generator=g)[:2]]
            else:
                chosen = members[[0, 0]]  # a one-photo identity is its own partner
            first.append(chosen[0])
            second.append(chosen[1])
        swap = torch.rand(self.pairs, generator=g) < 0.5
        swap[: self.injected_pairs] = False  # (their source is the banked face)
        first_t, second_t = torch.stack(first), torch.stack(second)
        source_index = torch.where(swap, second_t, first_t)
        target_index = torch.where(swap, first_t, second_t)
        shift = int(torch.randint(1, self.pairs, (1,), generator=g)) if self.pairs > 1 else 0
        flip = torch.rand(2 * self.pairs, generator=g) < 0.5
        index = torch.cat([source_index, target_index])
        if self.gather_on_device:
            pixels = self.images[index.to(self.device, non_blocking=True)]
        else:  # host images, CUDA batches: the pinned block is not reused before its copy has finished
            pixels = self.images[index].pin_memory().to(self.device, non_blocking=True)
        # Mirrored along the width (dim 2 of uint8 NHWC: a quarter of the bytes of the float batch) with torch.where,
        # not boolean-mask assignment: a mask index needs its count on the host, which waits for the GPU.
        pixels = torch.where(flip.to(self.device, non_blocking=True).view(-1, 1, 1, 1), pixels.flip(2), pixels)
        images = to_model_range(pixels)
        source, target = images.split(self.pairs)
        donor_target = injected = injected_mask = None
        if self.targets is not None:  # one of each source's donor targets, mirrored with its source
            pick = torch.randint(self.targets.shape[1], (self.pairs,), generator=g)
            if self.residuals is not None:  # a face with an injection residual gets the target it was made on
                pick = torch.where(self.has_residual[source_index], torch.zeros_like(pick), pick)
            if self.targets.device.type == self.device.type:
                chosen = self.targets[source_index.to(self.device, non_blocking=True), pick.to(self.device, non_blocking=True)]
            else:
                chosen = self.targets[source_index, pick].pin_memory().to(self.device, non_blocking=True)
            source_flip = flip[: self.pairs].to(self.device, non_blocking=True).view(-1, 1, 1, 1)
            donor_target = to_model_range(torch.where(source_flip, chosen.flip(2), chosen))
            if self.residuals is not None:  # NCHW: mirrored along dim 3
                residual = self.residuals[source_index.to(self.residuals.device)].to(self.device, non_blocking=True)
                residual = residual.float() * (self.dataset.injection_scale / 127.0)
                injected = torch.where(source_flip, residual.flip(3), residual)
                injected_mask = self.has_residual[source_index].float().to(self.device, non_blocking=True)
        return Batch(source=source, partner=target, reference=target.roll(shift, dims=0),
                     labels=labels.to(self.device, non_blocking=True), target=donor_target, injected=injected,
                     injected_mask=injected_mask)

    def _labels(self) -> torch.Tensor:
        """int64 (pairs,) distinct identities: the first ``injected_pairs`` among those with a residual."""
        g = self.generator
        if not self.injected_pairs:
            return torch.randperm(self.dataset.num_identities, generator=g)[: self.pairs]
        banked = self.banked_labels[torch.randperm(len(self.banked_labels), generator=g)[: self.injected_pairs]]
        rest = torch.randperm(self.dataset.num_identities, generator=g)
        rest = rest[~torch.isin(rest, banked)][: self.pairs - len(banked)]
        return torch.cat([banked, rest])

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def load_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
