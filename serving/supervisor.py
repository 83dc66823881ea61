# SPDX-License-Identifier: Apache-2.0
"""The supervisor of a running tritonserver: a thread that watches the python-backend stubs and runs the canary; on a
fault it unloads the public model (readiness false), reloads the broken models, loads the public model again, ends
what is left of the replaced load, and starts tritonserver again if it died. What this guarantees, and why, is in
:mod:`serving.server`'s docstring."""

from __future__ import annotations

import collections
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from facecamo import spec
from serving.control import Canary, CanaryBusy, ControlError, facecamo_canary
from serving.ports import ServerStartError
from serving.stubs import SHM_ROOT, StubProcess, python_stubs

if TYPE_CHECKING:
    from serving.server import TritonServer

LOG = logging.getLogger("facecamo.serve")


@dataclass
class SupervisorEvent:
    """What the supervisor saw or did: ``kind`` is "broken" (models, why), "restored" (models, seconds of the gap),
    "retry" (a restart attempt failed: why), "ended" (a process of a replaced load still running after the restart
    was killed) or "busy" (the canary timed out: not acted upon)."""

    at: float  # time.monotonic()
    kind: str
    models: list[str]
    detail: str = ""


@dataclass(frozen=True)
class Supervision:
    """Supervisor settings. ``public_models``: what clients call (unloaded during a restart so their readiness is
    false); ``canary``: a probe through the public model (None: stub watching only); ``failures_to_act``: consecutive
    canary failures (not timeouts) before a restart."""

    public_models: tuple[str, ...] = (spec.ENSEMBLE,)
    canary: Canary | None = facecamo_canary
    poll_interval_s: float = 0.5
    canary_interval_s: float = 2.0
    canary_timeout_s: float = 20.0
    failures_to_act: int = 2
    max_backoff_s: float = 30.0
    old_load_grace_s: float = 5.0  # after a restart, how long the replaced load's processes get to exit by themselves


