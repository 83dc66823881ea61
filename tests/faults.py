# SPDX-License-Identifier: Apache-2.0
"""Broken generators, built as real ONNX files, to cause the pipeline's failures for real (no mocks): each has the
generator's input and output names and the shipped (donor) design's input shapes, so it loads wherever the real one
does, and fails in one specific way. They compute from APPEARANCE, the donor target (zeros for the load-time
check, a face for a real request)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from facecamo import spec


def _save(nodes: list, initialisers: dict[str, np.ndarray], path: Path, channels: int = 3) -> Path:
    inputs = [helper.make_tensor_value_info(spec.IDENTITY_CODE, TensorProto.FLOAT, ["batch", None, 1, 1]),
              helper.make_tensor_value_info(spec.APPEARANCE, TensorProto.FLOAT, ["batch", 3, spec.FACE_SIZE, spec.FACE_SIZE])]
    outputs = [helper.make_tensor_value_info(spec.GENERATED_FACES, TensorProto.FLOAT, None)]
    graph = helper.make_graph(nodes, "broken_generator", inputs, outputs,
                              [numpy_helper.from_array(v, k) for k, v in initialisers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", spec.OPSET)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _resized_target(scale: float) -> tuple[list, dict]:
    """Nodes computing ``upscaled``: the donor target's 3 channels, resized by ``scale``."""
    nodes = [helper.make_node("Slice", [spec.APPEARANCE, "starts", "ends", "axes"], ["three"]),
             helper.make_node("Resize", ["three", "", "scales"], ["upscaled"], mode="nearest")]
    return nodes, {"starts": np.array([0], np.int64), "ends": np.array([3], np.int64), "axes": np.array([1], np.int64),
                   "scales": np.array([1, 1, scale, scale], np.float32)}


def wrong_shape_generator(path: Path) -> Path:
    """Returns [N, 3, 28, 28] instead of [N, 3, 112, 112]."""
    nodes, init = _resized_target(0.25)
    return _save(nodes + [helper.make_node("Identity", ["upscaled"], [spec.GENERATED_FACES])], init, path)


def nan_for_real_faces_generator(path: Path) -> Path:
    """Finite (zeros) for the all-zero check input, NaN wherever the donor target is not zero: log(1 - 1000 |x|)."""
    nodes, init = _resized_target(1.0)
    nodes += [helper.make_node("Abs", ["upscaled"], ["magnitude"]),
              helper.make_node("Mul", ["magnitude", "thousand"], ["scaled"]),
              helper.make_node("Sub", ["one", "scaled"], ["shrunk"]),
              helper.make_node("Log", ["shrunk"], [spec.GENERATED_FACES])]
    init.update({"thousand": np.array(1000, np.float32), "one": np.array(1, np.float32)})
    return _save(nodes, init, path)


def fails_for_several_faces_generator(path: Path) -> Path:
    """Works for one face (the load-time check), raises inside ONNX Runtime for two or more: a Reshape to batch 1."""
    nodes, init = _resized_target(1.0)
    nodes += [helper.make_node("Reshape", ["upscaled", "shape"], [spec.GENERATED_FACES])]
    init["shape"] = np.array([1, 3, spec.FACE_SIZE, spec.FACE_SIZE], np.int64)
    return _save(nodes, init, path)


def repository_with_generator(source: Path, target: Path, build) -> Path:
    """A copy of an exported repository whose generator is replaced by ``build(path)`` (or by bytes)."""
    shutil.copytree(source, target)
    model = target / spec.GENERATOR / "1" / "model.onnx"
    if isinstance(build, bytes):
        model.write_bytes(build)
    else:
        build(model)
    return target


def nan_for_real_images_detector(path: Path) -> Path:
    """A face detector with the spec's names and shapes whose outputs are finite for an all-black image (the
    load-time check) and NaN for any real one: log(1 - 1000 x) of the 4x4-pooled image."""
    image = helper.make_tensor_value_info(spec.DETECTOR_IMAGE, TensorProto.FLOAT, ["batch", 3, "height", "width"])
    outputs = [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, None) for t in spec.DETECTOR_SPEC.outputs]
    nodes = [helper.make_node("AveragePool", [spec.DETECTOR_IMAGE], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
             helper.make_node("Mul", ["pooled", "thousand"], ["scaled"]),
             helper.make_node("Sub", ["one", "scaled"], ["shrunk"]),
             helper.make_node("Log", ["shrunk"], ["broken"]),
             helper.make_node("Slice", ["broken", "zero", "one_i", "axis"], [spec.DETECTOR_HEATMAP]),
             helper.make_node("Slice", ["broken", "zero", "two_i", "axis"], [spec.DETECTOR_SCALE]),
             helper.make_node("Slice", ["broken", "zero", "two_i", "axis"], [spec.DETECTOR_OFFSET]),
             helper.make_node("Concat", ["broken", "broken", "broken", "broken"], ["twelve"], axis=1),
             helper.make_node("Slice", ["twelve", "zero", "ten_i", "axis"], [spec.DETECTOR_LANDMARKS])]
    init = {"thousand": np.array(1000, np.float32), "one": np.array(1, np.float32), "zero": np.array([0], np.int64),
            "one_i": np.array([1], np.int64), "two_i": np.array([2], np.int64), "ten_i": np.array([10], np.int64),
            "axis": np.array([1], np.int64)}
    graph = helper.make_graph(nodes, "broken_detector", [image], outputs, [numpy_helper.from_array(v, k) for k, v in init.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", spec.OPSET)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def repository_with_detector(source: Path, target: Path, build) -> Path:
    """A copy of an exported repository whose face detector is replaced by ``build(path)``."""
    shutil.copytree(source, target)
    build(target / spec.FACE_DETECTOR / "1" / "model.onnx")
    return target
