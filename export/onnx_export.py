# SPDX-License-Identifier: Apache-2.0
"""Checkpoint -> ONNX for E_I, E_A and G, with names, dtypes and dynamic batch from :mod:`facecamo.spec`, checked
against PyTorch with ONNX Runtime (random and real aligned faces) and linted with polygraphy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facecamo import spec

PARITY_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The export cannot be trusted (parity or lint failed); the message carries the numbers."""


class _Generator(nn.Module):
    """G with the spec's two named inputs (the training module takes them positionally too)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, identity_code: torch.Tensor, appearance_code: torch.Tensor) -> torch.Tensor:
        return self.generator(identity_code, appearance_code)


def network_modules(net) -> dict[str, nn.Module]:
    """The networks to export: E_I and G, and E_A in the paper design (it makes the appearance bank)."""
    modules = {spec.IDENTITY_ENCODER: net.identity_encoder, spec.GENERATOR: _Generator(net.generator)}
    if net.design.appearance_encoder:
        modules[spec.APPEARANCE_ENCODER] = net.appearance_encoder
    return modules


def symbolic_sizes(net) -> dict[str, int]:
    """Values of the spec's symbolic dimensions for this network (:meth:`facecamo.design.Design.sizes`)."""
    appearance = net.appearance_encoder.out_channels if net.design.appearance_encoder else None
    return net.design.sizes(net.identity_encoder.out_channels, appearance)


def example_inputs(name: str, sizes: dict[str, int], batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    tensors = []
    for tensor in spec.NETWORKS[name].inputs:
        shape = (batch, *tensor.resolved(sizes))
        image = tensor.name == spec.FACE or (tensor.name == spec.APPEARANCE and sizes.get("H_app") == spec.FACE_SIZE)
        value = torch.rand(shape, generator=generator) * 2 - 1 if image else torch.randn(shape, generator=generator)
        if tensor.name == spec.APPEARANCE and not image:
            value = value.abs()  # post-ReLU, max-pooled features are non-negative
        tensors.append(value)
    return tuple(tensors)


def export_onnx(net, folder: Path) -> dict[str, Path]:
    """Write ``folder/<name>.onnx`` for the three networks (opset ``spec.OPSET``, batch axis dynamic)."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes = symbolic_sizes(net)
    generator = torch.Generator().manual_seed(0)
    paths = {}
    for name, module in network_modules(net).items():
        network = spec.NETWORKS[name]
        inputs = example_inputs(name, sizes, 2, generator)
        names = [t.name for t in network.inputs] + [t.name for t in network.outputs]
        path = folder / f"{name}.onnx"
        torch.onnx.export(
            module.eval(), inputs, str(path), dynamo=False, opset_version=spec.OPSET,
            input_names=[t.name for t in network.inputs], output_names=[t.name for t in network.outputs],
            dynamic_axes={n: {0: "batch"} for n in names},
        )
        declare_output_shapes(path, network, sizes)
        paths[name] = path
    return paths


def declare_output_shapes(path: Path, network: "spec.NetworkSpec", sizes: dict[str, int]) -> None:
    """Write the spec's fixed sizes into the ONNX outputs' declared shapes (all but the batch axis). The legacy
    exporter's shape inference named the generator's height axis "batch" (``GENERATED_FACES ['batch', 3, 'batch',
    112]``), which breaks shape inference downstream and TensorRT optimisation profiles."""
    import onnx

    model = onnx.load(str(path))
    for output, tensor in zip(model.graph.output, network.outputs):
        dims = output.type.tensor_type.shape.dim
        for dim, value in zip(list(dims)[1:], tensor.resolved(sizes)):
            if value < 0:  # a variable axis stays symbolic
                continue
            dim.ClearField("dim_param")
            dim.dim_value = int(value)
    onnx.save(model, str(path))


@dataclass
class ParityResult:
    name: str
    case: str
    max_abs_difference: float

    @property
    def ok(self) -> bool:
        return self.max_abs_difference <= PARITY_TOLERANCE


def check_parity(net, paths: dict[str, Path], real_faces: np.ndarray) -> list[ParityResult]:
    """ONNX Runtime vs PyTorch on random inputs (batch 1 and 5) and on real aligned faces (float32 (N, 3, 112, 112))."""
    import onnxruntime

    sizes = symbolic_sizes(net)
    modules = network_modules(net)
    generator = torch.Generator().manual_seed(1)
    results = []
    with torch.no_grad():
        real = torch.from_numpy(real_faces)
        second = real.flip(0) if net.design.donors else net.appearance_encoder(real.flip(0))  # target or code
        real_inputs = {
            spec.IDENTITY_ENCODER: (real,),
            spec.APPEARANCE_ENCODER: (real,),
            spec.GENERATOR: (net.identity_encoder(real), second),
        }
        for name, path in paths.items():
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            cases = {"random batch 1": example_inputs(name, sizes, 1, generator),
                     "random batch 5": example_inputs(name, sizes, 5, generator),
                     f"{len(real_faces)} real aligned faces": real_inputs[name]}
            for case, inputs in cases.items():
                expected = modules[name](*inputs).numpy()
                feeds = {t.name: x.numpy() for t, x in zip(spec.NETWORKS[name].inputs, inputs)}
                actual = session.run(None, feeds)[0]
                results.append(ParityResult(name, case, float(np.abs(actual - expected).max())))
    return results


def lint(paths: dict[str, Path]) -> list[str]:
    """polygraphy's ONNX lint per model; returns problems (empty when clean). Without polygraphy the lint is skipped,
    saying so on stderr (it is in requirements/serve.txt), rather than passing in silence."""
    polygraphy = shutil.which("polygraphy") or str(Path(sys.executable).parent / "polygraphy")
    if not Path(polygraphy).exists():
        print("  ONNX lint skipped: polygraphy is not installed (pip install polygraphy==0.53.6)", file=sys.stderr)
        return []
    problems = []
    for name, path in paths.items():
        result = subprocess.run([polygraphy, "check", "lint", str(path)], capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            problems.append(f"{name}: polygraphy lint failed:\n{(result.stdout + result.stderr)[-2000:]}")
    return problems
