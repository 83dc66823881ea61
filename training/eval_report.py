# SPDX-License-Identifier: Apache-2.0
"""What an evaluation's results say (:mod:`training.evaluate` writes them): each method held against issue 17's
targets, the privacy-utility plots, and report.md.

Reads only results.json's dict, so a report can be remade from a committed results.json without running anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.far import FAR_RATES, IMPOSTORS_PER_FALSE_ACCEPT, far_resolved, images_needed
from training.realism import REALISM_TARGETS

TARGET_RATIO = 0.90  # genuine TAR at FAR 1e-3 over the originals' own, for every judge (issue 17)
TARGET_FAR = "1e-03"
SSIM28_MARGIN = 0.02  # SSIM-28 to the original at most the bare donor target's + this: the look must stay the donor's
SSIM_TO_DONOR = 0.93  # SSIM to the donor target at least this: the residual must not read as a pattern


def check_targets(methods: dict) -> dict:
    """Each donor-relative method (and the model) against issue 17's targets.

    - for every judge: genuine TAR at FAR 1e-3 (the evaluation's own threshold) over the originals' own at the same
      threshold, at least :data:`TARGET_RATIO`;
    - SSIM-28 to the original at most the bare donor target's (``donor_warp``) + :data:`SSIM28_MARGIN`;
    - SSIM to the donor target at least :data:`SSIM_TO_DONOR`;
    - realism on LFW (:data:`training.realism.REALISM_TARGETS`; the clips' figures are reported beside them).

    Returns: ``{"rows": {method: [{"name", "value", "bound", "at_least", "met"}, ...]}, "real_tar": {judge: TAR}}``;
    a method lacking a figure (e.g. SSIM to a donor for a blur) has no row for it.
    """
    original = methods["original"]["judges"]
    real = {judge: entry["at_far"][TARGET_FAR]["tar"] for judge, entry in original.items()}
    donor28 = methods.get("donor_warp", {}).get("ssim28_to_original")
    rows: dict[str, list[dict]] = {}
    for method, entry in methods.items():
        checks: list[dict] = []

        def add(name: str, value: float | None, bound: float, at_least: bool, resolved: bool = True) -> None:
            if value is None:
                return
            met = bool(value >= bound if at_least else value <= bound)
            checks.append({"name": name, "value": float(value), "bound": float(bound), "at_least": at_least, "met": met,
                           "resolved": resolved})

        for judge, tar in real.items():
            at_far = entry["judges"][judge]["at_far"][TARGET_FAR]
            ratio = at_far["tar"] / tar if tar > 0 else float("nan")
            add(f"TAR@FAR1e-3 / real, {judge}", ratio, TARGET_RATIO, True, at_far.get("resolved", True))
        if donor28 is not None:
            add("SSIM-28 to original", entry["ssim28_to_original"], donor28 + SSIM28_MARGIN, False)
        add("SSIM to donor target", entry.get("ssim_to_donor"), SSIM_TO_DONOR, True)
        lfw = entry.get("realism", {}).get("lfw", {})
        for target in REALISM_TARGETS:
            add(f"{target.name} (LFW)", lfw.get(target.key), target.bound, False)
        rows[method] = checks
    return {"rows": rows, "real_tar": real, "far": TARGET_FAR}


PLOT_AXES = {  # x axis of a privacy-utility plot
    "ssim_to_original": "SSIM to the original face",
    "ssim28_to_original": "SSIM-28 (grey, 28x28) to the original face",
}

FAMILIES = (("blur_", "o", "tab:blue", "blur"), ("pixelate_", "s", "tab:orange", "pixelate"),
            ("crossfade_", "v", "tab:purple", "cross-fade source -> donor target"))
POINTS = (("original", "^", "black", "no change"), ("donor_warp", "D", "tab:green", "donor target alone"),
          ("inject", "P", "tab:brown", "test-time injection (per face)"),
          ("inject_masked", "p", "tab:pink", "test-time injection within v5's mask"),
          ("copy", "X", "tab:olive", "bounded copy of the source (masked)"), ("camouflage", "*", "tab:red", "candidate (this model)"))


def _plot(results: dict, path: Path, x_key: str, y_of, y_label: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    judges = list(results["judges"])
    figure, axes = plt.subplots(1, len(judges), figsize=(6.5 * len(judges), 4.8), squeeze=False)
    methods = results["methods"]
    for axis, judge in zip(axes[0], judges):
        for family, marker, colour, label in FAMILIES:
            names = [m for m in methods if m.startswith(family)]
            if not names:
                continue
            xs = [methods[m][x_key] for m in names]
            ys = [y_of(methods[m], judge) for m in names]
            order = np.argsort(xs)
            axis.plot(np.array(xs)[order], np.array(ys)[order], marker=marker, color=colour, label=label)
            for m, x, y in zip(names, xs, ys):
                axis.annotate(m.split("_")[1], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        for name, marker, colour, label in POINTS:
            if name in methods:
                axis.scatter(methods[name][x_key], y_of(methods[name], judge), marker=marker,
                             s=170 if name == "camouflage" else 80, color=colour, label=label, zorder=5)
        for name in (m for m in methods if m.startswith("model_")):
            axis.scatter(methods[name][x_key], y_of(methods[name], judge), marker="X", s=110, color="tab:gray",
                         label=name[len("model_"):], zorder=5)
            axis.annotate(name[len("model_"):], (methods[name][x_key], y_of(methods[name], judge)),
                          textcoords="offset points", xytext=(5, -10), fontsize=8)
        axis.set_xlabel(f"{PLOT_AXES[x_key]}; lower: looks more different")
        axis.set_ylabel(y_label.format(judge=judge))
        axis.set_title(title.format(judge=judge))
        axis.grid(alpha=0.3)
        axis.legend(loc="upper left", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_privacy_utility(results: dict, path: Path, x_key: str = "ssim_to_original") -> None:
    """Verification accuracy (at each judge's own threshold) against a similarity to the original, a panel per judge."""
    _plot(results, path, x_key, lambda entry, judge: entry["judges"][judge]["accuracy"],
          "verification accuracy ({judge} judge, its own threshold)", "privacy-utility, {judge} (up and left is better)")


def plot_tar_at_far(results: dict, path: Path) -> None:
    """Genuine TAR at FAR 1e-3 (the evaluation's own threshold) against SSIM-28 to the original: every baseline, the
    compared models and the candidate on one plot per judge (issue 17's plot)."""
    _plot(results, path, "ssim28_to_original", lambda entry, judge: entry["judges"][judge]["at_far"][TARGET_FAR]["tar"],
          "genuine TAR at FAR 1e-3 ({judge})", "identity kept vs look kept, {judge} (up and left is better)")


def _fmt(value: float | None, form: str = "{:.3f}") -> str:
    return "-" if value is None else form.format(value)


def markdown_report(results: dict) -> str:
    setup = results["setup"]
    lineage = reversed(setup.get("lineage", []))
    ancestry = "".join(f", fine-tuned from {parent['weights']} at step {parent['step']}" for parent in lineage)
    compared = ", ".join(f"`{n}` = `{p}`" for n, p in setup.get("compared", {}).items())
    lines = [
        "# Evaluation report", "",
        f"Checkpoint `{setup['checkpoint']}` (preset {setup['preset']}, step {setup['step']}{ancestry}); data `{setup['data']}`."
        + (f" Compared on the same images, pairs and donors: {compared}." if compared else ""),
        f"{setup['test_images']} test images of {setup['identities']} test identities; {setup['references_per_image']} donors "
        f"per image; {setup['genuine_pairs']} genuine + {setup['impostor_pairs']} impostor pairs; rank-1 over "
        f"{setup['identification_probes']} probes against a gallery of {setup['identification_gallery']} originals; seed {setup['seed']}.",
        f"Faces aligned, warped and pasted with the `{setup.get('landmarks', 'dlib68')}` landmark model. Faces concealed by the "
        f"fail-closed fallback: {setup['faces_concealed_by_fallback']}. Took {setup['seconds']} s.", "",
        "FAR operating points are the evaluation's own: thresholds at which every impostor pair of originals (all pairs of "
        "test images of different people) is accepted at that rate; TAR is then the share of genuine pairs (processed "
        "query vs another original of the same person) accepted.", "",
    ]
    if setup.get("injection"):
        inj = setup["injection"]
        lines += [f"`inject`: test-time injection, a residual of at most {inj['bound']:g}/255 optimised per face by "
                  f"{inj['steps']} Adam steps on the clean and {inj['copies']} degraded copies against the training teacher "
                  "(one donor per image)." + (" `inject_masked`: the same with the bound scaled per pixel by v5's visibility "
                  "mask (the limit the release's generator works within)." if setup.get("inject_masked") else ""), ""]
    if setup.get("teacher"):
        lines += [f"**Note:** the model was trained with `{setup['teacher']}` as an identity teacher; a judge that was the teacher "
                  "flatters the model (and the test-time injection). " + (setup.get("teacher_note") or ""), ""]
    lines += summary_section(results)
    lines += targets_section(results["targets"])
    for judge, info in results["judges"].items():
        far = info["far_thresholds"]
        lines += [f"## Judge: {judge} (own rule: same person when {info['rule']} {info['threshold']}; FAR 1e-3 at "
                  f"{far['1e-03']:.4f}, 1e-4 at {far['1e-04']:.4f} over {int(far['impostor_pairs'])} impostor pairs of originals)", "",
                  "| method | TAR @1e-3 | TAR @1e-4 | accuracy (own) | TAR (own) | FAR (own) | rank-1 | SSIM | SSIM-28 | SSIM to donor | SSIM-28 to donor |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for method, entry in results["methods"].items():
            j = entry["judges"][judge]
            lines.append(f"| {method} | {tar_cell(j['at_far']['1e-03'], 4)} | {tar_cell(j['at_far']['1e-04'], 4)} | {j['accuracy']:.4f} | "
                         f"{j['tar']:.4f} | {j['far']:.4f} | {j['rank1']:.4f} | {entry['ssim_to_original']:.3f} | "
                         f"{entry['ssim28_to_original']:.3f} | {_fmt(entry.get('ssim_to_donor'))} | {_fmt(entry.get('ssim28_to_donor'))} |")
        lines.append("")
    lines += ["## Realism (inner face, crops aligned with the original's landmarks)", "",
              "dE: CIEDE2000 between the inner face's mean colours before and after; dL*: mean lightness change (+: lighter); "
              "chroma ratio: chroma spread after over before (colour blotches raise it). Targets: dE median <= 3, p90 <= 7; "
              "|dL*| p90 <= 6; chroma ratio p90 <= 1.6.", "",
              "| method | scene | faces | dE median | dE p90 | dL* median | abs dL* p90 | chroma ratio median | chroma ratio p90 |",
              "|---|---|---|---|---|---|---|---|---|"]
    for method, entry in results["methods"].items():
        for scene, r in entry.get("realism", {}).items():
            if r:
                lines.append(f"| {method} | {scene} | {r['faces']} | {r['delta_e_median']:.2f} | {r['delta_e_p90']:.2f} | "
                             f"{r['lightness_median']:+.2f} | {r['abs_lightness_p90']:.2f} | {r['chroma_ratio_median']:.2f} | "
                             f"{r['chroma_ratio_p90']:.2f} |")
    lines.append("")
    if setup.get("clips"):
        lines += [f"Scenes: every {setup['clip_every']}th frame of {', '.join(f'`{c}`' for c in setup['clips'])}; "
                  "`clips_dark`: the same frames darkened (gamma 2.2, 40% brightness).", ""]
    camouflage = results["methods"]["camouflage"]
    div, div28 = camouflage.get("diversity_ssim_between_references"), camouflage.get("diversity_ssim28_between_references")
    if div is not None:
        lines += [f"Diversity: mean SSIM between camouflaged versions of one face made with different donors: {div:.3f} "
                  f"(SSIM-28: {div28:.3f}).", ""]
    if setup.get("clips"):
        lines += ["![a clip's first frame as it is and darkened: original, the model, each compared model](scenes.jpg)", "",
                  "Its largest face, 3x (the same rows and columns):", "", "![the largest face, 3x](scenes_face_zoom.jpg)", ""]
    lines += ["SSIM-28: both aligned crops turned grey (BT.601 luma), area-downsampled to 28x28, then SSIM with an 11x11 "
              "Gaussian window of sigma 1.5. Noise, texture and colour do not lower it; a different face shape, layout of "
              "features or hairline does.", "",
              "![TAR at FAR 1e-3 against SSIM-28](tar_at_far_ssim28.png)", "",
              "![privacy-utility, SSIM](privacy_utility.png)", "", "![privacy-utility, SSIM-28](privacy_utility_ssim28.png)", "",
              "![figure 3](figure3.png)", ""]
    return "\n".join(lines)


def summary_section(results: dict) -> list[str]:
    """One table of what issue 17 judges, every method: TAR at FAR 1e-3 and 1e-4 per judge, SSIM and SSIM-28 to the
    original and to the donor target, realism on LFW and on the darkened clips."""
    judges = list(results["judges"])
    head = ["method"] + [f"{j} TAR @1e-3 / @1e-4" for j in judges] + [
        "SSIM", "SSIM-28", "SSIM to donor", "SSIM-28 to donor", "dE med / p90 (LFW)", "abs dL* p90 (LFW)",
        "chroma p90 (LFW)", "dE med / p90 (dim clips)", "dL* median (dim clips)"]
    lines = ["## Summary", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, entry in results["methods"].items():
        lfw = entry.get("realism", {}).get("lfw") or {}
        dark = entry.get("realism", {}).get("clips_dark") or {}
        cells = [method] + [f"{tar_cell(entry['judges'][j]['at_far']['1e-03'])} / {tar_cell(entry['judges'][j]['at_far']['1e-04'])}"
                            for j in judges]
        cells += [f"{entry['ssim_to_original']:.3f}", f"{entry['ssim28_to_original']:.3f}", _fmt(entry.get("ssim_to_donor")),
                  _fmt(entry.get("ssim28_to_donor")),
                  f"{lfw['delta_e_median']:.1f} / {lfw['delta_e_p90']:.1f}" if lfw else "-",
                  _fmt(lfw.get("abs_lightness_p90"), "{:.1f}"), _fmt(lfw.get("chroma_ratio_p90"), "{:.2f}"),
                  f"{dark['delta_e_median']:.1f} / {dark['delta_e_p90']:.1f}" if dark else "-",
                  _fmt(dark.get("lightness_median"), "{:+.1f}")]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    impostors = min(info["far_thresholds"]["impostor_pairs"] for info in results["judges"].values())
    return lines + unresolved_note(impostors)


UNRESOLVED_MARK = "*"


def tar_cell(at_far: dict, digits: int = 3) -> str:
    """A TAR at one FAR operating point, starred where too few impostor pairs resolve that FAR
    (:func:`training.far.far_resolved`; results written before that was recorded count as resolved)."""
    return f"{at_far['tar']:.{digits}f}" + ("" if at_far.get("resolved", True) else UNRESOLVED_MARK)


def unresolved_note(impostor_pairs: float) -> list[str]:
    """The report's warning, where the evaluation's impostor pairs cannot resolve one of its FARs; else nothing."""
    unresolved = [rate for rate in FAR_RATES if not far_resolved(impostor_pairs, rate)]
    if not unresolved:
        return []
    needs = "; ".join(f"FAR {rate:.0e} needs {IMPOSTORS_PER_FALSE_ACCEPT / rate:,.0f} (about --images {images_needed(rate)})"
                      for rate in unresolved)
    return [f"{UNRESOLVED_MARK} Not resolved by {int(impostor_pairs):,} impostor pairs of originals: the threshold is the "
            f"score of the top few impostors, so it accepts more than its FAR and every TAR at it flatters ({needs}). "
            "Compare methods within this run only.", ""]


def targets_section(targets: dict) -> list[str]:
    """The report's statement of the targets: each of the model's, met or not, and the same checks for every method."""
    rows = targets["rows"]
    real = ", ".join(f"{j} {t:.4f}" for j, t in targets["real_tar"].items())
    model = rows["camouflage"]
    lines = [f"## Targets (issue 17; real-vs-real TAR at FAR 1e-3: {real})", "",
             "| target | camouflage | bound | |", "|---|---|---|---|"]
    for check in model:
        rule = f"{'>=' if check['at_least'] else '<='} {check['bound']:.3f}"
        verdict = "met" if check["met"] else "**not met**"
        if not check.get("resolved", True):
            verdict += f" ({UNRESOLVED_MARK} FAR unresolved)"
        lines.append(f"| {check['name']} | {check['value']:.3f} | {rule} | {verdict} |")
    met = sum(c["met"] for c in model)
    lines += ["", f"The model meets {met} of {len(model)} targets.", "", "| method | targets met | not met |", "|---|---|---|"]
    for method, checks in rows.items():
        missed = [c["name"] for c in checks if not c["met"]]
        lines.append(f"| {method} | {sum(c['met'] for c in checks)} of {len(checks)} | {', '.join(missed) or '-'} |")
    lines.append("")
    return lines
