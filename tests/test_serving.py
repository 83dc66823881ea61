# SPDX-License-Identifier: Apache-2.0
"""The exported pipeline served by a real tritonserver, over real gRPC."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("pytriton", reason="nvidia-pytriton (requirements/serve.txt) provides the tritonserver binary")
grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is needed to talk to the server")
from google.protobuf import text_format  # noqa: E402
from tritonclient.grpc import model_config_pb2  # noqa: E402

from export.__main__ import run_export  # noqa: E402
from export.repository import FLAVOURS  # noqa: E402
from facecamo import spec  # noqa: E402
from facecamo.align import load_rgb  # noqa: E402
from facecamo.paste import paste_face  # noqa: E402
from facecamo.repository import open_pipeline  # noqa: E402
from tests import faults  # noqa: E402
from tests.conftest import PORTRAITS, serving_settings  # noqa: E402


def infer(client, frame, index=None, boxes=None, frame_dtype="UINT8", tracks=None, with_appearance=False):
    """Raw tritonclient call of the ensemble (the SDK has its own tests)."""
    inputs = [grpcclient.InferInput(spec.FRAME, list(frame.shape), frame_dtype)]
    inputs[0].set_data_from_numpy(frame)
    optional = {spec.APPEARANCE_INDEX: (index, "INT32"), spec.FACE_BOXES: (boxes, "FP32")}
    if tracks is not None:
        optional.update({spec.TRACK_BOXES: (tracks[0], "FP32"), spec.TRACK_APPEARANCE: (tracks[1], "INT32")})
    for name, (value, dtype) in optional.items():
        if value is not None:
            inputs.append(grpcclient.InferInput(name, list(value.shape), dtype))
            inputs[-1].set_data_from_numpy(value)
    result = client.infer(spec.ENSEMBLE, inputs, client_timeout=240)
    outputs = (result.as_numpy(spec.CAMOUFLAGED_FRAME), result.as_numpy(spec.FACE_BOXES_OUT), result.as_numpy(spec.FACE_STATUS))
    return (*outputs, result.as_numpy(spec.FACE_APPEARANCE)) if with_appearance else outputs


@pytest.fixture(scope="module")
def local_pipeline(repository):
    """The same repository's pipeline in-process: where it pastes is where the server must have pasted."""
    return open_pipeline(repository)


def face_region(image: np.ndarray, pipeline) -> np.ndarray:
    """Pixels any paste-back may touch: where pasting black or white changes the image."""
    region = np.zeros(image.shape[:2], bool)
    for face in pipeline.prepare(image).aligned:
        for value in (0, 255):
            region |= (paste_face(image, np.full_like(face.crop, value), face.affine) != image).any(axis=2)
    return region




def test_portrait_face_changed_and_everything_else_identical(client, portrait_rgb, local_pipeline):
    out, boxes, status = infer(client, portrait_rgb)
    assert out.shape == portrait_rgb.shape and out.dtype == np.uint8
    assert status.tolist() == [spec.STATUS_CAMOUFLAGED] and boxes.shape == (1, 4)
    region = face_region(portrait_rgb, local_pipeline)
    np.testing.assert_array_equal(out[~region], portrait_rgb[~region])
    assert np.abs(out[region].astype(int) - portrait_rgb[region]).mean() > 5


def test_frame_without_a_face_comes_back_identical(client):
    blank = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    out, boxes, status = infer(client, blank)
    np.testing.assert_array_equal(out, blank)
    assert boxes.shape == (0, 4) and status.shape == (0,)


