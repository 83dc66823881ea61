"""A frozen pretrained face-recognition network (e.g. MobileFaceNet from an ONNX file) run in PyTorch, so that
gradients flow from its embedding back into the generator (teacher identity supervision).

The ONNX graph is interpreted node by node with torch operations. Only the operators such plain CNN embedders
use are supported (Conv, Clip, Relu, PRelu, Add, Mul, BatchNormalization, Flatten, Reshape, Gemm, MatMul,
GlobalAveragePool, Constant); another operator is reported by name when the file is loaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Our alignment puts the eye line at y=49.6 and the mouth line at y=88 of the 112 crop; ArcFace-style embedders
# were trained on the 5-point template (eyes y~51.6, mouth corners y~92.3). A fixed similarity maps one onto the other.
_OURS_EYE_Y, _OURS_MOUTH_Y = 57.6 - 8.0, 96.0 - 8.0
_ARCFACE_EYE_Y, _ARCFACE_MOUTH_Y = 51.6, 92.3


class OnnxFaceEmbedder(nn.Module):
    """Frozen face embedder.

    Input: float (B, 3, 112, 112) RGB in [-1, 1], aligned by :mod:`facecamo.align`.
    Output: float (B, D) L2-normalised embeddings.
    """

    SUPPORTED = {"Conv", "Clip", "Relu", "PRelu", "Add", "Mul", "BatchNormalization", "Flatten", "Reshape", "Gemm",
                 "MatMul", "GlobalAveragePool", "Constant"}

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        import onnx
        from onnx import numpy_helper

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"face-embedding network {path} not found; set loss.teacher_path to an ONNX file or to '' to train without it")
        model = onnx.load(str(path))
        unsupported = sorted({n.op_type for n in model.graph.node} - self.SUPPORTED)
        if unsupported:
            raise ValueError(f"{path}: operators {unsupported} are not supported by the torch interpreter")
        self._names: dict[str, str] = {}
        for index, initializer in enumerate(model.graph.initializer):
            buffer_name = f"w{index}"
            self.register_buffer(buffer_name, torch.from_numpy(numpy_helper.to_array(initializer).copy()))
            self._names[initializer.name] = buffer_name
        self._constants: dict[str, torch.Tensor] = {}
        self._nodes = []
        for node in model.graph.node:
            attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "Constant":
                value = numpy_helper.to_array(attributes["value"])
                self._constants[node.output[0]] = torch.from_numpy(np.array(value, copy=True))
                continue
            self._nodes.append((node.op_type, list(node.input), list(node.output), attributes))
        self._input = model.graph.input[0].name
        self._output = model.graph.output[0].name
        scale = (_ARCFACE_MOUTH_Y - _ARCFACE_EYE_Y) / (_OURS_MOUTH_Y - _OURS_EYE_Y)
        # affine_grid maps output coords to input coords in [-1, 1] units: input = A @ output.
        centre = 55.5
        theta = torch.tensor([[1 / scale, 0.0, 0.0],
                              [0.0, 1 / scale, ((_OURS_EYE_Y - centre) - (_ARCFACE_EYE_Y - centre) / scale) / centre]])
        self.register_buffer("theta", theta)
        self.requires_grad_(False)
        self.eval()

    def _value(self, name: str, values: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if name == "":
            return None
        if name in values:
            return values[name]
        if name in self._names:
            return getattr(self, self._names[name])
        return self._constants[name].to(next(iter(values.values())).device)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(self.theta.expand(image.shape[0], 2, 3), list(image.shape), align_corners=False)
        x = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
        # The embedder expects (x - 127.5) / 128 on 0..255, i.e. our [-1, 1] times 127.5/128.
        values = {self._input: x * (127.5 / 128.0)}
        for op, inputs, outputs, attrs in self._nodes:
            args = [self._value(name, values) for name in inputs]
            values[outputs[0]] = _run(op, args, attrs)
        return F.normalize(values[self._output].flatten(1), dim=1)


def _run(op: str, args: list, attrs: dict) -> torch.Tensor:
    if op == "Conv":
        pads = attrs.get("pads", [0, 0, 0, 0])
        x = args[0]
        if pads[0] != pads[2] or pads[1] != pads[3]:
            x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
            pads = [0, 0, 0, 0]
        return F.conv2d(x, args[1], args[2] if len(args) > 2 else None, attrs.get("strides", [1, 1]),
                        (pads[0], pads[1]), attrs.get("dilations", [1, 1]), attrs.get("group", 1))
    if op == "Clip":
        low = args[1] if len(args) > 1 and args[1] is not None else attrs.get("min")
        high = args[2] if len(args) > 2 and args[2] is not None else attrs.get("max")
        return torch.clamp(args[0], float(low) if low is not None else None, float(high) if high is not None else None)
    if op == "Relu":
        return F.relu(args[0])
    if op == "PRelu":
        slope = args[1]
        return torch.where(args[0] >= 0, args[0], args[0] * slope.reshape(1, -1, *[1] * (args[0].dim() - 2)))
    if op == "Add":
        return args[0] + args[1]
    if op == "Mul":
        return args[0] * args[1]
    if op == "BatchNormalization":
        return F.batch_norm(args[0], args[3], args[4], args[1], args[2], False, 0.0, attrs.get("epsilon", 1e-5))
    if op == "Flatten":
        return args[0].flatten(attrs.get("axis", 1))
    if op == "Reshape":
        shape = [int(v) for v in args[1].tolist()]
        shape = [args[0].shape[i] if v == 0 else v for i, v in enumerate(shape)]
        return args[0].reshape(shape)
    if op == "Gemm":
        a = args[0].t() if attrs.get("transA", 0) else args[0]
        b = args[1].t() if attrs.get("transB", 0) else args[1]
        y = attrs.get("alpha", 1.0) * a @ b
        return y + attrs.get("beta", 1.0) * args[2] if len(args) > 2 and args[2] is not None else y
    if op == "MatMul":
        return args[0] @ args[1]
    if op == "GlobalAveragePool":
        return args[0].mean(dim=(2, 3), keepdim=True)
    raise ValueError(f"unsupported operator {op}")