class Supervisor(threading.Thread):
    """Watches a running tritonserver and restarts broken models (see the module's docstring).

    Two threads: this one watches the stub processes every ``poll_interval_s`` and does every restart; a second one
    runs the canary (which may wait behind long requests) and only reports its verdict, so a slow canary never delays
    noticing a dead process."""

    def __init__(self, server: TritonServer, settings: Supervision) -> None:
        super().__init__(name="facecamo-supervisor", daemon=True)
        self.server, self.settings = server, settings
        self.control = server.control
        self.healthy = threading.Event()
        self.healthy.set()
        self.events: collections.deque[SupervisorEvent] = collections.deque(maxlen=1000)
        self._stop_event = threading.Event()
        self._known: dict[int, StubProcess] = {}
        self._retired: set[int] = set()  # stubs of instances we unloaded: their exit is not a death
        self._dead_regions: set[str] = set()
        self._old_loads: list[tuple[float, dict[int, StubProcess]]] = []  # replaced loads' processes: (deadline, pids)
        self.stuck_unloads = 0  # replaced model loads Triton may never finish unloading (one of their processes died)
        self._canary_failure: str | None = None
        self._canary_thread = threading.Thread(target=self._canary_loop, name="facecamo-canary", daemon=True)

    def stop(self) -> None:
        self._stop_event.set()
        for thread in (self, self._canary_thread):
            if thread.is_alive():
                thread.join(timeout=60)

    def _record(self, kind: str, models: Sequence[str], detail: str = "") -> None:
        self.events.append(SupervisorEvent(time.monotonic(), kind, sorted(models), detail))
        level = logging.INFO if kind in ("restored", "busy", "ended") else logging.WARNING
        LOG.log(level, "supervisor: %s %s%s", kind, ", ".join(sorted(models)) or "-", f": {detail}" if detail else "")

    def _live_stubs(self) -> dict[int, StubProcess]:
        process = self.server.process
        if process is None:
            return {}
        return {pid: stub for pid, stub in python_stubs(process.pid).items() if not stub.dead and pid not in self._retired}

    def _dead_stubs(self) -> list[StubProcess]:
        current = python_stubs(self.server.process.pid)
        dead = [stub for pid, stub in self._known.items() if pid not in current or current[pid].dead]
        for pid in [stub.pid for stub in dead]:
            del self._known[pid]
        for pid, stub in current.items():  # an instance loaded since the last look
            if not stub.dead and pid not in self._retired:
                self._known.setdefault(pid, stub)
        self._retired &= set(current)
        return dead

    def run(self) -> None:
        self._known = self._live_stubs()
        if self.settings.canary is not None:
            self._canary_thread.start()
        while not self._stop_event.wait(self.settings.poll_interval_s):
            process = self.server.process
            if process is None:
                self.healthy.clear()
                return
            if process.poll() is not None:
                # tritonserver itself died (its python backend aborts, e.g. on a mutex a killed process held):
                # start it again on the same ports, readiness false meanwhile.
                self._restart_server(f"tritonserver exited with code {process.returncode}")
                continue
            dead = self._dead_stubs()
            if dead:
                self._dead_regions.update(stub.shm_region for stub in dead if stub.shm_region)
                instances = ", ".join(stub.instance for stub in dead)
                self._restart({stub.model for stub in dead}, f"python-backend process of {instances} died", dead)
            elif self._canary_failure is not None:
                self._restart(self._all_models(), self._canary_failure)
            self._canary_failure = None
            self._end_old_loads()

    def _canary_loop(self) -> None:
        failures, busy = 0, False
        while not self._stop_event.wait(self.settings.canary_interval_s):
            if not self.healthy.is_set() or self._canary_failure is not None:
                failures = 0
                continue  # a restart is under way: it runs its own canary
            try:
                self.settings.canary(self.control, self.settings.canary_timeout_s)
                failures, busy = 0, False
            except CanaryBusy as slow:  # behind long requests: reported once per busy spell, never acted upon
                if not busy:
                    self._record("busy", self.settings.public_models, str(slow))
                busy = True
            except (ControlError, OSError) as error:
                busy = False
                failures += 1
                if failures >= self.settings.failures_to_act and self.healthy.is_set():
                    self._canary_failure = f"canary failed {failures} times: {error}"
                    failures = 0

    def _all_models(self) -> set[str]:
        try:
            return {entry["name"] for entry in self.control.index()}
        except (ControlError, OSError):
            return set(self.settings.public_models)

    def _restart(self, models: set[str], why: str, died: Sequence[StubProcess] = ()) -> None:
        """Unload the public models (readiness false), unload and load ``models``, load the public models, re-run the
        canary; retried with backoff until it works or the launcher stops. ``died``: the processes whose death
        caused it."""
        self.healthy.clear()
        started = time.monotonic()
        self._record("broken", models, why)
        # A process that died before this restart (a canary failure may start it before the process watch looks)
        # leaves its shared memory behind: remember it before its pid is retired below.
        died = [*died, *self._dead_stubs()]
        self._dead_regions.update(stub.shm_region for stub in died if stub.shm_region)
        # Triton does not always finish unloading a model one of whose processes died (it can wait for that process's
        # answer for ever): such a model may stay "live" until Triton's exit timeout, and stop() knows to expect it.
        self.stuck_unloads += len({stub.model for stub in died})
        delay = 1.0
        old_load: dict[int, StubProcess] = {}
        while not self._stop_event.is_set():
            touched = models | set(self.settings.public_models)
            # Every process of a model about to be unloaded (including those a failed attempt loaded) will exit.
            current = {**self._known, **self._live_stubs()}
            old_load.update({pid: stub for pid, stub in current.items() if stub.model in touched})
            self._retired |= set(old_load)
            try:
                self._restart_once(models)
            except (ControlError, OSError) as error:
                self._record("retry", models, f"{error}; next try in {delay:.0f} s")
                if self._stop_event.wait(delay):
                    return
                delay = min(delay * 2, self.settings.max_backoff_s)
                continue
            self._old_loads.append((time.monotonic() + self.settings.old_load_grace_s, old_load))
            # Keep watching the stubs that were not restarted (one that died meanwhile is noticed at the next look).
            self._known = {pid: stub for pid, stub in self._known.items() if pid not in self._retired}
            for pid, stub in self._live_stubs().items():
                self._known.setdefault(pid, stub)
            self._forget_dead_regions()
            self.healthy.set()
            self._record("restored", models, f"after {time.monotonic() - started:.1f} s")
            return

    def _restart_server(self, why: str) -> None:
        self.healthy.clear()
        started = time.monotonic()
        self._record("broken", ["tritonserver"], why)
        delay = 1.0
        while not self._stop_event.is_set():
            try:
                self.server._relaunch()
            except (ServerStartError, TimeoutError, OSError) as error:
                self._record("retry", ["tritonserver"], f"{error}; next try in {delay:.0f} s")
                if self._stop_event.wait(delay):
                    return
                delay = min(delay * 2, self.settings.max_backoff_s)
                continue
            self._known, self._retired = self._live_stubs(), set()
            self._dead_regions.clear()
            self._old_loads.clear()
            self.stuck_unloads = 0
            self.healthy.set()
            self._record("restored", ["tritonserver"], f"after {time.monotonic() - started:.1f} s")
            return

    def _restart_once(self, models: set[str]) -> None:
        public = list(self.settings.public_models)
        # Public models first (their readiness turns false at once), then the broken ones: a load of a model that is
        # still loaded is a no-op in Triton (the dead instance would keep serving "Stub process ... is not healthy").
        for name in public + sorted(models - set(public)):
            try:
                self.control.unload(name)
            except ControlError:
                pass  # not loaded: nothing to unload
        for name in sorted(models - set(public)) + public:
            self.control.load(name)
        if self.settings.canary is not None:
            deadline = time.monotonic() + self.settings.canary_timeout_s
            while True:  # the first requests after a load may be slow; a definite failure is not retried here
                try:
                    self.settings.canary(self.control, self.settings.canary_timeout_s)
                    return
                except CanaryBusy:
                    if time.monotonic() > deadline:
                        raise ControlError("the canary got no answer after the restart") from None

    def _end_old_loads(self) -> None:
        """After a restart, no process of the replaced load may stay. Triton finalises an unloaded model's instances
        one after another, and an instance whose process died holds up the rest: their processes kept running, each
        with its shared memory (257 MB and a 71 MB region for a ``facecamo`` instance), until the server stopped.
        Looked at on every watch (the restart does not wait for it): those still running ``old_load_grace_s`` after
        the restart are killed, and every old process's shared-memory region is unlinked once none runs."""
        server = self.server.process
        if server is None or not self._old_loads:
            return
        current = python_stubs(server.pid)
        pending = []
        for deadline, old_load in self._old_loads:
            # the same process: same pid and the same shared-memory region (a new process could reuse a freed pid)
            left = [stub for pid, stub in old_load.items() if pid in current and not current[pid].dead
                    and current[pid].shm_region == stub.shm_region]
            if left and time.monotonic() < deadline:
                pending.append((deadline, old_load))
                continue
            for stub in left:
                try:
                    os.kill(stub.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    continue
                self._record("ended", [stub.model], f"process {stub.pid} of the replaced {stub.instance} was still running: killed")
            self._dead_regions.update(stub.shm_region for stub in old_load.values() if stub.shm_region)
            self._forget_dead_regions()
        self._old_loads = pending

    def _forget_dead_regions(self) -> None:
        """Unlink the shared-memory segments of stubs that died (Triton keeps them mapped and never unlinks them;
        the names are unique, so nothing reuses them)."""
        for region in self._dead_regions:
            try:
                (SHM_ROOT / region).unlink()
            except OSError:
                pass
        self._dead_regions.clear()
