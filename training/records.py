# SPDX-License-Identifier: Apache-2.0
"""A run's records in a form that can be committed next to release weights: the resolved config, the losses every
N steps as CSV (from the run's TensorBoard scalars), and some Figure-3 grids as JPEG.

    python -m training.records --run RUN --out models/release/training [--every 50] [--grids 500 1000 1500]

The run folder itself (checkpoints, event files) is far too large for the repository; these few files are what a
reader of the model card needs to see how training went.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

import cv2


def loss_table(run: Path, every: int) -> tuple[list[str], list[list[float]]]:
    """(column names, rows) of the ``loss/*`` scalars averaged over windows of ``every`` steps, one row per window end."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    tags = sorted(tag for tag in events.Tags()["scalars"] if tag.startswith("loss/") or tag.startswith("speed/"))
    if not tags:
        raise FileNotFoundError(f"{run / 'tensorboard'} holds no loss scalars; is {run} a training run folder?")
    windows: dict[int, dict[str, list[float]]] = {}
    for tag in tags:
        for event in events.Scalars(tag):
            window_end = -(-event.step // every) * every  # steps 1..50 -> 50
            windows.setdefault(window_end, {}).setdefault(tag, []).append(event.value)
    columns = [tag.split("/", 1)[1] for tag in tags]
    rows = [[step, *(round(sum(v) / len(v), 4) if (v := values.get(tag)) else float("nan") for tag in tags)]
            for step, values in sorted(windows.items())]
    return ["step", *columns], rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a run folder written by training.train")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--every", type=int, default=50, help="average the losses over this many steps per row")
    parser.add_argument("--grids", type=int, nargs="*", default=[], help="steps whose Figure-3 grid to copy as JPEG")
    parser.add_argument("--prefix", default="", help="prefix for the written file names, e.g. finetune_")
    args = parser.parse_args(argv)
    if not (args.run / "config.yaml").is_file():
        print(f"error: {args.run} has no config.yaml; give the folder passed to `make train RUN=`", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.run / "config.yaml", args.out / f"{args.prefix}config.yaml")
    header, rows = loss_table(args.run, args.every)
    with open(args.out / f"{args.prefix}losses_every_{args.every}_steps.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    for step in args.grids:
        grid = args.run / "samples" / f"step_{step:08d}.png"
        if not grid.is_file():
            print(f"error: no grid for step {step} in {args.run / 'samples'}", file=sys.stderr)
            return 2
        cv2.imwrite(str(args.out / f"{args.prefix}figure3_train_step_{step:05d}.jpg"), cv2.imread(str(grid)),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"wrote {len(rows)} loss rows and {len(args.grids)} grids to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
