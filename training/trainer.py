"""The training loop. It is handed built objects (networks, optimisers, sampler, writer) and builds nothing."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from training import losses
from training.checkpoint import save_checkpoint
from training.config import Config
from training.data import Batch, PairSampler, to_uint8


@dataclass
class Optimizers:
    generator: torch.optim.Optimizer  # Adam: E_I, classifier, G
    appearance: torch.optim.Optimizer  # SGD + momentum: E_A
    discriminator: torch.optim.Optimizer  # Adam: D

    def state_dict(self) -> dict:
        return {name: getattr(self, name).state_dict() for name in ("generator", "appearance", "discriminator")}

    def load_state_dict(self, state: dict) -> None:
        for name in ("generator", "appearance", "discriminator"):
            getattr(self, name).load_state_dict(state[name])


def build_optimizers(net: nn.Module, discriminator: nn.Module, config: Config) -> Optimizers:
    """The paper's optimisers: Adam (lr 1e-4) for E_I, G and D; SGD with momentum 0.9 (lr 1e-4) for E_A."""
    train = config.train
    appearance = list(net.appearance_encoder.parameters())
    appearance_ids = {id(p) for p in appearance}
    rest = [p for p in net.parameters() if id(p) not in appearance_ids]
    return Optimizers(
        generator=torch.optim.Adam(rest, lr=train.lr, betas=tuple(train.adam_betas), weight_decay=train.weight_decay),
        appearance=torch.optim.SGD(appearance, lr=train.appearance_lr, momentum=train.appearance_momentum, weight_decay=train.weight_decay),
        discriminator=torch.optim.Adam(discriminator.parameters(), lr=train.lr, betas=tuple(train.adam_betas), weight_decay=train.weight_decay),
    )


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


