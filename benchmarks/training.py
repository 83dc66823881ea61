# SPDX-License-Identifier: Apache-2.0
"""Training and inference speed per preset, written to ``OUT/bench_training.json`` and ``.md`` (on a GPU:
``bench_training_cuda.*``, so that the CPU figures are kept).

    python -m benchmarks.training --out bench [--presets cpu paper] [--steps 5] [--threads 2] [--device cuda] [--batch 128]
                             [--teacher preset|off|PATH]

Each preset runs in its own process so that its peak memory (max RSS, and on a GPU its peak allocated memory) is
its own. Training uses synthetic 112x112 faces (speed does not depend on content) and runs the steps as
:meth:`training.trainer.Trainer.train` does: the batch drawn on the device, the logs kept there and brought to the host
once per ``train.log_every`` steps. The teacher (frozen face embedder) is included as the preset trains with it
(``--teacher preset``, the default). A breakdown times the batch draw and the teacher's forward + backward alone.
Inference times the generator side's ``net.camouflage`` at batch 1 and 16 in PyTorch eager, no_grad, eval mode.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


def _synthetic_dataset(identities: int = 64, per_identity: int = 2, donor_targets: int = 0):
    """A stand-in for :class:`training.data.FaceDataset`: random uint8 (N, 112, 112, 3) faces, ``per_identity`` per
    identity, and with ``donor_targets`` > 0 uint8 (N, donor_targets, 112, 112, 3) donor targets (donor design)."""
    from types import SimpleNamespace

    generator = torch.Generator().manual_seed(0)
    count = identities * per_identity
    labels = torch.arange(identities).repeat_interleave(per_identity)
    targets = (torch.randint(0, 256, (count, donor_targets, 112, 112, 3), dtype=torch.uint8, generator=generator)
               if donor_targets else None)
    return SimpleNamespace(
        images=torch.randint(0, 256, (count, 112, 112, 3), dtype=torch.uint8, generator=generator),
        labels=labels, num_identities=identities, targets=targets,
        by_identity=[torch.nonzero(labels == i).flatten() for i in range(identities)],
    )


@dataclass
class BenchRun:
    """What one preset's measurement trains and times: its config, device, networks, teacher, sampler, trainer."""

    config: Any
    target: torch.device
    net: torch.nn.Module
    discriminator: torch.nn.Module
    embedder: torch.nn.Module | None  # the frozen teacher, None without the teacher loss
    sampler: Any  # training.data.PairSampler: draws a batch on ``target``
    trainer: Any  # training.trainer.Trainer


def measure_preset(preset: str, steps: int, threads: int, teacher: str = "preset", device: str = "cpu",
                   batch_size: int | None = None, warmup: int = 3) -> dict:
    """Run inside a fresh process: seconds per training step, samples/s, a breakdown, inference faces/s, peak memory.

    Args:
        teacher: ``preset`` (as the preset trains: its loss.teacher and loss.teacher_path; off, with a note, when
            that file is absent), ``off``, or an ONNX path used in place of the preset's (for presets with
            loss.teacher > 0).
        warmup: untimed steps first (allocator, cuDNN autotuning on a GPU).

    Training steps run as :meth:`training.trainer.Trainer.train` runs them (batch drawn on ``device``, logs kept on
    it and brought to the host every ``train.log_every`` steps), timed from the first step after the warm-up to the
    moment the last logs reach the host."""
    torch.set_num_threads(threads)
    target = torch.device(device)
    if target.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as training.train does
    config, note = preset_config(preset, teacher, batch_size)
    run = build_run(config, target)
    step_seconds = time_training(run, steps, warmup)
    breakdown = time_breakdown(run, steps)
    inference = time_inference(run.net, target)
    return collect_result(preset, run, steps, step_seconds, note, breakdown, inference)


def preset_config(preset: str, teacher: str, batch_size: int | None):
    """The preset's config with ``batch_size`` and the ``teacher`` choice applied (see :func:`measure_preset`), and a
    note when the preset's teacher file is absent and the teacher loss was turned off for it (else None)."""
    from training.config import load_config

    overrides = [f"train.batch_size={batch_size}"] if batch_size else []
    config = load_config(preset, overrides)
    note = None
    if teacher == "off":
        overrides.append("loss.teacher=0")
    elif teacher != "preset":
        overrides.append(f"loss.teacher_path={teacher}")
    elif config.loss.teacher > 0 and not Path(config.loss.teacher_path).is_file():
        note = f"teacher {config.loss.teacher_path} absent: measured without the teacher loss"
        print(f"note: {note}", file=sys.stderr)
        overrides.append("loss.teacher=0")
    return load_config(preset, overrides), note


