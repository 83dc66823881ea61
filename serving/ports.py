# SPDX-License-Identifier: Apache-2.0
"""The launcher's ports and the errors of a start: a free port, whether a port is free, which sockets listen on one and
whether a process owns them (Linux /proc), the host that reaches a listening address, and ServerStartError with its
cases (a port in use, models that cannot load)."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"


class ServerStartError(RuntimeError):
    """tritonserver could not be started; the message says why and what to change."""


class PortInUseError(ServerStartError):
    """A port the server needs is taken by another process."""

    def __init__(self, message: str, port: int) -> None:
        super().__init__(message)
        self.port = port


class ModelLoadError(ServerStartError):
    """One or more models failed to load (or the public model failed its canary), so the server is not started."""

    def __init__(self, message: str, models: Sequence[str]) -> None:
        super().__init__(message)
        self.models = list(models)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, address: str = LOOPBACK) -> bool:
    """Whether a server could listen on ``address:port`` now (SO_REUSEADDR as servers set it, so a port in TIME_WAIT
    counts as free and only a listening socket as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def listening_sockets(port: int) -> dict[str, str]:
    """Linux: ``{socket inode: local address}`` of the TCP sockets listening on ``port`` (IPv4 and IPv6), read from
    /proc/net/tcp{,6}; empty where /proc is absent. IPv4 addresses are dotted ("127.0.0.1")."""
    found: dict[str, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            address, hex_port = local.rsplit(":", 1)
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            if len(address) == 8:
                address = socket.inet_ntoa(bytes.fromhex(address)[::-1])
            found[inode] = address
    return found


def process_listens_on(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` owns a socket listening on ``port``; None where this cannot be known (no /proc)."""
    if not Path("/proc/net/tcp").exists():
        return None
    inodes = set(listening_sockets(port))
    if not inodes:
        return False
    try:
        links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    except OSError:
        return False
    return any(f"socket:[{inode}]" in links for inode in inodes)


def _local_host(address: str) -> str:
    """Where this machine reaches a server listening on ``address`` (a wildcard address: loopback)."""
    return LOOPBACK if address in ("0.0.0.0", "::", "", "localhost") else address
