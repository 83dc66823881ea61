# SPDX-License-Identifier: Apache-2.0
"""Head-of-line benchmark: how long one heavy request holds the server, what small requests wait meanwhile, and what
it does to memory; figures to ``OUT/bench_head_of_line.json`` and ``.md``.

    python -m benchmarks.head_of_line [--repository model_repository] [--out bench] [--label current] [--repeat 3]

For each heavy request below, sent ``--repeat`` times: single-face 640x480 requests go one after another for as long
as it runs; reported are the heavy request's time and answer, the small requests' latencies while it ran (p50, max,
how many over 1 s), and the resident memory of tritonserver and its python-backend processes before, after each
heavy request, and after a few idle seconds (is the high-water memory released, or at least bounded?).

- ``64 full-frame boxes``: the issue's request: a 3840x2160 frame (a portrait enlarged to fill it, so every box holds
  a face the pipeline camouflages and pastes over the whole frame) with 64 FACE_BOXES covering all of it;
- ``4 full-frame boxes``: the same frame with as many full-frame boxes as the per-request limit accepts;
- ``12 tall tracks over the face limit``: 512 small FACE_BOXES (the per-frame face limit) and 12 TRACK_BOXES of
  1200x2160 far from them, so faces 513 to 524 are concealed without landmarks (a pixelate-and-blur of each box);
- ``64 faces detected``: a 3840x2160 frame tiled with 64 portraits, detected, camouflaged and pasted (real work).

Results are kept per ``--label`` in the JSON (a run replaces its own label's entry and keeps the others), so one
file can hold a "before" and an "after" measured on the same machine; the Markdown shows every label kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.measure import cpu_seconds, cpu_sentence, cpu_use, percentiles_ms, server_memory, write_figures

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 1.0  # the target: a small request answered within 1 s while a heavy one runs
WIDTH, HEIGHT = 3840, 2160


def heavy_requests() -> dict[str, dict[str, np.ndarray]]:
    """Name -> the inputs of one heavy request (FRAME uint8 [2160, 3840, 3], FACE_BOXES float32 [N, 4], ...)."""
    from facecamo.align import load_rgb

    portraits = [load_rgb(str(p)) for p in sorted((ROOT / "assets" / "portraits").glob("congress_*.jpg"))]
    enlarged = cv2.resize(portraits[0], (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
    whole = np.array([[0, 0, WIDTH, HEIGHT]], np.float32)
    tiled = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    cell_w, cell_h = WIDTH // 8, HEIGHT // 8  # 480 x 270: a portrait of 220 x 270 in the middle of each cell
    for index in range(64):
        row, column = divmod(index, 8)
        face = cv2.resize(portraits[index % len(portraits)], (220, cell_h), interpolation=cv2.INTER_AREA)
        left = column * cell_w + (cell_w - 220) // 2
        tiled[row * cell_h : (row + 1) * cell_h, left : left + 220] = face
    # 512 small boxes in the top-right corner (the per-frame face limit), and 12 tall tracks on the left, too far from
    # them to match: faces 513 to 524, concealed without landmarks over 1200x2160 each (3.75 frames' area in all).
    small_boxes = np.array([[x, y, x + 8, y + 8] for y in range(0, 40, 8) for x in range(3000, WIDTH - 8, 8)][:512], np.float32)
    tall_tracks = np.repeat(np.array([[0, 0, 1200, HEIGHT]], np.float32), 12, axis=0)
    return {
        "64 full-frame boxes": {"FRAME": enlarged, "FACE_BOXES": np.repeat(whole, 64, axis=0)},
        "4 full-frame boxes": {"FRAME": enlarged, "FACE_BOXES": np.repeat(whole, 4, axis=0)},
        "12 tall tracks over the face limit": {"FRAME": enlarged, "FACE_BOXES": small_boxes, "TRACK_BOXES": tall_tracks,
                                               "TRACK_APPEARANCE": np.ones(12, np.int32)},
        "64 faces detected": {"FRAME": tiled},
    }


def infer(url: str, inputs: dict[str, np.ndarray], timeout: float) -> tuple[float, str, int | None]:
    """(seconds, outcome: "ok" or the gRPC status and message, faces answered or None). A connection of its own."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from facecamo import spec

    types = {np.dtype(np.uint8): "UINT8", np.dtype(np.float32): "FP32", np.dtype(np.int32): "INT32"}
    tensors = []
    for name, value in inputs.items():
        tensors.append(grpcclient.InferInput(name, list(value.shape), types[value.dtype]))
        tensors[-1].set_data_from_numpy(value)
    with grpcclient.InferenceServerClient(url) as client:
        started = time.perf_counter()
        try:
            result = client.infer(spec.ENSEMBLE, tensors, client_timeout=timeout)
        except InferenceServerException as error:
            return time.perf_counter() - started, f"{error.status()}: {(error.message() or '')[:160]}", None
        return time.perf_counter() - started, "ok", len(result.as_numpy(spec.FACE_STATUS))


def one_heavy(url: str, heavy: dict[str, np.ndarray], small: np.ndarray, timeout: float) -> dict:
    """Send ``heavy``; meanwhile single-face requests one after another (at least one) until it is answered."""
    answer: dict = {}

    def send_heavy() -> None:
        answer["seconds"], answer["outcome"], answer["faces"] = infer(url, heavy, timeout)

    thread = threading.Thread(target=send_heavy)
    thread.start()
    time.sleep(0.05)  # the heavy request goes first
    latencies, overlapped = [], []
    while True:
        running = thread.is_alive()
        seconds, outcome, _ = infer(url, {"FRAME": small}, timeout)
        if outcome != "ok":
            raise RuntimeError(f"a small request failed: {outcome}")
        latencies.append(seconds)
        overlapped.append(running)
        if not thread.is_alive():
            break
    thread.join()
    during = [s for s, o in zip(latencies, overlapped) if o]
    return {"heavy_s": round(answer["seconds"], 2), "heavy_outcome": answer["outcome"], "heavy_faces": answer["faces"],
            "small_requests_during": len(during), **{f"small_{k}": v for k, v in percentiles_ms(during).items()},
            "small_over_1s": sum(1 for s in during if s > TARGET_S)}


