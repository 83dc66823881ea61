# SPDX-License-Identifier: Apache-2.0
"""The leak benchmark's report: ``OUT/NAME.md`` (the tables people read) and ``OUT/NAME.json`` (everything measured).

:mod:`benchmarks.leak` measures; this module only words what it measured: a summary table of every clip, then for
each clip its faces by width, orientation, audio, the calibration against re-encoding noise and the command line's
own summary. Committed reports name files relative to the repository (and ../shared), never this machine's folders.
The width buckets come from the report itself (``settings.width_buckets_px``), so a report reads back from its JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Unsmoothed MAD (0-255) outside the faces above which output frames probably do not line up with the input
# (re-encoding alone gave about 2 on video_01.mp4).
BACKGROUND_MISMATCH_MAD = 8.0


def percent(part: int, whole: int) -> str:
    return f"{part} ({100 * part / whole:.0f}%)" if whole else "0"


def yes_no(value) -> str:
    return "-" if value is None else ("yes" if value else "**no**")


def totals(faces: dict, labels: list[str]) -> tuple[int, int]:
    """Faces found and faces unchanged, summed over the width buckets ``labels``."""
    return sum(faces[label]["found"] for label in labels), sum(faces[label]["unchanged"] for label in labels)


def markdown(report: dict) -> str:
    """The report as Markdown: one summary table, one width table per clip, the calibration."""
    labels = report["settings"]["width_buckets_px"]
    lines = [*introduction(report), "", *summary_table(report, labels)]
    for clip in report["clips"]:
        lines += clip_section(clip, report, labels)
    return "\n".join(lines) + "\n"


def introduction(report: dict) -> list[str]:
    """Title, command, and a paragraph on which product ran and what counts as an unchanged face."""
    settings = report["settings"]
    return [f"# Leak benchmark ({report['date']})", "",
            f"`{report['command']}`", "",
            f"Product: {report['product']['cli_module']}"
            + (f" (git {report['product']['git_head']}{', working tree modified' if report['product']['modified_files'] else ''})"
               if report["product"]["git_head"] else "") + f". {report.get('note', '')} Reference detector: YuNet "
            f"(`{Path(settings['detector']).name}`, cv2.FaceDetectorYN), score >= {settings['score_threshold']}, "
            f"upscale x{settings['upscale']}. A face is unchanged when the mean absolute difference (0-255) between "
            f"input and output, both smoothed (Gaussian sigma {settings['smoothing_sigma']} px), over the inner "
            f"{settings['inner_fraction']:.0%} of its box is below {settings['unchanged_mad']}; the "
            f"calibration lines give the re-encoding noise of the same measure."
            + (" Rows marked (dark) ran on the clip darkened (gamma 2.2 at 40% brightness, written once with libx264): faces "
               "located by the reference detector on the lit frame of the same index (a face missed in the dark is still "
               f"counted), unchanged below {settings.get('unchanged_mad_dark')} and below "
               f"{settings.get('noise_factor')}x its own pass-through re-encoding MAD (dim faces change by fewer "
               "grey levels; the calibration lines give the dark re-encode's noise)." if settings.get("dark") else "")]


def summary_table(report: dict, labels: list[str]) -> list[str]:
    """One row per clip: faces >= 16 px and how many came out unchanged, rotation and audio kept, frames, speed."""
    lines = ["| clip | faces >= 16 px | unchanged >= 16 px | unchanged >= 24 px | rotation kept | audio kept | frames in / out | CLI wall s | CLI frames/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for clip in report["clips"]:
        faces = clip.get("faces")
        if faces:
            found16, unchanged16 = totals(faces, labels[1:])
            found24, unchanged24 = totals(faces, labels[2:])
            counts = f"{found16} | {percent(unchanged16, found16)} | {unchanged24} of {found24}"
        else:
            counts = "- | - | -"
        lines.append(f"| `{clip['clip']}` | {counts} | {yes_no(clip.get('orientation', {}).get('kept'))} | "
                     f"{yes_no(clip.get('audio', {}).get('kept'))} | {clip['frames']['input']} / {clip['frames']['output']} | "
                     f"{clip['cli']['wall_s']} | {clip['cli'].get('frames_per_s', '-')} |")
    return lines


def clip_section(clip: dict, report: dict, labels: list[str]) -> list[str]:
    """One clip's heading, its width table and its notes (or why it was not measured)."""
    lines = ["", f"## `{clip['clip']}`", ""]
    if clip.get("error"):
        lines += [f"Not measured: {clip['error']}"]
    if not clip.get("faces"):
        return lines
    return lines + width_table(clip["faces"], labels) + ["", *clip_notes(clip, report)]