def build_run(config, target: torch.device) -> BenchRun:
    """Networks, teacher, sampler and trainer on ``target`` over synthetic faces (seeded: every run draws the same)."""
    from training.data import PairSampler
    from training.models import build_discriminator, build_network
    from training.models.face_embedder import OnnxFaceEmbedder
    from training.trainer import Trainer, build_optimizers

    donor_design = getattr(config.model, "design", "paper") == "donor"
    dataset = _synthetic_dataset(identities=max(64, config.train.batch_size), donor_targets=2 if donor_design else 0)
    torch.manual_seed(0)
    net = build_network(config.model, dataset.num_identities).to(target)
    discriminator = build_discriminator(config.model).to(target)
    embedder = OnnxFaceEmbedder(config.loss.teacher_path).to(target) if config.loss.teacher > 0 else None
    sampler = PairSampler(dataset, config.train.batch_size, 0, device=target)
    trainer = Trainer(net, discriminator, embedder, build_optimizers(net, discriminator, config), sampler, config,
                      Path("/nonexistent"), None, (torch.zeros(1), torch.zeros(1), None), device=target)
    return BenchRun(config, target, net, discriminator, embedder, sampler, trainer)


def synchronize(target: torch.device) -> None:
    """Wait for ``target`` to finish its queued work (a GPU runs asynchronously; a CPU has nothing to wait for)."""
    if target.type == "cuda":
        torch.cuda.synchronize(target)


def timed(work, repeats: int, target: torch.device) -> float:
    """Seconds per call of ``work`` (after one untimed call), waiting for the device at both ends."""
    work()
    synchronize(target)
    started = time.perf_counter()
    for _ in range(repeats):
        work()
    synchronize(target)
    return (time.perf_counter() - started) / repeats


def time_training(run: BenchRun, steps: int, warmup: int) -> float:
    """Seconds per training step over ``steps`` steps after ``warmup`` untimed ones, logs brought to the host as
    :meth:`training.trainer.Trainer.train` brings them."""
    from training.trainer import LogWindow

    window = LogWindow()
    for _ in range(warmup):
        window.add(run.trainer.train_step())
    window.means()
    synchronize(run.target)
    started = time.perf_counter()
    for step in range(1, steps + 1):
        window.add(run.trainer.train_step())
        if step % run.config.train.log_every == 0 or step == steps:
            window.means()  # the host waits for the device here, as at a log interval of Trainer.train
    return (time.perf_counter() - started) / steps


