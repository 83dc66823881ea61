# SPDX-License-Identifier: Apache-2.0
"""What every benchmark shares: latency percentiles, the CPU and memory of the benchmark and its server, and where the
figures go: ``OUT/<name>.json`` (everything measured) and ``OUT/<name>.md`` (the tables people read), written the same
way by every ``make bench-*`` command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def write_figures(out: Path, name: str, report: dict, text: str) -> None:
    """Write ``report`` as ``out/name.json`` and ``text`` as ``out/name.md`` (creating ``out``), and print ``text``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{name}.md").write_text(text if text.endswith("\n") else text + "\n")
    print(text)


# -- memory ---------------------------------------------------------------------------------------------------------
def process_memory_mb(pid: int) -> dict[str, float | None]:
    """Memory of process ``pid`` in MiB: ``rss_mb`` (resident now), ``peak_mb`` (resident high-water mark), ``pss_mb``
    (proportional: shared pages split among the processes mapping them, so the python backend's shared-memory regions,
    resident in tritonserver and in a stub alike, are counted once in a sum) and ``shm_mb`` (its share of shared
    memory). Linux /proc/<pid>/status and smaps_rollup; elsewhere psutil's RSS where installed. None when unknown."""
    values: dict[str, float | None] = {"rss_mb": None, "peak_mb": None, "pss_mb": None, "shm_mb": None}
    if Path(f"/proc/{pid}/status").exists():
        fields = {"VmRSS": "rss_mb", "VmHWM": "peak_mb", "Pss": "pss_mb", "Pss_Shmem": "shm_mb"}
        for source in ("status", "smaps_rollup"):
            try:
                text = Path(f"/proc/{pid}/{source}").read_text()
            except OSError:
                continue
            for line in text.splitlines():
                key, _, rest = line.partition(":")
                if key in fields and rest.split():
                    values[fields[key]] = round(int(rest.split()[0]) / 1024, 1)  # kB
        return values
    try:
        import psutil
    except ImportError:
        return values
    try:
        values["rss_mb"] = round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    except psutil.Error:  # the process is gone
        return values
    return values


def server_memory(server) -> dict[str, dict[str, float | None]]:
    """Memory of a running :class:`TritonServer`: ``tritonserver`` and each python-backend process by instance name
    (``facecamo_0_0``, ``generator_0_0``, ...), and ``total``: their sums (``pss_mb`` is the true total; ``rss_mb`` and
    ``peak_mb`` count the shared-memory regions twice)."""
    from serving.stubs import python_stubs

    found = {"tritonserver": process_memory_mb(server.process.pid)}
    for pid, stub in sorted(python_stubs(server.process.pid).items(), key=lambda item: item[1].instance):
        if not stub.dead:
            found[stub.instance] = process_memory_mb(pid)
    found["total"] = {key: round(sum(v[key] or 0.0 for v in found.values()), 1) for key in ("rss_mb", "pss_mb", "shm_mb", "peak_mb")}
    return found


def cpu_seconds(server) -> dict[str, float] | None:
    """Busy CPU seconds so far (Linux /proc): ``machine`` (all cores, all processes) and ``ours`` (this process and
    the server's processes, stubs included). The difference between two readings tells how much of the machine other
    work took during a run (figures from a shared machine are read with it). None where /proc is absent."""
    from serving.stubs import python_stubs

    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    ours = sum(os.times()[:2])
    for pid in [server.process.pid, *python_stubs(server.process.pid)]:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ours += (int(stat[11]) + int(stat[12])) / tick  # utime, stime
        except (OSError, ValueError, IndexError):
            continue
    return {"machine": (sum(fields) - fields[3] - fields[4]) / tick, "ours": ours}  # minus idle and iowait


def cpu_use(start: dict | None, end: dict | None, seconds: float) -> dict[str, float] | None:
    """Core-seconds between two :func:`cpu_seconds` readings: available, busy, this benchmark's, other work's."""
    if start is None or end is None:
        return None
    busy, ours = end["machine"] - start["machine"], end["ours"] - start["ours"]
    return {"available_core_s": round(seconds * (os.cpu_count() or 1), 1), "busy_core_s": round(busy, 1),
            "benchmark_and_server_core_s": round(ours, 1), "other_work_core_s": round(max(busy - ours, 0.0), 1)}


def percentiles_ms(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50_ms": None, "p95_ms": None, "max_ms": None}
    values = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(values, 50)), 1), "p95_ms": round(float(np.percentile(values, 95)), 1),
            "max_ms": round(float(values.max()), 1)}


def cpu_sentence(cpu: dict | None) -> str:
    if not cpu:
        return ""
    return (f"during the run the cores were busy {cpu['busy_core_s']} of {cpu['available_core_s']} core-seconds, "
            f"{cpu['other_work_core_s']} of them with work other than this benchmark and its server.")
