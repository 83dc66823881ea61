"""Client benchmark: figures to ``OUT/bench_client.json`` and ``.md``.

    python -m export.bench_client [--repository model_repository] [--video assets/video/video_01.mp4] [--out bench]

- end-to-end frames/s of the command line on the sample video, embedded engine vs Triton server, in one run;
- the client's per-frame overhead over gRPC: request encoding, response decoding and transport, as a share of
  the request's total (transport = client-side latency minus the ensemble's time as Triton's statistics report it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def repo_relative(path: Path) -> str:
    """``path`` relative to the repository (``../`` outside it): committed reports name no machine's folders."""
    return os.path.relpath(Path(path).resolve(), ROOT)


def run_cli(video: Path, out: Path, extra: list[str]) -> dict:
    summary = out.with_suffix(".json")
    started = time.perf_counter()
    # Paths relative to the repository (the command line runs there): the summary it writes holds them as given.
    result = subprocess.run([sys.executable, "-m", "facecamo_client.cli", repo_relative(video), repo_relative(out),
                             "--summary", repo_relative(summary), *extra],
                            cwd=ROOT, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"command line failed: {result.stderr[-2000:]}")
    details = json.loads(summary.read_text())
    details["wall_seconds_including_start"] = round(wall, 2)
    return details


def client_overhead(url: str, frames: list[np.ndarray]) -> dict:
    import tritonclient.grpc as grpcclient

    from facecamo import spec

    client = grpcclient.InferenceServerClient(url)

    def ensemble_ns() -> tuple[int, int]:
        stats = client.get_inference_statistics(model_name=spec.ENSEMBLE, as_json=True)["model_stats"][0]
        success = stats["inference_stats"]["success"]
        return int(success.get("ns", 0)), int(success.get("count", 0))

    encode = decode = total = 0.0
    before_ns, before_count = ensemble_ns()
    for frame in frames:
        t0 = time.perf_counter()
        tensor = grpcclient.InferInput(spec.FRAME, list(frame.shape), "UINT8")
        tensor.set_data_from_numpy(frame)
        t1 = time.perf_counter()
        response = client.infer(spec.ENSEMBLE, [tensor])
        t2 = time.perf_counter()
        for name in (spec.CAMOUFLAGED_FRAME, spec.FACE_BOXES_OUT, spec.FACE_STATUS, spec.FACE_APPEARANCE):
            response.as_numpy(name)
        t3 = time.perf_counter()
        encode, decode, total = encode + (t1 - t0), decode + (t3 - t2), total + (t3 - t0)
    after_ns, after_count = ensemble_ns()
    client.close()
    server = (after_ns - before_ns) / 1e9
    transport = max(total - encode - decode - server, 0.0)
    count = after_count - before_count
    return {
        "frames": len(frames), "server_requests_counted": count,
        "ms_per_frame": {"total": round(1000 * total / len(frames), 2), "server_ensemble": round(1000 * server / len(frames), 2),
                         "encode": round(1000 * encode / len(frames), 3), "decode": round(1000 * decode / len(frames), 3),
                         "transport_grpc": round(1000 * transport / len(frames), 2)},
        "client_overhead_share": round((encode + decode + transport) / total, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--video", type=Path, default=ROOT / "assets" / "video" / "video_01.mp4")
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    args = parser.parse_args(argv)
    from export.triton_server import Supervision, TritonServer
    from facecamo_client.video import VideoReader

    work = args.out / "client_runs"
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"video": repo_relative(args.video)}
    print("command line, embedded engine ...", file=sys.stderr)
    report["cli_embedded"] = run_cli(args.video, work / "embedded.mp4", ["--repository", repo_relative(args.repository)])
    with TritonServer(args.repository, supervision=Supervision(canary=None)) as server:  # no canary frames in the figures
        print("command line, Triton server ...", file=sys.stderr)
        report["cli_server"] = run_cli(args.video, work / "server.mp4", ["--server", server.grpc_url])
        frames = list(VideoReader(str(args.video)))
        print("client overhead ...", file=sys.stderr)
        report["client_overhead"] = client_overhead(server.grpc_url, frames)
    (args.out / "bench_client.json").write_text(json.dumps(report, indent=2))
    o = report["client_overhead"]["ms_per_frame"]
    lines = [f"Video `{report['video']}` ({report['cli_embedded']['frames']} frames).", "",
             "| path | frames/s (processing) | wall s incl. start |", "|---|---|---|",
             f"| embedded (ONNX Runtime in-process) | {report['cli_embedded']['frames_per_second']} | {report['cli_embedded']['wall_seconds_including_start']} |",
             f"| Triton server over gRPC | {report['cli_server']['frames_per_second']} | {report['cli_server']['wall_seconds_including_start']} |",
             "", "Per-frame client overhead over gRPC (sequential requests):", "",
             "| total ms | server ensemble ms | encode ms | decode ms | gRPC transport ms | client overhead share |", "|---|---|---|---|---|---|",
             f"| {o['total']} | {o['server_ensemble']} | {o['encode']} | {o['decode']} | {o['transport_grpc']} | {report['client_overhead']['client_overhead_share']:.1%} |"]
    (args.out / "bench_client.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
