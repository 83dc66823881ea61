# SPDX-License-Identifier: Apache-2.0
"""Camouflage frames on a Triton server over gRPC (tritonclient). Needs only numpy and tritonclient[grpc].

Every failure comes out as one of the SDK's types (:mod:`facecamo_client.errors`):

- INVALID_ARGUMENT about the request -> :class:`InvalidInputError` (not retried);
- the server unreachable, the model not loaded (``make serve`` unloads a broken model while it restarts it) or its
  process dead -> retried with backoff for ``retry_for_s``, then :class:`ServerUnavailableError`;
- a certificate or handshake failure -> :class:`TLSError`, at once;
- no answer within ``timeout_s`` -> :class:`RequestTimeoutError`;
- anything else the server or one of its models failed on (INTERNAL, a malformed answer, an error about a model the
  client did not call) -> :class:`ServerError`.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from facecamo import spec
from facecamo_client.engine import CamouflageEngine
from facecamo_client.errors import (
    FacecamoError,
    InvalidInputError,
    RequestTimeoutError,
    ServerError,
    ServerUnavailableError,
    TLSError,
)
from facecamo_client.result import CamouflageResult, faces_from_arrays
from facecamo_client.validation import appearance_and_boxes, bounded, frame_array
from facecamo_client.validation import tracks as checked_tracks

OUTPUTS = (spec.CAMOUFLAGED_FRAME, spec.FACE_BOXES_OUT, spec.FACE_STATUS, spec.FACE_APPEARANCE, spec.FACE_SOURCE)
MAX_SERVER_MESSAGE_CHARACTERS = 500  # a server message is kept, but never a whole echoed array
_RETRYABLE = {"StatusCode.UNAVAILABLE", "StatusCode.UNKNOWN"}
# Unambiguous TLS failures, as gRPC words them (client-side verification, unreadable certificates, TLS to a plaintext
# server).
_TLS_MARKERS = ("handshake failed", "ssl_error", "certificate_verify_failed", "security handshaker", "ssl routines",
                "wrong_version_number", "tsi_", "certificate")
# A connection the server closed before gRPC's own greeting: a plaintext client at a TLS server, or a client
# certificate a mutual-TLS server refused. Ambiguous once (a server going down can do it), so confirmed by a second try.
_CLOSED_AT_CONNECT = re.compile(r"failed to connect to all addresses.*socket closed", re.IGNORECASE | re.DOTALL)
# The model exists but is not serving right now: unloaded while a supervisor restarts it, still loading, or its
# python-backend process died (Triton does not restart it; `make serve`'s supervisor does).
_MODEL_OUTAGE = re.compile(r"has no available versions|is not ready|Stub process .* is not healthy|is not loaded", re.IGNORECASE)
_MODEL_NAMES = re.compile(r"model '([^']+)'")


def map_error(error: InferenceServerException, model: str | None = None) -> FacecamoError:
    """tritonclient's exception -> the SDK's type, keeping the server's message (bounded) and status.

    Args:
        error: what tritonclient raised or passed to a callback.
        model: the model the client called; an INVALID_ARGUMENT about another model (a step inside the server) is
            the server's fault, not the caller's.
    """
    status = str(error.status()) if error.status() else None
    message = bounded(error.message() or str(error), MAX_SERVER_MESSAGE_CHARACTERS)
    lower = message.lower()
    if any(marker in lower for marker in _TLS_MARKERS):
        return TLSError(f"TLS failed: {message}. Check root_certificates (the CA that signed the server's certificate), "
                        "and for mutual TLS private_key and certificate_chain", status)
    if _CLOSED_AT_CONNECT.search(message):
        return TLSError(f"the server closed the connection during set-up: it expects TLS (pass ssl=True and "
                        f"root_certificates) or rejected this client's certificate (mutual TLS). gRPC said: {message}", status)
    if status == "StatusCode.INVALID_ARGUMENT":
        others = sorted({name for name in _MODEL_NAMES.findall(message) if name != model})
        if model is not None and others:
            return ServerError(f"a model inside the server ({', '.join(others)}) failed; not a problem with the request: "
                               f"{message}", status)
        return InvalidInputError(message, status)
    if status == "StatusCode.DEADLINE_EXCEEDED":
        return RequestTimeoutError(f"no answer within the timeout: {message}", status)
    if _MODEL_OUTAGE.search(message):
        return ServerUnavailableError(message, status)
    if status in _RETRYABLE or (status is None and "unavailable" in lower):
        return ServerUnavailableError(message, status)
    return ServerError(message, status)


def _check_tls_files(ssl: bool, files: dict[str, str | None]) -> None:
    """Refuse, naming the option, TLS options that cannot work: before any connection is tried."""
    given = {name: path for name, path in files.items() if path is not None}
    if given and not ssl:
        raise TLSError(f"{', '.join(given)} given but ssl=False: pass ssl=True to use TLS")
    if (files["private_key"] is None) != (files["certificate_chain"] is None):
        raise TLSError("mutual TLS needs both private_key and certificate_chain (the client's key and its certificate)")
    for name, path in given.items():
        file = Path(path)
        if not file.is_file():
            raise TLSError(f"{name} file {str(path)!r} does not exist")
        try:
            head = file.read_bytes()[:65536]
        except OSError as error:
            raise TLSError(f"{name} file {str(path)!r} cannot be read: {error}") from None
        if b"-----BEGIN" not in head:
            raise TLSError(f"{name} file {str(path)!r} is not a PEM file (no '-----BEGIN' line)")


class CamouflageClient(CamouflageEngine):
    """A Triton server's ``facecamo`` model.

    Args:
        url: ``host:port`` of Triton's gRPC endpoint (``-u localhost:8001`` in tritonclient's examples).
        ssl, root_certificates, private_key, certificate_chain: TLS, as tritonclient's gRPC client takes them (PEM
            file paths): ``root_certificates`` the CA that signed the server's certificate; ``private_key`` and
            ``certificate_chain`` this client's key and certificate, for a server that asks for them (mutual TLS).
            A missing or unreadable file raises :class:`TLSError` here.
        timeout_s: per-request deadline.
        retry_for_s: keep retrying, with exponential backoff from ``backoff_s`` (at most 2 s apart), while the server
            or the model is unavailable.
        model: the served model's name.
    """

    def __init__(self, url: str = "localhost:8001", *, ssl: bool = False, root_certificates: str | None = None,
                 private_key: str | None = None, certificate_chain: str | None = None, timeout_s: float = 30.0,
                 retry_for_s: float = 30.0, backoff_s: float = 0.25, model: str = spec.ENSEMBLE, verbose: bool = False) -> None:
        self.url, self.timeout_s, self.retry_for_s, self.backoff_s, self.model = url, timeout_s, retry_for_s, backoff_s, model
        self._client = None
        _check_tls_files(ssl, {"root_certificates": root_certificates, "private_key": private_key,
                               "certificate_chain": certificate_chain})
        try:
            self._client = grpcclient.InferenceServerClient(url, verbose=verbose, ssl=ssl, root_certificates=root_certificates,
                                                            private_key=private_key, certificate_chain=certificate_chain)
        except InferenceServerException as error:
            raise map_error(error, model) from None
        except (OSError, ValueError, TypeError) as error:
            raise TLSError(f"cannot set up the connection to {url}: {error}") if ssl else ServerError(
                f"cannot set up the connection to {url}: {error}") from None

    # -- health ------------------------------------------------------------------------------------------------
    def is_server_live(self) -> bool:
        return self._health(self._client.is_server_live)

    def is_server_ready(self) -> bool:
        return self._health(self._client.is_server_ready)

    def is_model_ready(self) -> bool:
        """Whether the model is loaded and ready. With ``make serve`` this is the truthful signal: its supervisor
        unloads a model whose process died or whose canary failed, and loads it again once it works."""
        return self._health(lambda: self._client.is_model_ready(self.model))

    def is_ready(self) -> bool:
        """The server answers, says it is ready, and the model is ready (what :meth:`wait_until_ready` waits for)."""
        return self.is_server_ready() and self.is_model_ready()

    def _health(self, call) -> bool:
        """``call()``'s answer; False when the server cannot be reached. A TLS failure raises :class:`TLSError` (a
        health check that kept answering False would hide it for the whole wait)."""
        for attempt in range(2):
            try:
                return bool(call())
            except InferenceServerException as error:
                mapped = map_error(error, self.model)
                if not isinstance(mapped, TLSError):
                    return False
                if attempt == 0 and _CLOSED_AT_CONNECT.search(error.message() or ""):
                    time.sleep(0.2)  # ambiguous once: a server going down closes connections too
                    continue
                raise mapped from None
        return False

    def wait_until_ready(self, timeout_s: float | None = None) -> None:
        """Block until :meth:`is_ready`: the server answers and says it is ready, and the model is loaded and ready.

        Against ``make serve`` (the supervised launcher) this also means the model passed its canary since its last
        restart: while a crashed model is being restarted it is unloaded, so this waits for the restart to finish
        (seconds) instead of returning into a gap. Against a bare ``tritonserver`` it means only that the model is
        loaded. Tries again with backoff (from ``backoff_s``, at most 2 s apart).

        Raises:
            ServerUnavailableError: naming the URL, when not ready within ``timeout_s`` (default ``retry_for_s``).
            TLSError: at once, when TLS fails (an untrusted certificate, a rejected client certificate, TLS on one
                side only): waiting would not help.
        """
        deadline = time.monotonic() + (self.retry_for_s if timeout_s is None else timeout_s)
        delay = self.backoff_s
        while True:
            if self.is_ready():
                return
            if time.monotonic() >= deadline:
                raise ServerUnavailableError(f"Triton at {self.url} is not ready (model {self.model!r}); is the server running? "
                                             "Start one with `make serve`")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    # -- inference ---------------------------------------------------------------------------------------------
    def _inputs(self, frame: np.ndarray, appearance, boxes, tracks) -> list:
        """The request's tensors; every argument is checked first (:mod:`facecamo_client.validation`)."""
        tensors = [(spec.FRAME, frame_array(frame), "UINT8")]
        rows, given = appearance_and_boxes(appearance, boxes)
        for name, value, dtype in ((spec.APPEARANCE_INDEX, rows, "INT32"), (spec.FACE_BOXES, given, "FP32")):
            if value is not None:
                tensors.append((name, value, dtype))
        hints = checked_tracks(tracks)
        if hints is not None:
            tensors += [(spec.TRACK_BOXES, hints[0], "FP32"), (spec.TRACK_APPEARANCE, hints[1], "INT32")]
        inputs = []
        for name, value, dtype in tensors:
            tensor = grpcclient.InferInput(name, list(value.shape), dtype)
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        return inputs

    @staticmethod
    def _result(response, frame_shape: tuple[int, ...]) -> CamouflageResult:
        """The answer as a :class:`CamouflageResult`, or :class:`ServerError` when it is incomplete or inconsistent
        (a frame of another size, per-face outputs of different lengths): never a partial or guessed result."""
        arrays = {name: response.as_numpy(name) for name in OUTPUTS}
        missing = [name for name, value in arrays.items() if value is None and name != spec.FACE_SOURCE]
        if missing:
            raise ServerError(f"the server's answer lacks {missing}: is the served model a facecamo model of this version?")
        frame = arrays[spec.CAMOUFLAGED_FRAME]
        if frame.shape != frame_shape or frame.dtype != np.uint8:
            raise ServerError(f"the server returned a {frame.dtype} frame of shape {list(frame.shape)} for a uint8 "
                              f"frame of shape {list(frame_shape)}")
        boxes = arrays[spec.FACE_BOXES_OUT]
        if boxes.ndim != 2 or boxes.shape[1:] != (4,):
            raise ServerError(f"the server returned face boxes of shape {list(boxes.shape)}, not [N, 4]")
        per_face = {name: arrays[name].reshape(-1) for name in (spec.FACE_STATUS, spec.FACE_APPEARANCE, spec.FACE_SOURCE)
                    if arrays[name] is not None}
        counts = {name: len(value) for name, value in per_face.items()}
        if any(count != len(boxes) for count in counts.values()):
            raise ServerError(f"the server returned {len(boxes)} face boxes but per-face outputs of lengths {counts}")
        return CamouflageResult(frame, faces_from_arrays(boxes, per_face[spec.FACE_STATUS], per_face[spec.FACE_APPEARANCE],
                                                         per_face.get(spec.FACE_SOURCE)))

    @property
    def answer_timeout_s(self) -> float:
        """Every request is answered, retried or failed within its retry window plus one deadline; past that (and a
        margin) its callback is not coming: the stream conceals the frame instead of waiting forever."""
        return self.retry_for_s + self.timeout_s + 10.0

    def submit(self, frame: np.ndarray, appearance=None, boxes=None, tracks=None) -> Future[CamouflageResult]:
        """Send one frame asynchronously; the future holds a :class:`CamouflageResult` or raises the SDK's error.

        Invalid arguments raise :class:`InvalidInputError` here, before anything is sent. While the server or the
        model is unavailable the request is retried with backoff for up to ``retry_for_s`` (the retries wait on a
        timer, not on the thread that delivers other answers)."""
        return self._send(frame, appearance, boxes, tracks)

    def _submit_rerun(self, frame: np.ndarray, appearance, tracks) -> Future[CamouflageResult]:
        """The frame again, marked so (:data:`facecamo.spec.RERUN_PARAMETER`): the server counts it as
        ``facecamo_frames_total{result="rerun"}``, not as a new frame."""
        return self._send(frame, appearance, None, tracks, {spec.RERUN_PARAMETER: True})

    def _send(self, frame: np.ndarray, appearance, boxes, tracks, parameters: dict | None = None) -> Future[CamouflageResult]:
        future: Future = Future()
        inputs = self._inputs(frame, appearance, boxes, tracks)
        frame_shape = tuple(np.shape(frame))
        outputs = [grpcclient.InferRequestedOutput(name) for name in OUTPUTS]
        deadline = time.monotonic() + self.retry_for_s
        state = {"delay": self.backoff_s, "closed_at_connect": 0}

        def fail(error: FacecamoError) -> None:
            if not future.done():
                future.set_exception(error)

        def send() -> None:
            try:
                self._client.async_infer(self.model, inputs, callback, outputs=outputs, client_timeout=self.timeout_s,
                                         parameters=parameters)
            except InferenceServerException as error:
                callback(result=None, error=error)
            except Exception as error:  # noqa: BLE001 - e.g. a closed client: still one of the SDK's types
                fail(ServerError(f"could not send the request to {self.url}: {error}"))

        def callback(result=None, error=None) -> None:  # tritonclient calls back with these keyword names
            try:
                if error is None:
                    future.set_result(self._result(result, frame_shape))
                    return
                mapped = map_error(error, self.model)
                ambiguous = isinstance(mapped, TLSError) and _CLOSED_AT_CONNECT.search(error.message() or "")
                if ambiguous and state["closed_at_connect"] == 0:
                    state["closed_at_connect"] += 1  # confirm once: a server going down closes connections too
                    retry_in(0.2)
                    return
                if isinstance(mapped, ServerUnavailableError) and time.monotonic() + state["delay"] < deadline:
                    retry_in(state["delay"])
                    state["delay"] = min(state["delay"] * 2, 2.0)
                    return
                if isinstance(mapped, ServerUnavailableError):
                    mapped = ServerUnavailableError(f"Triton at {self.url} unavailable for {self.retry_for_s:.0f} s: {mapped}", mapped.status)
                fail(mapped)
            except FacecamoError as raised:
                fail(raised)
            except Exception as raised:  # noqa: BLE001 - never leave the future unresolved
                fail(ServerError(f"could not read the server's answer: {bounded(repr(raised), MAX_SERVER_MESSAGE_CHARACTERS)}"))

        def retry_in(seconds: float) -> None:
            timer = threading.Timer(seconds, send)
            timer.daemon = True
            timer.start()

        send()
        return future

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