def width_table(faces: dict, labels: list[str]) -> list[str]:
    """Faces in the input and the share that came out unchanged, per width bucket and for all >= 16 px."""
    found16, unchanged16 = totals(faces, labels[1:])
    return ["| face width px | " + " | ".join(labels) + " | all >= 16 |", "|---" * (len(labels) + 2) + "|",
            "| faces in the input | " + " | ".join(str(faces[label]["found"]) for label in labels) + f" | {found16} |",
            "| came out unchanged | " + " | ".join(percent(faces[label]["unchanged"], faces[label]["found"]) for label in labels)
            + f" | {percent(unchanged16, found16)} |"]


def clip_notes(clip: dict, report: dict) -> list[str]:
    """The bullets under a clip's table: sizes and rotation, orientation, audio, calibration, output MADs, the CLI."""
    orientation, calibration = clip["orientation"], clip["calibration_passthrough_mad"]
    correlation = orientation["correlation_by_input_turn_degrees"]
    lines = [f"- Input {clip['input']['stored_size'][0]}x{clip['input']['stored_size'][1]} stored, rotation "
             f"{clip['input']['rotation_degrees']} deg, shown {clip['input']['shown_size'][0]}x{clip['input']['shown_size'][1]}, "
             f"{clip['input']['fps']} fps; output shown {clip['output']['shown_size'][0]}x{clip['output']['shown_size'][1]} "
             f"(rotation flag {clip['output']['rotation_degrees']} deg), {clip['output']['fps']} fps, {clip['output']['codec']}.",
             f"- Orientation: output correlates {correlation['0']} with the upright input, {correlation['90']} / {correlation['270']} "
             f"with it turned 90 / 270 deg: " + (f"turned {orientation['output_turned_against_input_degrees']} deg against the input as "
             f"shown (faces were compared after turning it back)." if orientation["output_turned_against_input_degrees"] else "upright."),
             f"- Audio: input {yes_no(clip['audio']['input'])}, output {yes_no(clip['audio']['output'])}.",
             *(f"- Calibration, {name.replace('_', ' ')} (pass-through re-encode, CRF {report['settings']['calibration_crf']}): "
               f"re-encoding MAD median {noise['p50']}, p99 {noise['p99']}, max {noise['max']} over {noise['count']} faces; "
               f"{noise['over_threshold']} at or over the threshold {clip.get('unchanged_mad', report['settings']['unchanged_mad'])}."
               for name, noise in calibration.items() if noise["count"]),
             f"- Output face MAD median {clip['output_face_mad']['p50']}; faces by MAD band {clip['output_face_mad_bands']}; "
             f"unsmoothed background MAD median {clip['background_mad_median']} (a few units when frames line up).",
             f"- CLI: exit {clip['cli']['returncode']}, {clip['cli']['wall_s']} s wall (model loading included), summary "
             f"{json.dumps({k: v for k, v in (clip['cli']['summary'] or {}).items() if k not in ('input', 'output')})}."]
    if (clip["background_mad_median"] or 0) > BACKGROUND_MISMATCH_MAD:
        lines.append(f"- **Warning**: the background differs by {clip['background_mad_median']} on average: output frames may "
                     f"not line up with input frames (shifted, scaled or out of step), so changed faces prove little.")
    if clip.get("unchanged_faces_24px_or_wider"):
        lines.append("- First unchanged faces >= 24 px (frame, box l/t/w/h, score): " + "; ".join(
            f"{e['frame']} {e['box_ltwh']} {e['score']}" for e in clip["unchanged_faces_24px_or_wider"][:8]))
    return lines


def product_facts() -> dict:
    """Which command line ran: the module the subprocess imports, the git commit and modified files."""
    module = subprocess.run([sys.executable, "-c", "import facecamo_client.cli as c; print(c.__file__)"],
                            capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout
    return {"cli_module": module, "git_head": head or None, "modified_files": [line[3:] for line in status.splitlines()],
            "FACECAMO_REPOSITORY": os.environ.get("FACECAMO_REPOSITORY")}


def without_machine_paths(text: str) -> str:
    """Committed reports name files relative to the repository (and ../shared), not this machine's folders."""
    return text.replace(str(ROOT.parent / "shared"), "../shared").replace(str(ROOT) + "/", "")


def write_report(report: dict, out: Path, name: str) -> str:
    """Write ``out/name.json`` and ``out/name.md`` (creating ``out``), both without machine paths; returns the
    Markdown as measured (with them), for the terminal."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(without_machine_paths(json.dumps(report, indent=2) + "\n"))
    text = markdown(report)
    (out / f"{name}.md").write_text(without_machine_paths(text))
    return text
