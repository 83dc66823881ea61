# SPDX-License-Identifier: Apache-2.0
"""Scoring the evaluation's pairs: each judge's thresholds at the evaluation's own false-accept rates (from its impostor
pairs of originals), and per method verification, TAR at those rates and rank-1 identification."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from training.eval_subjects import Subject
from training.far import FAR_RATES, far_resolved
from training.metrics import Judge, rank1, verification


def far_thresholds(judge: Judge, originals: np.ndarray, identities: np.ndarray, rates: tuple[float, ...]) -> dict[str, float]:
    """The judge's score thresholds at which the given false-accept rates hold on every impostor pair of originals
    (all pairs of test images of different people): the evaluation's own operating points, not the judge's default.

    Returns: ``{"1e-03": threshold, ...}`` (accept when the score is beyond it, in the judge's direction) and
    ``"impostor_pairs"``."""
    scores = judge.score_matrix(originals, originals)
    different = identities[:, None] != identities[None, :]
    upper = np.triu(np.ones_like(different), k=1)
    impostor = scores[different & upper]
    found: dict[str, float] = {"impostor_pairs": float(len(impostor))}
    for rate in rates:
        # accept iff score beyond the threshold: at most ``rate`` of impostor pairs beyond it
        q = rate if judge.lower_is_same else 1.0 - rate
        found[f"{rate:.0e}"] = float(np.quantile(impostor, q, method="lower" if judge.lower_is_same else "higher"))
    return found


def accepts_at(judge: Judge, scores: np.ndarray, threshold: float) -> np.ndarray:
    return scores < threshold if judge.lower_is_same else scores > threshold


def score_methods(judges: list[Judge], embeddings: dict, methods: list[str], subjects: list[Subject],
                  genuine: np.ndarray, impostor: np.ndarray) -> dict:
    """Verification at each judge's own threshold and at the evaluation's FAR operating points (:func:`far_thresholds`),
    and rank-1 identification, for every method. Returns ``{"methods", "judges", "probes", "gallery"}``."""
    gallery_index: dict[str, int] = {}
    for s in subjects:
        gallery_index.setdefault(s.identity, s.index)
    probes = np.array([s.index for s in subjects if gallery_index[s.identity] != s.index])
    gallery = np.array(sorted(gallery_index.values()))
    labels = np.array([s.identity for s in subjects])
    results: dict = {"methods": {}, "judges": {}, "probes": int(len(probes)), "gallery": int(len(gallery))}
    for judge in judges:
        originals = np.stack([e[0] for e in embeddings[judge.name]["original"]])
        thresholds = far_thresholds(judge, originals, labels, FAR_RATES)
        results["judges"][judge.name] = {"threshold": judge.threshold, "rule": "distance <" if judge.lower_is_same else "cosine >",
                                         "far_thresholds": thresholds}
        for method in methods:
            per_subject = embeddings[judge.name][method]

            def query(i: int, pair_number: int) -> np.ndarray:
                versions = per_subject[i]
                return versions[pair_number % len(versions)]

            g_scores = judge.pair_scores(np.stack([query(q, n) for n, (q, _) in enumerate(genuine)]), originals[genuine[:, 1]])
            i_scores = judge.pair_scores(np.stack([query(q, n) for n, (q, _) in enumerate(impostor)]), originals[impostor[:, 1]])
            v = verification(judge.accepts(g_scores), judge.accepts(i_scores))
            probe_embeddings = np.stack([query(p, n) for n, p in enumerate(probes)]) if len(probes) else np.zeros((0, originals.shape[1]))
            r1 = rank1(probe_embeddings, labels[probes] if len(probes) else np.array([]), originals[gallery], labels[gallery], judge)
            at_far = {rate: {"tar": float(accepts_at(judge, g_scores, t).mean()), "far": float(accepts_at(judge, i_scores, t).mean()),
                             "resolved": far_resolved(thresholds["impostor_pairs"], rate)}
                      for rate, t in thresholds.items() if rate != "impostor_pairs"}
            entry = results["methods"].setdefault(method, {"judges": {}})
            entry["judges"][judge.name] = {**asdict(v), "rank1": r1, "genuine_mean_score": float(g_scores.mean()),
                                           "impostor_mean_score": float(i_scores.mean()), "at_far": at_far}
    return results
