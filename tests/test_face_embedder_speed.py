# SPDX-License-Identifier: Apache-2.0
"""The frozen teacher (training.models.face_embedder) translated once into torch layers: the same numbers as ONNX
Runtime on the same file, one embedding per face of a batch, no device-to-host reads in a training step's forward and
backward; and the training loop's wall-clock budget (``--minutes``) that stops with weights saved.

Speed itself is measured by ``python -m benchmarks.training`` (figures to bench/), never asserted here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import require_shared

MOBILEFACENET = "models/face_embedding/mobilefacenet.onnx"


def aligned_input(embedder, faces: torch.Tensor) -> torch.Tensor:
    """What ``embedder.forward`` hands the network: our faces warped to its template, in its normalisation."""
    grid = F.affine_grid(embedder.theta.expand(len(faces), 2, 3), list(faces.shape), align_corners=False)
    return F.grid_sample(faces, grid, mode="bilinear", padding_mode="border", align_corners=False) * (127.5 / 128.0)


def onnxruntime_embeddings(path, network_input: np.ndarray) -> np.ndarray:
    """ONNX Runtime's L2-normalised outputs, one face at a time (the shared file declares a batch of 1)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs = np.concatenate([session.run(None, {name: face[None]})[0].reshape(1, -1) for face in network_input])
    return outputs / np.linalg.norm(outputs, axis=1, keepdims=True)


