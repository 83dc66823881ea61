# SPDX-License-Identifier: Apache-2.0
"""The training loop. It is handed built objects (networks, optimisers, sampler, writer) and builds nothing."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from facecamo.design import design_named
from training.checkpoint import save_checkpoint
from training.config import Config
from training.data import Batch, PairSampler, to_uint8
from training.losses import Logs, Objective, identity_distill_loss, terms_for


@dataclass
class Optimizers:
    generator: torch.optim.Optimizer  # Adam: E_I, classifier, G
    appearance: torch.optim.Optimizer | None  # SGD + momentum: E_A (None: the donor design has no E_A)
    discriminator: torch.optim.Optimizer  # Adam: D

    def all(self) -> dict[str, torch.optim.Optimizer]:
        return {name: optimizer for name in ("generator", "appearance", "discriminator")
                if (optimizer := getattr(self, name)) is not None}

    def state_dict(self) -> dict:
        return {name: optimizer.state_dict() for name, optimizer in self.all().items()}

    def load_state_dict(self, state: dict) -> None:
        for name, optimizer in self.all().items():
            optimizer.load_state_dict(state[name])


def build_optimizers(net: nn.Module, discriminator: nn.Module, config: Config) -> Optimizers:
    """The paper's optimisers: Adam (lr 1e-4) for E_I, G and D; SGD with momentum 0.9 (lr 1e-4) for E_A."""
    train = config.train
    appearance = list(net.appearance_encoder.parameters()) if unwrap(net).design.appearance_encoder else []
    appearance_ids = {id(p) for p in appearance}
    rest = [p for p in net.parameters() if id(p) not in appearance_ids]
    return Optimizers(
        generator=torch.optim.Adam(rest, lr=train.lr, betas=tuple(train.adam_betas), weight_decay=train.weight_decay),
        appearance=torch.optim.SGD(appearance, lr=train.appearance_lr, momentum=train.appearance_momentum,
                                   weight_decay=train.weight_decay) if appearance else None,
        discriminator=torch.optim.Adam(discriminator.parameters(), lr=train.lr, betas=tuple(train.adam_betas), weight_decay=train.weight_decay),
    )


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


class LogWindow:
    """Sums each step's log tensors where they are (on the GPU, without waiting for it) over one log interval;
    :meth:`means` then brings them to the host in a single synchronisation.

    A step's logs (0-d tensors on one device) are stacked into one vector and added to the running sum of the steps
    that logged the same names: two small kernels a step, however many losses are logged, and no ``.item()``."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, ...], torch.Tensor] = {}  # names logged together -> float (len(names),) sums
        self.counts: dict[tuple[str, ...], int] = {}

    def add(self, logs: Logs) -> None:
        if not logs:
            return
        names = tuple(logs)
        values = torch.stack([value.detach().float() for value in logs.values()])
        self.sums[names] = self.sums[names] + values if names in self.sums else values
        self.counts[names] = self.counts.get(names, 0) + 1

    def means(self) -> dict[str, float]:
        """Each log's mean over the steps of the window that logged it, as a Python float; empties the window."""
        groups = list(self.sums)
        flat = torch.cat([self.sums[names] for names in groups]).tolist() if groups else []  # the one wait
        totals: dict[str, float] = {}
        counts: dict[str, int] = {}
        position = 0
        for names in groups:
            for name, value in zip(names, flat[position : position + len(names)]):
                totals[name] = totals.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + self.counts[names]
            position += len(names)
        self.reset()
        return {name: totals[name] / counts[name] for name in totals}

    def reset(self) -> None:
        self.sums.clear()
        self.counts.clear()


