# SPDX-License-Identifier: Apache-2.0
"""Locating dlib's model files without importing ``face_recognition_models``.

That package's ``__init__`` imports ``pkg_resources``, which setuptools >= 82 no longer ships, so the
files are found through the import system instead. ``FACECAMO_DLIB_MODELS`` may point at a folder
holding the same file names (for boxes that copy the files rather than install the package); when it is set, only
that folder is looked in, so a commercial box can hold the 5-point model without the package's 68-point file (whose
training data's terms exclude commercial use) and be sure that nothing loads the latter.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"  # iBUG 300-W: its terms exclude commercial use
LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"  # public domain (dlib's own 5-point dataset)
CNN_DETECTOR = "mmod_human_face_detector.dat"
FACE_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"


def dlib_model_path(file_name: str) -> Path:
    """Return the path of one of dlib's model files.

    Raises:
        FileNotFoundError: with the two ways to provide the file.
    """
    candidates = []
    override = os.environ.get("FACECAMO_DLIB_MODELS")
    if override:
        candidates.append(Path(override) / file_name)
    spec = None if override else importlib.util.find_spec("face_recognition_models")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidates.append(Path(location) / "models" / file_name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"dlib model file {file_name!r} not found (looked in: {[str(c) for c in candidates] or 'nowhere'}). "
        "Install it with `pip install face_recognition_models` or set FACECAMO_DLIB_MODELS to a folder holding it"
        + (" (it is set, so only that folder is looked in)." if override else ".")
    )
