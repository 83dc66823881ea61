# SPDX-License-Identifier: Apache-2.0
"""Fit the map from dlib's 5-point landmarks to the 68-point layout the alignment and the donor warp use.

    python -m training.landmarks5 --data <prepared folder> [--faces 3000] [--out facecamo/landmarks5.py]

Why: dlib's 68-point model is trained on iBUG 300-W, whose terms exclude commercial use; its 5-point model (two
corners of each eye and the base of the nose) is public domain. The ``dlib5`` landmark path
(:class:`facecamo.align.FivePointLandmarkPredictor`) predicts the 5 points and turns them into 68 with the linear
map fitted here: the 5 points are laid onto their mean by a similarity, a ridge regression predicts the 68 points
in that frame, and the similarity is undone. The map is 10 x 136 numbers (plus the means), written as a Python
module so that it ships, with its licence, inside ``facecamo/``.

The fit runs both predictors on the training split's source images (the HOG detector's best face, as in
``make prepare``), holds out 10% of the faces and reports, on them, the 68-point error and how far the aligned crop
moves against the 68-point model's crop. Only the 68-point model's *predictions* on the training images are used:
the numbers shipped are a statistic of them, as the mean face (:data:`facecamo.donor.MEAN_SHAPE`) is, and no iBUG
data or 68-point model file is needed at run time.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "facecamo" / "landmarks5.py"
RIDGE = 10.0
"""Ridge penalty of the regression, in the normalised frame's crop pixels squared (1 to 100 measured alike)."""


