"""The same interface as the gRPC client, run in-process: ONNX Runtime on the exported networks and the shared
alignment and paste-back. No server needed. Needs the ``embedded`` extra (onnxruntime, OpenCV, dlib).

It reads an exported model repository (``python`` or ``onnxruntime`` flavour): the ONNX files, the appearance bank and
the detector settings of ``align/config.pbtxt``, so its results match the server's.
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from facecamo import spec
from facecamo_client.engine import CamouflageEngine, as_boxes, as_int32
from facecamo_client.errors import FacecamoError, InvalidInputError
from facecamo_client.result import CamouflageResult, faces_from_arrays


def default_repository() -> Path:
    """``$FACECAMO_REPOSITORY``, else ``model_repository`` in the working directory, else beside this checkout."""
    if os.environ.get("FACECAMO_REPOSITORY"):
        return Path(os.environ["FACECAMO_REPOSITORY"])
    local = Path("model_repository")
    if (local / spec.ENSEMBLE).is_dir():
        return local
    return Path(__file__).resolve().parents[2] / "model_repository"


def read_parameters(config: Path) -> dict[str, str]:
    """``parameters { key: ... value: { string_value: ... } }`` entries of a config.pbtxt (no protobuf needed)."""
    text = config.read_text()
    return dict(re.findall(r'key:\s*"([^"]+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"\s*\}', text))


class EmbeddedEngine(CamouflageEngine):
    """Args:
        repository: an exported model repository (default :func:`default_repository`).
        threads: ONNX Runtime intra-op threads (0: its default).
    Attributes:
        last_timings: seconds per stage of the latest frame (detect+landmarks+align, identity encoder, generator, paste).
    """

    def __init__(self, repository: str | Path | None = None, threads: int = 0) -> None:
        import onnxruntime

        from facecamo.align import FaceAligner, FaceDetector

        self.repository = Path(repository) if repository is not None else default_repository()
        required = [self.repository / spec.IDENTITY_ENCODER / "1" / "model.onnx", self.repository / spec.GENERATOR / "1" / "model.onnx",
                    self.repository / spec.APPEARANCE_BANK / "1" / "bank.npy", self.repository / spec.ALIGN / "config.pbtxt"]
        missing = [str(p) for p in required if not p.is_file()]
        if missing:
            raise FacecamoError(f"{self.repository} is not an exported model repository (missing {missing}); run `make export`")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self._identity = onnxruntime.InferenceSession(str(required[0]), options, providers=["CPUExecutionProvider"])
        self._generator = onnxruntime.InferenceSession(str(required[1]), options, providers=["CPUExecutionProvider"])
        self.bank = np.load(required[2]).astype(np.float32)
        params = read_parameters(required[3])
        self.aligner = FaceAligner(FaceDetector.from_settings(params))
        self.max_faces = int(params.get("max_faces", str(spec.MAX_FACES_PER_FRAME)))
        self.last_timings: dict[str, float] = {}

    @property
    def bank_size(self) -> int:
        return len(self.bank)

    def run(self, frame: np.ndarray, appearance=None, boxes=None, tracks=None) -> CamouflageResult:
        """Camouflage one frame synchronously (what :meth:`submit` wraps)."""
        from facecamo.pipeline import RequestError, paste_frame, prepare_frame

        started = time.perf_counter()
        try:
            faces = prepare_frame(self.aligner, frame, self.bank_size, index=as_int32(appearance), boxes=as_boxes(boxes),
                                  track_boxes=None if tracks is None else as_boxes(tracks[0]),
                                  track_appearance=None if tracks is None else as_int32(tracks[1]), max_faces=self.max_faces)
        except RequestError as error:
            raise InvalidInputError(str(error), "INVALID_ARGUMENT") from error
        aligned = time.perf_counter()
        try:
            identity = self._identity.run(None, {spec.FACE: faces.faces})[0]
            encoded = time.perf_counter()
            generated = self._generator.run(None, {spec.IDENTITY_CODE: identity, spec.APPEARANCE_CODE: self.bank[faces.rows]})[0]
        except Exception:  # noqa: BLE001 - fail closed: paste conceals every face whose generation is missing
            encoded = time.perf_counter()
            generated = np.full(faces.faces.shape, np.nan, np.float32)
        generated_at = time.perf_counter()
        out, out_boxes, status = paste_frame(np.ascontiguousarray(frame), generated, faces.affines, faces.boxes, faces.state)
        done = time.perf_counter()
        self.last_timings = {"align": aligned - started, "identity_encoder": encoded - aligned,
                             "generator": generated_at - encoded, "paste": done - generated_at}
        rows = faces.rows[faces.state != spec.STATE_PLACEHOLDER]
        return CamouflageResult(out, faces_from_arrays(out_boxes, status, rows))

    def submit(self, frame: np.ndarray, appearance=None, boxes=None, tracks=None) -> "Future[CamouflageResult]":
        future: Future = Future()
        try:
            future.set_result(self.run(frame, appearance, boxes, tracks))
        except FacecamoError as error:
            future.set_exception(error)
        return future
