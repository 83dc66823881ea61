# SPDX-License-Identifier: Apache-2.0
"""What an evaluation's impostor pairs can resolve: a TAR at a false-accept rate means something only where there are
enough impostor pairs of originals to place that rate's threshold (used by the scoring, the report and the comparison;
numpy only)."""

from __future__ import annotations

import sys

import numpy as np

FAR_RATES = (1e-3, 1e-4)

# A FAR of r is an estimate only over at least this many / r impostor pairs: with fewer, its threshold is the score of
# the top few impostors (of 1,170 pairs, FAR 1e-3 sits on the single highest), so it admits more than r and the TAR
# at it flatters every method alike.
IMPOSTORS_PER_FALSE_ACCEPT = 10


def far_resolved(impostor_pairs: float, rate: str | float) -> bool:
    """Whether ``impostor_pairs`` impostor pairs of originals resolve a false-accept rate of ``rate`` (e.g. "1e-03")."""
    return impostor_pairs * float(rate) >= IMPOSTORS_PER_FALSE_ACCEPT


def impostor_pairs_of(identities: np.ndarray) -> int:
    """How many pairs (i < j) of the test images show different people: what resolves the FAR thresholds."""
    _, counts = np.unique(identities, return_counts=True)
    return int((counts.sum() ** 2 - (counts ** 2).sum()) // 2)


def images_needed(rate: float) -> int:
    """About how many test images (a few per person) give enough impostor pairs to resolve ``rate``: n(n-1)/2 of
    them, less the few genuine ones, is 10 / rate; 5% more for the genuine pairs."""
    return int(np.ceil(1.05 * np.sqrt(2 * IMPOSTORS_PER_FALSE_ACCEPT / rate)))


def warn_unresolved_fars(identities: np.ndarray, rates: tuple[float, ...] | None = None) -> list[float]:
    """Say on stderr, before the slow work, which FARs the chosen test images cannot resolve (their TARs come out
    starred in the report) and how many images would; returns those rates."""
    pairs = impostor_pairs_of(identities)
    unresolved = [rate for rate in rates or FAR_RATES if not far_resolved(pairs, rate)]
    for rate in unresolved:
        print(f"warning: {pairs:,} impostor pairs of originals cannot resolve FAR {rate:.0e} (it needs "
              f"{IMPOSTORS_PER_FALSE_ACCEPT / rate:,.0f}): its threshold is the top impostors' score and the TAR at it "
              f"flatters; the report stars it. Use --images {images_needed(rate)} or more.", file=sys.stderr)
    return unresolved
