# SPDX-License-Identifier: Apache-2.0
"""Train the camouflage model.

    python -m training.train --preset cpu --data <prepared folder> --run-dir <folder> [--steps N] [--resume]
    torchrun --nproc_per_node=2 -m training.train ...   (DistributedDataParallel; gloo on CPU, nccl on GPU)

Overrides: ``--set loss.teacher=0 train.batch_size=8 train.lr=1e-4``: each value is converted to its key's type; an
unknown key or a value of the wrong type is an error (exit code 2) naming the key, the type or the valid keys.
The resolved config is written to ``RUN/config.yaml``.

On a CUDA device the dataset's images are kept on the GPU and batches assembled there, losses reach the host only
every ``train.log_every`` steps, and cuDNN picks its fastest convolution algorithms for the fixed 112x112 input.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml

from facecamo.design import design_named
from training.checkpoint import latest_checkpoint, load_checkpoint
from training.config import Config, config_from_dict, load_config
from training.data import FaceDataset, PairSampler, to_model_range
from training.models import build_discriminator, build_network, inference_parts
from training.models.face_embedder import OnnxFaceEmbedder
from training.trainer import Trainer, build_optimizers, restore_training_state
from training.weights import load_parts, read_weights


class TrainingError(Exception):
    """A problem the user can fix (missing data, mismatching checkpoint); printed without a traceback."""


def resolve_teacher_path(config: Config) -> Path | None:
    """The teacher network's file when a loss or the identity warm-up reads it, else None."""
    readers = [name for name, on in (("loss.teacher", config.loss.teacher > 0),
                                     ("loss.identity_distill", config.loss.identity_distill > 0),
                                     ("train.identity_warmup_steps", config.train.identity_warmup_steps > 0)) if on]
    if not readers:
        return None
    if not config.loss.teacher_path:
        raise TrainingError(f"{' and '.join(readers)} > 0 need a teacher but loss.teacher_path is empty; set it to an "
                            "ONNX face-embedding file or set them to 0")
    path = Path(config.loss.teacher_path)
    if not path.is_file():
        raise TrainingError(f"teacher network {path} not found (loss.teacher_path); point it at an ONNX face embedder or set {' and '.join(readers)} to 0")
    return path


def needs_classifier(config: Config) -> bool:
    """Whether training reads the softmax identity classifier: always in the paper design (every one of its terms
    runs, for DistributedDataParallel), in a design of donors only while ``loss.identity`` > 0."""
    return not design_named(config.model.design).donors or config.loss.identity > 0


def model_mismatch(saved_config: dict, config: Config) -> str | None:
    """None when a saved config's model is the one ``config`` builds, else what differs and the ``--set`` that builds
    the saved one (a preset can change after a file was made: donor_cpu's E_I pool did)."""
    # compared as typed configs: a file that stored 16.0 or [0.5, 0.999] matches a preset's 16 or (0.5, 0.999)
    saved = config_from_dict(saved_config).model
    differing = [f.name for f in dataclasses.fields(saved) if getattr(saved, f.name) != getattr(config.model, f.name)]
    if not differing:
        return None
    keep = " ".join(f"model.{name}={getattr(saved, name)}" for name in differing)
    return (", ".join(f"model.{n} is {getattr(saved, n)!r} there, {getattr(config.model, n)!r} here" for n in differing)
            + f"; build its model with --set {keep} (SET='{keep}' for make)")


