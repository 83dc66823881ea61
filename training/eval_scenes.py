# SPDX-License-Identifier: Apache-2.0
"""The evaluation's scenes (:mod:`training.evaluate`): the sample clips' faces as they are and darkened, measured for
realism per model, and the pictures to look at (scenes.jpg, scenes_face_zoom.jpg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from facecamo import spec
from facecamo.align import save_rgb, warp_face
from facecamo.donor import donor_target
from training.camouflage import TorchCamouflager
from training.realism import Realism, darken, realism, summarise


def write_scene_pictures(out: Path, camouflager: TorchCamouflager, others: dict[str, TorchCamouflager], clip: Path,
                         code: np.ndarray) -> None:
    """scenes.jpg (the clip's first frame, lit and darkened, every model) and scenes_face_zoom.jpg (its largest face)."""
    from facecamo_client.video import VideoReader

    with VideoReader(clip) as reader:
        first = next(iter(reader))
    scene, face_zoom = scene_picture(camouflager, others, first, code)
    save_rgb(out / "scenes.jpg", scene)
    if face_zoom is not None:
        save_rgb(out / "scenes_face_zoom.jpg", face_zoom)


def codes_for_scenes(camouflager: "TorchCamouflager", crops: dict, points: dict, names: list[str], per_blend: int,
                     count: int = 8) -> np.ndarray:
    """``count`` blended donors from the reference pool, handed round the faces of the clips."""
    chosen = names[: count * per_blend]
    return camouflager.appearance_codes(np.stack([crops[n][0] for n in chosen]),
                                        np.stack([points[n][0] for n in chosen]) if camouflager.donor_design else None, per_blend)


def scene_picture(camouflager: "TorchCamouflager", others: dict[str, "TorchCamouflager"], frame: np.ndarray,
                  code: np.ndarray, height: int = 240, zoom: float = 3.0) -> tuple[np.ndarray, np.ndarray | None]:
    """The pictures to look at: uint8 RGB, one clip frame as it is and darkened (:func:`darken`), each row the
    original, then the model, then each compared model, every face given the donor ``code`` (uint8 (1, 112, 112, 3));
    and the same cells cropped to the frame's largest face (its box grown by half) and enlarged ``zoom`` times, where
    a residual's pattern shows (None for a frame without a face)."""
    import cv2

    models = [camouflager, *others.values()]
    rows, zoomed, window = [], [], None
    for scene in (frame, darken(frame)):
        scene = np.ascontiguousarray(scene)
        prepared = camouflager.prepare(scene)
        cells = [scene] + [model.camouflage(scene, code, prepared)[0] for model in models]
        width = round(scene.shape[1] * height / scene.shape[0])
        rows.append(np.concatenate([cv2.resize(c, (width, height), interpolation=cv2.INTER_AREA) for c in cells], axis=1))
        if window is None and prepared.faces:  # the lit frame's largest face: the same window in the dim one
            left, top, right, bottom = max((f.box for f in prepared.faces), key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
            grow_x, grow_y = (right - left) / 4, (bottom - top) / 4
            window = (max(int(left - grow_x), 0), max(int(top - grow_y), 0),
                      min(int(right + grow_x), scene.shape[1]), min(int(bottom + grow_y), scene.shape[0]))
        if window is not None:
            x0, y0, x1, y1 = window
            size = (round((x1 - x0) * zoom), round((y1 - y0) * zoom))
            zoomed.append(np.concatenate([cv2.resize(c[y0:y1, x0:x1], size, interpolation=cv2.INTER_CUBIC) for c in cells], axis=1))
    return np.concatenate(rows, axis=0), (np.concatenate(zoomed, axis=0) if len(zoomed) == 2 else None)


def scene_realism(camouflager: "TorchCamouflager", others: dict[str, "TorchCamouflager"], clips: list[Path],
                  codes: np.ndarray, every: int) -> dict[str, dict[str, dict]]:
    """Realism (:mod:`training.realism`) of every aligned face on every ``every``-th frame of each clip, as it is and
    darkened (:func:`darken`): for the model, the compared models and the donor target alone (donor design).

    Returns: method -> {"clips": summary, "clips_dark": summary}."""
    from facecamo_client.video import VideoReader

    methods = {"camouflage": camouflager, **{f"model_{n}": m for n, m in others.items()}}
    found: dict[str, dict[str, list[Realism]]] = {}
    frames = []
    for clip in clips:
        with VideoReader(clip) as reader:
            frames += [frame for number, frame in enumerate(reader) if number % every == 0]
    for scene, transform in (("clips", lambda f: f), ("clips_dark", darken)):
        for frame_number, frame in enumerate(tqdm(frames, desc=f"realism on {scene}", unit="frame", dynamic_ncols=True)):
            frame = np.ascontiguousarray(transform(frame))
            prepared = camouflager.prepare(frame)
            faces = [(n, f.alignment) for n, f in enumerate(prepared.faces) if f.alignment is not None and f.concealment is None]
            if not faces:
                continue
            code = codes[frame_number % len(codes) :][:1]  # one donor per frame: one pass per model
            for method, model in methods.items():
                result, _, status = model.camouflage(frame, code, prepared)
                found.setdefault(method, {}).setdefault(scene, []).extend(
                    realism(face.crop, warp_face(result, face.affine), face.landmarks)
                    for number, face in faces if status[number] == spec.STATUS_CAMOUFLAGED)
            if camouflager.donor_design:
                found.setdefault("donor_warp", {}).setdefault(scene, []).extend(
                    realism(face.crop, donor_target(face.crop, face.landmarks, code[0])[0], face.landmarks) for _, face in faces)
    return {method: {scene: summarise(values) for scene, values in by_scene.items()} for method, by_scene in found.items()}
