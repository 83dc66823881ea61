# SPDX-License-Identifier: Apache-2.0
"""Serving benchmark: figures to ``OUT/bench_serving.json`` and ``.md``.

    python -m benchmarks.serving [--repository model_repository] [--out bench] [--requests 24]

- 640x480 frames with 1 and with 4 faces, through Triton (gRPC, 1 / 4 / 8 requests in flight): frames/s, p50/p95
  latency; and the same work in-process with ONNX Runtime (the embedded engine) in the same run, so the server's cost
  is a ratio from one run;
- time per stage in-process: detection, landmarks + alignment, identity encoder, generator, paste-back;
- faces/s of the exported networks alone (E_I + G, appearance from the bank) with ONNX Runtime vs PyTorch eager.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.measure import percentiles_ms, write_figures

ROOT = Path(__file__).resolve().parents[1]


def synthetic_frames() -> dict[str, np.ndarray]:
    """640x480 frames built from the committed portraits: one face (about 125 px) and four faces (about 105 px)."""
    from facecamo.align import load_rgb

    portraits = [load_rgb(str(p)) for p in sorted((ROOT / "assets" / "portraits").glob("congress_*.jpg"))[:4]]
    one = np.full((480, 640, 3), 90, np.uint8)
    one[100:375, 207:432] = portraits[0]
    four = np.full((480, 640, 3), 90, np.uint8)
    for index, portrait in enumerate(portraits):
        tile = cv2.resize(portrait, (196, 240), interpolation=cv2.INTER_AREA)
        row, column = divmod(index, 2)
        four[row * 240 : row * 240 + 240, column * 320 + 62 : column * 320 + 258] = tile
    return {"1 face": one, "4 faces": four}


def bench_triton(url: str, frame: np.ndarray, in_flight: int, requests: int) -> dict:
    """Keep ``in_flight`` requests outstanding until ``requests`` have completed."""
    import tritonclient.grpc as grpcclient

    from facecamo import spec

    client = grpcclient.InferenceServerClient(url)
    tensor = grpcclient.InferInput(spec.FRAME, list(frame.shape), "UINT8")
    tensor.set_data_from_numpy(frame)
    client.infer(spec.ENSEMBLE, [tensor])  # warm-up
    latencies, errors, lock = [], [], threading.Condition()
    state = {"sent": 0, "done": 0}

    def send() -> None:
        started = time.perf_counter()

        def callback(result=None, error=None) -> None:
            with lock:
                latencies.append(time.perf_counter() - started)
                if error is not None:
                    errors.append(str(error))
                state["done"] += 1
                if state["sent"] < requests:
                    state["sent"] += 1
                    send()
                lock.notify_all()

        client.async_infer(spec.ENSEMBLE, [tensor], callback)

    started = time.perf_counter()
    with lock:
        for _ in range(min(in_flight, requests)):
            state["sent"] += 1
            send()
        while state["done"] < requests:
            lock.wait(timeout=300)
    elapsed = time.perf_counter() - started
    client.close()
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed: {errors[0]}")
    return {"in_flight": in_flight, "requests": requests, "frames_per_second": round(requests / elapsed, 2), **percentiles_ms(latencies)}


def bench_in_process(engine, frame: np.ndarray, requests: int) -> tuple[dict, dict]:
    """Sequential embedded-engine calls; and ms per stage of the pipeline (its own timings: detection, landmarks and
    alignment, identity encoder, generator, paste-back)."""
    engine.run(frame)
    names = {"detect": "detection", "align": "landmarks_and_alignment", "identity_encoder": "identity_encoder",
             "generator": "generator", "paste": "paste_back"}
    latencies, stages = [], {name: [] for name in names.values()}
    started = time.perf_counter()
    for _ in range(requests):
        t0 = time.perf_counter()
        timings = engine.run(frame).timings
        latencies.append(time.perf_counter() - t0)
        for key, name in names.items():
            stages[name].append(timings.get(key, 0.0))
    elapsed = time.perf_counter() - started
    summary = {"frames_per_second": round(requests / elapsed, 2), **percentiles_ms(latencies)}
    return summary, {name: round(float(np.mean(values)) * 1000, 2) for name, values in stages.items()}


def bench_networks(repository: Path, checkpoint: Path | None) -> list[dict]:
    """Faces/s of E_I + G alone at batch 1 and 16: ONNX Runtime (exported files) vs PyTorch eager (the checkpoint)."""
    import onnxruntime
    import torch

    from facecamo import spec
    from facecamo.repository import load_bank, read_parameters
    from training.weights import load_inference_net

    net, _, _ = load_inference_net(checkpoint)
    identity = onnxruntime.InferenceSession(str(repository / spec.IDENTITY_ENCODER / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    generator = onnxruntime.InferenceSession(str(repository / spec.GENERATOR / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    bank, design = load_bank(repository / spec.ENSEMBLE / "1", read_parameters(repository / spec.ENSEMBLE / "config.pbtxt"))
    # The donor design's bank holds donors (uint8 NHWC faces); its generator reads NCHW in [-1, 1].
    bank = spec.to_model_input(bank) if design.donors else bank
    rows = []
    for batch in (1, 16):
        faces = np.random.default_rng(0).uniform(-1, 1, (batch, 3, 112, 112)).astype(np.float32)
        codes = bank[np.arange(batch) % len(bank)]
        repeats = max(4, 48 // batch)

        def run_onnx() -> None:
            generator.run(None, {spec.IDENTITY_CODE: identity.run(None, {spec.FACE: faces})[0], spec.APPEARANCE: codes})

        torch_faces, torch_codes = torch.from_numpy(faces), torch.from_numpy(codes)

        def run_torch() -> None:
            with torch.no_grad():
                net.generator(net.identity_encoder(torch_faces), torch_codes)

        for name, run in (("onnxruntime", run_onnx), ("pytorch_eager", run_torch)):
            run()
            started = time.perf_counter()
            for _ in range(repeats):
                run()
            rows.append({"runtime": name, "batch": batch, "faces_per_second": round(batch * repeats / (time.perf_counter() - started), 1)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--ckpt", type=Path, default=None, help="the checkpoint the repository was exported from (default: release)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    parser.add_argument("--requests", type=int, default=24)
    args = parser.parse_args(argv)
    from facecamo_client.embedded import EmbeddedEngine

    from serving.server import TritonServer
    from serving.supervisor import Supervision

    frames = synthetic_frames()
    engine = EmbeddedEngine(args.repository)
    report: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": __import__("os").cpu_count()},
                    "repository": os.path.relpath(args.repository.resolve(), ROOT), "frames": {}, "networks": None}
    print("in-process (embedded engine, ONNX Runtime) ...", file=sys.stderr)
    for name, frame in frames.items():
        in_process, stages = bench_in_process(engine, frame, args.requests)
        report["frames"][name] = {"faces_found": len(engine.run(frame).faces), "in_process": in_process, "stages_ms": stages, "triton": []}
    print("Triton ...", file=sys.stderr)
    with TritonServer(args.repository, supervision=Supervision(canary=None)) as server:  # no canary frames in the figures
        for name, frame in frames.items():
            for in_flight in (1, 4, 8):
                report["frames"][name]["triton"].append(bench_triton(server.grpc_url, frame, in_flight, args.requests))
    for entry in report["frames"].values():
        single = entry["triton"][0]["frames_per_second"]
        entry["server_cost_ratio_at_1_in_flight"] = round(entry["in_process"]["frames_per_second"] / single, 2)
    print("networks alone ...", file=sys.stderr)
    report["networks"] = bench_networks(args.repository, args.ckpt)
    lines = [f"Machine: {report['machine']['cores']} cores, CPU only. Repository `{report['repository']}`.", "",
             "| frame | path | in flight | frames/s | p50 ms | p95 ms |", "|---|---|---|---|---|---|"]
    for name, entry in report["frames"].items():
        p = entry["in_process"]
        lines.append(f"| 640x480, {name} | in-process ONNX Runtime | 1 | {p['frames_per_second']} | {p['p50_ms']} | {p['p95_ms']} |")
        for t in entry["triton"]:
            lines.append(f"| 640x480, {name} | Triton gRPC | {t['in_flight']} | {t['frames_per_second']} | {t['p50_ms']} | {t['p95_ms']} |")
    stages = list(next(iter(report["frames"].values()))["stages_ms"])
    lines += ["", "Time per stage, in-process (ms per frame):", "", "| frame | " + " | ".join(stages) + " |",
              "|---|" + "---|" * len(stages)]
    for name, entry in report["frames"].items():
        lines.append(f"| {name} | " + " | ".join(str(v) for v in entry["stages_ms"].values()) + " |")
    lines += ["", "Exported networks alone (E_I + G):", "", "| runtime | batch | faces/s |", "|---|---|---|"]
    lines += [f"| {r['runtime']} | {r['batch']} | {r['faces_per_second']} |" for r in report["networks"]]
    write_figures(args.out, "bench_serving", report, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
