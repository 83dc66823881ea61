"""Write a Triton model repository from exported ONNX files, the appearance bank and facecamo.spec.

Flavours (one export, three runtimes for the networks; alignment, the bank and paste-back are python models in all):

- ``python``: the networks run with ONNX Runtime inside python-backend models (the CPU-only Triton here);
- ``onnxruntime``: Triton's native ONNX Runtime backend (NVIDIA's containers);
- ``tensorrt``: TensorRT plans (``model.plan``), built where TensorRT and a GPU exist.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from facecamo import spec

FLAVOURS = ("python", "onnxruntime", "tensorrt")
HERE = Path(__file__).resolve().parent
PYTHON_MODELS = HERE / "triton_models"
SHARED_PACKAGE = HERE.parent / "facecamo"


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
]


def _parameters(values: dict[str, str]) -> str:
    return "".join(f'parameters {{\n  key: "{k}"\n  value: {{ string_value: "{v}" }}\n}}\n' for k, v in values.items())


def _instance(kind: str, count: int = 1) -> str:
    return f"instance_group [\n  {{\n    count: {count}\n    kind: {kind}\n  }}\n]\n"


def network_config(name: str, flavour: str, sizes: dict[str, int], max_batch: int, queue_delay_us: int) -> str:
    network = spec.NETWORKS[name]
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
    text += _instance("KIND_CPU" if flavour == "python" else "KIND_GPU" if flavour == "tensorrt" else "KIND_AUTO")
    if flavour == "python":
        text += _parameters({"intra_op_threads": "0"})
    return text


def align_config(detector: dict, bank_size: int, max_faces: int) -> str:
    text = f'name: "{spec.ALIGN}"\nbackend: "python"\nmax_batch_size: 0\n'
    text += _io("input", REQUEST_INPUTS)
    text += _io("output", [_tensor(spec.FACES, "float32", (-1, 3, spec.FACE_SIZE, spec.FACE_SIZE)),
                           _tensor(spec.AFFINES, "float32", (-1, 2, 3)), _tensor(spec.BOXES, "float32", (-1, 4)),
                           _tensor(spec.FACE_STATE, "int32", (-1,)), _tensor(spec.APPEARANCE_ROWS, "int32", (-1, 1))])
    text += _instance("KIND_CPU")
    text += "# Detection settings: a face the detector misses is a face left uncamouflaged. See README.md.\n"
    text += _parameters({**{k: str(v) for k, v in detector.items()}, "bank_size": str(bank_size), "max_faces": str(max_faces)})
    return text


def bank_config(sizes: dict[str, int], max_batch: int) -> str:
    text = f'name: "{spec.APPEARANCE_BANK}"\nbackend: "python"\nmax_batch_size: {max_batch}\n'
    text += _io("input", [_tensor(spec.BANK_ROW, "int32", (1,))])
    text += _io("output", [_tensor(spec.APPEARANCE_CODE, "float32", (sizes["C_app"], 4, 1))])
    text += "dynamic_batching {\n  max_queue_delay_microseconds: 0\n}\n" + _instance("KIND_CPU")
    return text


def paste_config() -> str:
    text = f'name: "{spec.PASTE}"\nbackend: "python"\nmax_batch_size: 0\n'
    text += _io("input", [_tensor(spec.FRAME, "uint8", (-1, -1, 3)),
                          _tensor(spec.GENERATED_FACES, "float32", (-1, 3, spec.FACE_SIZE, spec.FACE_SIZE)),
                          _tensor(spec.AFFINES, "float32", (-1, 2, 3)), _tensor(spec.BOXES, "float32", (-1, 4)),
                          _tensor(spec.FACE_STATE, "int32", (-1,)), _tensor(spec.APPEARANCE_ROWS, "int32", (-1, 1))])
    text += _io("output", RESPONSE_OUTPUTS)
    text += _instance("KIND_CPU")
    return text


def ensemble_config() -> str:
    def step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> str:
        maps = "".join(f'      input_map {{ key: "{k}" value: "{v}" }}\n' for k, v in inputs.items())
        maps += "".join(f'      output_map {{ key: "{k}" value: "{v}" }}\n' for k, v in outputs.items())
        return f'    {{\n      model_name: "{model}"\n      model_version: -1\n{maps}    }}'

    text = f'name: "{spec.ENSEMBLE}"\nplatform: "ensemble"\nmax_batch_size: 0\n'
    text += _io("input", REQUEST_INPUTS)
    text += _io("output", RESPONSE_OUTPUTS)
    request = (spec.FRAME, spec.APPEARANCE_INDEX, spec.FACE_BOXES, spec.TRACK_BOXES, spec.TRACK_APPEARANCE)
    steps = [
        step(spec.ALIGN, {name: name for name in request},
             {n: n.lower() for n in (spec.FACES, spec.AFFINES, spec.BOXES, spec.FACE_STATE, spec.APPEARANCE_ROWS)}),
        step(spec.IDENTITY_ENCODER, {spec.FACE: spec.FACES.lower()}, {spec.IDENTITY_CODE: spec.IDENTITY_CODE.lower()}),
        step(spec.APPEARANCE_BANK, {spec.BANK_ROW: spec.APPEARANCE_ROWS.lower()}, {spec.APPEARANCE_CODE: spec.APPEARANCE_CODE.lower()}),
        step(spec.GENERATOR, {spec.IDENTITY_CODE: spec.IDENTITY_CODE.lower(), spec.APPEARANCE_CODE: spec.APPEARANCE_CODE.lower()},
             {spec.GENERATED_FACES: spec.GENERATED_FACES.lower()}),
        step(spec.PASTE, {spec.FRAME: spec.FRAME, spec.GENERATED_FACES: spec.GENERATED_FACES.lower(), spec.AFFINES: spec.AFFINES.lower(),
                          spec.BOXES: spec.BOXES.lower(), spec.FACE_STATE: spec.FACE_STATE.lower(),
                          spec.APPEARANCE_ROWS: spec.APPEARANCE_ROWS.lower()},
             {name: name for name in (spec.CAMOUFLAGED_FRAME, spec.FACE_BOXES_OUT, spec.FACE_STATUS, spec.FACE_APPEARANCE)}),
    ]
    text += "ensemble_scheduling {\n  step [\n" + ",\n".join(steps) + "\n  ]\n}\n"
    return text


def _copy_shared_package(version_dir: Path) -> None:
    """The python models import facecamo; a copy beside model.py makes the repository self-contained."""
    shutil.copytree(SHARED_PACKAGE, version_dir / "facecamo", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def write_repository(out: Path, flavour: str, onnx_paths: dict[str, Path], bank: np.ndarray, sizes: dict[str, int],
                     detector: dict, plans: dict[str, Path] | None = None, max_batch: int = spec.MAX_FACES_PER_FRAME,
                     queue_delay_us: int = 500) -> Path:
    """Write (replacing) the repository at ``out`` and return it."""
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}, got {flavour!r}")
    for child in (spec.ENSEMBLE, spec.ALIGN, spec.IDENTITY_ENCODER, spec.APPEARANCE_BANK, spec.GENERATOR, spec.PASTE):
        shutil.rmtree(out / child, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    def model(name: str, config: str) -> Path:
        version = out / name / "1"
        version.mkdir(parents=True)
        (out / name / "config.pbtxt").write_text(config)
        return version

    version = model(spec.ALIGN, align_config(detector, len(bank), max_batch))
    shutil.copy(PYTHON_MODELS / "align.py", version / "model.py")
    _copy_shared_package(version)
    version = model(spec.PASTE, paste_config())
    shutil.copy(PYTHON_MODELS / "paste.py", version / "model.py")
    _copy_shared_package(version)
    version = model(spec.APPEARANCE_BANK, bank_config(sizes, max_batch))
    shutil.copy(PYTHON_MODELS / "appearance_bank.py", version / "model.py")
    np.save(version / "bank.npy", bank.astype(np.float32))
    for name in (spec.IDENTITY_ENCODER, spec.GENERATOR):
        version = model(name, network_config(name, flavour, sizes, max_batch, queue_delay_us))
        if flavour == "python":
            shutil.copy(PYTHON_MODELS / "onnx_runner.py", version / "model.py")
            shutil.copy(onnx_paths[name], version / "model.onnx")
        elif flavour == "onnxruntime":
            shutil.copy(onnx_paths[name], version / "model.onnx")
        elif plans and name in plans:
            shutil.copy(plans[name], version / "model.plan")
    model(spec.ENSEMBLE, ensemble_config())
    return out
