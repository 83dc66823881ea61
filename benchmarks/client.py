# SPDX-License-Identifier: Apache-2.0
"""Client benchmark: figures to ``OUT/bench_client.json`` and ``.md``.

    python -m benchmarks.client [--repository model_repository] [--videos CLIP ...] [--out bench]

- end-to-end frames/s of the command line on the sample clips (the committed one and ../shared's), embedded engine
  vs Triton server, in one run;
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

from benchmarks.measure import write_figures

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


def default_videos() -> list[Path]:
    """The committed clip, and the sample clips of ../shared when present (a phone clip with a rotation flag and a
    surveillance-like clip of small faces)."""
    shared = ROOT.parent / "shared" / "samples" / "video"
    return [ROOT / "assets" / "video" / "video_01.mp4"] + [
        shared / name for name in ("new_face_video-90.mp4", "person_video_02.mp4") if (shared / name).is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--videos", type=Path, nargs="+", default=None, help="clips (default: the committed one and ../shared's)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    args = parser.parse_args(argv)
    from facecamo_client.video import VideoReader

    from serving.server import TritonServer
    from serving.supervisor import Supervision

    videos = args.videos or default_videos()
    work = ROOT / "out" / "bench_client"  # the output videos: looked at, not committed
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"videos": [repo_relative(v) for v in videos], "clips": []}
    for video in videos:
        print(f"{video.name}: command line, embedded engine ...", file=sys.stderr)
        report["clips"].append({"video": repo_relative(video),
                                "cli_embedded": run_cli(video, work / f"{video.stem}.embedded.mp4", ["--repository", repo_relative(args.repository)])})
    with TritonServer(args.repository, supervision=Supervision(canary=None)) as server:  # no canary frames in the figures
        for clip, video in zip(report["clips"], videos):
            print(f"{video.name}: command line, Triton server ...", file=sys.stderr)
            clip["cli_server"] = run_cli(video, work / f"{video.stem}.server.mp4", ["--server", server.grpc_url])
        frames = list(VideoReader(str(videos[0])))
        print("client overhead ...", file=sys.stderr)
        report["client_overhead"] = client_overhead(server.grpc_url, frames)
    o = report["client_overhead"]["ms_per_frame"]
    lines = ["The command line (`make camouflage`, default settings) on each clip, embedded engine and Triton server.", "",
             "| clip | frames | embedded frames/s | server frames/s | embedded wall s incl. start | server wall s incl. start |",
             "|---|---|---|---|---|---|"]
    for clip in report["clips"]:
        e, t = clip["cli_embedded"], clip["cli_server"]
        lines.append(f"| `{clip['video']}` | {e['frames']} | {e['frames_per_second']} | {t['frames_per_second']} | "
                     f"{e['wall_seconds_including_start']} | {t['wall_seconds_including_start']} |")
    lines += ["", f"Per-frame client overhead over gRPC (sequential requests, `{report['videos'][0]}`):", "",
              "| total ms | server model ms | encode ms | decode ms | gRPC transport ms | client overhead share |", "|---|---|---|---|---|---|",
              f"| {o['total']} | {o['server_ensemble']} | {o['encode']} | {o['decode']} | {o['transport_grpc']} "
              f"| {report['client_overhead']['client_overhead_share']:.1%} |"]
    write_figures(args.out, "bench_client", report, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