def test_several_faces_each_changed(client, local_pipeline):
    images = [load_rgb(str(p)) for p in sorted(PORTRAITS.glob("congress_*.jpg"))[:3]]
    frame = np.concatenate(images, axis=1)
    out, boxes, status, appearance = infer(client, frame, with_appearance=True)
    assert status.tolist() == [spec.STATUS_CAMOUFLAGED] * 3
    assert len(set(appearance.tolist())) == 3  # different people get different looks by default
    # each the free donor most like them (the bank's likeness vectors), the same on the server as embedded
    assert local_pipeline.likeness is not None and appearance.tolist() == local_pipeline.run(frame).appearance.tolist()
    for left, top, right, bottom in boxes.astype(int):
        assert np.abs(out[top:bottom, left:right].astype(int) - frame[top:bottom, left:right]).mean() > 3
    # the caller's tracks: each person keeps the entry they had, whatever order the detector finds them in
    tracks = (boxes[::-1].copy(), np.array([7, 5, 9], np.int32))
    _, again, _, kept = infer(client, frame, tracks=tracks, with_appearance=True)
    expected = {tuple(b): a for b, a in zip(tracks[0].tolist(), tracks[1].tolist())}
    assert [expected[tuple(b)] for b in again.tolist()] == kept.tolist()


def test_more_faces_than_one_network_batch_none_left_unchanged(client):
    """70 portraits in one frame: more than the networks take in one pass (64); every face is camouflaged."""
    images = [load_rgb(str(p)) for p in sorted(PORTRAITS.glob("congress_*.jpg"))]
    tiles = [images[i % len(images)] for i in range(70)]
    frame = np.concatenate([np.concatenate(tiles[row * 14 : row * 14 + 14], axis=1) for row in range(5)], axis=0)
    out, boxes, status = infer(client, np.ascontiguousarray(frame))
    assert len(status) == 70 and (status == spec.STATUS_CAMOUFLAGED).all()
    for left, top, right, bottom in boxes:
        w, h = right - left, bottom - top
        inner = (slice(int(top + h / 4), int(bottom - h / 4)), slice(int(left + w / 4), int(right - w / 4)))
        assert (out[inner] == frame[inner]).all(axis=2).mean() < 0.05


def test_given_boxes_are_honoured(client, portrait_rgb):
    box = np.array([[60.0, 90.0, 190.0, 220.0]], np.float32)
    out, boxes, status = infer(client, portrait_rgb, boxes=box)
    np.testing.assert_allclose(boxes, box)
    assert status.tolist() == [spec.STATUS_CAMOUFLAGED]
    assert np.abs(out[100:200, 80:170].astype(int) - portrait_rgb[100:200, 80:170]).mean() > 5
    empty = np.zeros((80, 80, 3), np.uint8)  # a box on a faceless patch: aligned anyway, never left as it was
    frame = np.concatenate([portrait_rgb[:80, :80], empty], axis=1).copy()
    _, _, status = infer(client, frame, boxes=np.array([[90.0, 5.0, 150.0, 70.0]], np.float32))
    assert len(status) == 1


@pytest.mark.parametrize("case, expected", [
    ("wrong dtype", "FP32"),
    ("wrong rank", "FRAME"),
    ("0x0 frame", "empty"),
    ("4000x3000 frame", "4000x3000"),
    ("box outside the frame", "outside"),
    ("NaN box", "NaN"),
    ("appearance index out of range", "out of range"),
])
def test_bad_input_is_rejected_clearly_and_the_server_stays_up(client, portrait_rgb, case, expected):
    height, width = portrait_rgb.shape[:2]
    requests = {
        "wrong dtype": lambda: infer(client, portrait_rgb.astype(np.float32), frame_dtype="FP32"),
        "wrong rank": lambda: infer(client, portrait_rgb[:, :, 0]),
        "0x0 frame": lambda: infer(client, np.zeros((0, 0, 3), np.uint8)),
        "4000x3000 frame": lambda: infer(client, np.zeros((3000, 4000, 3), np.uint8)),
        "box outside the frame": lambda: infer(client, portrait_rgb, boxes=np.array([[width - 10, 0, width + 50, 60]], np.float32)),
        "NaN box": lambda: infer(client, portrait_rgb, boxes=np.array([[np.nan, 0, 50, 60]], np.float32)),
        "appearance index out of range": lambda: infer(client, portrait_rgb, index=np.array([999], np.int32)),
    }
    with pytest.raises(grpcclient.InferenceServerException) as caught:
        requests[case]()
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT", caught.value
    assert expected in caught.value.message()
    out, _, status = infer(client, portrait_rgb)  # the next good request succeeds
    assert status.tolist() == [spec.STATUS_CAMOUFLAGED]


