# SPDX-License-Identifier: Apache-2.0
"""Soak benchmark: N SDK streams over the sample clips for a set time against a real tritonserver; figures to
``OUT/bench_soak.json`` and ``.md`` (``OUT/bench_soak_<label>.*`` with ``--label``, so runs with other settings are
kept side by side).

    python -m benchmarks.soak [--repository model_repository] [--out bench] [--streams 4] [--seconds 120] [--label L]

Each stream is one :class:`facecamo_client.CamouflageClient` (its own connection, like one camera) running
``stream()`` over the clips in ``../shared/samples/video`` one after another (read with
:class:`facecamo_client.video.VideoReader`, which applies a clip's rotation), starting at a different clip, until the
time is up. Reported: frames/s per window (10 s), requests by outcome and errors by type, p50/p95/max latency of a
request (submit to answer, so it includes waiting behind the other streams' frames), faces by status, and the
resident memory (RSS, and its peak) of tritonserver and of each python-backend process at the start (after one
warm-up frame per clip) and at the end, with the total at each window.

The server is the launcher's (:class:`serving.server.TritonServer`) with its supervisor watching the processes
but no canary frames (``--canary`` adds them, as ``make serve`` runs), so the figures are the streams' alone.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import platform
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.measure import cpu_seconds, cpu_sentence, cpu_use, percentiles_ms, server_memory, write_figures

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACECAMO_SHARED", ROOT.parent / "shared"))
CLIPS = SHARED / "samples" / "video"


# -- what the streams saw -------------------------------------------------------------------------------------------
class Recorder:
    """Thread-safe record of every request (when it was answered, how long it took, its outcome) and every frame a
    stream returned (when, whether it failed, its faces)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.requests: list[tuple[float, float]] = []  # (answered at, seconds since the start; latency in seconds)
        self.outcomes: collections.Counter = collections.Counter()  # "ok" or the SDK's exception type
        self.error_examples: dict[str, str] = {}
        self.frames: list[float] = []  # when each frame came out of a stream
        self.failed_frames: collections.Counter = collections.Counter()  # result.failed reasons (first words)
        self.faces: collections.Counter = collections.Counter()
        self.stream_errors: collections.Counter = collections.Counter()  # exceptions that ended a clip's stream()

    def request_done(self, submitted: float, future) -> None:
        now = time.monotonic()
        error = future.exception()
        with self.lock:
            self.requests.append((now - self.started, now - submitted))
            name = "ok" if error is None else type(error).__name__
            self.outcomes[name] += 1
            if error is not None:
                self.error_examples.setdefault(name, str(error)[:300])

    def request_refused(self, error: Exception) -> None:
        with self.lock:
            self.outcomes[type(error).__name__] += 1
            self.error_examples.setdefault(type(error).__name__, str(error)[:300])

    def frame_done(self, result) -> None:
        with self.lock:
            self.frames.append(time.monotonic() - self.started)
            if result.failed:
                self.failed_frames[result.failed.split(":")[0][:80]] += 1
            for face in result.faces:
                self.faces[face.status] += 1

    def stream_error(self, error: Exception) -> None:
        with self.lock:
            self.stream_errors[type(error).__name__] += 1
            self.error_examples.setdefault(type(error).__name__, str(error)[:300])


def measured_client_class():
    """A CamouflageClient that records each request's latency and outcome (the SDK's own client, unchanged)."""
    from facecamo_client import CamouflageClient

    class MeasuredClient(CamouflageClient):
        def __init__(self, url: str, recorder: Recorder, **kwargs: Any) -> None:
            super().__init__(url, **kwargs)
            self.recorder = recorder

        def submit(self, frame, appearance=None, boxes=None, tracks=None):
            submitted = time.monotonic()
            try:
                future = super().submit(frame, appearance, boxes, tracks)
            except Exception as error:  # refused before sending (InvalidInputError): counted, then raised as usual
                self.recorder.request_refused(error)
                raise
            future.add_done_callback(lambda done: self.recorder.request_done(submitted, done))
            return future

    return MeasuredClient


def run_stream(number: int, url: str, clips: list[Path], deadline: float, recorder: Recorder, max_in_flight: int,
               timeout_s: float) -> None:
    """Stream ``clips`` (starting at clip ``number``) until ``deadline``: frames are read as they are sent."""
    from facecamo_client import FacecamoError
    from facecamo_client.video import VideoReader

    with measured_client_class()(url, recorder, timeout_s=timeout_s, retry_for_s=30) as client:
        for clip in itertools.islice(itertools.cycle(clips), number % len(clips), None):
            if time.monotonic() >= deadline:
                return
            with VideoReader(clip) as reader:
                frames = itertools.takewhile(lambda _: time.monotonic() < deadline, reader)
                try:
                    for result in client.stream(frames, max_in_flight=max_in_flight):
                        recorder.frame_done(result)
                except FacecamoError as error:  # stream() raises only for invalid input; counted, next clip
                    recorder.stream_error(error)


