"""Camouflage frames on a Triton server over gRPC (tritonclient). Needs only numpy and tritonclient[grpc]."""

from __future__ import annotations

import time
from concurrent.futures import Future

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from facecamo import spec
from facecamo_client.engine import CamouflageEngine, as_boxes, as_int32
from facecamo_client.errors import FacecamoError, InvalidInputError, RequestTimeoutError, ServerError, ServerUnavailableError
from facecamo_client.result import CamouflageResult, faces_from_arrays

OUTPUTS = (spec.CAMOUFLAGED_FRAME, spec.FACE_BOXES_OUT, spec.FACE_STATUS, spec.FACE_APPEARANCE)
_RETRYABLE = {"StatusCode.UNAVAILABLE", "StatusCode.UNKNOWN"}


def map_error(error: InferenceServerException) -> FacecamoError:
    """tritonclient's exception -> the SDK's type, keeping the server's message and status."""
    status = str(error.status()) if error.status() else None
    message = error.message() or str(error)
    if status == "StatusCode.INVALID_ARGUMENT":
        return InvalidInputError(message, status)
    if status == "StatusCode.DEADLINE_EXCEEDED":
        return RequestTimeoutError(f"no answer within the timeout: {message}", status)
    if status in _RETRYABLE or (status is None and "unavailable" in message.lower()):
        return ServerUnavailableError(message, status)
    return ServerError(message, status)


class CamouflageClient(CamouflageEngine):
    """A Triton server's ``facecamo`` ensemble.

    Args:
        url: ``host:port`` of Triton's gRPC endpoint (``-u localhost:8001`` in tritonclient's examples).
        ssl, root_certificates, private_key, certificate_chain: TLS, as tritonclient's gRPC client takes them (file paths).
        timeout_s: per-request deadline.
        retry_for_s: keep retrying, with exponential backoff from ``backoff_s``, while the server is unavailable.
        model: the ensemble's name.
    """

    def __init__(self, url: str = "localhost:8001", *, ssl: bool = False, root_certificates: str | None = None,
                 private_key: str | None = None, certificate_chain: str | None = None, timeout_s: float = 30.0,
                 retry_for_s: float = 30.0, backoff_s: float = 0.25, model: str = spec.ENSEMBLE, verbose: bool = False) -> None:
        self.url, self.timeout_s, self.retry_for_s, self.backoff_s, self.model = url, timeout_s, retry_for_s, backoff_s, model
        try:
            self._client = grpcclient.InferenceServerClient(url, verbose=verbose, ssl=ssl, root_certificates=root_certificates,
                                                            private_key=private_key, certificate_chain=certificate_chain)
        except InferenceServerException as error:
            raise map_error(error) from error

    # -- health ------------------------------------------------------------------------------------------------
    def is_server_live(self) -> bool:
        return self._health(self._client.is_server_live)

    def is_server_ready(self) -> bool:
        return self._health(self._client.is_server_ready)

    def is_model_ready(self) -> bool:
        return self._health(lambda: self._client.is_model_ready(self.model))

    def _health(self, call) -> bool:
        try:
            return bool(call())
        except InferenceServerException:
            return False

    def wait_until_ready(self, timeout_s: float | None = None) -> None:
        """Block until the server and the ensemble are ready, backing off between tries.

        Raises:
            ServerUnavailableError: naming the URL, when not ready within ``timeout_s`` (default ``retry_for_s``).
        """
        deadline = time.monotonic() + (self.retry_for_s if timeout_s is None else timeout_s)
        delay = self.backoff_s
        while True:
            if self.is_server_ready() and self.is_model_ready():
                return
            if time.monotonic() >= deadline:
                raise ServerUnavailableError(f"Triton at {self.url} is not ready (model {self.model!r}); is the server running? "
                                             "Start one with `make serve`")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    # -- inference ---------------------------------------------------------------------------------------------
    def _inputs(self, frame: np.ndarray, appearance, boxes, tracks) -> list:
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            raise InvalidInputError(f"frame must be uint8 RGB, got {frame.dtype}")
        tensors = [(spec.FRAME, np.ascontiguousarray(frame), "UINT8")]
        for name, value, dtype in ((spec.APPEARANCE_INDEX, as_int32(appearance), "INT32"), (spec.FACE_BOXES, as_boxes(boxes), "FP32")):
            if value is not None:
                tensors.append((name, value, dtype))
        if tracks is not None:
            tensors += [(spec.TRACK_BOXES, as_boxes(tracks[0]), "FP32"), (spec.TRACK_APPEARANCE, as_int32(tracks[1]), "INT32")]
        inputs = []
        for name, value, dtype in tensors:
            tensor = grpcclient.InferInput(name, list(value.shape), dtype)
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        return inputs

    @staticmethod
    def _result(response) -> CamouflageResult:
        frame, boxes, status, appearance = (response.as_numpy(name) for name in OUTPUTS)
        return CamouflageResult(frame, faces_from_arrays(boxes, status, appearance))

    def submit(self, frame: np.ndarray, appearance=None, boxes=None, tracks=None) -> "Future[CamouflageResult]":
        """Send one frame asynchronously; the future holds a :class:`CamouflageResult` or raises the SDK's error.
        While the server is unavailable the request is retried with backoff for up to ``retry_for_s``."""
        future: Future = Future()
        inputs = self._inputs(frame, appearance, boxes, tracks)
        outputs = [grpcclient.InferRequestedOutput(name) for name in OUTPUTS]
        deadline = time.monotonic() + self.retry_for_s
        state = {"delay": self.backoff_s}

        def send() -> None:
            try:
                self._client.async_infer(self.model, inputs, callback, outputs=outputs, client_timeout=self.timeout_s)
            except InferenceServerException as error:
                callback(result=None, error=error)

        def callback(result=None, error=None) -> None:  # tritonclient calls back with these keyword names
            if error is None:
                future.set_result(self._result(result))
                return
            mapped = map_error(error)
            if isinstance(mapped, ServerUnavailableError) and time.monotonic() + state["delay"] < deadline:
                time.sleep(state["delay"])
                state["delay"] = min(state["delay"] * 2, 2.0)
                send()
                return
            if isinstance(mapped, ServerUnavailableError):
                mapped = ServerUnavailableError(f"Triton at {self.url} unavailable for {self.retry_for_s:.0f} s: {mapped}", mapped.status)
            future.set_exception(mapped)

        send()
        return future

    def close(self) -> None:
        self._client.close()
