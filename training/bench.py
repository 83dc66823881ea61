"""Training and inference speed per preset, written to ``OUT/bench_training.json`` and ``.md``.

    python -m training.bench --out bench [--presets cpu paper] [--steps 5] [--threads 2]

Each preset runs in its own process so that its peak memory (max RSS) is its own. Training uses synthetic
112x112 faces (speed does not depend on content); inference times E_I + E_A + G (``net.camouflage``) at batch 1
and 16 in PyTorch eager, no_grad, eval mode.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch


def _synthetic_dataset(identities: int = 64, per_identity: int = 2):
    from types import SimpleNamespace

    generator = torch.Generator().manual_seed(0)
    count = identities * per_identity
    labels = torch.arange(identities).repeat_interleave(per_identity)
    return SimpleNamespace(
        images=torch.randint(0, 256, (count, 112, 112, 3), dtype=torch.uint8, generator=generator),
        labels=labels, num_identities=identities,
        by_identity=[torch.nonzero(labels == i).flatten() for i in range(identities)],
    )


def measure_preset(preset: str, steps: int, threads: int, teacher_path: str | None) -> dict:
    """Run inside a fresh process: seconds per training step, samples/s, inference faces/s, peak RSS."""
    from training.config import load_config
    from training.data import PairSampler
    from training.models import CamouflageNet, build_discriminator
    from training.models.face_embedder import OnnxFaceEmbedder
    from training.trainer import Trainer, build_optimizers

    torch.set_num_threads(threads)
    overrides = [] if teacher_path else ["loss.teacher=0"]
    if teacher_path:
        overrides.append(f"loss.teacher_path={teacher_path}")
    config = load_config(preset, overrides)
    dataset = _synthetic_dataset()
    torch.manual_seed(0)
    net, discriminator = CamouflageNet(config.model, dataset.num_identities), build_discriminator(config.model)
    teacher = OnnxFaceEmbedder(config.loss.teacher_path) if config.loss.teacher > 0 else None
    trainer = Trainer(net, discriminator, teacher, build_optimizers(net, discriminator, config),
                      PairSampler(dataset, config.train.batch_size, 0), config, Path("/nonexistent"), None,
                      (torch.zeros(1), torch.zeros(1)))
    images_per_step = config.train.batch_size

    def one_step() -> None:
        batch = trainer.sampler()
        fake, _ = trainer.generator_step(batch)
        trainer.discriminator_step(torch.cat([batch.source, batch.reference]), fake)

    one_step()  # warm-up: allocator and kernel selection
    started = time.perf_counter()
    for _ in range(steps):
        one_step()
    step_seconds = (time.perf_counter() - started) / steps

    net.eval()
    inference = {}
    with torch.no_grad():
        for batch in (1, 16):
            faces = torch.rand(batch, 3, 112, 112) * 2 - 1
            net.camouflage(faces, faces)
            repeats = max(3, 32 // batch)
            started = time.perf_counter()
            for _ in range(repeats):
                net.camouflage(faces, faces)
            inference[f"batch_{batch}_faces_per_second"] = round(batch * repeats / (time.perf_counter() - started), 2)
    parameters = {name: sum(p.numel() for p in getattr(net, name).parameters())
                  for name in ("identity_encoder", "appearance_encoder", "generator", "classifier")}
    parameters["discriminator"] = sum(p.numel() for p in discriminator.parameters())
    return {
        "preset": preset,
        "teacher": bool(teacher),
        "batch_size": images_per_step,
        "train_seconds_per_step": round(step_seconds, 3),
        "train_samples_per_second": round(images_per_step / step_seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **inference,
        "parameters": parameters,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench"))
    parser.add_argument("--presets", nargs="+", default=["cpu", "paper"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--teacher", default="", help="ONNX face embedder to include the teacher loss in the cpu preset's cost")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: measure one preset in this process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_preset(args.one, args.steps, args.threads, args.teacher or None)))
        return 0
    results = []
    for preset in args.presets:
        print(f"measuring {preset} ({args.steps} training steps + inference) ...", file=sys.stderr, flush=True)
        command = [sys.executable, "-m", "training.bench", "--one", preset, "--steps", str(args.steps), "--threads", str(args.threads)]
        if args.teacher and preset == "cpu":
            command += ["--teacher", args.teacher]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                          "torch": torch.__version__, "device": "cpu"}, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_training.json").write_text(json.dumps(report, indent=2))
    lines = ["| preset | teacher | batch | train samples/s | s/step | peak RSS MiB | infer faces/s b=1 | infer faces/s b=16 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['preset']} | {r['teacher']} | {r['batch_size']} | {r['train_samples_per_second']} | {r['train_seconds_per_step']} | "
                     f"{r['peak_rss_mib']} | {r['batch_1_faces_per_second']} | {r['batch_16_faces_per_second']} |")
    (args.out / "bench_training.md").write_text(f"Torch {torch.__version__}, CPU, {args.threads} threads.\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written: {args.out / 'bench_training.json'}, {args.out / 'bench_training.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
