# SPDX-License-Identifier: Apache-2.0
"""The same interface as the gRPC client, run in-process: the one frame pipeline
(:class:`facecamo.pipeline.FramePipeline`) on ONNX Runtime, from an exported model repository (``python`` or
``onnxruntime`` flavour): its ONNX files, its appearance bank and its pipeline settings, so its results match the
server's. No server needed. Needs the ``embedded`` extra (onnxruntime, OpenCV, dlib).
"""

from __future__ import annotations

import os
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from facecamo import spec
from facecamo_client.engine import CamouflageEngine
from facecamo_client.errors import FacecamoError, InvalidInputError, ModelError
from facecamo_client.result import CamouflageResult, faces_from_arrays


def default_repository() -> Path:
    """``$FACECAMO_REPOSITORY``, else ``model_repository`` in the working directory, else beside this checkout."""
    if os.environ.get("FACECAMO_REPOSITORY"):
        return Path(os.environ["FACECAMO_REPOSITORY"])
    local = Path("model_repository")
    if (local / spec.ENSEMBLE).is_dir():
        return local
    return Path(__file__).resolve().parents[2] / "model_repository"


class EmbeddedEngine(CamouflageEngine):
    """Args:
        repository: an exported model repository (default :func:`default_repository`).
        threads: ONNX Runtime intra-op threads (0: its default).

    Opening checks every model against the spec (names, dtypes, shapes, one tiny inference) and raises
    :class:`ModelError` naming what is wrong; :class:`MissingExtraError` when a package of the ``embedded`` extra is
    not installed (``pip install "facecamo[embedded]"``). Each result carries its frame's seconds per stage
    (``result.timings``).
    """

    def __init__(self, repository: str | Path | None = None, threads: int = 0) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from facecamo_client.extras import EMBEDDED, need

        for module in EMBEDDED:
            need(module, "embedded", "EmbeddedEngine")
        from facecamo.repository import RepositoryError, open_pipeline

        self.repository = Path(repository) if repository is not None else default_repository()
        try:
            self.pipeline = open_pipeline(self.repository, threads)
        except RepositoryError as error:
            raise ModelError(str(error)) from None
        self.settings = self.pipeline.settings
        self.max_tracks = self.settings.max_faces
        # One worker runs the pipeline while the caller decodes and encodes the next frames (stream() keeps several
        # in flight): the networks and OpenCV release the GIL, so the two overlap on a multi-core machine.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facecamo-embedded")

    @property
    def bank_size(self) -> int:
        return self.pipeline.bank_size

    def wait_until_ready(self, timeout_s: float | None = None) -> None:
        """Ready as soon as it is constructed (the same interface as the gRPC client's)."""

    def is_server_ready(self) -> bool:
        return True

    def is_model_ready(self) -> bool:
        return True

    def is_ready(self) -> bool:
        """The same readiness call as the gRPC client's: an embedded engine is ready once it opened."""
        return True

    def run(self, frame: np.ndarray, appearance=None, boxes=None, tracks=None) -> CamouflageResult:
        """Camouflage one frame synchronously (what :meth:`submit` wraps). Never raises for a processing failure: the
        frame comes back with the failed faces (or all of it) concealed and ``result.failed`` saying why.

        Raises:
            InvalidInputError: for input the caller must fix.
        """
        from facecamo.request import RequestError

        from facecamo_client import validation

        track_boxes, track_appearance = validation.tracks(tracks) or (None, None)
        rows, given = validation.appearance_and_boxes(appearance, boxes)
        try:
            result = self.pipeline.run(frame, rows, given, track_boxes, track_appearance)
        except RequestError as error:
            raise InvalidInputError(str(error), "INVALID_ARGUMENT") from error
        faces = faces_from_arrays(result.boxes, result.status, result.appearance, result.source_codes)
        return CamouflageResult(result.frame, faces, failed=result.failed, timings=dict(result.timings))

    def submit(self, frame: np.ndarray, appearance=None, boxes=None, tracks=None) -> "Future[CamouflageResult]":
        """Queue one frame on the engine's worker; the future holds the result or the SDK's error. The frame is
        copied, so a caller may reuse its buffer for the next frame at once."""
        frame = np.array(frame, copy=True) if isinstance(frame, np.ndarray) else frame
        try:
            return self._worker.submit(self._run_guarded, frame, appearance, boxes, tracks)
        except RuntimeError as error:  # submitted after close()
            raise FacecamoError(f"the embedded engine is closed: {error}") from None

    def _run_guarded(self, frame, appearance, boxes, tracks) -> CamouflageResult:
        try:
            return self.run(frame, appearance, boxes, tracks)
        except FacecamoError:
            raise
        except Exception as error:  # noqa: BLE001 - a bug outside the pipeline's guard: surfaced as the SDK's type
            raise FacecamoError(f"embedded engine failed: {type(error).__name__}: {error}") from error

    def close(self) -> None:
        self._worker.shutdown(wait=True)