def measure(repository: Path, repeat: int, timeout: float, names: list[str] | None) -> tuple[dict, dict | None]:
    """Results per heavy request, and the CPU use of the whole measurement (:func:`benchmarks.measure.cpu_use`)."""
    from benchmarks.serving import synthetic_frames
    from serving.server import TritonServer
    from serving.supervisor import Supervision

    small = synthetic_frames()["1 face"]
    requests = heavy_requests()
    results = {}
    with TritonServer(repository, supervision=Supervision(canary=None)) as server:
        for _ in range(3):  # warm-up: the first requests load lazily
            infer(server.grpc_url, {"FRAME": small}, timeout)
        cpu_start, started = cpu_seconds(server), time.monotonic()
        for name, heavy in requests.items():
            if names and name not in names:
                continue
            print(f"  {name} ...", file=sys.stderr)
            alone = [infer(server.grpc_url, {"FRAME": small}, timeout)[0] for _ in range(5)]
            entry = {"small_alone": percentiles_ms(alone), "memory_before": server_memory(server)["total"], "runs": []}
            for _ in range(repeat):
                run = one_heavy(server.grpc_url, heavy, small, timeout)
                run["memory_after"] = server_memory(server)["total"]
                entry["runs"].append(run)
                print(f"    {run}", file=sys.stderr)
            time.sleep(5)
            entry["memory_idle_5s"] = server_memory(server)["total"]
            entry["memory_by_process_at_end"] = server_memory(server)
            results[name] = entry
        cpu = cpu_use(cpu_start, cpu_seconds(server), time.monotonic() - started)
    return results, cpu


def markdown(report: dict) -> str:
    lines = ["# Head of line: one heavy request, and single-face 640x480 requests meanwhile", "",
             "`make bench-hol` (`python -m benchmarks.head_of_line`): each heavy request is sent several times; while it runs, "
             "single-face 640x480 requests go one after another (a second connection). Target: each answered within "
             f"{TARGET_S:g} s, and memory released or bounded. Memory: MiB of tritonserver and all its python-backend processes "
             "together, PSS (shared memory counted once); peak: the sum of each process's resident high-water mark (RSS, "
             "which counts the python backend's shared memory in the server and in a stub alike).", ""]
    for label, run in report["runs"].items():
        machine = run["machine"]
        lines += [f"## {label}", "", run.get("note") or "",
                  f"Machine: {machine['cores']} cores, CPU only; {cpu_sentence(run.get('cpu_use')) or 'CPU use not recorded.'} "
                  f"Repository `{run['repository']}`.", "",
                  "| heavy request | try | heavy: time, answer | small requests meanwhile | small p50 / max ms | over 1 s | "
                  "memory MiB before -> after (peak) | after 5 s idle |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, entry in run["results"].items():
            before = entry["memory_before"]["pss_mb"]
            for number, r in enumerate(entry["runs"], 1):
                answer = r["heavy_outcome"] if r["heavy_outcome"] == "ok" else r["heavy_outcome"].split(":")[0].replace("StatusCode.", "")
                answer += f", {r['heavy_faces']} faces" if r["heavy_faces"] is not None else ""
                idle = entry["memory_idle_5s"]["pss_mb"] if number == len(entry["runs"]) else ""
                lines.append(f"| {name if number == 1 else ''} | {number} | {r['heavy_s']} s, {answer} | {r['small_requests_during']} | "
                             f"{r['small_p50_ms']} / {r['small_max_ms']} | {r['small_over_1s']} | "
                             f"{before if number == 1 else ''} -> {r['memory_after']['pss_mb']} ({r['memory_after']['peak_mb']}) | {idle} |")
        lines.append("")
        lines.append("Small requests alone (before each heavy one), p50 ms: "
                     + ", ".join(f"{name}: {entry['small_alone']['p50_ms']}" for name, entry in run["results"].items()))
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    parser.add_argument("--label", default="current", help="the name this run is kept under in the report")
    parser.add_argument("--note", default="", help="a sentence saying what this run measured (e.g. which code)")
    parser.add_argument("--repeat", type=int, default=3, help="times each heavy request is sent")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a request may take")
    parser.add_argument("--only", action="append", help="run only this heavy request (repeatable)")
    args = parser.parse_args(argv)
    # SIGTERM (a CI or `timeout` stopping the run) unwinds like Ctrl-C, so the server is stopped and cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not (args.repository / "facecamo" / "config.pbtxt").is_file():
        print(f"error: {args.repository} holds no exported model: run `make export` first", file=sys.stderr)
        return 2
    print(f"head of line ({args.label}) on {args.repository} ...", file=sys.stderr)
    results, cpu = measure(args.repository, args.repeat, args.timeout, args.only)
    run = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}, "cpu_use": cpu,
           "repository": os.path.relpath(args.repository.resolve(), ROOT), "note": args.note, "results": results}
    path = args.out / "bench_head_of_line.json"
    report = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    report["runs"][args.label] = run
    write_figures(args.out, "bench_head_of_line", report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
