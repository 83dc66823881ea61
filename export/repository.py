# SPDX-License-Identifier: Apache-2.0
"""Write a Triton model repository from exported ONNX files, the appearance bank and facecamo.spec (the layout is
described in :mod:`facecamo.repository`).

Flavours (one export, three runtimes for the networks; the frame pipeline is a python model in all):

- ``python``: the networks run with ONNX Runtime inside python-backend models (the CPU-only Triton here);
- ``onnxruntime``: Triton's native ONNX Runtime backend (NVIDIA's containers);
- ``tensorrt``: TensorRT plans (``model.plan``), built where TensorRT and a GPU exist.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from facecamo import spec
from facecamo.design import Design
from facecamo.settings import PipelineSettings
from facecamo.repository import LIKENESS_FILE, MEMBERS_FILE
from facecamo.spec import DETECTOR_SPEC

FLAVOURS = ("python", "onnxruntime", "tensorrt")
RETIRED_MODELS = ("align", "paste", "appearance_bank")  # the ensemble's steps before the pipeline became one model
HERE = Path(__file__).resolve().parent
PYTHON_MODELS = HERE / "triton_models"
SHARED_PACKAGE = HERE.parent / "facecamo"

# Instances per model (each one process on the python flavour, one execution context on the native backends), set at
# export with ``python -m export --instances MODEL=N ...`` (``make export INSTANCES='facecamo=4'``). Two of the frame
# pipeline so one heavy frame (4K, many faces) does not hold up every other stream; two of the detector, whose work
# grows with the frame (a 3840x2160 frame holds it for 1-2 s on 2 CPU cores: bench/bench_head_of_line.md).
DEFAULT_INSTANCES = {spec.ENSEMBLE: 2, spec.FACE_DETECTOR: 2, spec.IDENTITY_ENCODER: 1, spec.GENERATOR: 1}
MAX_INSTANCES = 64


def instance_counts(items: Sequence[str] | Mapping[str, int | str] = (), detector: str = "centerface") -> dict[str, int]:
    """Instances per served model: :data:`DEFAULT_INSTANCES` with ``items`` (``"MODEL=N"`` strings or a mapping)
    over them. Raises ValueError naming the item that cannot work (an unknown model, a count that is not a whole
    number from 1 to :data:`MAX_INSTANCES`)."""
    served = [name for name in DEFAULT_INSTANCES if name != spec.FACE_DETECTOR or detector == "centerface"]
    pairs = list(items.items()) if isinstance(items, Mapping) else []
    for item in [] if isinstance(items, Mapping) else items:
        name, equals, value = item.partition("=")
        if not equals:
            raise ValueError(f"--instances takes MODEL=COUNT items (e.g. {spec.ENSEMBLE}=4), got {item!r}")
        pairs.append((name.strip(), value.strip()))
    counts = {name: DEFAULT_INSTANCES[name] for name in served}
    for name, value in pairs:
        if name not in counts:
            raise ValueError(f"--instances: no served model {name!r}" + (" (the detector is dlib's, in the pipeline)"
                             if name == spec.FACE_DETECTOR else "") + f"; the models are {', '.join(served)}")
        text = str(value).strip()
        count = int(text) if text.isascii() and text.isdigit() else 0
        if isinstance(value, bool) or not 1 <= count <= MAX_INSTANCES:
            raise ValueError(f"--instances {name}={value}: the count must be a whole number from 1 to {MAX_INSTANCES}")
        counts[name] = count
    return counts


def _dims(values) -> str:
    return "[ " + ", ".join(str(v) for v in values) + " ]"


def _tensor(name: str, dtype: str, dims, optional: bool = False) -> str:
    extra = "\n    optional: true" if optional else ""
    return f'  {{\n    name: "{name}"\n    data_type: {spec.TRITON_DTYPES[dtype]}\n    dims: {_dims(dims)}{extra}\n  }}'


def _io(kind: str, tensors: list[str]) -> str:
    return f"{kind} [\n" + ",\n".join(tensors) + "\n]\n"


REQUEST_INPUTS = [
    _tensor(spec.FRAME, "uint8", (-1, -1, 3)),
    _tensor(spec.APPEARANCE_INDEX, "int32", (-1,), optional=True),
    _tensor(spec.FACE_BOXES, "float32", (-1, 4), optional=True),
    _tensor(spec.TRACK_BOXES, "float32", (-1, 4), optional=True),
    _tensor(spec.TRACK_APPEARANCE, "int32", (-1,), optional=True),
]
RESPONSE_OUTPUTS = [
    _tensor(spec.CAMOUFLAGED_FRAME, "uint8", (-1, -1, 3)),
    _tensor(spec.FACE_BOXES_OUT, "float32", (-1, 4)),
    _tensor(spec.FACE_STATUS, "int32", (-1,)),
    _tensor(spec.FACE_APPEARANCE, "int32", (-1,)),
    _tensor(spec.FACE_SOURCE, "int32", (-1,)),
]


def _parameters(values: dict[str, str]) -> str:
    return "".join(f'parameters {{\n  key: "{k}"\n  value: {{ string_value: "{v}" }}\n}}\n' for k, v in values.items())


def _instance(kind: str, count: int = 1) -> str:
    return f"instance_group [\n  {{\n    count: {count}\n    kind: {kind}\n  }}\n]\n"


def network_config(name: str, flavour: str, sizes: dict[str, int], max_batch: int, queue_delay_us: int,
                   instances: int | None = None) -> str:
    network = DETECTOR_SPEC if name == spec.FACE_DETECTOR else spec.NETWORKS[name]
    header = f'name: "{name}"\n'
    if flavour == "python":
        header += 'backend: "python"\n'
    elif flavour == "onnxruntime":
        header += 'platform: "onnxruntime_onnx"\n'
    else:
        header += 'platform: "tensorrt_plan"\n'
    text = header + f"max_batch_size: {max_batch}\n"
    text += _io("input", [_tensor(t.name, t.dtype, t.resolved(sizes)) for t in network.inputs])
    text += _io("output", [_tensor(t.name, t.dtype, t.resolved(sizes)) for t in network.outputs])
    text += f"dynamic_batching {{\n  max_queue_delay_microseconds: {queue_delay_us}\n}}\n"
    text += _instance("KIND_CPU" if flavour == "python" else "KIND_GPU" if flavour == "tensorrt" else "KIND_AUTO",
                      instances or DEFAULT_INSTANCES[name])
    if flavour == "python":
        text += _parameters({"intra_op_threads": "0"})
    return text


def pipeline_config(settings: PipelineSettings, design: Design, instances: int = DEFAULT_INSTANCES[spec.ENSEMBLE]) -> str:
    """The public model: the frame pipeline as a python model calling the networks through BLS; its parameters are
    the pipeline's settings and the design it serves."""
    text = f'name: "{spec.ENSEMBLE}"\nbackend: "python"\nmax_batch_size: 0\n'
    text += _io("input", REQUEST_INPUTS)
    text += _io("output", RESPONSE_OUTPUTS)
    text += _instance("KIND_CPU", instances)
    text += "# Pipeline settings (facecamo.settings.PipelineSettings): a face the detector misses is a face left\n"
    text += "# uncamouflaged; faces narrower than min_face_px are concealed. See README.md.\n"
    text += _parameters({**settings.as_strings(), "design": design.name})
    return text