def collect(data: Path, faces: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float64 (N, 5, 2) 5-point and (N, 68, 2) 68-point landmarks, image pixels, of up to ``faces`` training-split
    images of the prepared folder ``data`` (one face each: the HOG detector's best)."""
    from facecamo.align import FaceDetector, FivePointLandmarkPredictor, LandmarkPredictor, load_rgb

    manifest = data / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: pass --data <a folder made by make prepare>")
    with open(manifest) as f:
        sources = sorted({row["source"] for row in csv.DictReader(f) if row["split"] == "train"})
    if not sources:
        raise ValueError(f"{manifest} has no training-split rows")
    rng = np.random.default_rng(seed)
    sources = [sources[i] for i in rng.permutation(len(sources))[:faces]]
    detector, predict68, predict5 = FaceDetector("hog", upsample=1), LandmarkPredictor(), FivePointLandmarkPredictor(raw=True)
    fives, sixty_eights = [], []
    for source in tqdm(sources, desc="landmarks", unit="img", dynamic_ncols=True):
        try:
            rgb = load_rgb(source)
        except ValueError:
            continue
        found = detector(rgb)
        if found:
            fives.append(predict5(rgb, found[0].box))
            sixty_eights.append(predict68(rgb, found[0].box))
    if len(fives) < 50:
        raise ValueError(f"only {len(fives)} faces found in {len(sources)} images: too few to fit 10 x 136 numbers")
    return np.stack(fives), np.stack(sixty_eights)


def fit(fives: np.ndarray, sixty_eights: np.ndarray, ridge: float = RIDGE) -> dict[str, np.ndarray]:
    """The map's arrays: ``mean5`` float (5, 2) the 5 points' mean in aligned-crop pixels, ``weights`` (10, 136) and
    ``bias`` (136,) from the normalised 5 points' offsets to the normalised 68 points."""
    from facecamo.align import alignment_affine
    from facecamo.geometry import similarity_affine, transform_points

    crop5 = np.stack([transform_points(alignment_affine(p68), p5) for p5, p68 in zip(fives, sixty_eights)])
    mean5 = crop5.mean(axis=0)
    inputs, outputs = [], []
    for p5, p68 in zip(fives, sixty_eights):
        to_mean = similarity_affine(p5, mean5)
        inputs.append((transform_points(to_mean, p5) - mean5).ravel())
        outputs.append(transform_points(to_mean, p68).ravel())
    x, y = np.asarray(inputs), np.asarray(outputs)
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    weights = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ yc)
    return {"mean5": mean5, "weights": weights, "bias": y_mean - x_mean @ weights}


def held_out_errors(fives: np.ndarray, sixty_eights: np.ndarray, arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """On held-out faces: the estimated 68 points' mean distance to the 68-point model's, and the mean shift of the
    aligned crop's corners and centre, both in pixels of the 68-point model's 112x112 crop."""
    import cv2

    from facecamo.align import alignment_affine, five_to_sixty_eight
    from facecamo.geometry import transform_points

    corners = np.array([[0, 0], [111, 0], [0, 111], [111, 111], [55.5, 55.5]], np.float64)
    point_errors, crop_shifts = [], []
    for p5, p68 in zip(fives, sixty_eights):
        truth = alignment_affine(p68)
        estimate = five_to_sixty_eight(p5, arrays)
        point_errors.append(np.linalg.norm(transform_points(truth, estimate) - transform_points(truth, p68), axis=1).mean())
        moved = transform_points(truth, transform_points(cv2.invertAffineTransform(alignment_affine(estimate)), corners))
        crop_shifts.append(np.linalg.norm(moved - corners, axis=1).mean())
    return {"faces": len(fives), "point_error_mean": float(np.mean(point_errors)),
            "point_error_p90": float(np.percentile(point_errors, 90)),
            "crop_shift_mean": float(np.mean(crop_shifts)), "crop_shift_p90": float(np.percentile(crop_shifts, 90))}


def write_module(path: Path, arrays: dict[str, np.ndarray], errors: dict[str, float], train_faces: int) -> None:
    def literal(values: np.ndarray, per_line: int = 12) -> str:
        rows = np.asarray(values, np.float64).reshape(len(values), -1) if values.ndim > 1 else values.reshape(1, -1)

        def row_text(row: np.ndarray) -> str:
            chunks = [", ".join(f"{v:.5g}" for v in row[i : i + per_line]) for i in range(0, len(row), per_line)]
            return "[" + ",\n     ".join(chunks) + "]"

        body = ",\n    ".join(row_text(row) for row in rows)
        return f"[\n    {body},\n]"

    text = f'''# SPDX-License-Identifier: Apache-2.0
"""The map from dlib's 5 landmarks to the 68-point layout (written by ``python -m training.landmarks5``; do not edit).

Fitted on {train_faces} faces of LFW's training identities. On {errors["faces"]} held-out faces, in pixels of the 112x112 crop,
the estimated 68 points lie {errors["point_error_mean"]:.2f} px (p90 {errors["point_error_p90"]:.2f}) from the 68-point model's
and the aligned crop moves {errors["crop_shift_mean"]:.2f} px (p90 {errors["crop_shift_p90"]:.2f}). These numbers are a statistic
of the 68-point model's predictions on those images (as :data:`facecamo.donor.MEAN_SHAPE` is); no iBUG data or
68-point model is needed to use them. See :class:`facecamo.align.FivePointLandmarkPredictor`.
"""

MEAN5 = {literal(arrays["mean5"])}
"""float (5, 2): dlib's 5 points (eye corners, nose base) on average, in aligned-crop pixels."""

BIAS = {literal(arrays["bias"].reshape(68, 2))}
"""float (68, 2): the 68 points when the 5 lie on :data:`MEAN5`."""

WEIGHTS = {literal(arrays["weights"])}
"""float (10, 136): how each normalised 5-point coordinate's offset from :data:`MEAN5` moves the 68 points."""
'''
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a prepared folder (make prepare); its training split is used")
    parser.add_argument("--faces", type=int, default=3000, help="images to fit on (default 3000; 10%% held out)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"module to write (default {DEFAULT_OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    started = time.time()
    try:
        fives, sixty_eights = collect(args.data, args.faces)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    held = max(10, len(fives) // 10)
    arrays = fit(fives[held:], sixty_eights[held:])
    errors = held_out_errors(fives[:held], sixty_eights[:held], arrays)
    final = fit(fives, sixty_eights)  # every face for the shipped map; the held-out figures describe the method
    write_module(args.out, final, errors, len(fives))
    print(f"wrote {args.out}: fitted on {len(fives)} faces; held-out ({errors['faces']}): 68-point error "
          f"{errors['point_error_mean']:.2f} px (p90 {errors['point_error_p90']:.2f}), crop shift "
          f"{errors['crop_shift_mean']:.2f} px (p90 {errors['crop_shift_p90']:.2f}); {time.time() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
