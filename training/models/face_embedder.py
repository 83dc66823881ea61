# SPDX-License-Identifier: Apache-2.0
"""A frozen pretrained face-recognition network (e.g. MobileFaceNet from an ONNX file) run in PyTorch, so that
gradients flow from its embedding back into the generator (teacher identity supervision).

The ONNX graph is translated once, when the file is loaded, into a list of small torch modules (:class:`_Layer`)
wired by slot numbers; :meth:`OnnxFaceEmbedder.forward` only walks that list. Everything that does not depend on the
input is settled at load time, so a forward pass issues the network's kernels and nothing else (no host-device copy,
no ``.tolist()``, no dictionary of tensor names):

- BatchNormalization that follows a Conv (whose output nothing else reads) is folded into the Conv's weights;
- Constant nodes and the constant operands of Clip, Reshape, Add, Mul, MatMul and Gemm become Python numbers or
  buffers of the layer that reads them (buffers follow ``.to(device)``);
- PRelu slopes are flattened once to the per-channel vector ``F.prelu`` takes.

Only the operators such plain CNN embedders use are supported (Conv, Clip, Relu, PRelu, Add, Mul,
BatchNormalization, Flatten, Reshape, Gemm, MatMul, GlobalAveragePool, Constant); another operator, or an operand
that must be constant but is computed, is reported by name when the file is loaded.
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Callable, ClassVar

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
    Output: float32 (B, D) L2-normalised embeddings, one row per face (D = 128 for the shared MobileFaceNet).

    Args:
        path: an ONNX face-embedding network taking (N, 3, 112, 112) images normalised as (pixel - 127.5) / 128.
        channels_last: keep the convolution weights, and convert the input, to ``torch.channels_last`` memory
            format (faster convolutions with cuDNN under bf16/fp16 autocast; no effect on the result).

    Raises:
        FileNotFoundError: if ``path`` is not a file.
        ValueError: for an operator, or a computed operand, that the translation does not support.
    """

    SUPPORTED = frozenset({"Conv", "Clip", "Relu", "PRelu", "Add", "Mul", "BatchNormalization", "Flatten", "Reshape",
                           "Gemm", "MatMul", "GlobalAveragePool", "Constant"})

    def __init__(self, path: str | Path, channels_last: bool = False) -> None:
        super().__init__()
        import onnx

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"face-embedding network {path} not found; set loss.teacher_path to an ONNX file or to '' to train without it")
        model = onnx.load(str(path))
        unsupported = sorted({n.op_type for n in model.graph.node} - self.SUPPORTED)
        if unsupported:
            raise ValueError(f"{path}: operators {unsupported} are not supported by the torch translation")
        layers, wiring, slot_count, output_slot = _translate(model, path)
        self.layers = nn.ModuleList(layers)
        # (input slots, output slot, slots no later layer reads): plain ints, so walking them never touches the device
        self._wiring: tuple[tuple[tuple[int, ...], int, tuple[int, ...]], ...] = wiring
        self._slot_count, self._output_slot = slot_count, output_slot
        self.channels_last = channels_last
        if channels_last:
            for layer in self.layers:
                if isinstance(layer, _Conv):
                    layer.weight = layer.weight.contiguous(memory_format=torch.channels_last)
        scale = (_ARCFACE_MOUTH_Y - _ARCFACE_EYE_Y) / (_OURS_MOUTH_Y - _OURS_EYE_Y)
        # affine_grid maps output coords to input coords in [-1, 1] units: input = A @ output.
        centre = 55.5
        theta = torch.tensor([[1 / scale, 0.0, 0.0],
                              [0.0, 1 / scale, ((_OURS_EYE_Y - centre) - (_ARCFACE_EYE_Y - centre) / scale) / centre]])
        self.register_buffer("theta", theta)
        self.requires_grad_(False)
        self.eval()

    def embed_aligned(self, network_input: torch.Tensor) -> torch.Tensor:
        """The network alone: float (B, 3, 112, 112) already in the network's template and normalisation
        ((pixel - 127.5) / 128) -> float32 (B, D) L2-normalised; what ONNX Runtime computes on the same file."""
        return self._walk(network_input)[0]

    def _walk(self, network_input: torch.Tensor, capture: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the L2-normalised embedding, the output of layer ``capture`` or None)."""
        if self.channels_last:
            network_input = network_input.contiguous(memory_format=torch.channels_last)
        slots: list[torch.Tensor | None] = [None] * self._slot_count
        slots[0] = network_input
        captured = None
        for number, (layer, (inputs, output, released)) in enumerate(zip(self.layers, self._wiring)):
            slots[output] = layer(*[slots[i] for i in inputs])
            if number == capture:
                captured = slots[output]
            for slot in released:  # let eval-mode passes free activations as soon as nothing reads them
                slots[slot] = None
        embedding = slots[self._output_slot]
        return F.normalize(embedding.float().flatten(1), dim=1), captured

    def features(self, image: torch.Tensor, fraction: float = 0.5) -> torch.Tensor:
        """float (B, 3, 112, 112) in [-1, 1], our alignment -> float32 (B, C, h, w): the output of the layer
        ``fraction`` of the way through the network (mid-level features: parts of faces, shared more widely between
        recognisers than the last layer's identity code, which is why attacks that match them transfer better)."""
        return self._walk(self._to_network(image), capture=int(fraction * (len(self.layers) - 1)))[1].float()

    def _to_network(self, image: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(self.theta.expand(image.shape[0], 2, 3), list(image.shape), align_corners=False)
        x = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
        # The embedder expects (x - 127.5) / 128 on 0..255, i.e. our [-1, 1] times 127.5/128.
        return x * (127.5 / 128.0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """float (B, 3, 112, 112) in [-1, 1], our alignment -> float32 (B, D) L2-normalised embeddings."""
        return self.embed_aligned(self._to_network(image))


# -- layers: each holds its constants; forward takes only the tensors computed from the input ----------------------

class _Layer(nn.Module):
    """One translated ONNX node (or a Conv with its BatchNormalization folded in)."""


class _Conv(_Layer):
    """Conv with constant weight (O, I/groups, kH, kW) and optional bias (O,); asymmetric padding is applied first."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, ...], padding: tuple[int, ...],
                 dilation: tuple[int, ...], groups: int, pre_pad: tuple[int, ...] | None) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self.stride, self.padding, self.dilation, self.groups, self.pre_pad = stride, padding, dilation, groups, pre_pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_pad is not None:
            x = F.pad(x, self.pre_pad)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class _Clip(_Layer):
    """Clip to Python-number bounds. With both bounds it is ``F.hardtanh`` (ReLU6 for MobileFaceNet's 0..6): the
    same values as ``torch.clamp``, and its backward is one kernel, where clamp's builds scalar tensors every call."""

    def __init__(self, low: float | None, high: float | None) -> None:
        super().__init__()
        self.low, self.high = low, high
        self.bounded = low is not None and high is not None and low < high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bounded:
            return F.hardtanh(x, self.low, self.high)
        return torch.clamp(x, self.low, self.high)


class _Relu(_Layer):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)


class _PRelu(_Layer):
    """Per-channel (dimension 1) or single-slope PReLU; ``slope`` float (C,) or (1,)."""

    def __init__(self, slope: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("slope", slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.prelu(x, self.slope.to(x.dtype))


class _BatchNorm(_Layer):
    """Inference-mode BatchNormalization that could not be folded into a Conv; per-channel (C,) statistics."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor, mean: torch.Tensor, variance: torch.Tensor, epsilon: float) -> None:
        super().__init__()
        for name, value in (("scale", scale), ("shift", shift), ("mean", mean), ("variance", variance)):
            self.register_buffer(name, value)
        self.epsilon = epsilon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.mean, self.variance, self.scale, self.shift, False, 0.0, self.epsilon)


class _Binary(_Layer):
    """Add, Mul or MatMul of two computed tensors, or of one computed tensor and a constant (a buffer or a number).

    ``constant_side``: None (both operands computed), 0 (the constant is the left operand) or 1 (the right one)."""

    # operator module functions, not torch.add: ``2.0 * x`` works with a Python number on either side
    OPERATIONS: ClassVar[dict[str, Callable]] = {"Add": operator.add, "Mul": operator.mul, "MatMul": operator.matmul}

    def __init__(self, op: str, constant: torch.Tensor | float | None = None, constant_side: int | None = None) -> None:
        super().__init__()
        self.op, self.operation, self.constant_side = op, self.OPERATIONS[op], constant_side
        self.number: float | None = None
        if isinstance(constant, torch.Tensor):
            self.register_buffer("constant", constant)
        else:
            self.constant = None
            self.number = constant

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        if self.constant_side is None:
            return self.operation(a, b)
        other = self.constant if self.constant is not None else self.number
        return self.operation(other, a) if self.constant_side == 0 else self.operation(a, other)


class _Linear(_Layer):
    """Gemm with a constant right-hand matrix: y = alpha * A' @ B' + beta * C as ``F.linear`` with the scaling folded
    into ``weight`` float (N, K) and ``bias`` float (N,) (or any shape broadcastable to (M, N), added separately)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, transpose_input: bool) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self.transpose_input = transpose_input
        self.bias_in_linear = bias is not None and bias.dim() == 1

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if self.transpose_input:
            a = a.t()
        if self.bias_in_linear:
            return F.linear(a, self.weight, self.bias)
        y = F.linear(a, self.weight)
        return y if self.bias is None else y + self.bias


class _Gemm(_Layer):
    """Gemm whose B is computed: y = alpha * A' @ B' (+ beta * C, a constant or computed)."""

    def __init__(self, alpha: float, beta: float, transpose_a: bool, transpose_b: bool, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.alpha, self.beta, self.transpose_a, self.transpose_b = alpha, beta, transpose_a, transpose_b
        self.register_buffer("bias", bias)

    def forward(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        y = self.alpha * ((a.t() if self.transpose_a else a) @ (b.t() if self.transpose_b else b))
        c = c if c is not None else self.bias
        return y if c is None else y + self.beta * c


class _Flatten(_Layer):
    """ONNX Flatten: (d0, ..., dn) -> (d0 * ... * d(axis-1), d(axis) * ... * dn)."""

    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        axis = self.axis % x.dim() if self.axis < 0 else self.axis
        if axis == 0:
            return x.reshape(1, -1)
        return x.flatten(axis).flatten(0, axis - 1) if axis > 1 else x.flatten(1)


class _Reshape(_Layer):
    """Reshape to a constant target of Python ints in ONNX's convention: 0 copies that input dimension, -1 is inferred."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape
        self.copies = any(v == 0 for v in shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.copies:
            return x.reshape(self.shape)
        return x.reshape([x.shape[i] if v == 0 else v for i, v in enumerate(self.shape)])


class _GlobalAveragePool(_Layer):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


# -- translation ------------------------------------------------------------------------------------------------------

class _Translation:
    """The translation of one ONNX graph into layers wired by slot numbers (slot 0 is the graph input): the graph's
    constants and the slots read so far, one method per operator (:attr:`BUILDERS`), then :meth:`wiring`.

    Raises (from the constructor or :meth:`run`): ValueError, naming the file, node and operand that cannot be translated.
    """

    def __init__(self, model, path: Path) -> None:
        import onnx
        from onnx import numpy_helper

        graph = model.graph
        self.path = path
        self.constants: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.nodes: list[tuple] = []  # (node, its attributes), Constant nodes excluded (their values are constants)
        for node in graph.node:
            attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type != "Constant":
                self.nodes.append((node, attributes))
            elif "value" in attributes:
                self.constants[node.output[0]] = numpy_helper.to_array(attributes["value"])
            else:
                raise ValueError(f"{path}: Constant node {node.name!r} has no 'value' tensor attribute; only tensor constants are supported")
        graph_inputs = [i for i in graph.input if i.name not in self.constants]
        if len(graph_inputs) != 1 or len(graph.output) != 1:
            raise ValueError(f"{path}: expected one image input and one embedding output, found inputs "
                             f"{[i.name for i in graph_inputs]} and outputs {[o.name for o in graph.output]}")
        input_dims = graph_inputs[0].type.tensor_type.shape.dim
        # Exported with a fixed batch of 1, the graph spells the batch dimension as a literal 1 in Reshape targets
        # (MobileFaceNet's last node reshapes to [1, -1]); read there as "copy the batch", a batch of B faces stays B rows.
        self.fixed_batch_of_one = len(input_dims) > 0 and input_dims[0].HasField("dim_value") and input_dims[0].dim_value == 1
        self.consumers: dict[str, int] = {}
        self.batch_norms_reading: dict[str, list[int]] = {}  # a tensor's name -> the BatchNormalization nodes reading it
        for index, (node, _) in enumerate(self.nodes):
            for name in node.input:
                self.consumers[name] = self.consumers.get(name, 0) + 1
            if node.op_type == "BatchNormalization":
                self.batch_norms_reading.setdefault(node.input[0], []).append(index)
        self.output_name = graph.output[0].name
        self.output_node = graph.output[0]
        self.slots: dict[str, int] = {graph_inputs[0].name: 0}
        self.layers: list[_Layer] = []
        self.layer_inputs: list[tuple[int, ...]] = []
        self.layer_outputs: list[int] = []
        self.folded: set[int] = set()  # BatchNormalization nodes (indices in ``nodes``) merged into the Conv before them

    # -- helpers ---------------------------------------------------------------------------------------------------
    def constant(self, name: str, node) -> np.ndarray:
        if name not in self.constants:
            raise ValueError(f"{self.path}: {node.op_type} node {node.name!r} reads {name!r} as a computed tensor; "
                             "only constant operands are supported there")
        return self.constants[name]

    @staticmethod
    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(array, copy=True))

    @staticmethod
    def number(array: np.ndarray) -> float:
        return float(np.asarray(array).reshape(-1)[0])

    def slot_of(self, name: str, node) -> int:
        if name not in self.slots:
            raise ValueError(f"{self.path}: {node.op_type} node {node.name!r} reads {name!r}, which is neither computed "
                             "before it nor a supported constant operand")
        return self.slots[name]

    def emit(self, layer: _Layer, inputs: list[str], output: str, node) -> None:
        self.layers.append(layer)
        self.layer_inputs.append(tuple(self.slot_of(name, node) for name in inputs))
        self.slots[output] = len(self.slots)
        self.layer_outputs.append(self.slots[output])

    # -- one builder per operator: (index in ``nodes``, node, attributes) -> emits its layer ----------------------
    def conv(self, index: int, node, attributes: dict) -> None:
        inputs = list(node.input)
        weight = self.constant(inputs[1], node).astype(np.float64)
        bias = self.constant(inputs[2], node).astype(np.float64) if len(inputs) > 2 and inputs[2] else None
        weight, bias, output = self.fold_batch_norm(node, weight, bias)
        dtype = self.constants[inputs[1]].dtype
        if weight.ndim - 2 != 2:
            raise ValueError(f"{self.path}: Conv node {node.name!r} is {weight.ndim - 2}-D; only 2-D convolutions are supported")
        if attributes.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise ValueError(f"{self.path}: Conv node {node.name!r} uses auto_pad; only explicit pads are supported")
        pads = list(attributes.get("pads", [0, 0, 0, 0]))
        pre_pad = None
        if pads[0] != pads[2] or pads[1] != pads[3]:
            pre_pad = (pads[1], pads[3], pads[0], pads[2])  # F.pad: (left, right, top, bottom)
            pads = [0, 0, 0, 0]
        self.emit(_Conv(torch.from_numpy(weight.astype(dtype)),
                        torch.from_numpy(np.asarray(bias).astype(dtype)) if bias is not None else None,
                        tuple(attributes.get("strides", [1, 1])), (pads[0], pads[1]), tuple(attributes.get("dilations", [1, 1])),
                        int(attributes.get("group", 1)), pre_pad),
                  inputs[:1], output, node)

    def fold_batch_norm(self, conv, weight: np.ndarray, bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, str]:
        """A Conv's (weight, bias, output name) with the one BatchNormalization that alone reads its output folded in
        (constant statistics), else unchanged."""
        output = conv.output[0]
        following = self.batch_norms_reading.get(output, [])
        if not (len(following) == 1 and self.consumers.get(output, 0) == 1 and output != self.output_name
                and all(name in self.constants for name in self.nodes[following[0]][0].input[1:5])):
            return weight, bias, output
        bn, bn_attributes = self.nodes[following[0]]
        gamma, beta, mean, variance = (self.constants[name].astype(np.float64) for name in bn.input[1:5])
        scale = gamma / np.sqrt(variance + bn_attributes.get("epsilon", 1e-5))
        weight = weight * scale.reshape(-1, *[1] * (weight.ndim - 1))
        bias = ((bias if bias is not None else 0.0) - mean) * scale + beta
        self.folded.add(following[0])
        return weight, bias, bn.output[0]

    def batch_norm(self, index: int, node, attributes: dict) -> None:
        gamma, beta, mean, variance = (self.tensor(self.constant(name, node)) for name in node.input[1:5])
        self.emit(_BatchNorm(gamma, beta, mean, variance, float(attributes.get("epsilon", 1e-5))), node.input[:1], node.output[0], node)

    def clip(self, index: int, node, attributes: dict) -> None:
        inputs = list(node.input)
        low = self.number(self.constant(inputs[1], node)) if len(inputs) > 1 and inputs[1] else attributes.get("min")
        high = self.number(self.constant(inputs[2], node)) if len(inputs) > 2 and inputs[2] else attributes.get("max")
        self.emit(_Clip(float(low) if low is not None else None, float(high) if high is not None else None),
                  inputs[:1], node.output[0], node)

    def relu(self, index: int, node, attributes: dict) -> None:
        self.emit(_Relu(), node.input[:1], node.output[0], node)

    def prelu(self, index: int, node, attributes: dict) -> None:
        self.emit(_PRelu(self.tensor(self.constant(node.input[1], node)).reshape(-1)), node.input[:1], node.output[0], node)

    def binary(self, index: int, node, attributes: dict) -> None:
        op, inputs = node.op_type, list(node.input)
        computed = [name in self.slots for name in inputs]
        if all(computed):
            self.emit(_Binary(op), inputs, node.output[0], node)
            return
        if computed.count(True) != 1:
            raise ValueError(f"{self.path}: {op} node {node.name!r} has only constant operands; constant folding is not supported")
        side = computed.index(False)
        value = self.constants.get(inputs[side])
        if value is None:
            self.slot_of(inputs[side], node)  # raises: names the missing operand
        # a single number stays a Python scalar (no buffer, no broadcast of a 0-d tensor); MatMul needs a tensor
        scalar = op != "MatMul" and np.asarray(value).size == 1 and np.asarray(value).ndim == 0
        self.emit(_Binary(op, self.number(value) if scalar else self.tensor(value), side), [inputs[1 - side]], node.output[0], node)

    def gemm(self, index: int, node, attributes: dict) -> None:
        inputs = list(node.input)
        alpha, beta = float(attributes.get("alpha", 1.0)), float(attributes.get("beta", 1.0))
        transpose_a, transpose_b = bool(attributes.get("transA", 0)), bool(attributes.get("transB", 0))
        c_name = inputs[2] if len(inputs) > 2 and inputs[2] else None
        if inputs[1] in self.constants and (c_name is None or c_name in self.constants):
            b = self.constants[inputs[1]]
            weight = (b if transpose_b else b.T) * alpha  # F.linear's (N, K)
            bias = self.tensor(self.constants[c_name] * beta) if c_name else None
            if bias is not None and bias.dim() > 1 and bias.numel() == weight.shape[0]:
                bias = bias.reshape(-1)
            self.emit(_Linear(self.tensor(weight.astype(b.dtype)), bias, transpose_a), inputs[:1], node.output[0], node)
        else:
            bias = self.tensor(self.constants[c_name]) if c_name in self.constants else None
            computed_inputs = inputs[:2] + ([c_name] if c_name and c_name not in self.constants else [])
            self.emit(_Gemm(alpha, beta, transpose_a, transpose_b, bias), computed_inputs, node.output[0], node)

    def flatten(self, index: int, node, attributes: dict) -> None:
        self.emit(_Flatten(int(attributes.get("axis", 1))), node.input[:1], node.output[0], node)

    def reshape(self, index: int, node, attributes: dict) -> None:
        shape = [int(v) for v in self.constant(node.input[1], node).reshape(-1)]
        if self.fixed_batch_of_one and shape and shape[0] == 1:
            shape[0] = 0
        self.emit(_Reshape(tuple(shape)), node.input[:1], node.output[0], node)

    def global_average_pool(self, index: int, node, attributes: dict) -> None:
        self.emit(_GlobalAveragePool(), node.input[:1], node.output[0], node)

    BUILDERS: ClassVar[dict[str, Callable]] = {
        "Conv": conv, "BatchNormalization": batch_norm, "Clip": clip, "Relu": relu, "PRelu": prelu, "Add": binary,
        "Mul": binary, "MatMul": binary, "Gemm": gemm, "Flatten": flatten, "Reshape": reshape,
        "GlobalAveragePool": global_average_pool,
    }

    # -- the whole graph -------------------------------------------------------------------------------------------
    def run(self) -> tuple[list[_Layer], tuple, int, int]:
        """Returns: (layers, wiring, number of slots, output slot); ``wiring[i]`` is (input slots, output slot, slots
        to release after layer i) for ``layers[i]``."""
        for index, (node, attributes) in enumerate(self.nodes):
            if index not in self.folded:
                builder = self.BUILDERS.get(node.op_type)
                if builder is None:  # unreachable: SUPPORTED is checked first
                    raise ValueError(f"{self.path}: unsupported operator {node.op_type}")
                builder(self, index, node, attributes)
        output_slot = self.slot_of(self.output_name, self.output_node)
        last_read = {slot: index for index, inputs in enumerate(self.layer_inputs) for slot in inputs}
        released: list[list[int]] = [[] for _ in self.layers]
        for slot, index in last_read.items():
            if slot != output_slot:
                released[index].append(slot)
        wiring = tuple((inputs, output, tuple(sorted(free)))
                       for inputs, output, free in zip(self.layer_inputs, self.layer_outputs, released))
        return self.layers, wiring, len(self.slots), output_slot


def _translate(model, path: Path) -> tuple[list[_Layer], tuple, int, int]:
    """Translate ``model``'s graph (see :class:`_Translation`): (layers, wiring, number of slots, output slot)."""
    return _Translation(model, path).run()