def time_breakdown(run: BenchRun, steps: int) -> dict:
    """Milliseconds of the batch draw alone, and of the teacher's forward + backward alone where there is one."""
    breakdown = {"sampler_ms": round(1000 * timed(run.sampler, max(3, steps // 2), run.target), 2)}
    if run.embedder is not None:  # as the teacher term calls it: the generated batch with gradients
        faces = torch.rand(run.config.train.batch_size // 2, 3, 112, 112, device=run.target) * 2 - 1

        def teacher_step() -> None:
            generated = faces.clone().requires_grad_(True)
            run.embedder(generated).sum().backward()

        breakdown["teacher_forward_backward_ms"] = round(1000 * timed(teacher_step, max(3, steps // 2), run.target), 2)
    return breakdown


def time_inference(net: torch.nn.Module, target: torch.device) -> dict:
    """Faces per second of ``net.camouflage`` at batch 1 and 16 on float (B, 3, 112, 112) faces in [-1, 1]: eval
    mode, no_grad (leaves ``net`` in eval mode)."""
    net.eval()
    inference = {}
    with torch.no_grad():
        for batch in (1, 16):
            faces = torch.rand(batch, 3, 112, 112, device=target) * 2 - 1
            seconds = timed(lambda faces=faces: net.camouflage(faces, faces), max(3, 32 // batch), target)
            inference[f"batch_{batch}_faces_per_second"] = round(batch / seconds, 2)
    return inference


def collect_result(preset: str, run: BenchRun, steps: int, step_seconds: float, note: str | None, breakdown: dict, inference: dict) -> dict:
    """One preset's figures, as ``--one`` prints them: speed, the breakdown, peak memory so far, parameter counts."""
    target, images_per_step = run.target, run.config.train.batch_size
    parameters = {name: sum(p.numel() for p in part.parameters()) for name, part in run.net.named_children()}
    parameters["discriminator"] = sum(p.numel() for p in run.discriminator.parameters())
    return {
        "preset": preset,
        "device": str(target) if target.type == "cpu" else torch.cuda.get_device_name(target),
        "teacher": bool(run.embedder),
        **({"note": note} if note else {}),
        "batch_size": images_per_step,
        "steps": steps,
        "train_seconds_per_step": round(step_seconds, 4),
        "train_samples_per_second": round(images_per_step / step_seconds, 2),
        **breakdown,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **({"peak_gpu_mib": round(torch.cuda.max_memory_allocated(target) / 2**20, 1)} if target.type == "cuda" else {}),
        **inference,
        "parameters": parameters,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench"))
    parser.add_argument("--presets", nargs="+", default=["cpu", "paper"])
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per preset (default 5)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--teacher", default="preset",
                        help="preset: the teacher loss as each preset trains with it (default); off; or an ONNX face "
                             "embedder to use in place of the preset's loss.teacher_path")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu or cuda (default: cuda when there is one)")
    parser.add_argument("--batch", "--batch-size", dest="batch_size", type=int, default=None,
                        help="images per training step (default: each preset's train.batch_size)")
    parser.add_argument("--name", default=None,
                        help="file name stem under --out (default bench_training, bench_training_cuda on a GPU)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: measure one preset in this process
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA device here; use --device cpu")
    if args.one:
        print(json.dumps(measure_preset(args.one, args.steps, args.threads, args.teacher or "off", args.device,
                                        args.batch_size, args.warmup)))
        return 0
    results = measure_presets(args)
    if results is None:
        return 1
    write_report(args, argv, results)
    return 0


def measure_presets(args) -> list[dict] | None:
    """Each of ``args.presets`` measured in its own process (``--one``); None when one failed (its stderr shown)."""
    results = []
    for preset in args.presets:
        print(f"measuring {preset} ({args.warmup} + {args.steps} training steps + inference) on {args.device} ...", file=sys.stderr, flush=True)
        command = [sys.executable, "-m", "benchmarks.training", "--one", preset, "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--threads", str(args.threads), "--device", args.device, "--teacher", args.teacher or "off",
                   *(["--batch", str(args.batch_size)] if args.batch_size else [])]
        finished = subprocess.run(command, capture_output=True, text=True, check=False)  # its stderr is shown on failure
        if finished.returncode != 0:
            print(finished.stderr[-4000:], file=sys.stderr)
            print(f"error: measuring preset {preset} failed (exit code {finished.returncode}); its output is above", file=sys.stderr)
            return None
        results.append(json.loads(finished.stdout.strip().splitlines()[-1]))
    return results


def write_report(args, argv: list[str] | None, results: list[dict]) -> None:
    """``OUT/NAME.json`` (machine, command, every preset's figures) and ``OUT/NAME.md`` (one table row a preset)."""
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                          "torch": torch.__version__, "device": results[0]["device"] if results else args.device},
              "command": "python -m benchmarks.training " + " ".join(argv if argv is not None else sys.argv[1:]),
              "results": results}
    name = args.name or ("bench_training" if args.device == "cpu" else "bench_training_cuda")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=2))
    lines = [("| preset | teacher | batch | train samples/s | s/step | batch draw ms | teacher fwd+bwd ms | peak RSS MiB | peak GPU MiB "
              "| infer faces/s b=1 | infer faces/s b=16 |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['preset']} | {r['teacher']} | {r['batch_size']} | {r['train_samples_per_second']} | {r['train_seconds_per_step']} | "
                     f"{r['sampler_ms']} | {r.get('teacher_forward_backward_ms', '-')} | {r['peak_rss_mib']} | {r.get('peak_gpu_mib', '-')} | "
                     f"{r['batch_1_faces_per_second']} | {r['batch_16_faces_per_second']} |")
    where = report["machine"]["device"]
    notes = [f"- {r['preset']}: {r['note']}" for r in results if "note" in r]
    (args.out / f"{name}.md").write_text(
        f"Torch {torch.__version__}, {'CPU' if where == 'cpu' else where}, {args.threads} CPU threads, {args.warmup} untimed + "
        f"{args.steps} timed training steps per preset (`{report['command']}`). Teacher fwd+bwd: the frozen embedder on "
        "half a batch of generated faces, as the teacher term runs it.\n\n" + "\n".join(lines + notes) + "\n")
    print("\n".join(lines + notes))
    print(f"written: {args.out / (name + '.json')}, {args.out / (name + '.md')}")


if __name__ == "__main__":
    sys.exit(main())
