# SPDX-License-Identifier: Apache-2.0
"""Compare evaluations side by side: one row per model, then the baselines (each evaluation's own when they differ:
the donor design pastes its baselines through the region it replaces, the paper design through its ellipse), the
figures the targets are judged on, as Markdown tables for a model card: dlib's judge at its own threshold, then every
judge at the evaluation's own FAR operating points with SSIM-28, SSIM to the donor target and realism.

    python -m training.compare NAME=RESULTS.json [NAME=RESULTS.json ...] [--out table.md]

Each ``results.json`` is what ``make eval`` writes. Models are comparable only when they were evaluated on the same
images and pairs: the command refuses evaluations whose setup (data, images, pairs, seed) differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.eval_report import tar_cell, unresolved_note

SAME_SETUP = ("data", "test_images", "genuine_pairs", "impostor_pairs", "seed", "references_per_image")
BASELINES = ("original", "donor_warp", "blur_4", "blur_8", "pixelate_8")


def _row(name: str, entry: dict, real_tar: float) -> str:
    dlib = entry["judges"]["dlib"]
    ratio = dlib["tar"] / real_tar if real_tar else float("nan")
    return (f"| {name} | {dlib['accuracy']:.4f} | {dlib['tar']:.4f} | {ratio:.3f} | {dlib['far']:.4f} | "
            f"{dlib.get('rank1', float('nan')):.4f} | {entry['ssim_to_original']:.3f} | {entry['ssim28_to_original']:.3f} |")


def _baseline_rows(evaluations: dict[str, dict], baselines: tuple[str, ...], row) -> list[str]:
    """One row per baseline: once when every evaluation that has it measured the same, else each evaluation's own,
    named after it."""
    lines = []
    for baseline in baselines:
        measured = {name: r["methods"][baseline] for name, r in evaluations.items() if baseline in r["methods"]}
        alike: dict[str, list[str]] = {}  # the entry's JSON -> the evaluations that measured exactly that
        for name, entry in measured.items():
            alike.setdefault(json.dumps(entry, sort_keys=True), []).append(name)
        for key, names in alike.items():
            shared = len(alike) == 1 and len(names) == len(evaluations)
            lines.append(row(baseline.replace("_", " ") + ("" if shared else f" ({', '.join(names)})"), json.loads(key)))
    return lines


def comparison_table(evaluations: dict[str, dict]) -> str:
    """Markdown: each named evaluation's ``camouflage`` row, then the baselines (dlib's judge at its own threshold)."""
    first = next(iter(evaluations.values()))
    real_tar = first["methods"]["original"]["judges"]["dlib"]["tar"]
    lines = ["| method | verification accuracy | genuine TAR | TAR / real TAR (>= 0.90) | FAR | rank-1 | SSIM (<= 0.60) | SSIM-28 (<= 0.67) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, results in evaluations.items():
        lines.append(_row(f"**{name}**", results["methods"]["camouflage"], real_tar))
    lines += _baseline_rows(evaluations, BASELINES, lambda label, entry: _row(label, entry, real_tar))
    return "\n".join(lines) + "\n"


def _figure(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def operating_points_table(evaluations: dict[str, dict]) -> str:
    """Markdown: TAR at the evaluations' own FAR operating points for every judge, SSIM-28 to the original and SSIM to
    the donor target, and realism (dE of the inner face's mean colour on LFW and the clips; lightness change and
    chroma-spread ratio on the darkened clips); '' when the evaluations predate these figures."""
    first = next(iter(evaluations.values()))
    judges = [j for j in first["methods"]["original"]["judges"] if "at_far" in first["methods"]["original"]["judges"][j]]
    if not judges:
        return ""

    def row(label: str, entry: dict) -> str:
        cells = []
        for judge in judges:
            at_far = entry.get("judges", {}).get(judge, {}).get("at_far", {})
            cells.append(" / ".join(tar_cell(at_far[rate]) if rate in at_far else "-" for rate in ("1e-03", "1e-04")))
        realism = entry.get("realism", {})

        def scene(name: str, *keys: str) -> str:
            return " / ".join(_figure(realism.get(name, {}).get(k), 1) for k in keys)

        cells += [_figure(entry.get("ssim28_to_original")), _figure(entry.get("ssim_to_donor")),
                  scene("lfw", "delta_e_median", "delta_e_p90"), scene("clips", "delta_e_median", "delta_e_p90"),
                  scene("clips_dark", "lightness_median"), _figure(realism.get("clips_dark", {}).get("chroma_ratio_p90"), 2)]
        return f"| {label} | " + " | ".join(cells) + " |"

    header = ([f"{j} TAR @1e-3 / @1e-4" for j in judges]
              + ["SSIM-28 to original", "SSIM to donor", "dE median / p90 (LFW)", "dE median / p90 (clips)",
                 "dL* median (dim clips)", "chroma p90 (dim clips)"])
    lines = ["| method | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
    lines += [row(f"**{name}**", results["methods"]["camouflage"]) for name, results in evaluations.items()]
    others = [m for m in first["methods"] if m not in ("camouflage",) and not m.startswith("model_")]
    lines += _baseline_rows(evaluations, tuple(others), row)
    impostors = [info["far_thresholds"]["impostor_pairs"] for r in evaluations.values() for info in r.get("judges", {}).values()]
    if impostors:
        lines += [""] + unresolved_note(min(impostors))
    return "\n".join(lines).rstrip("\n") + "\n"


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
    operating = operating_points_table(evaluations)
    if operating:
        table += "\nAt the evaluation's own false-accept rates, with realism:\n\n" + operating
    print(table, end="")
    if args.out is not None:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