def check_compatible(checkpoint: dict, config: Config, path: Path) -> None:
    saved = checkpoint["config"]
    if saved["preset"] != config.preset:
        raise TrainingError(f"checkpoint {path} was trained with preset {saved['preset']!r}, but this run uses preset "
                            f"{config.preset!r}; resume with the same preset, or start a new RUN folder")
    mismatch = model_mismatch(saved, config)
    if mismatch:
        raise TrainingError(f"checkpoint {path} holds another model than this run builds: {mismatch}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="inject_cpu",
                        help="inject_cpu, donor_cpu, donor, cpu, paper, tiny, tiny_donor, tiny_inject, or a YAML path (default inject_cpu)")
    parser.add_argument("--data", type=Path, required=True, help="a folder made by `make prepare`")
    parser.add_argument("--run-dir", dest="run", type=Path, required=True,
                        help="run folder: checkpoints, samples, tensorboard (`--run` clashes with torchrun's own options)")
    parser.add_argument("--steps", type=int, default=None, help="train until this step (default: the preset's train.steps)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --run-dir")
    parser.add_argument("--resume-from", dest="resume_from", type=Path, default=None,
                        help="continue from this checkpoint file instead (e.g. the repository's compact one in models/resume/: "
                             "a new machine carries training on where the last one stopped); implies --resume")
    parser.add_argument("--minutes", type=float, default=None,
                        help="wall-clock budget for the training loop: stop when it is spent, saving a checkpoint and grid "
                             "(leave time for start-up and that save inside a machine's hard limit); resume with --resume")
    parser.add_argument("--init-from", dest="init_from", type=Path, default=None,
                        help="fine-tune: start E_I, E_A and G from these weights (release .pt or checkpoint; same model "
                             "config) instead of random ones; used only when the run starts fresh")
    parser.add_argument("--init-matching", dest="init_matching", action="store_true",
                        help="with --init-from: the file may hold another model; copy every tensor whose name and shape "
                             "match (e.g. E_I and G's body of an AdaIN donor model into an injection model) and list the rest")
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.KEY=VALUE", help="config overrides")
    args = parser.parse_args(argv)
    try:
        return train(args)
    except (TrainingError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def train(args: argparse.Namespace) -> int:
    config = load_config(args.preset, args.set)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # every step has the same shapes: the autotuned choice is reused
    else:
        device = torch.device("cpu")
    if world_size > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    teacher_path = resolve_teacher_path(config)
    dataset = FaceDataset(args.data, "train", progress=rank == 0)
    if design_named(config.model.design).donors:  # its generator is trained on donor targets
        try:
            dataset.add_donor_targets(config.train.donor_targets, config.train.donor_pool, config.model.donors_per_blend,
                                      seed=config.train.seed, progress=rank == 0)
        except ValueError as error:
            raise TrainingError(str(error)) from error
    if config.loss.injection_distill > 0:
        if not config.loss.injection_residuals:
            raise TrainingError("loss.injection_distill needs loss.injection_residuals=<file made by python -m training.injection_bank>")
        try:
            dataset.add_injection_residuals(Path(config.loss.injection_residuals))
        except (FileNotFoundError, ValueError) as error:
            raise TrainingError(str(error)) from error
    steps = args.steps if args.steps is not None else config.train.steps

    checkpoint, checkpoint_path = None, None
    if args.resume or args.resume_from is not None:
        if args.resume_from is not None and not args.resume_from.is_file():
            raise TrainingError(f"--resume-from {args.resume_from} not found")
        newest = latest_checkpoint(args.run)
        # the run's own newer checkpoint wins over the file it was started from (RESUME=<file> twice in a row)
        checkpoint_path = args.resume_from if args.resume_from is not None and (
            newest is None or load_checkpoint(newest)["step"] <= load_checkpoint(args.resume_from)["step"]) else newest
        if checkpoint_path is None:
            raise TrainingError(f"--resume given but {args.run}/checkpoints holds no checkpoint; drop RESUME=1 to start fresh")
        checkpoint = load_checkpoint(checkpoint_path)
        check_compatible(checkpoint, config, checkpoint_path)
        if checkpoint["num_identities"] != dataset.num_identities:
            raise TrainingError(f"checkpoint {checkpoint_path} was trained on {checkpoint['num_identities']} identities, "
                                f"{args.data} has {dataset.num_identities}; resume on the same dataset")
        if checkpoint.get("world_size", 1) != world_size:
            raise TrainingError(f"checkpoint {checkpoint_path} was written by {checkpoint['world_size']} processes; resume with as many")

    torch.manual_seed(config.train.seed)  # identical initial weights on every rank
    net = build_network(config.model, dataset.num_identities if needs_classifier(config) else 0, inference=False).to(device)
    discriminator = build_discriminator(config.model).to(device)
    optimizers = build_optimizers(net, discriminator, config)
    sampler = PairSampler(dataset, config.train.batch_size, seed=config.train.seed * 1000 + rank, device=device,
                          injected_share=config.train.injected_share)
    step = 0
    lineage: list[dict] = []
    if checkpoint is not None:
        lineage = checkpoint.get("lineage", [])
        step = restore_training_state(checkpoint, net, discriminator, optimizers, sampler, rank, device)
        if rank == 0:
            print(f"resumed from {checkpoint_path} at step {step}", file=sys.stderr)
    elif args.init_from is not None:
        lineage = init_network(net, config, args.init_from, dataset.num_identities, matching_only=args.init_matching)
        if rank == 0:
            print(f"starting from the weights in {args.init_from}", file=sys.stderr)
    if step >= steps:
        print(f"already at step {step} >= {steps}; nothing to do", file=sys.stderr)
        return 0

    teacher = OnnxFaceEmbedder(teacher_path).to(device) if teacher_path else None
    if world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(net)
        discriminator = torch.nn.parallel.DistributedDataParallel(discriminator)

    writer = None
    if rank == 0:
        args.run.mkdir(parents=True, exist_ok=True)
        (args.run / "config.yaml").write_text(yaml.safe_dump({**config.to_dict(), "data": str(args.data)}, sort_keys=False))
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(args.run / "tensorboard"))
    preview = preview_faces(dataset, count=4 if config.train.batch_size >= 8 else 2)
    trainer = Trainer(net, discriminator, teacher, optimizers, sampler, config, args.run, writer, preview,
                      rank=rank, world_size=world_size, step=step, device=device, num_identities=dataset.num_identities,
                      lineage=lineage)
    trainer.train(steps, max_seconds=args.minutes * 60 if args.minutes is not None else None)
    if writer is not None:
        writer.close()
        print(f"done: step {trainer.step}; checkpoints in {args.run / 'checkpoints'}, grids in {args.run / 'samples'}", file=sys.stderr)
    return 0