def _copy_shared_package(version_dir: Path) -> None:
    """The python models import facecamo; a copy beside model.py makes the repository self-contained."""
    shutil.copytree(SHARED_PACKAGE, version_dir / "facecamo", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def write_repository(out: Path, flavour: str, onnx_paths: dict[str, Path], bank: np.ndarray, sizes: dict[str, int],
                     settings: PipelineSettings, design: Design, plans: dict[str, Path] | None = None,
                     max_batch: int = spec.MAX_FACES_PER_FRAME, queue_delay_us: int = 500,
                     instances: Mapping[str, int] | None = None, likeness: np.ndarray | None = None,
                     members: np.ndarray | None = None) -> Path:
    """Write (replacing) the repository at ``out`` and return it. ``onnx_paths`` holds the identity encoder, the
    generator and (for the centerface detector) the face detector; ``bank`` is ``design``'s (checked);
    ``instances``: counts per model over :data:`DEFAULT_INSTANCES` (checked by :func:`instance_counts`);
    ``likeness``: float32 (K, D) the donors' identity vectors (facecamo.repository.LIKENESS_FILE), or None;
    ``members``: float32 (K, M, D) their portraits' (MEMBERS_FILE), or None."""
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}, got {flavour!r}")
    counts = instance_counts(instances or {}, settings.detector)
    bank = design.bank_for_serving(bank)  # donors stay uint8, codes are float32; a mismatch fails before writing
    for child in (spec.ENSEMBLE, spec.FACE_DETECTOR, spec.IDENTITY_ENCODER, spec.GENERATOR) + RETIRED_MODELS:
        shutil.rmtree(out / child, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    def model(name: str, config: str) -> Path:
        version = out / name / "1"
        version.mkdir(parents=True)
        (out / name / "config.pbtxt").write_text(config)
        return version

    version = model(spec.ENSEMBLE, pipeline_config(settings, design, counts[spec.ENSEMBLE]))
    shutil.copy(PYTHON_MODELS / "facecamo.py", version / "model.py")
    _copy_shared_package(version)
    np.save(version / "bank.npy", bank)
    if likeness is not None:
        np.save(version / LIKENESS_FILE, np.asarray(likeness, np.float32))
    if members is not None:
        np.save(version / MEMBERS_FILE, np.asarray(members, np.float32))
    networks = [spec.IDENTITY_ENCODER, spec.GENERATOR] + ([spec.FACE_DETECTOR] if settings.detector == "centerface" else [])
    for name in networks:
        # The detector's input size varies with the frame, so it runs on ONNX Runtime in the tensorrt flavour too.
        runtime = "onnxruntime" if flavour == "tensorrt" and name == spec.FACE_DETECTOR else flavour
        version = model(name, network_config(name, runtime, sizes, max_batch if name != spec.FACE_DETECTOR else 8, queue_delay_us,
                                             counts[name]))
        if flavour == "python":
            shutil.copy(PYTHON_MODELS / "onnx_runner.py", version / "model.py")
            _copy_shared_package(version)
            shutil.copy(onnx_paths[name], version / "model.onnx")
        elif flavour == "onnxruntime" or name == spec.FACE_DETECTOR:
            shutil.copy(onnx_paths[name], version / "model.onnx")
        elif plans and name in plans:
            shutil.copy(plans[name], version / "model.plan")
    return out
