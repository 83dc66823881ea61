# SPDX-License-Identifier: Apache-2.0
"""Compare evaluations side by side: one row per model, then the baselines (each evaluation's own when they differ:
the donor design pastes its baselines through the region it replaces, the paper design through its ellipse), the
figures the targets are judged on, as a Markdown table for a model card.

    python -m training.compare NAME=RESULTS.json [NAME=RESULTS.json ...] [--out table.md]

Each ``results.json`` is what ``make eval`` writes. Models are comparable only when they were evaluated on the same
images and pairs: the command refuses evaluations whose setup (data, images, pairs, seed) differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SAME_SETUP = ("data", "test_images", "genuine_pairs", "impostor_pairs", "seed", "references_per_image")
BASELINES = ("original", "donor_warp", "blur_4", "blur_8", "pixelate_8")


def _row(name: str, entry: dict, real_tar: float) -> str:
    dlib = entry["judges"]["dlib"]
    ratio = dlib["tar"] / real_tar if real_tar else float("nan")
    return (f"| {name} | {dlib['accuracy']:.4f} | {dlib['tar']:.4f} | {ratio:.3f} | {dlib['far']:.4f} | "
            f"{dlib.get('rank1', float('nan')):.4f} | {entry['ssim_to_original']:.3f} | {entry['ssim28_to_original']:.3f} |")


def comparison_table(evaluations: dict[str, dict]) -> str:
    """Markdown: each named evaluation's ``camouflage`` row, then the baselines (dlib's judge): once when every
    evaluation that has one measured the same, else each evaluation's own, named after it."""
    first = next(iter(evaluations.values()))
    real_tar = first["methods"]["original"]["judges"]["dlib"]["tar"]
    lines = ["| method | verification accuracy | genuine TAR | TAR / real TAR (>= 0.90) | FAR | rank-1 | SSIM (<= 0.60) | SSIM-28 (<= 0.67) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, results in evaluations.items():
        lines.append(_row(f"**{name}**", results["methods"]["camouflage"], real_tar))
    for baseline in BASELINES:
        measured = {name: r["methods"][baseline] for name, r in evaluations.items() if baseline in r["methods"]}
        alike: dict[str, list[str]] = {}  # the entry's JSON -> the evaluations that measured exactly that
        for name, entry in measured.items():
            alike.setdefault(json.dumps(entry, sort_keys=True), []).append(name)
        for key, names in alike.items():
            shared = len(alike) == 1 and len(names) == len(evaluations)
            lines.append(_row(baseline.replace("_", " ") + ("" if shared else f" ({', '.join(names)})"), json.loads(key), real_tar))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evaluations", nargs="+", metavar="NAME=RESULTS.json")
    parser.add_argument("--out", type=Path, default=None, help="write the table here too")
    args = parser.parse_args(argv)
    evaluations = {}
    for item in args.evaluations:
        name, _, path = item.partition("=")
        if not path or not Path(path).is_file():
            print(f"error: expected NAME=RESULTS.json with an existing file, got {item!r}", file=sys.stderr)
            return 2
        evaluations[name] = json.loads(Path(path).read_text())
    setups = {name: {k: r["setup"].get(k) for k in SAME_SETUP} for name, r in evaluations.items()}
    reference_name, reference = next(iter(setups.items()))
    for name, setup in setups.items():
        if setup != reference:
            print(f"error: {name} was evaluated on {setup}, {reference_name} on {reference}: not comparable", file=sys.stderr)
            return 2
    table = comparison_table(evaluations)
    print(table, end="")
    if args.out is not None:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