def init_network(net: torch.nn.Module, config: Config, path: Path, num_identities: int, matching_only: bool = False) -> list[dict]:
    """Load E_I, E_A and G (and the identity classifier when the file has one for as many identities) from release
    weights or a training checkpoint into ``net``; D, optimisers and step start afresh.

    ``matching_only``: the file may hold another model; every inference tensor of the same name and shape is copied
    and the tensors left at their initial values are printed.

    Returns: the lineage to record in this run's checkpoints: the file's own lineage plus the file and its step."""
    state = read_weights(path)  # FileNotFoundError / ValueError name the file; main() prints them
    mismatch = model_mismatch(state["config"], config)
    if matching_only:
        fresh = []
        for part in inference_parts(config.model):
            module, saved = getattr(net, part), state["model"].get(part, {})
            own = module.state_dict()
            copied = {k: v.float() for k, v in saved.items() if k in own and own[k].shape == v.shape}
            module.load_state_dict({**own, **copied})
            fresh += [f"{part}.{k}" for k in own if k not in copied]
        print(f"--init-matching: {len(fresh)} tensors not in {path} (or of another shape) start fresh: {', '.join(fresh) or 'none'}",
              file=sys.stderr)
        return [*state.get("lineage", []), {"weights": path.name, "step": int(state["step"])}]
    if mismatch:
        raise TrainingError(f"--init-from {path} holds another model than this run builds: {mismatch}, or use the "
                            f"preset it was trained with ({state['config']['preset']!r})")
    same_classes = "classifier" in state["model"] and state.get("num_identities") == num_identities
    load_parts(net, state, inference_parts(config.model) + (("classifier",) if same_classes else ()))
    return [*state.get("lineage", []), {"weights": path.name, "step": int(state["step"])}]


def preview_faces(dataset: FaceDataset, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Fixed sources and references of different identities for the Figure-3 grid (the same every run); with donor
    targets, the references are the first blended donors and the third item holds donor j warped onto source i."""
    firsts = [int(members[0]) for members in dataset.by_identity[: 2 * count]]
    images = to_model_range(dataset.images[firsts])
    if getattr(dataset, "targets", None) is None:
        return images[:count], images[count : 2 * count], None
    from facecamo.donor import donor_target

    sources = dataset.images[firsts[:count]].numpy()
    donors = dataset.donors[:count]
    targets = np.stack([np.stack([donor_target(sources[i], dataset.landmarks[firsts[i]], donor)[0] for donor in donors])
                        for i in range(count)])  # (n, m, 112, 112, 3)
    as_model = to_model_range(torch.from_numpy(targets).reshape(-1, *targets.shape[2:])).reshape(count, len(donors), 3, *targets.shape[2:4])
    return images[:count], to_model_range(torch.from_numpy(np.ascontiguousarray(donors))), as_model


if __name__ == "__main__":
    sys.exit(main())
