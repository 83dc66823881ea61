# SPDX-License-Identifier: Apache-2.0
"""The Triton backends a model repository needs (as each model's config.pbtxt names them), those a backend directory
holds, and where the ``nvidia-pytriton`` wheel (the default tritonserver binary and its python backend) is installed."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path


# Triton's platforms and the backend each runs on (--backend-directory holds one folder per backend).
PLATFORM_BACKENDS = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt", "pytorch_libtorch": "pytorch",
                     "tensorflow_savedmodel": "tensorflow", "tensorflow_graphdef": "tensorflow", "openvino": "openvino"}
_CONFIG_FIELD = re.compile(r'^(backend|platform)\s*:\s*"([^"]+)"', re.MULTILINE)


def backends_needed(repository: Path, models: Sequence[str] | None = None) -> dict[str, str]:
    """``{model: backend}`` for the models of ``repository`` (or only ``models``) as their config.pbtxt names them;
    the ensemble platform (part of Triton's core) needs none."""
    needed = {}
    for config in sorted(Path(repository).glob("*/config.pbtxt")):
        name = config.parent.name
        if models is not None and name not in models:
            continue
        fields = dict((key, value) for key, value in _CONFIG_FIELD.findall(config.read_text(errors="replace")))
        backend = fields.get("backend") or PLATFORM_BACKENDS.get(fields.get("platform", ""), fields.get("platform"))
        if backend and backend != "ensemble":
            needed[name] = backend
    return needed


def backends_available(backend_directory: Path) -> set[str]:
    """The backends in a Triton backend directory: each ``NAME/`` holding ``libtriton_NAME.so``."""
    try:
        return {entry.name for entry in Path(backend_directory).iterdir() if (entry / f"libtriton_{entry.name}.so").is_file()}
    except OSError:
        return set()


def _pytriton_root() -> Path:
    found = importlib.util.find_spec("pytriton")
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError("nvidia-pytriton is not installed: `pip install -r requirements/serve.txt`, or use NVIDIA's Triton container")
    return Path(found.submodule_search_locations[0])
