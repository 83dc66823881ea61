# SPDX-License-Identifier: Apache-2.0
"""The pipeline's networks run by ONNX Runtime (CPU), and the check every network passes before it is used.

:class:`OnnxNetworks` backs :class:`facecamo.pipeline.FramePipeline` in the client's embedded engine and in
evaluation's detector; :func:`check_onnx_network` is what the embedded engine and each Triton python model run when
they open a repository, so a model that cannot work is refused at load time with what is wrong, not at the first
request. onnxruntime is imported lazily: the gRPC-only client never needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from facecamo import spec


class NetworkError(RuntimeError):
    """A network failed or returned something that breaks the spec; the faces it was for are concealed."""

class Networks(Protocol):
    """The networks behind the pipeline. Arrays are float32 and batched over faces (or images).

    - ``encode_identity(faces (N, 3, 112, 112) in [-1, 1]) -> (N, C_id, 28, 28)``
    - ``generate(identity (N, C_id, 28, 28), appearance (N, C_app, 4, 1)) -> (N, 3, 112, 112) in [-1, 1]``
    - ``detect(images (B, 3, H, W)) -> {output name: array}`` (CenterFace's outputs, see :mod:`facecamo.spec`)
    """

    def encode_identity(self, faces: np.ndarray) -> np.ndarray: ...

    def generate(self, identity: np.ndarray, appearance: np.ndarray) -> np.ndarray: ...

    def detect(self, images: np.ndarray) -> dict[str, np.ndarray]: ...


def check_output(name: str, value: Any, shape: Sequence[int | None]) -> np.ndarray:
    """``value`` as a float32 array of ``shape`` (None: any size), or :class:`NetworkError` naming what is wrong.
    Finiteness is checked per face by the caller, so one bad face does not conceal its neighbours."""
    if not isinstance(value, np.ndarray):
        raise NetworkError(f"{name} returned {type(value).__name__}, not an array")
    if value.dtype != np.float32:
        raise NetworkError(f"{name} returned dtype {value.dtype}, expected float32")
    if value.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, value.shape)):
        expected = ["*" if s is None else s for s in shape]
        raise NetworkError(f"{name} returned shape {list(value.shape)}, expected {expected}")
    return value

def network_failure(error: Exception) -> str:
    """Why a network call failed, for a Concealment: a :class:`NetworkError` says it itself, anything else by type."""
    return str(error) if isinstance(error, NetworkError) else f"{type(error).__name__}: {error}"

class ModelCheckError(RuntimeError):
    """A model file that cannot serve its role in the pipeline; the message names the model and what is wrong."""


def _session(path: Path, threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # the check below reports problems in the pipeline's words
    # Several sessions take turns on few cores (detector, encoder, generator): a session's threads spinning after
    # its run would steal the cores from the next one.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own types for a corrupt or invalid file
        raise ModelCheckError(f"{path} cannot be loaded by ONNX Runtime ({type(error).__name__}: {_short(error)}); "
                              "re-run `make export`") from None


def _short(error: Exception, limit: int = 300) -> str:
    text = str(error).strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + " ..."


def check_example(name: str, sizes: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """One tiny, valid input batch (batch 1) for network ``name``; detector images are 64x64."""
    if name == spec.FACE_DETECTOR:
        return {spec.DETECTOR_IMAGE: np.zeros((1, 3, 64, 64), np.float32)}
    sizes = sizes or {}
    return {t.name: np.zeros((1, *t.resolved(sizes)), np.float32) for t in spec.NETWORKS[name].inputs}


def expected_output_shapes(name: str, sizes: dict[str, int], inputs: dict[str, np.ndarray]) -> dict[str, tuple]:
    """The shapes (batch included, None for a size the spec leaves open) the outputs of ``check_example`` must have."""
    batch = len(next(iter(inputs.values())))
    if name == spec.FACE_DETECTOR:
        height, width = inputs[spec.DETECTOR_IMAGE].shape[2:]
        return {t.name: (batch, t.dims[0], height // 4, width // 4) for t in spec.DETECTOR_SPEC.outputs}
    return {t.name: (batch, *(sizes.get(d) if isinstance(d, str) else d for d in t.dims)) for t in spec.NETWORKS[name].outputs}


def network_spec(name: str) -> spec.NetworkSpec:
    return spec.DETECTOR_SPEC if name == spec.FACE_DETECTOR else spec.NETWORKS[name]


def check_onnx_network(name: str, session: Any, sizes: dict[str, int] | None = None) -> dict[str, int]:
    """Check an ONNX Runtime session against the spec of network ``name``: input and output names, float32, and one
    tiny inference whose outputs have the spec's shapes and finite values. Returns the symbolic sizes it found
    (``C_id``, ``C_app``).

    Raises:
        ModelCheckError: naming the model and what is wrong.
    """
    wanted = network_spec(name)
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    missing_in = [t.name for t in wanted.inputs if t.name not in inputs]
    missing_out = [t.name for t in wanted.outputs if t.name not in outputs]
    if missing_in or missing_out:
        raise ModelCheckError(f"{name}: the model's inputs {sorted(inputs)} and outputs {outputs} do not match the spec "
                              f"(missing inputs {missing_in}, missing outputs {missing_out}); re-export it")
    sizes = dict(sizes or {})
    for tensor in wanted.inputs:  # symbolic channel counts come from the model itself
        for dim, size in zip(tensor.dims, inputs[tensor.name].shape[1:]):
            if isinstance(dim, str) and isinstance(size, int):
                sizes.setdefault(dim, size)
    unknown = sorted({d for t in wanted.inputs for d in t.dims if isinstance(d, str)} - set(sizes))
    if unknown:
        raise ModelCheckError(f"{name}: the model does not say its input sizes {unknown}, and nothing else did")
    feeds = check_example(name, sizes)
    try:
        results = session.run([t.name for t in wanted.outputs], feeds)
    except Exception as error:  # noqa: BLE001
        raise ModelCheckError(f"{name}: a check inference failed ({type(error).__name__}: {_short(error)})") from None
    for tensor, value in zip(wanted.outputs, results):
        sizes_known = {**sizes}
        for dim, size in zip(tensor.dims, value.shape[1:]):
            if isinstance(dim, str):
                sizes_known.setdefault(dim, size)
        expected = expected_output_shapes(name, sizes_known, feeds)[tensor.name]
        if value.dtype != np.float32 or value.ndim != len(expected) or any(
                e is not None and e != s for e, s in zip(expected, value.shape)):
            raise ModelCheckError(f"{name}: output {tensor.name} is {value.dtype} {list(value.shape)} for a check input, "
                                  f"expected float32 {['*' if e is None else e for e in expected]}; re-export it")
        if not np.all(np.isfinite(value)):
            raise ModelCheckError(f"{name}: output {tensor.name} is not finite for a check input")
        sizes.update(sizes_known)
    return sizes


class OnnxNetworks:
    """The pipeline's networks from ONNX files, run on the CPU. Any of the three may be None when not needed
    (evaluation runs the detector only; a hog/cnn repository has no detector network).

    Args:
        identity_encoder, generator, face_detector: ONNX file paths.
        threads: ONNX Runtime intra-op threads (0: its default).
        check: run :func:`check_onnx_network` on each (refusing a model that cannot work).
        sizes: symbolic sizes known beforehand (``C_app`` from the appearance bank).
    """

    def __init__(self, identity_encoder: Path | None = None, generator: Path | None = None,
                 face_detector: Path | None = None, threads: int = 0, check: bool = True,
                 sizes: dict[str, int] | None = None) -> None:
        self.sessions: dict[str, Any] = {}
        self.sizes: dict[str, int] = dict(sizes or {})
        for name, path in ((spec.IDENTITY_ENCODER, identity_encoder), (spec.GENERATOR, generator),
                           (spec.FACE_DETECTOR, face_detector)):
            if path is None:
                continue
            session = _session(Path(path), threads)
            if check:
                self.sizes.update(check_onnx_network(name, session, self.sizes))
            self.sessions[name] = session

    def _run(self, name: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if name not in self.sessions:
            raise RuntimeError(f"no {name} network was loaded")
        return self.sessions[name].run([t.name for t in network_spec(name).outputs], feeds)

    def encode_identity(self, faces: np.ndarray) -> np.ndarray:
        return self._run(spec.IDENTITY_ENCODER, {spec.FACE: faces})[0]

    def generate(self, identity: np.ndarray, appearance: np.ndarray) -> np.ndarray:
        return self._run(spec.GENERATOR, {spec.IDENTITY_CODE: identity, spec.APPEARANCE: appearance})[0]

    def detect(self, images: np.ndarray) -> dict[str, np.ndarray]:
        names = [t.name for t in spec.DETECTOR_SPEC.outputs]
        return dict(zip(names, self._run(spec.FACE_DETECTOR, {spec.DETECTOR_IMAGE: images})))