def test_teacher_matches_onnxruntime_for_every_face_of_a_batch():
    from training.models.face_embedder import OnnxFaceEmbedder

    path = require_shared(MOBILEFACENET)
    embedder = OnnxFaceEmbedder(path)
    faces = torch.rand(5, 3, 112, 112, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        ours = embedder(faces)
        expected = onnxruntime_embeddings(path, aligned_input(embedder, faces).numpy())
        alone = torch.cat([embedder(face[None]) for face in faces])
    # (B, D), not one (1, B*D) row: the file's Reshape to [1, -1] is read as "keep the batch"
    assert ours.shape == (5, 128) and ours.dtype == torch.float32
    difference = np.abs(ours.numpy() - expected).max()
    print(f"max |ours - onnxruntime| over 5 faces: {difference:.2e}")
    assert difference < 1e-4
    assert torch.allclose(torch.linalg.vector_norm(ours, dim=1), torch.ones(5), atol=1e-5)
    assert torch.allclose(ours, alone, atol=1e-5)  # a face's embedding does not depend on the rest of its batch
    with torch.no_grad():
        channels_last = OnnxFaceEmbedder(path, channels_last=True)(faces)
    assert torch.allclose(channels_last, ours, atol=1e-5)


def test_teacher_step_reads_nothing_back_from_the_device():
    """A training step's teacher forward and backward issue kernels only: no ``.item()``/``.tolist()`` (on a GPU, each
    would wait for it). Checked on the CPU with the profiler (every host read is an ``aten::item`` or
    ``aten::_local_scalar_dense``), and on a GPU, where there is one, with CUDA's synchronisation checker too."""
    from training.models.face_embedder import OnnxFaceEmbedder

    path = require_shared(MOBILEFACENET)
    embedder = OnnxFaceEmbedder(path)
    faces = (torch.rand(2, 3, 112, 112) * 2 - 1).requires_grad_(True)
    embedder(faces).sum().backward()  # first call outside the profile: lazy initialisation is not a step's work
    faces.grad = None
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        embedder(faces).sum().backward()
    host_reads = sorted({event.name for event in profile.events() if event.name in ("aten::item", "aten::_local_scalar_dense")})
    assert not host_reads, f"the teacher reads values back to the host: {host_reads}"
    assert faces.grad is not None and faces.grad.abs().sum() > 0  # gradients reach the generated faces
    if not torch.cuda.is_available():
        print("no CUDA device here: the synchronisation checker part of this test runs on a GPU only")
        return
    embedder = embedder.cuda()
    gpu_faces = faces.detach().cuda().requires_grad_(True)
    embedder(gpu_faces).sum().backward()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        embedder(gpu_faces).mean().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def small_graph_with_every_operator(path) -> None:
    """A random CNN in ONNX (opset 11, fixed batch of 1) using each operator the translation supports that the shared
    MobileFaceNet does not: Conv + BatchNormalization (folded), a BatchNormalization that cannot be folded (its Conv
    output is read twice), asymmetric pads, PRelu, Add/Mul with constants, GlobalAveragePool, Flatten, Gemm, MatMul."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int, low: float = -0.5, high: float = 0.5):
        return numpy_helper.from_array(rng.uniform(low, high, shape).astype(np.float32), name)

    initializers = [
        weight("c1_w", 8, 3, 3, 3), weight("c1_b", 8),
        weight("bn1_g", 8, low=0.5, high=1.5), weight("bn1_b", 8), weight("bn1_m", 8), weight("bn1_v", 8, low=0.2, high=2.0),
        weight("slope", 8, 1, 1, low=0.05, high=0.3),
        weight("c2_w", 8, 1, 3, 3),  # depthwise, no bias
        weight("bn2_g", 8, low=0.5, high=1.5), weight("bn2_b", 8), weight("bn2_m", 8), weight("bn2_v", 8, low=0.2, high=2.0),
        weight("offset", 1, 8, 1, 1), weight("gemm_w", 16, 8), weight("gemm_c", 16), weight("project", 16, 12),
    ]
    constants = [
        helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(np.array(2.0, np.float32))),
        helper.make_node("Constant", [], ["low"], value=numpy_helper.from_array(np.array(-1.0, np.float32))),
        helper.make_node("Constant", [], ["high"], value=numpy_helper.from_array(np.array(3.0, np.float32))),
        helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([1, -1], np.int64))),
    ]
    nodes = constants + [
        helper.make_node("Conv", ["input", "c1_w", "c1_b"], ["c1"], pads=[0, 1, 1, 0], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c1", "bn1_g", "bn1_b", "bn1_m", "bn1_v"], ["bn1"], epsilon=1e-3),
        helper.make_node("PRelu", ["bn1", "slope"], ["p1"]),
        helper.make_node("Conv", ["p1", "c2_w"], ["c2"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("BatchNormalization", ["c2", "bn2_g", "bn2_b", "bn2_m", "bn2_v"], ["bn2"]),
        helper.make_node("Add", ["bn2", "c2"], ["sum"]),  # c2 read twice: bn2 stays a layer of its own
        helper.make_node("Mul", ["two", "sum"], ["doubled"]),  # the constant on the left
        helper.make_node("Add", ["doubled", "offset"], ["shifted"]),
        helper.make_node("Clip", ["shifted", "low", "high"], ["clipped"]),
        helper.make_node("Relu", ["clipped"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "gemm_w", "gemm_c"], ["gemm"], transB=1, alpha=0.5, beta=2.0),
        helper.make_node("MatMul", ["gemm", "project"], ["projected"]),
        helper.make_node("Reshape", ["projected", "shape"], ["output"]),
    ]
    graph = helper.make_graph(nodes, "every_operator", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 12])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_translation_of_every_supported_operator_matches_onnxruntime(tmp_path):
    from training.models.face_embedder import OnnxFaceEmbedder, _BatchNorm, _Conv

    path = tmp_path / "every_operator.onnx"
    small_graph_with_every_operator(path)
    embedder = OnnxFaceEmbedder(path)
    kinds = [type(layer).__name__ for layer in embedder.layers]
    assert kinds.count("_Conv") == 2 and kinds.count("_BatchNorm") == 1, kinds  # bn1 folded into c1, bn2 not
    network_input = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        ours = embedder.embed_aligned(network_input)
    expected = onnxruntime_embeddings(path, network_input.numpy())
    difference = np.abs(ours.numpy() - expected).max()
    print(f"max |ours - onnxruntime| on the every-operator graph: {difference:.2e}")
    assert ours.shape == (3, 12) and difference < 1e-4
    assert isinstance(embedder.layers[0], _Conv) and embedder.layers[0].pre_pad == (1, 0, 0, 1)
    assert any(isinstance(layer, _BatchNorm) for layer in embedder.layers)


def test_unsupported_operator_is_named_at_load(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from training.models.face_embedder import OnnxFaceEmbedder

    graph = helper.make_graph([helper.make_node("Sigmoid", ["input"], ["output"])], "sigmoid",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 4, 4])])
    path = tmp_path / "sigmoid.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(path))
    with pytest.raises(ValueError, match="Sigmoid"):
        OnnxFaceEmbedder(path)


def test_minutes_budget_stops_training_with_a_checkpoint_and_grid(prepared, tmp_path, capsys):
    from training.checkpoint import latest_checkpoint, load_checkpoint
    from training.train import main

    run = tmp_path / "run"
    # a spent budget: the run stops after its first step, saving what a finished run saves
    assert main(["--preset", "tiny", "--data", str(prepared), "--run-dir", str(run), "--steps", "50", "--minutes", "0"]) == 0
    assert "time budget" in capsys.readouterr().err
    assert load_checkpoint(latest_checkpoint(run))["step"] == 1
    assert [p.name for p in (run / "samples").glob("*.png")] == ["step_00000001.png"]
    # and it resumes from there
    assert main(["--preset", "tiny", "--data", str(prepared), "--run-dir", str(run), "--steps", "2", "--resume"]) == 0
    assert load_checkpoint(latest_checkpoint(run))["step"] == 2
    capsys.readouterr()
    assert main(["--preset", "tiny", "--data", str(prepared), "--run-dir", str(tmp_path / "other"), "--minutes", "-1"]) == 2
    assert "budget must be >= 0" in capsys.readouterr().err


def test_log_window_groups_steps_that_log_the_same_names():
    from training.trainer import LogWindow

    window = LogWindow()
    for step in range(4):
        logs = {"total": torch.tensor(float(step)), "id_acc": torch.tensor(1.0)}
        if step % 2:
            logs["teacher_cos"] = torch.tensor(0.5 * step)
        window.add(logs)
    assert len(window.sums) == 2  # one running vector per set of names, not one tensor per name
    assert window.means() == {"total": 1.5, "id_acc": 1.0, "teacher_cos": 1.0}