class Trainer:
    """Alternates a generator-side step (E_I, E_A, G, classifier) and a discriminator step; in the donor design's
    first ``train.identity_warmup_steps`` steps, trains E_I alone on the identity distillation instead.

    Args:
        net: :class:`training.models.CamouflageNet`, possibly wrapped in DistributedDataParallel.
        discriminator: :class:`training.models.MultiScaleDiscriminator`, possibly wrapped likewise.
        teacher: frozen face embedder or None (needed when ``loss.teacher``, ``loss.identity_distill`` or
            ``train.identity_warmup_steps`` is > 0).
        optimizers: from :func:`build_optimizers`.
        sampler: draws each step's :class:`Batch` (on ``device``).
        config: the resolved config (saved into every checkpoint).
        run: the run folder (checkpoints/, samples/, tensorboard/).
        writer: a TensorBoard SummaryWriter on rank 0, else None.
        preview: (sources, references, targets) for the Figure-3 grid: float (n, 3, 112, 112) sources and (m, ...)
            references, and for the donor design float (n, m, 3, 112, 112) donor targets (else None).
        rank, world_size: process index and count (1 without torchrun).
        step: the step to start from (after a resume).
    """

    def __init__(self, net, discriminator, teacher, optimizers: Optimizers, sampler: PairSampler, config: Config,
                 run: Path, writer, preview: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None], rank: int = 0, world_size: int = 1,
                 step: int = 0, device: torch.device = torch.device("cpu"), num_identities: int = 0,
                 lineage: list[dict] | None = None) -> None:
        self.net, self.discriminator, self.teacher = net, discriminator, teacher
        self.optimizers, self.sampler, self.config = optimizers, sampler, config
        self.objective = Objective(config.loss, teacher, terms_for(config.model.design))
        self.run, self.writer, self.preview = Path(run), writer, preview
        self.rank, self.world_size, self.step, self.device = rank, world_size, step, device
        self.num_identities = num_identities
        self.lineage = lineage or []  # the weights this run started from, oldest first: [{"weights", "step"}]
        if config.train.identity_warmup_steps > 0:
            if design_named(config.model.design).identity_spatial or teacher is None:
                raise ValueError("train.identity_warmup_steps needs an identity vector (the donor design) and a teacher (loss.teacher_path)")
            # E_I alone, outside DistributedDataParallel's forward: its gradients would not be averaged
            if world_size > 1 and step < config.train.identity_warmup_steps:
                raise ValueError("train.identity_warmup_steps runs on one process; run the warm-up without torchrun, "
                                 "then continue with --init-from and train.identity_warmup_steps=0")

    def generator_step(self, batch: Batch) -> tuple[torch.Tensor, Logs]:
        """Update E_I, the classifier, E_A and G on L_total. Returns the generated faces the discriminator is to judge,
        float (2B, 3, 112, 112) detached, and the logs (detached tensors)."""
        donor = unwrap(self.net).design.donors
        outputs = (self.net(batch.source, batch.target, self.config.loss.self_reconstruction > 0) if donor
                   else self.net(batch.source, batch.partner, batch.reference))
        discriminator = unwrap(self.discriminator)
        discriminator.requires_grad_(False)  # the generator step must not write gradients into D
        try:
            total, logs = self.objective.generator(outputs, batch, discriminator)
        finally:
            discriminator.requires_grad_(True)
        self._step_generator_side(total)
        return outputs.fake_images().detach(), logs

    def _step_generator_side(self, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` and step every optimiser but D's (one whose parameters got no gradient, such as G's
        during the identity warm-up, leaves them as they are)."""
        generator_side = [o for name, o in self.optimizers.all().items() if name != "discriminator"]
        for optimizer in generator_side:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in generator_side:
            optimizer.step()

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor) -> Logs:
        """Update D on real float (N, 3, 112, 112) and generated (M, 3, 112, 112) faces; returns its logs."""
        scores = self.discriminator(torch.cat([real, fake]))  # one call: DDP sees each parameter once
        real_scores = [s[: len(real)] for s in scores]
        fake_scores = [s[len(real):] for s in scores]
        loss, logs = self.objective.discriminator(real_scores, fake_scores)
        self.optimizers.discriminator.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers.discriminator.step()
        return logs

    def identity_warmup_step(self, batch: Batch) -> Logs:
        """Train E_I alone on the identity distillation (:func:`training.losses.identity_distill_loss`) over the
        batch's sources and partners: the first ``train.identity_warmup_steps`` steps, so that G is trained on identity
        vectors that already tell people apart. Cheap (no G, no D), so these steps run many more images a second."""
        encoder = unwrap(self.net).identity_encoder
        images = torch.cat([batch.source, batch.partner])
        with torch.no_grad():
            wanted = self.teacher(images)
        loss, logs = identity_distill_loss(encoder(images), wanted)
        self._step_generator_side(loss)
        return logs

    def train_step(self) -> Logs:
        """Draw a batch and run one generator and one discriminator step (or, during the identity warm-up, one E_I
        step). Nothing here waits for the GPU."""
        batch = self.sampler().to(self.device)
        if self.step < self.config.train.identity_warmup_steps:
            return self.identity_warmup_step(batch)
        fake, logs = self.generator_step(batch)
        if self.config.loss.adversarial > 0:  # (the injection G trains without D: its output is the target to 12/255)
            logs.update(self.discriminator_step(torch.cat([batch.source, batch.reference]), fake))
        return logs

    def train(self, until_step: int, max_seconds: float | None = None) -> bool:
        """Train until ``until_step``, logging, drawing the grid and checkpointing on the configured schedule.

        Losses are averaged over each ``train.log_every`` steps and reach TensorBoard and the progress bar only then:
        the one moment per interval when the host waits for the device.

        Args:
            until_step: the step to stop at.
            max_seconds: a wall-clock budget for the loop (None: none). Once it is spent the run stops after the
                step under way and, like a finished run, logs, draws the grid and saves a checkpoint, so that a run
                on a machine with a hard time limit always brings weights back. Leave room for that last save (and
                for start-up) inside the machine's limit. One process checks the clock after every step (no device
                wait); several (torchrun) agree at each log interval, stopping together when any is out of time.

        Returns:
            True when ``until_step`` was reached, False when the budget stopped the run first.
        """
        if max_seconds is not None and not max_seconds >= 0:
            raise ValueError(f"the training time budget must be >= 0 seconds (--minutes), got {max_seconds}")
        train = self.config.train
        deadline = time.perf_counter() + max_seconds if max_seconds is not None else None
        bar = tqdm(total=until_step, initial=self.step, desc="training", unit="step", disable=self.rank != 0, dynamic_ncols=True)
        window = LogWindow()  # rank 0 only: the other ranks' losses are not logged
        window_started, window_samples = time.perf_counter(), 0
        out_of_time = False
        while self.step < until_step:
            logs = self.train_step()
            self.step += 1
            window_samples += self.world_size * train.batch_size
            at_interval = self.step % train.log_every == 0
            if deadline is not None and (self.world_size == 1 or at_interval):
                out_of_time = self._budget_spent(deadline)
            last = self.step == until_step or out_of_time
            log_now = at_interval or last
            if self.rank == 0:
                window.add(logs)
                bar.update()
                if log_now:
                    means = window.means()  # waits for the device: once per interval
                    self.log(means, window_samples / (time.perf_counter() - window_started), bar)
            warming_up = self.step <= train.identity_warmup_steps and not last  # G untouched: no grid to draw
            if (self.step % train.image_every == 0 and not warming_up) or last:
                self.save_preview()
            if self.step % train.save_every == 0 or last:
                self.save()
            if out_of_time:
                break
            if log_now:  # the next window's speed leaves out this step's logging, grid and checkpoint
                window_started, window_samples = time.perf_counter(), 0
        bar.close()
        finished = self.step >= until_step
        if not finished and self.rank == 0:
            print(f"time budget of {max_seconds:.0f} s spent: stopped at step {self.step} of {until_step}, checkpoint and "
                  "grid saved; continue with --resume", file=sys.stderr)
        return finished

    def _budget_spent(self, deadline: float) -> bool:
        """Whether the wall-clock ``deadline`` (a ``time.perf_counter()`` value) has passed; with several processes,
        whether it has for any of them (one all-reduce: every rank must stop at the same step, or the others would
        wait for it forever in their next gradient all-reduce)."""
        spent = time.perf_counter() >= deadline
        if self.world_size == 1:
            return spent
        flag = torch.tensor([1.0 if spent else 0.0], device=self.device if dist.get_backend() == "nccl" else "cpu")
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def log(self, means: dict[str, float], samples_per_second: float, bar: tqdm) -> None:
        """Show a log window's mean losses on the progress bar and write them to TensorBoard (``loss/<name>``).

        ``means`` holds Python floats (already on the host): nothing here waits for the device."""
        shown = (("total", "total", "{:.3f}"), ("rec", "rec", "{:.3f}"), ("id_acc", "id_acc", "{:.2f}"), ("teacher_cos", "t_cos", "{:.2f}"),
                 ("distill_cos", "d_cos", "{:.2f}"))
        bar.set_postfix({**{label: form.format(means[name]) for name, label, form in shown if name in means},  # a design may not log all
                         "samples/s": f"{samples_per_second:.1f}"}, refresh=False)
        if self.writer is not None:
            for name, value in means.items():
                self.writer.add_scalar(f"loss/{name}", value, self.step)
            self.writer.add_scalar("speed/samples_per_second", samples_per_second, self.step)

    @torch.no_grad()
    def save_preview(self) -> None:
        """Figure 3 of the paper: sources down the side, references across the top, generated faces inside."""
        if self.rank != 0:
            return
        net = unwrap(self.net)
        was_training = net.training
        net.eval()
        sources, references, targets = (t.to(self.device) if t is not None else None for t in self.preview)
        grid = figure3_grid(net, sources, references, targets)
        net.train(was_training)
        folder = self.run / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"step_{self.step:08d}.png"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        if self.writer is not None:
            self.writer.add_image("figure3", grid, self.step, dataformats="HWC")

    def save(self) -> None:
        rng = {"sampler": self.sampler.state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":  # the teacher's augmentations draw on the GPU
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
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
                "model": {  # E_I, the classifier, E_A (paper design only), G, and D
                    **{name: part.state_dict() for name, part in net.named_children()},
                    "discriminator": discriminator.state_dict(),
                },
                "optimizers": self.optimizers.state_dict(),
                "rng": rng,
            }, self.config.train.keep_last)
        if self.world_size > 1:
            dist.barrier()


def restore_training_state(checkpoint: dict, net: torch.nn.Module, discriminator: torch.nn.Module, optimizers,
                           sampler, rank: int, device: torch.device) -> int:
    """Load what :meth:`Trainer.save` wrote (its keys are read here and nowhere else) into a freshly built run: every
    part's weights, D's, the optimisers, and rank ``rank``'s sampler and random state. Returns the step to go on from."""
    for name, part in net.named_children():
        part.load_state_dict(checkpoint["model"][name])
    discriminator.load_state_dict(checkpoint["model"]["discriminator"])
    optimizers.load_state_dict(checkpoint["optimizers"])
    rng = checkpoint["rng"]["per_rank"][rank]
    sampler.load_state(rng["sampler"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and device.type == "cuda":  # (a run resumed on another kind of device draws afresh there)
        torch.cuda.set_rng_state(rng["cuda"], device)
    return int(checkpoint["step"])


def figure3_grid(net, sources: torch.Tensor, references: torch.Tensor, targets: torch.Tensor | None = None) -> np.ndarray:
    """uint8 ((n+1)*112, (m+1)*112, 3) grid: white corner, m references on top, n sources down the left, cell (i, j)
    = source i camouflaged with reference j: G(E_I(source_i), E_A(reference_j)) in the paper design, and
    G(E_I(source_i), targets[i, j]) in the donor design (``targets``: float (n, m, 3, 112, 112), donor j warped onto
    source i; the references are then the blended donors)."""
    n, m, size = len(sources), len(references), sources.shape[-1]
    identity = net.identity_encoder(sources)
    appearance = net.appearance_encoder(references) if targets is None else None
    grid = np.full(((n + 1) * size, (m + 1) * size, 3), 255, dtype=np.uint8)
    grid[size:, :size] = to_uint8(sources).reshape(n * size, size, 3).cpu().numpy()
    grid[:size, size:] = to_uint8(references).permute(1, 0, 2, 3).reshape(size, m * size, 3).cpu().numpy()
    for i in range(n):
        codes = identity[i : i + 1].expand(m, *identity.shape[1:])
        faces = net.generator(codes, appearance if targets is None else targets[i])
        grid[(i + 1) * size : (i + 2) * size, size:] = to_uint8(faces).permute(1, 0, 2, 3).reshape(size, m * size, 3).cpu().numpy()
    return grid
