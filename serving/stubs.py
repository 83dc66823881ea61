# SPDX-License-Identifier: Apache-2.0
"""The python-backend stub processes of a running tritonserver (its children, one per model instance), found through
Linux /proc with the model, instance and shared-memory region of each, and the folder of those shared-memory segments."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SHM_ROOT = Path("/dev/shm")


@dataclass(frozen=True)
class StubProcess:
    """One python-backend stub: a child process of tritonserver running one instance of one model.

    Its command line is ``triton_python_backend_stub <repository>/<model>/<version>/model.py <shm region> <shm size>
    <shm growth> <parent pid> <backend dir> <ipc handle> <instance name> <kind>``."""

    pid: int
    model: str
    instance: str
    shm_region: str
    dead: bool  # exited but not reaped (tritonserver does not reap a stub that died): a zombie


def python_stubs(server_pid: int) -> dict[int, StubProcess]:
    """The python-backend stubs whose parent is ``server_pid`` (Linux /proc; empty elsewhere)."""
    stubs: dict[int, StubProcess] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return stubs
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            state, parent = stat.rsplit(")", 1)[1].split()[:2]
            if int(parent) != server_pid:
                continue
            args = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, ValueError, IndexError):
            continue
        if state == "Z":  # a zombie's command line is empty: it was a stub if tritonserver never reaped it
            stubs[int(entry)] = StubProcess(int(entry), "?", "?", "", dead=True)
        elif args and args[0].endswith("triton_python_backend_stub") and len(args) > 8:
            stubs[int(entry)] = StubProcess(int(entry), Path(args[1]).parents[1].name, args[8], args[2], dead=False)
    return stubs