class Trainer:
    """Alternates a generator-side step (E_I, E_A, G, classifier) and a discriminator step.

    Args:
        net: :class:`training.models.CamouflageNet`, possibly wrapped in DistributedDataParallel.
        discriminator: :class:`training.models.MultiScaleDiscriminator`, possibly wrapped likewise.
        teacher: frozen face embedder or None.
        optimizers: from :func:`build_optimizers`.
        sampler: draws each step's :class:`Batch`.
        config: the resolved config (saved into every checkpoint).
        run: the run folder (checkpoints/, samples/, tensorboard/).
        writer: a TensorBoard SummaryWriter on rank 0, else None.
        preview: (sources, references) float (n, 3, 112, 112) tensors for the Figure-3 grid.
        rank, world_size: process index and count (1 without torchrun).
        step: the step to start from (after a resume).
    """

    def __init__(self, net, discriminator, teacher, optimizers: Optimizers, sampler: PairSampler, config: Config,
                 run: Path, writer, preview: tuple[torch.Tensor, torch.Tensor], rank: int = 0, world_size: int = 1,
                 step: int = 0, device: torch.device = torch.device("cpu"), num_identities: int = 0,
                 lineage: list[dict] | None = None) -> None:
        self.net, self.discriminator, self.teacher = net, discriminator, teacher
        self.optimizers, self.sampler, self.config = optimizers, sampler, config
        self.run, self.writer, self.preview = Path(run), writer, preview
        self.rank, self.world_size, self.step, self.device = rank, world_size, step, device
        self.num_identities = num_identities
        self.lineage = lineage or []  # the weights this run started from, oldest first: [{"weights", "step"}]

    def generator_step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        weights = self.config.loss
        outputs = self.net(batch.source, batch.partner, batch.reference)
        terms, logs = {}, {}
        for name, (loss, log) in {
            "rec": losses.reconstruction_loss(outputs["recon_self"], outputs["recon_partner"], batch.source),
            "f_id": losses.feature_identity_loss(outputs["id_generated"], outputs["id_source"]),
            "f_app": losses.feature_appearance_loss(outputs["app_generated"], outputs["app_reference"]),
            "dif": losses.difference_loss(outputs["generated"], batch.source, weights.difference_margin),
            "id": losses.identity_loss([outputs["logits_source"], outputs["logits_partner"], outputs["logits_generated"]], batch.labels),
        }.items():
            terms[name] = loss
            logs.update(log)
        if weights.structure_difference > 0:
            terms["struct"], log = losses.structure_difference_loss(outputs["generated"], batch.source,
                                                                    weights.structure_max_ssim)
            logs.update(log)
        discriminator = unwrap(self.discriminator)
        discriminator.requires_grad_(False)  # the generator step must not write gradients into D
        fake_images = torch.cat([outputs["generated"], outputs["recon_partner"]])
        terms["adv_g"], log = losses.adversarial_generator_loss(discriminator(fake_images))
        discriminator.requires_grad_(True)
        logs.update(log)
        if self.teacher is not None and weights.teacher > 0:
            with torch.no_grad():
                embed_source = self.teacher(batch.source)
            terms["teacher"], log = losses.teacher_identity_loss(self.teacher(outputs["generated"]), embed_source)
            logs.update(log)
        total, log = losses.total_loss(terms, weights)
        logs.update(log)
        self.optimizers.generator.zero_grad(set_to_none=True)
        self.optimizers.appearance.zero_grad(set_to_none=True)
        total.backward()
        self.optimizers.generator.step()
        self.optimizers.appearance.step()
        return fake_images.detach(), logs

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        scores = self.discriminator(torch.cat([real, fake]))  # one call: DDP sees each parameter once
        real_scores = [s[: len(real)] for s in scores]
        fake_scores = [s[len(real):] for s in scores]
        loss, logs = losses.adversarial_discriminator_loss(real_scores, fake_scores)
        self.optimizers.discriminator.zero_grad(set_to_none=True)
        (self.config.loss.adversarial * loss).backward()
        self.optimizers.discriminator.step()
        return logs

    def train(self, until_step: int) -> None:
        """Train until ``until_step``, logging, drawing the grid and checkpointing on the configured schedule."""
        train = self.config.train
        bar = tqdm(total=until_step, initial=self.step, desc="training", unit="step", disable=self.rank != 0, dynamic_ncols=True)
        while self.step < until_step:
            started = time.perf_counter()
            batch = self.sampler()
            batch = Batch(*(t.to(self.device) for t in (batch.source, batch.partner, batch.reference, batch.labels)))
            fake, logs = self.generator_step(batch)
            logs.update(self.discriminator_step(torch.cat([batch.source, batch.reference]), fake))
            self.step += 1
            samples_per_second = self.world_size * 2 * len(batch.source) / (time.perf_counter() - started)
            if self.rank == 0:
                bar.update()
                bar.set_postfix({"total": f"{logs['total']:.3f}", "rec": f"{logs['rec']:.3f}", "id_acc": f"{logs['id_acc']:.2f}",
                                 **({"t_cos": f"{logs['teacher_cos']:.2f}"} if "teacher_cos" in logs else {}),
                                 "samples/s": f"{samples_per_second:.1f}"}, refresh=False)
                if self.writer is not None and self.step % train.log_every == 0:
                    for name, value in logs.items():
                        self.writer.add_scalar(f"loss/{name}", value, self.step)
                    self.writer.add_scalar("speed/samples_per_second", samples_per_second, self.step)
            if self.step % train.image_every == 0 or self.step == until_step:
                self.save_preview()
            if self.step % train.save_every == 0 or self.step == until_step:
                self.save()
        bar.close()

    @torch.no_grad()
    def save_preview(self) -> None:
        """Figure 3 of the paper: sources down the side, references across the top, generated faces inside."""
        if self.rank != 0:
            return
        net = unwrap(self.net)
        was_training = net.training
        net.eval()
        sources, references = (t.to(self.device) for t in self.preview)
        grid = figure3_grid(net, sources, references)
        net.train(was_training)
        folder = self.run / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"step_{self.step:08d}.png"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        if self.writer is not None:
            self.writer.add_image("figure3", grid, self.step, dataformats="HWC")

    def save(self) -> None:
        rng = {"sampler": self.sampler.state(), "torch": torch.get_rng_state()}
        if self.world_size > 1:
            gathered: list = [None] * self.world_size
            dist.all_gather_object(gathered, rng)
            rng = {"per_rank": gathered}
        else:
            rng = {"per_rank": [rng]}
        if self.rank == 0:
            net, discriminator = unwrap(self.net), unwrap(self.discriminator)
            save_checkpoint(self.run, {
                "config": self.config.to_dict(),
                "step": self.step,
                "num_identities": self.num_identities,
                "world_size": self.world_size,
                "lineage": self.lineage,
                "model": {
                    "identity_encoder": net.identity_encoder.state_dict(),
                    "classifier": net.classifier.state_dict(),
                    "appearance_encoder": net.appearance_encoder.state_dict(),
                    "generator": net.generator.state_dict(),
                    "discriminator": discriminator.state_dict(),
                },
                "optimizers": self.optimizers.state_dict(),
                "rng": rng,
            }, self.config.train.keep_last)
        if self.world_size > 1:
            dist.barrier()


def figure3_grid(net, sources: torch.Tensor, references: torch.Tensor) -> np.ndarray:
    """uint8 ((n+1)*112, (m+1)*112, 3) grid: white corner, m references on top, n sources down the left,
    cell (i, j) = G(E_I(source_i), E_A(reference_j))."""
    n, m, size = len(sources), len(references), sources.shape[-1]
    identity = net.identity_encoder(sources)
    appearance = net.appearance_encoder(references)
    grid = np.full(((n + 1) * size, (m + 1) * size, 3), 255, dtype=np.uint8)
    grid[size:, :size] = to_uint8(sources).reshape(n * size, size, 3).cpu().numpy()
    grid[:size, size:] = to_uint8(references).permute(1, 0, 2, 3).reshape(size, m * size, 3).cpu().numpy()
    for i in range(n):
        faces = net.generator(identity[i : i + 1].expand(m, -1, -1, -1), appearance)
        grid[(i + 1) * size : (i + 2) * size, size:] = to_uint8(faces).permute(1, 0, 2, 3).reshape(size, m * size, 3).cpu().numpy()
    return grid