def test_every_flavour_config_parses_as_triton_model_config(tiny_checkpoint, tmp_path):
    onnx_dir = tmp_path / "onnx"
    for flavour in FLAVOURS:
        out = tmp_path / flavour
        run_export(tiny_checkpoint, out, flavour, PORTRAITS, serving_settings(), onnx_dir)
        configs = sorted(out.glob("*/config.pbtxt"))
        assert [c.parent.name for c in configs] == sorted([spec.ENSEMBLE, spec.FACE_DETECTOR, spec.IDENTITY_ENCODER, spec.GENERATOR])
        for path in configs:
            config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
            assert config.name == path.parent.name
        generator = text_format.Parse((out / spec.GENERATOR / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        expected = {"python": ("python", ""), "onnxruntime": ("", "onnxruntime_onnx"), "tensorrt": ("", "tensorrt_plan")}[flavour]
        assert (generator.backend, generator.platform) == expected
        assert generator.max_batch_size >= 32 and generator.HasField("dynamic_batching")
        assert [i.name for i in generator.input] == [spec.IDENTITY_CODE, spec.APPEARANCE]


def test_instance_counts_and_landmarks_are_export_settings_written_into_the_configs(tiny_checkpoint, tmp_path, capsys,
                                                                                    portrait_rgb):
    """`python -m export --instances facecamo=3 generator=2 --landmarks dlib5`: each model's config carries its count
    (the others keep theirs); a count that cannot work stops the export before any work, saying what is allowed. The
    served config names the 5-point landmark model (the commercial path), the bank is aligned with it, and the embedded
    engine built from the repository aligns with it and camouflages the portrait."""
    from dataclasses import replace

    from export.__main__ import main as export_main
    from export.repository import DEFAULT_INSTANCES, MAX_INSTANCES
    from facecamo.settings import PipelineSettings
    from facecamo.repository import pipeline_settings

    out = tmp_path / "repository"
    manifest = run_export(tiny_checkpoint, out, "onnxruntime", PORTRAITS, replace(serving_settings(), landmarks="dlib5"),
                          tmp_path / "onnx", {spec.ENSEMBLE: 3, spec.GENERATOR: 2})
    assert manifest["settings"]["landmarks"] == "dlib5" and pipeline_settings(out).landmarks == "dlib5"
    # the donor design's settings beyond the networks are recorded where the model is
    assert manifest["design"] == "donor" and manifest["donor_settings"]["bank_size"] == len(np.load(out / spec.ENSEMBLE / "1" / "bank.npy"))
    assert {"donors_per_blend", "shape_blend", "region_feather"} <= set(manifest["donor_settings"])
    pipeline = open_pipeline(out)
    assert pipeline.landmarks.name == "dlib5"
    result = pipeline.run(portrait_rgb)
    assert list(result.status) == [spec.STATUS_CAMOUFLAGED]
    assert np.abs(result.frame.astype(int) - portrait_rgb).mean() > 0.5
    with pytest.raises(ValueError, match="landmarks must be one of dlib68, dlib5"):
        PipelineSettings.from_strings({"landmarks": "dlib194"})
    expected = {**DEFAULT_INSTANCES, spec.ENSEMBLE: 3, spec.GENERATOR: 2}
    assert manifest["instances"] == expected
    for name, count in expected.items():
        config = text_format.Parse((out / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        assert [group.count for group in config.instance_group] == [count], name
    for bad, message in ((["facecamo=0"], f"from 1 to {MAX_INSTANCES}"), (["generator=two"], "whole number"),
                         (["detector=2"], "no served model 'detector'"), (["facecamo"], "MODEL=COUNT")):
        started = time.monotonic()
        assert export_main(["--out", str(tmp_path / "never"), "--instances", *bad]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "never").exists()
        assert time.monotonic() - started < 5, "a bad count was found only after the export's work"


def test_a_generator_failing_mid_stream_conceals_faces_and_the_server_keeps_serving(repository, tmp_path, portrait_rgb):
    """A generator that works for one face and fails inside ONNX Runtime for two, served for real: one-face frames
    are camouflaged, two-face frames come back with both faces concealed, and the server answers throughout."""
    from serving.server import TritonServer

    copy = faults.repository_with_generator(repository, tmp_path / "repository", faults.fails_for_several_faces_generator)
    two = np.ascontiguousarray(np.concatenate([portrait_rgb, portrait_rgb[:, ::-1]], axis=1))
    with TritonServer(copy) as triton, grpcclient.InferenceServerClient(triton.grpc_url) as connection:
        for frame, faces in ((portrait_rgb, 1), (two, 2), (portrait_rgb, 1), (two, 2)):
            out, boxes, status = infer(connection, frame)
            assert len(status) == faces
            expected = spec.STATUS_CAMOUFLAGED if faces == 1 else spec.STATUS_FALLBACK
            assert (status == expected).all(), status
            for left, top, right, bottom in boxes:
                w, h = right - left, bottom - top
                inner = (slice(int(top + h / 4), int(bottom - h / 4)), slice(int(left + w / 4), int(right - w / 4)))
                assert (out[inner] == frame[inner]).all(axis=2).mean() < 0.01


def test_a_generator_that_cannot_work_is_refused_at_load(repository, tmp_path):
    from serving.server import TritonServer

    copy = faults.repository_with_generator(repository, tmp_path / "repository", faults.wrong_shape_generator)
    with pytest.raises((RuntimeError, TimeoutError)) as caught:
        TritonServer(copy).start(timeout=120)
    assert "generator" in str(caught.value) and "112" in str(caught.value)


def scrape(server) -> dict[str, float]:
    """The product's counters from Triton's Prometheus endpoint (bound to loopback)."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("facecamo_")}


def test_product_metrics_move_with_requests(server, client, portrait_rgb):
    before = scrape(server)
    infer(client, portrait_rgb)
    with pytest.raises(grpcclient.InferenceServerException):
        infer(client, portrait_rgb, index=np.array([999], np.int32))
    after = scrape(server)
    assert after['facecamo_faces_total{status="camouflaged"}'] >= before['facecamo_faces_total{status="camouflaged"}'] + 1
    assert after['facecamo_frames_total{result="rejected"}'] == before['facecamo_frames_total{result="rejected"}'] + 1
    assert 'facecamo_faces_over_limit_total' in after and 'facecamo_faces_total{status="fallback"}' in after


def test_the_sdks_reruns_are_counted_apart_from_frames(server, sdk, portrait_rgb):
    """stream() sends a frame again when its result gave a tracked person another look: the server counts that as
    result="rerun", so facecamo_frames_total{result="ok"} counts each frame of the stream once, and its faces once."""
    from facecamo_client import FaceTracker

    class CorrectsEveryFrame(FaceTracker):
        """Asks for a re-run of every frame with faces (hints matching them exactly): what a stale hint causes."""

        def corrections(self, faces, index, limit=None):
            observed = [face for face in faces if face.source != "track"]
            if not observed:
                return None
            return np.array([f.box for f in observed], np.float32), np.array([f.appearance for f in observed], np.int32)

    reruns = []
    send = sdk._submit_rerun

    def counted(*args):
        reruns.append(1)
        return send(*args)

    before = scrape(server)
    sdk._submit_rerun = counted
    try:
        results = list(sdk.stream([portrait_rgb] * 3, max_in_flight=2, tracker=CorrectsEveryFrame()))
    finally:
        del sdk._submit_rerun
    after = scrape(server)
    delta = {key: after[key] - before.get(key, 0.0) for key in after}
    faces = sum(len(result.faces) for result in results)
    assert len(reruns) == 3 and not any(result.failed for result in results)
    assert delta['facecamo_frames_total{result="ok"}'] == 3 and delta['facecamo_frames_total{result="rerun"}'] == 3
    assert delta['facecamo_frames_total{result="failed"}'] == 0
    assert sum(value for key, value in delta.items() if key.startswith("facecamo_faces_total")) == faces
