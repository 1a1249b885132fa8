"""Drift of live traffic against the training data (docs/service.md "Drift"): the binned reference the card
stores, and the population stability index (PSI) that compares a live window with it.

numpy only: serving reads the card's reference and computes PSI without training libraries.

The reference (card field `reference`), per feature, holds its bins and the training counts in them:
    features.action     bins: ACTIONS                       counts of clicks per action
    features.from_ad    bins: ["false", "true"]             counts of clicks by their from_ad flag
    features.dwell_s    edges: upper bounds (s), +Inf last   dwell of each event that has a successor, clipped
    scores.p_make_order / scores.abandonment_risk   edges: upper bounds   the model's scores on the windows
Edges are Prometheus `le` bounds: a value v falls in the first bucket whose edge is >= v.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from model.features import ACTIONS, MAX_DWELL_S, MIN_DWELL_S

REFERENCE_VERSION = 1
DWELL_EDGES_S: tuple[float, ...] = (2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, MAX_DWELL_S)
SCORE_EDGES: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
SCORES: tuple[str, ...] = ("p_make_order", "abandonment_risk")
# A bin empty on one side would make PSI infinite: shares are floored at this (the usual practice).
PSI_FLOOR = 1e-4
# Rule of thumb for PSI: under 0.1 stable, 0.1-0.25 a shift worth a look, over 0.25 a real change.
PSI_ALERT = 0.25


def bucket_counts(values: npt.ArrayLike, edges: tuple[float, ...] | list[float]) -> list[int]:
    """Counts per `le` bucket: len(edges) + 1 buckets, the last one above every edge (+Inf)."""
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64), side="left")
    return [int(n) for n in np.bincount(index, minlength=len(edges) + 1)]


def event_dwell_s(ts: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(k,) dwell of every event that has a successor in its session, clipped as the encoder clips it."""
    n = ts.shape[0]
    has_next = np.ones(n, dtype=bool)
    has_next[np.append(starts[1:], n) - 1] = False  # the last event of each session
    gaps = np.diff(ts, append=ts[-1] if n else 0.0)
    return np.clip(gaps[has_next], MIN_DWELL_S, MAX_DWELL_S)


def build_reference(actions: np.ndarray, ts: np.ndarray, from_ad: np.ndarray, starts: np.ndarray,
                    scores: dict[str, np.ndarray], source: str) -> dict[str, Any]:
    """The card's `reference` from training events (E,) and the model's scores on their windows."""
    action_counts = [int(n) for n in np.bincount(actions, minlength=len(ACTIONS))]
    dwell_counts = bucket_counts(event_dwell_s(ts, starts), DWELL_EDGES_S)
    return {
        "version": REFERENCE_VERSION,
        "source": source,
        "features": {
            "action": {"bins": list(ACTIONS), "counts": action_counts},
            "from_ad": {"bins": ["false", "true"], "counts": [int((~from_ad).sum()), int(from_ad.sum())]},
            "dwell_s": {"edges": list(DWELL_EDGES_S), "counts": dwell_counts},
        },
        "scores": {name: {"edges": list(SCORE_EDGES), "counts": bucket_counts(scores[name], SCORE_EDGES)}
                   for name in SCORES},
    }


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Population stability index of `actual` counts against `expected` counts over the same bins."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.sum() <= 0 or a.sum() <= 0:
        return float("nan")
    p, q = np.maximum(e / e.sum(), PSI_FLOOR), np.maximum(a / a.sum(), PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))
