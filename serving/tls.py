# SPDX-License-Identifier: Apache-2.0
"""gRPC TLS and mutual TLS for tritonserver: the certificate files (checked before the start, naming the option that
cannot work) and the tritonserver flags they become."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serving.ports import ServerStartError


@dataclass(frozen=True)
class TlsSettings:
    """gRPC TLS for tritonserver (``--grpc-use-ssl``).

    Attributes:
        server_cert, server_key: PEM files: the server's certificate (its subject/SAN must name the host clients
            dial) and private key.
        root_cert: PEM file of the CA whose signature a client certificate must carry (required for ``mutual``).
        mutual: require and verify a client certificate (``--grpc-use-ssl-mutual``).
    """

    server_cert: Path
    server_key: Path
    root_cert: Path | None = None
    mutual: bool = False

    def check(self) -> None:
        """Raise ServerStartError naming the file or option that cannot work."""
        if self.mutual and self.root_cert is None:
            raise ServerStartError("mutual TLS needs the CA that signs client certificates: --grpc-root-cert (TLS_CA=)")
        for option, path in (("--grpc-server-cert (TLS_CERT=)", self.server_cert), ("--grpc-server-key (TLS_KEY=)", self.server_key),
                             ("--grpc-root-cert (TLS_CA=)", self.root_cert)):
            if path is None:
                continue
            try:
                head = Path(path).read_bytes()[:65536]
            except OSError as error:
                raise ServerStartError(f"{option}: cannot read {path}: {error.strerror}") from None
            if b"-----BEGIN" not in head:
                raise ServerStartError(f"{option}: {path} is not a PEM file (no '-----BEGIN' line)")

    def flags(self) -> list[str]:
        flags = ["--grpc-use-ssl=true", f"--grpc-server-cert={Path(self.server_cert).resolve()}",
                 f"--grpc-server-key={Path(self.server_key).resolve()}"]
        if self.root_cert is not None:
            flags.append(f"--grpc-root-cert={Path(self.root_cert).resolve()}")
        flags.append(f"--grpc-use-ssl-mutual={'true' if self.mutual else 'false'}")
        return flags
