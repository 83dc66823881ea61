"""Training and inference speed per preset, written to ``OUT/bench_training.json`` and ``.md``.

    python -m training.bench --out bench [--presets cpu paper] [--steps 5] [--threads 2] [--device cuda] [--batch-size 128]

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


def measure_preset(preset: str, steps: int, threads: int, teacher_path: str | None, device: str = "cpu",
                   batch_size: int | None = None) -> dict:
    """Run inside a fresh process: seconds per training step, samples/s, inference faces/s, peak RSS.

    Training steps run as :meth:`training.trainer.Trainer.train` runs them (batch drawn on ``device``, logs kept on
    it and averaged), timed from the first step after a warm-up to the moment the logs reach the host."""
    from training.config import load_config
    from training.data import PairSampler
    from training.models import CamouflageNet, build_discriminator
    from training.models.face_embedder import OnnxFaceEmbedder
    from training.trainer import LogWindow, Trainer, build_optimizers

    torch.set_num_threads(threads)
    target = torch.device(device)
    if target.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as training.train does
    overrides = [] if teacher_path else ["loss.teacher=0"]
    if teacher_path:
        overrides.append(f"loss.teacher_path={teacher_path}")
    if batch_size:
        overrides.append(f"train.batch_size={batch_size}")
    config = load_config(preset, overrides)
    dataset = _synthetic_dataset(identities=max(64, config.train.batch_size))
    torch.manual_seed(0)
    net = CamouflageNet(config.model, dataset.num_identities).to(target)
    discriminator = build_discriminator(config.model).to(target)
    teacher = OnnxFaceEmbedder(config.loss.teacher_path).to(target) if config.loss.teacher > 0 else None
    trainer = Trainer(net, discriminator, teacher, build_optimizers(net, discriminator, config),
                      PairSampler(dataset, config.train.batch_size, 0, device=target), config, Path("/nonexistent"), None,
                      (torch.zeros(1), torch.zeros(1)), device=target)
    images_per_step = config.train.batch_size

    def synchronize() -> None:
        if target.type == "cuda":
            torch.cuda.synchronize(target)

    window = LogWindow()
    for _ in range(2):  # warm-up: allocator, kernel selection (cuDNN autotuning on a GPU)
        window.add(trainer.train_step())
    window.means()
    started = time.perf_counter()
    for _ in range(steps):
        window.add(trainer.train_step())
    window.means()  # the host waits for the device here, as at a log interval
    step_seconds = (time.perf_counter() - started) / steps

    net.eval()
    inference = {}
    with torch.no_grad():
        for batch in (1, 16):
            faces = torch.rand(batch, 3, 112, 112, device=target) * 2 - 1
            net.camouflage(faces, faces)
            repeats = max(3, 32 // batch)
            synchronize()
            started = time.perf_counter()
            for _ in range(repeats):
                net.camouflage(faces, faces)
            synchronize()
            inference[f"batch_{batch}_faces_per_second"] = round(batch * repeats / (time.perf_counter() - started), 2)
    parameters = {name: sum(p.numel() for p in getattr(net, name).parameters())
                  for name in ("identity_encoder", "appearance_encoder", "generator", "classifier")}
    parameters["discriminator"] = sum(p.numel() for p in discriminator.parameters())
    return {
        "preset": preset,
        "device": str(target) if target.type == "cpu" else torch.cuda.get_device_name(target),
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
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cpu or cuda (default: cuda when there is one)")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=None,
                        help="images per training step (default: each preset's train.batch_size)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: measure one preset in this process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_preset(args.one, args.steps, args.threads, args.teacher or None, args.device, args.batch_size)))
        return 0
    results = []
    for preset in args.presets:
        print(f"measuring {preset} ({args.steps} training steps + inference) ...", file=sys.stderr, flush=True)
        command = [sys.executable, "-m", "training.bench", "--one", preset, "--steps", str(args.steps), "--threads", str(args.threads),
                   "--device", args.device, *(["--batch-size", str(args.batch_size)] if args.batch_size else [])]
        if args.teacher and preset == "cpu":
            command += ["--teacher", args.teacher]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                          "torch": torch.__version__, "device": results[0]["device"] if results else args.device},
              "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_training.json").write_text(json.dumps(report, indent=2))
    lines = ["| preset | teacher | batch | train samples/s | s/step | peak RSS MiB | infer faces/s b=1 | infer faces/s b=16 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['preset']} | {r['teacher']} | {r['batch_size']} | {r['train_samples_per_second']} | {r['train_seconds_per_step']} | "
                     f"{r['peak_rss_mib']} | {r['batch_1_faces_per_second']} | {r['batch_16_faces_per_second']} |")
    where = report["machine"]["device"]
    (args.out / "bench_training.md").write_text(f"Torch {torch.__version__}, {'CPU' if where == 'cpu' else where}, {args.threads} CPU threads, "
                                                f"{args.steps} timed training steps per preset (`python -m training.bench`).\n\n"
                                                + "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written: {args.out / 'bench_training.json'}, {args.out / 'bench_training.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
