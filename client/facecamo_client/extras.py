# SPDX-License-Identifier: Apache-2.0
"""The SDK's optional parts and the extras that install them (``[project.optional-dependencies]`` in pyproject.toml).
``pip install .`` gives the gRPC client only; a part used without its extra raises :class:`MissingExtraError` naming
the ``pip install`` that adds it, not a bare ``No module named 'cv2'``."""

from __future__ import annotations

import importlib
from types import ModuleType

from facecamo_client.errors import MissingExtraError

# module -> the package that provides it
PACKAGES = {"cv2": "OpenCV (opencv-python-headless)", "av": "PyAV (av)", "onnxruntime": "onnxruntime", "dlib": "dlib (dlib-bin)"}
EMBEDDED = ("onnxruntime", "cv2", "dlib")  # what EmbeddedEngine imports (dlib's model files: facecamo.dlib_models)


def need(module: str, extra: str, what: str) -> ModuleType:
    """``module``, imported for ``what`` (e.g. "EmbeddedEngine"); :class:`MissingExtraError` saying to install the
    ``extra`` when it cannot be imported."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(f"{what} needs {PACKAGES[module]}, which is not installed here ({error}): "
                                f"pip install \"facecamo[{extra}]\"") from None
