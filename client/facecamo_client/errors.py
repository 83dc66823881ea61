# SPDX-License-Identifier: Apache-2.0
"""The SDK's own exception types: every error the SDK raises is one of these (an exception of another type is a bug).
Each keeps the server's message (``str(error)``, bounded in length) and, where there is one, the gRPC status code
(``error.status``).

What to do about each:

- :class:`InvalidInputError`: fix the input (the message says what); retrying will not help.
- :class:`ServerUnavailableError`: the server, or the model, was down for longer than ``retry_for_s`` (the client
  retried with backoff until then): start or fix the server (``make serve``).
- :class:`RequestTimeoutError`: no answer within ``timeout_s``: the server is overloaded or the frame too large.
- :class:`ServerError`: the server or one of its models failed on this request; not your input's fault.
- :class:`TLSError`: a certificate or TLS handshake problem (a missing or unreadable file, an untrusted server, a
  client certificate the server rejects, TLS on one side only); raised at once, never retried.
- :class:`ModelError`: an exported model repository the embedded engine cannot use.
- :class:`MissingExtraError`: a part of the SDK used without the packages of its extra (the message names the
  ``pip install`` that adds them); also an ``ImportError``.
"""

from __future__ import annotations


class FacecamoError(Exception):
    """Base class of every error the SDK raises."""

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class InvalidInputError(FacecamoError, ValueError):
    """The request was rejected as invalid (INVALID_ARGUMENT): fix the input; retrying will not help."""


class ServerUnavailableError(FacecamoError, ConnectionError):
    """The server could not be reached, or the model was not loaded or its process had died (a supervised server,
    ``make serve``, brings it back within seconds), for longer than the retry window."""


class TLSError(FacecamoError, ConnectionError):
    """The TLS set-up failed: a certificate file is missing or unreadable, the server's certificate is not trusted by
    ``root_certificates``, the server rejected this client's certificate (mutual TLS), or only one side uses TLS.
    Fix the certificates or the ``ssl`` option; retrying will not help."""


class RequestTimeoutError(FacecamoError, TimeoutError):
    """The server did not answer within the request's timeout."""


class ServerError(FacecamoError):
    """The server failed to process the request. No camouflaged frame came back, so the caller must not show the
    original: drop the frame or conceal it (the command line blurs it)."""


class ModelError(FacecamoError):
    """An exported model repository that cannot work (a missing, corrupt or mismatched model): the message names the
    model and what is wrong; re-export it (``make export``)."""


class MissingExtraError(FacecamoError, ImportError):
    """A part of the SDK was used without the packages its extra installs (``pip install .`` gives the gRPC client
    only): :class:`EmbeddedEngine` needs ``facecamo[embedded]``, the command line's images and videos
    ``facecamo[video]``. The message names the missing module and the ``pip install`` that adds it."""
