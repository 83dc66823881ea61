# SPDX-License-Identifier: Apache-2.0
"""facecamo_client: camouflage faces in frames, on a Triton server (gRPC) or in-process.

    from facecamo_client import CamouflageClient, EmbeddedEngine

    with CamouflageClient("localhost:8001") as engine:      # or EmbeddedEngine("model_repository")
        result = engine.camouflage(rgb_frame)               # uint8 (H, W, 3) RGB
        for out in engine.stream(frames, max_in_flight=4):  # in order, same person keeps the same look
            ...
        live = engine.stream(camera, live=True, max_latency_s=1.0)  # cameras: bounded latency; frames that
        for out in live:                                            # fall behind dropped (live.dropped), never shown
            ...

Frames whose faces could not be camouflaged are still concealed (``face.status == "fallback"``); an error raises one
of the SDK's exception types (:mod:`facecamo_client.errors`: InvalidInputError, ServerUnavailableError,
RequestTimeoutError, ServerError, TLSError, ModelError, MissingExtraError, all FacecamoError) and returns no frame
at all.
"""

from facecamo_client.engine import CamouflageEngine
from facecamo_client.errors import (
    FacecamoError,
    InvalidInputError,
    MissingExtraError,
    ModelError,
    RequestTimeoutError,
    ServerError,
    ServerUnavailableError,
    TLSError,
)
from facecamo_client.result import CamouflageResult, FaceResult
from facecamo_client.tracking import FaceTracker

__all__ = [
    "CamouflageClient",
    "CamouflageEngine",
    "CamouflageResult",
    "EmbeddedEngine",
    "FaceResult",
    "FaceTracker",
    "FacecamoError",
    "InvalidInputError",
    "MissingExtraError",
    "ModelError",
    "RequestTimeoutError",
    "ServerError",
    "ServerUnavailableError",
    "TLSError",
]


def __getattr__(name: str):
    # Each back-end is imported on first use: a gRPC-only install has no onnxruntime or dlib, an embedded-only one no tritonclient.
    if name == "CamouflageClient":
        from facecamo_client.grpc_client import CamouflageClient

        return CamouflageClient
    if name == "EmbeddedEngine":
        from facecamo_client.embedded import EmbeddedEngine

        return EmbeddedEngine
    raise AttributeError(name)