# -- the run -------------------------------------------------------------------------------------------------------------
def soak(repository: Path, clips: list[Path], streams: int, seconds: float, window: float, max_in_flight: int,
         timeout_s: float, canary: bool) -> dict:
    from facecamo_client import CamouflageClient
    from facecamo_client.video import VideoReader

    from serving.control import facecamo_canary
    from serving.server import TritonServer
    from serving.supervisor import Supervision

    supervision = Supervision(canary=facecamo_canary if canary else None)
    with TritonServer(repository, supervision=supervision) as server:
        with CamouflageClient(server.grpc_url, timeout_s=120) as warm:  # first requests load lazily: not in the figures
            for clip in clips:
                with VideoReader(clip) as reader:
                    warm.camouflage(next(iter(reader)))
        memory_start = server_memory(server)
        cpu_start = cpu_seconds(server)
        recorder = Recorder()
        deadline = recorder.started + seconds
        samples: list[dict] = []
        stop_sampling = threading.Event()

        def sample_memory() -> None:
            while not stop_sampling.wait(window):
                memory = server_memory(server)
                samples.append({"at_s": round(time.monotonic() - recorder.started, 1), "total_pss_mb": memory["total"]["pss_mb"],
                                "pss_mb": {name: values["pss_mb"] for name, values in memory.items() if name != "total"}})

        sampler = threading.Thread(target=sample_memory, daemon=True)
        sampler.start()
        workers = [threading.Thread(target=run_stream, args=(n, server.grpc_url, clips, deadline, recorder, max_in_flight, timeout_s),
                                    name=f"stream-{n}") for n in range(streams)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.monotonic() - recorder.started
        stop_sampling.set()
        sampler.join()
        memory_end = server_memory(server)
        cpu = cpu_use(cpu_start, cpu_seconds(server), elapsed)
        events = [{"kind": e.kind, "models": e.models, "detail": e.detail[:200]} for e in server.events]

    windows = []
    frame_times = np.array(recorder.frames)
    request_times = np.array([at for at, _ in recorder.requests])
    latencies = np.array([latency for _, latency in recorder.requests])
    for start in np.arange(0.0, elapsed, window):
        end = min(start + window, elapsed)
        frames = int(((frame_times >= start) & (frame_times < end)).sum()) if len(frame_times) else 0
        in_window = (request_times >= start) & (request_times < end) if len(request_times) else np.zeros(0, bool)
        near_end = [s for s in samples if abs(s["at_s"] - end) < window / 2]  # sampled at the window's end
        sample = min(near_end, key=lambda s: abs(s["at_s"] - end)) if near_end else None
        memory = sample["total_pss_mb"] if sample else None
        windows.append({"from_s": round(float(start), 1), "to_s": round(float(end), 1), "frames": frames,
                        "frames_per_second": round(frames / max(end - start, 1e-9), 2),
                        "p50_ms": percentiles_ms(list(latencies[in_window]))["p50_ms"], "total_pss_mb": memory,
                        "pss_mb_by_process": sample["pss_mb"] if sample else None, "after_deadline": bool(start >= seconds)})
    return {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "cpu_use": cpu,
        "repository": os.path.relpath(repository.resolve(), ROOT),
        "settings": {"streams": streams, "seconds": seconds, "window_s": window, "max_in_flight": max_in_flight,
                     "request_timeout_s": timeout_s, "canary": canary,
                     "clips": [os.path.relpath(c.resolve(), ROOT.parent) for c in clips]},
        "elapsed_s": round(elapsed, 1),
        "frames": len(recorder.frames),
        "frames_per_second": round(len(recorder.frames) / elapsed, 2),
        "requests": sum(recorder.outcomes.values()),
        "outcomes": dict(recorder.outcomes),
        "errors_by_type": {name: count for name, count in recorder.outcomes.items() if name != "ok"},
        "streams_ended_by_error": dict(recorder.stream_errors),
        "error_examples": recorder.error_examples,
        "frames_failed": dict(recorder.failed_frames),
        "faces_by_status": dict(recorder.faces),
        "latency": percentiles_ms(list(latencies)),
        "windows": windows,
        "memory_start": memory_start,
        "memory_end": memory_end,
        "supervisor_events": events,
    }


def markdown(report: dict) -> str:
    s, machine = report["settings"], report["machine"]
    errors = ", ".join(f"{k} {v}" for k, v in report["errors_by_type"].items()) or "none"
    failed = ", ".join(f"{k} ({v})" for k, v in report["frames_failed"].items()) or "none"
    faces = ", ".join(f"{k} {v}" for k, v in sorted(report["faces_by_status"].items()))
    lines = [
        f"# Soak: {s['streams']} SDK streams for {s['seconds']:g} s",
        "",
        f"`make bench-soak` (`python -m benchmarks.soak --streams {s['streams']} --seconds {s['seconds']:g}`). Machine: "
        f"{machine['cores']} cores, CPU only; {cpu_sentence(report['cpu_use'])} "
        f"Repository `{report['repository']}`; each stream is one `CamouflageClient.stream(max_in_flight={s['max_in_flight']})` "
        f"over {', '.join('`' + Path(c).name + '`' for c in s['clips'])} in turn; canary frames {'on' if s['canary'] else 'off'}.",
        "",
        "| | |",
        "|---|---|",
        f"| frames | {report['frames']} in {report['elapsed_s']} s: **{report['frames_per_second']} frames/s** |",
        f"| requests | {report['requests']} ({report['outcomes'].get('ok', 0)} answered; re-runs for stale track hints included) |",
        f"| errors by type | {errors} |",
        f"| frames failed (concealed whole) | {failed} |",
        f"| request latency | p50 {report['latency']['p50_ms']} ms, p95 {report['latency']['p95_ms']} ms, max {report['latency']['max_ms']} ms |",
        f"| faces by status | {faces} |",
        f"| supervisor events | {len(report['supervisor_events'])} |",
        "",
        f"Frames/s per {s['window_s']:g} s window (latency: requests answered in the window; memory: tritonserver and its "
        "python-backend processes together, PSS, so shared memory counts once):",
        "",
        "| window | frames/s | p50 latency ms | memory MiB |",
        "|---|---|---|---|",
    ]
    for w in report["windows"]:
        label = f"{w['from_s']:g}-{w['to_s']:g} s" + (" (draining)" if w["after_deadline"] else "")
        lines.append(f"| {label} | {w['frames_per_second']} | {w['p50_ms']} | {w['total_pss_mb'] if w['total_pss_mb'] is not None else ''} |")
    lines += ["", "Memory (MiB) at the start (after one warm-up frame per clip) and at the end: RSS (resident) with its peak "
              "(high-water mark) at the end, and PSS (shared pages split among the processes: the total is the true one; RSS "
              "counts the python backend's shared memory in tritonserver and in each stub alike):", "",
              "| process | RSS start | RSS end | RSS change | RSS peak | PSS start | PSS end | PSS change |", "|---|---|---|---|---|---|---|---|"]

    def change(after, before) -> str:
        return f"{after - before:+.1f}" if after is not None and before is not None else ""

    for name, start in report["memory_start"].items():
        end = report["memory_end"].get(name, {})
        lines.append(f"| {name} | {start['rss_mb']} | {end.get('rss_mb')} | {change(end.get('rss_mb'), start['rss_mb'])} | "
                     f"{end.get('peak_mb')} | {start['pss_mb']} | {end.get('pss_mb')} | {change(end.get('pss_mb'), start['pss_mb'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the streams run")
    parser.add_argument("--window", type=float, default=10.0, help="seconds per frames/s window")
    parser.add_argument("--max-in-flight", type=int, default=4, help="frames in flight per stream")
    parser.add_argument("--timeout", type=float, default=30.0, help="the SDK's per-request timeout (its default: 30 s)")
    parser.add_argument("--clips", type=Path, default=CLIPS, help="folder of .mp4 clips")
    parser.add_argument("--canary", action="store_true", help="send the supervisor's canary frame every 2 s, as `make serve` does")
    parser.add_argument("--label", default="", help="write OUT/bench_soak_LABEL.{json,md} instead of OUT/bench_soak.*")
    args = parser.parse_args(argv)
    # SIGTERM (a CI or `timeout` stopping the run) unwinds like Ctrl-C, so the server is stopped and cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    clips = sorted(args.clips.glob("*.mp4"))
    if not clips:
        print(f"error: no .mp4 clips in {args.clips} (the project's shared samples: ../shared/samples/video)", file=sys.stderr)
        return 2
    if not (args.repository / "facecamo" / "config.pbtxt").is_file():
        print(f"error: {args.repository} holds no exported model: run `make export` first", file=sys.stderr)
        return 2
    if args.streams < 1 or args.seconds <= 0 or args.window <= 0:
        print("error: --streams must be >= 1, --seconds and --window > 0", file=sys.stderr)
        return 2
    if args.label and not args.label.replace("-", "").replace("_", "").isalnum():
        print(f"error: --label takes letters, digits, - and _ (it names the files), got {args.label!r}", file=sys.stderr)
        return 2
    print(f"soak: {args.streams} streams for {args.seconds:g} s over {len(clips)} clips ...", file=sys.stderr)
    report = soak(args.repository, clips, args.streams, args.seconds, args.window, args.max_in_flight, args.timeout, args.canary)
    write_figures(args.out, f"bench_soak_{args.label}" if args.label else "bench_soak", report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
