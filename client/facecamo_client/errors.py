"""The SDK's own exception types. Each keeps the server's message (``str(error)``) and, where there is one, the gRPC
status code (``error.status``)."""

from __future__ import annotations


class FacecamoError(Exception):
    """Base class of every error the SDK raises."""

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class InvalidInputError(FacecamoError, ValueError):
    """The request was rejected as invalid (INVALID_ARGUMENT): fix the input; retrying will not help."""


class ServerUnavailableError(FacecamoError, ConnectionError):
    """The server could not be reached (or was not ready) within the retry window."""


class RequestTimeoutError(FacecamoError, TimeoutError):
    """The server did not answer within the request's timeout."""


class ServerError(FacecamoError):
    """The server failed to process the request. No camouflaged frame came back, so the caller must not show the
    original: drop the frame or conceal it (the command line blurs it)."""
