# SPDX-License-Identifier: Apache-2.0
"""Triton's HTTP/REST API on loopback as the launcher uses it: health and readiness, model load and unload (restricted
to the launcher by the per-start header ``CONTROL_HEADER``), a small JSON inference; and the canary, a blank frame
through the public model that must come back unchanged."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Callable

import numpy as np

from facecamo import spec
from serving.ports import LOOPBACK

CONTROL_HEADER = "facecamo-control"  # the model-repository API (load/unload) answers only requests carrying it


class ControlError(RuntimeError):
    """A model-control or inference call failed; the message is Triton's."""


class TritonControl:
    """Triton's HTTP/REST API on loopback, with the launcher's model-control header. Plain urllib: thread-safe and
    independent of the gRPC port's TLS."""

    def __init__(self, http_port: int, control_key: str, host: str = LOOPBACK) -> None:
        self.base = f"http://{host}:{http_port}"
        self.headers = {CONTROL_HEADER: control_key}

    def _call(self, method: str, path: str, body: dict | None = None, timeout: float = 60.0) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={**self.headers, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    @staticmethod
    def _error(payload: bytes) -> str:
        try:
            return str(json.loads(payload).get("error", payload[:500]))
        except (ValueError, AttributeError):
            return payload[:500].decode(errors="replace")

    def server_ready(self) -> bool:
        try:
            return self._call("GET", "/v2/health/ready", timeout=2.0)[0] == 200
        except OSError:
            return False

    def model_ready(self, model: str) -> bool:
        try:
            return self._call("GET", f"/v2/models/{model}/ready", timeout=2.0)[0] == 200
        except OSError:
            return False

    def index(self) -> list[dict]:
        code, payload = self._call("POST", "/v2/repository/index")
        if code != 200:
            raise ControlError(f"repository index: {self._error(payload)}")
        return json.loads(payload)

    def load(self, model: str, timeout: float = 300.0) -> None:
        """(Re)load ``model``; returns once it is loaded, raises ControlError with Triton's reason otherwise."""
        code, payload = self._call("POST", f"/v2/repository/models/{model}/load", timeout=timeout)
        if code != 200:
            raise ControlError(f"loading {model!r} failed: {self._error(payload)}")

    def unload(self, model: str) -> None:
        code, payload = self._call("POST", f"/v2/repository/models/{model}/unload", {"parameters": {"unload_dependents": False}})
        if code != 200:
            raise ControlError(f"unloading {model!r} failed: {self._error(payload)}")

    def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: Sequence[str], timeout: float,
              parameters: dict | None = None) -> dict[str, np.ndarray]:
        """One inference with JSON tensors (small inputs only); ``parameters`` go with the request (a python model
        reads them with ``request.parameters()``). Raises ControlError (Triton's error) or OSError (timeout,
        connection)."""
        dtypes = {np.dtype(np.uint8): "UINT8", np.dtype(np.int32): "INT32", np.dtype(np.float32): "FP32"}
        body = {"inputs": [{"name": name, "shape": list(value.shape), "datatype": dtypes[value.dtype],
                            "data": value.reshape(-1).tolist()} for name, value in inputs.items()],
                "outputs": [{"name": name, "parameters": {"binary_data": False}} for name in outputs]}
        if parameters:
            body["parameters"] = parameters
        code, payload = self._call("POST", f"/v2/models/{model}/infer", body, timeout=timeout)
        if code != 200:
            raise ControlError(self._error(payload))
        answer = json.loads(payload)
        numpy_types = {"UINT8": np.uint8, "INT32": np.int32, "FP32": np.float32}
        return {o["name"]: np.array(o.get("data", []), numpy_types.get(o["datatype"], np.float64)).reshape(o["shape"])
                for o in answer.get("outputs", [])}


# -- the canary -------------------------------------------------------------------------------------------------------
class CanaryBusy(Exception):
    """The canary got no answer in time: the server is busy (a long request ahead of it), not known to be broken."""


Canary = Callable[[TritonControl, float], None]  # raises ControlError/AssertionError when broken, CanaryBusy when slow


CANARY_PARAMETER = "facecamo_canary"  # request parameter marking the supervisor's canary (keep it out of product metrics)


def facecamo_canary(control: TritonControl, timeout: float) -> None:
    """A 64x64 grey frame (no face) through ``facecamo``: the public model's process, its BLS calls to the detector and
    its pass-through must all work. It must come back unchanged, bit for bit, with no faces. The request carries the
    parameter ``facecamo_canary: true``."""
    frame = np.full((64, 64, 3), 128, np.uint8)
    try:
        outputs = control.infer(spec.ENSEMBLE, {spec.FRAME: frame}, [spec.CAMOUFLAGED_FRAME, spec.FACE_STATUS], timeout,
                                parameters={CANARY_PARAMETER: True})
    except (TimeoutError, socket.timeout) as error:
        raise CanaryBusy(f"no answer within {timeout:.0f} s") from error
    except urllib.error.URLError as error:
        if isinstance(error.reason, (TimeoutError, socket.timeout)):
            raise CanaryBusy(f"no answer within {timeout:.0f} s") from error
        raise ControlError(f"cannot reach the server: {error.reason}") from error
    returned = outputs.get(spec.CAMOUFLAGED_FRAME)
    if returned is None or returned.shape != frame.shape or not np.array_equal(returned, frame):
        raise ControlError("a frame without faces did not come back unchanged")
    if outputs.get(spec.FACE_STATUS) is not None and outputs[spec.FACE_STATUS].size:
        raise ControlError(f"faces reported in a blank frame: {outputs[spec.FACE_STATUS].size}")
