# SPDX-License-Identifier: Apache-2.0
"""Donor benchmark: which donors the served pipeline gives people by default (issue 17, item 3).

    python -m benchmarks.donors [--repository model_repository] [--lfw ../shared/data/lfw/images] [--out bench]
    make bench-donors

The bank's entries are blends of the export's portraits; ``--women`` names the portraits of women (the committed
folder's four, by default), so each entry is counted as a blend of women, of men, or mixed. Then photos of named
LFW people (ten women and ten men, three photos each, by default) go through the repository's embedded pipeline
without APPEARANCE_INDEX, and the donor given to the face nearest each photo's centre is counted: how many women got
a blend of women, and how many men did. LFW is read from ``--lfw`` and never copied (its terms are research use).
Figures go to ``OUT/bench_donors.json`` and ``.md``; no picture is written (it would show LFW's people).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.measure import write_figures

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LFW = ROOT.parent / "shared" / "data" / "lfw" / "images"
COMMITTED_WOMEN = ("congress_B001276.jpg", "congress_H001049.jpg", "congress_W000789.jpg", "nasa_eileen_collins.png")
WOMEN = ("Serena_Williams", "Jennifer_Lopez", "Hillary_Clinton", "Laura_Bush", "Angelina_Jolie", "Nicole_Kidman",
         "Condoleezza_Rice", "Gloria_Macapagal_Arroyo", "Jennifer_Aniston", "Megawati_Sukarnoputri")
MEN = ("George_W_Bush", "Colin_Powell", "Tony_Blair", "Hugo_Chavez", "Gerhard_Schroeder", "Donald_Rumsfeld",
       "Ariel_Sharon", "Jacques_Chirac", "Vladimir_Putin", "John_Ashcroft")


def blend_kinds(entries: list[str], women: set[str]) -> list[str]:
    """``women``, ``men`` or ``mixed`` for each bank entry, described as in bank.json ("a.jpg + b.jpg + c.jpg")."""
    kinds = []
    for entry in entries:
        members = [m.strip() for m in entry.split("+")]
        count = sum(m in women for m in members)
        kinds.append("women" if count == len(members) else "men" if count == 0 else "mixed")
    return kinds


def given_donors(pipeline, folder: Path, names: tuple[str, ...], per_person: int) -> list[int]:
    """The bank entry the pipeline gives the face nearest the centre of each of ``per_person`` photos per name."""
    from facecamo.align import load_rgb

    rows = []
    for name in names:
        for path in sorted((folder / name).glob("*.jpg"))[:per_person]:
            image = load_rgb(str(path))
            result = pipeline.run(image)
            if len(result.boxes):
                centres = (result.boxes[:, :2] + result.boxes[:, 2:]) / 2
                nearest = int(np.argmin(np.abs(centres - np.array(image.shape[1::-1]) / 2).sum(axis=1)))
                rows.append(int(result.appearance[nearest]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help="LFW's images folder, one folder per person")
    parser.add_argument("--women", nargs="*", default=list(COMMITTED_WOMEN), help="the bank portraits that are of women")
    parser.add_argument("--per-person", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    args = parser.parse_args(argv)
    from facecamo.repository import RepositoryError, open_pipeline

    missing = [n for n in WOMEN + MEN if not (args.lfw / n).is_dir()]
    if missing:
        print(f"error: {args.lfw} lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}: pass --lfw "
              "with LFW's images folder", file=sys.stderr)
        return 2
    try:
        pipeline = open_pipeline(args.repository)
    except RepositoryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    entries = json.loads((args.repository / "facecamo" / "1" / "bank.json").read_text())["entries"]
    kinds = blend_kinds(entries, set(args.women))
    report = {"repository": str(args.repository.relative_to(ROOT) if args.repository.is_relative_to(ROOT) else args.repository),
              "likeness": pipeline.likeness is not None, "entries": dict(zip(entries, kinds)),
              "bank": {kind: kinds.count(kind) for kind in ("women", "men", "mixed")}, "people": {}}
    for group, names in (("women", WOMEN), ("men", MEN)):
        rows = given_donors(pipeline, args.lfw, names, args.per_person)
        report["people"][group] = {"faces": len(rows), "given_a_blend_of_women": sum(kinds[r] == "women" for r in rows),
                                   "given_a_mixed_blend": sum(kinds[r] == "mixed" for r in rows),
                                   "distinct_donors": len(set(rows))}
    bank = report["bank"]
    lines = ["# Donors given by default", "",
             f"`python -m benchmarks.donors`: repository `{report['repository']}`, donors chosen by likeness: "
             f"{'yes' if report['likeness'] else 'no (the next free entry)'}. Bank: {bank['women']} blends of women, "
             f"{bank['men']} of men, {bank['mixed']} mixed, of {len(entries)}.", "",
             "| LFW photos of | faces | given a blend of women | given a mixed blend | distinct donors |", "|---|---|---|---|---|"]
    for group, figures in report["people"].items():
        lines.append(f"| {len(WOMEN if group == 'women' else MEN)} {group} | {figures['faces']} | {figures['given_a_blend_of_women']} | "
                     f"{figures['given_a_mixed_blend']} | {figures['distinct_donors']} |")
    write_figures(args.out, "bench_donors", report, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
