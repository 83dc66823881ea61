# SPDX-License-Identifier: Apache-2.0
"""``python -m serving``: what `make serve` runs and the container's entry point (Dockerfile). It starts tritonserver
on a model repository under the supervisor, says where it serves, and stops it cleanly on Ctrl-C or SIGTERM, also
while it is still starting; ``--help`` prints the launcher's guarantees (:mod:`serving.server`) and its options."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

import serving.server
from facecamo import spec
from serving.control import facecamo_canary
from serving.ports import LOOPBACK, ServerStartError
from serving.server import TritonServer
from serving.supervisor import Supervision
from serving.tls import TlsSettings

LOG = logging.getLogger("facecamo.serve")


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=serving.server.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=Path("model_repository"))
    parser.add_argument("--grpc-port", type=int, default=int(os.environ.get("GRPC_PORT", "8001")))
    parser.add_argument("--http-port", type=int, default=int(os.environ.get("HTTP_PORT", "8000")),
                        help="HTTP/REST port (health, readiness, and the launcher's model control)")
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("METRICS_PORT", "8002")),
                        help="Prometheus metrics port")
    parser.add_argument("--grpc-address", default=os.environ.get("GRPC_ADDRESS", LOOPBACK),
                        help="gRPC listening address (default 127.0.0.1; 0.0.0.0 for every interface: use TLS then)")
    parser.add_argument("--http-address", default=os.environ.get("HTTP_ADDRESS", LOOPBACK),
                        help="HTTP listening address (default 127.0.0.1; 0.0.0.0 inside a container)")
    parser.add_argument("--metrics-address", default=os.environ.get("METRICS_ADDRESS", LOOPBACK),
                        help="metrics listening address (default 127.0.0.1; 0.0.0.0 inside a container)")
    parser.add_argument("--tritonserver", type=Path, default=None,
                        help="the tritonserver binary (default: the nvidia-pytriton wheel's; NVIDIA's container: "
                             "/opt/tritonserver/bin/tritonserver)")
    parser.add_argument("--backend-directory", type=Path, default=None,
                        help="that binary's backends (default: backends/ beside its bin/); only with --tritonserver")
    tls = parser.add_argument_group("TLS (gRPC)")
    tls.add_argument("--grpc-use-ssl", action="store_true", help="serve gRPC over TLS (implied by --grpc-server-cert)")
    tls.add_argument("--grpc-server-cert", type=Path, help="PEM certificate of the server (TLS_CERT=)")
    tls.add_argument("--grpc-server-key", type=Path, help="PEM private key of the server (TLS_KEY=)")
    tls.add_argument("--grpc-root-cert", type=Path, help="PEM CA that signs client certificates (TLS_CA=)")
    tls.add_argument("--grpc-use-ssl-mutual", action="store_true", help="require client certificates signed by --grpc-root-cert (MTLS=1)")
    parser.add_argument("--log-file", type=Path, default=None, help="keep tritonserver's log here (default: a temporary file)")
    parser.add_argument("--canary-interval", type=float, default=2.0, help="seconds between canary frames (0: stub watching only)")
    parser.add_argument("--no-supervise", action="store_true", help="no supervisor: a crashed model stays down")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    settings = None
    wants_tls = args.grpc_use_ssl or args.grpc_use_ssl_mutual or args.grpc_server_cert or args.grpc_server_key or args.grpc_root_cert
    if wants_tls:
        if not (args.grpc_server_cert and args.grpc_server_key):
            print("error: TLS needs the server's certificate and key: --grpc-server-cert and --grpc-server-key "
                  "(make serve TLS_CERT=... TLS_KEY=...)", file=sys.stderr)
            return 2
        settings = TlsSettings(args.grpc_server_cert, args.grpc_server_key, args.grpc_root_cert, args.grpc_use_ssl_mutual)
    elif args.grpc_address not in (LOOPBACK, "localhost"):
        LOG.warning("gRPC listens on %s without TLS: frames travel in clear; give TLS_CERT= and TLS_KEY=", args.grpc_address)
    supervision = None if args.no_supervise else Supervision(canary=facecamo_canary if args.canary_interval > 0 else None,
                                                           canary_interval_s=max(args.canary_interval, 0.1))
    if args.backend_directory is not None and args.tritonserver is None:
        print("error: --backend-directory goes with --tritonserver (the wheel's binary brings its own python backend)", file=sys.stderr)
        return 2
    server = TritonServer(args.repository, args.grpc_port, args.http_port, args.metrics_port, log_path=args.log_file,
                          verbose=args.verbose, tls=settings, grpc_address=args.grpc_address, supervision=supervision,
                          http_address=args.http_address, metrics_address=args.metrics_address,
                          tritonserver=args.tritonserver, backend_directory=args.backend_directory)
    # A SIGTERM while starting (`docker stop` of a container still loading) unwinds the start like Ctrl-C, so the
    # server it was starting (its own session: the signal does not reach it) is stopped, not left behind.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.start()
    except (FileNotFoundError, ServerStartError, TimeoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tritonserver stopped while starting.", file=sys.stderr)
        return 0
    scheme = ("mutual TLS" if settings.mutual else "TLS") if settings else "plaintext"
    kept = "" if args.log_file else " (removed on stop; --log-file keeps one)"
    print(f"Triton is serving {args.repository} on gRPC {server.grpc_url} ({scheme}); HTTP {args.http_address}:{server.http_port}, "
          f"metrics http://{args.metrics_address}:{server.metrics_port}/metrics; log: {server.log_path}{kept}. "
          f"Readiness: model {', '.join(supervision.public_models) if supervision else spec.ENSEMBLE} ready. Ctrl-C stops it.", file=sys.stderr)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    crashed = False
    try:
        while not stop["now"] and server.process and server.process.poll() is None:
            time.sleep(0.5)
        crashed = not stop["now"]
    except KeyboardInterrupt:
        pass
    finally:
        code = server.stop()
    if crashed:
        print(f"error: tritonserver exited on its own with code {code}:\n{server.log_tail()}", file=sys.stderr)
        return code or 1
    if code in (0, None, -signal.SIGTERM):
        print(f"tritonserver stopped{': ' + server.stop_note.split('; ', 1)[1] if server.stop_note else ''}.", file=sys.stderr)
        return 0
    print(f"error: tritonserver exited with code {code} while stopping:\n{server.log_tail()}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
