"""Per-label classification metrics with 95 % confidence intervals from a session-level bootstrap.

Point estimates come from scikit-learn. The intervals come from a cluster bootstrap: each replicate
draws sessions with replacement, and every window of a drawn session enters with the session's
multiplicity as its weight. Windows of one session are strongly correlated (they share a prefix),
so resampling windows would give intervals that are far too narrow.

The replicates are computed all at once on a (B, n) weight matrix, in blocks to bound memory. The
weighted formulas are the ones scikit-learn uses with `sample_weight` (tests/test_metrics.py
checks them against it), which a per-replicate loop over scikit-learn would take minutes to run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    roc_auc_score,
)

METRICS: tuple[str, ...] = ("roc_auc", "pr_auc", "f1", "accuracy", "all_zeros_accuracy", "brier", "ece")
ACCURACY_THRESHOLD = 0.5  # binary accuracy as published (Keras `binary_accuracy`): p >= 0.5 is positive
ECE_BINS = 15
N_BOOT = 1000
CI_LEVEL = 0.95
_BLOCK_CELLS = 4_000_000  # replicates per block × windows: ~32 MB per float64 matrix
_MIN_VALID_SHARE = 0.5  # fewer defined replicates than this and the interval is not reported


@dataclass(frozen=True)
class Estimate:
    """A metric's value and its bootstrap interval; all None with a `reason` where it is undefined."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, float | str | None]:
        raw = asdict(self)
        if raw["reason"] is None:
            del raw["reason"]
        return raw

    def fmt(self, digits: int = 3, percent: bool = False) -> str:
        """'0.912 [0.901, 0.923]', or '–' where undefined."""
        if self.value is None:
            return "–"
        scale, unit = (100.0, " %") if percent else (1.0, "")
        text = f"{self.value * scale:.{digits}f}"
        if self.ci_low is not None and self.ci_high is not None:
            text += f" [{self.ci_low * scale:.{digits}f}, {self.ci_high * scale:.{digits}f}]"
        return text + unit


def undefined_reason(name: str, y: np.ndarray, predicted_positive: int) -> str | None:
    """Why metric `name` has no value on labels `y`, or None when it is defined."""
    n_pos = int(y.sum())
    if y.size == 0:
        return "no windows"
    if name in ("roc_auc", "pr_auc") and n_pos == 0:
        return "no positive windows in this set"
    if name == "roc_auc" and n_pos == y.size:
        return "no negative windows in this set"
    if name == "f1" and n_pos == 0 and predicted_positive == 0:
        return "no positive windows and none predicted positive"
    return None


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Σ_bins (n_b / n) · |mean(y) − mean(p)| over equal-width probability bins; NaN with no windows."""
    return float(weighted_ece(np.ones((1, np.size(y))), y, p, n_bins)[0])


def weighted_ece(weights: np.ndarray, y: np.ndarray, p: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """(B,) ECE under each row of `weights` (B, n): Σ_bins |Σ_b w·(y − p)| / Σ w, NaN where Σ w is 0.

    The one definition of the ECE (the plain one is a single row of ones). Each row's bins are summed by one
    bincount, so it holds (n,) arrays beside `weights`: an (n, bins) one-hot route held two float64 arrays of
    0.7 GiB for the 3M validation windows of a 20M-event log.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)  # (n,)
    residual = y - p
    gap = np.array([np.bincount(bins, weights=row * residual, minlength=n_bins) for row in weights])
    return _ratio(np.abs(gap.reshape(len(weights), n_bins)).sum(axis=1), weights.sum(axis=1))


def point_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float | None]:
    """scikit-learn's value of each metric in METRICS; None where undefined. F1 at `threshold`."""
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    predicted = p >= threshold
    values: dict[str, float | None] = {}
    for name in METRICS:
        if undefined_reason(name, y, int(predicted.sum())):
            values[name] = None
            continue
        if name == "roc_auc":
            values[name] = float(roc_auc_score(y, p))
        elif name == "pr_auc":
            values[name] = float(average_precision_score(y, p))
        elif name == "f1":
            values[name] = float(f1_score(y, predicted, zero_division=0.0))
        elif name == "accuracy":
            values[name] = float(accuracy_score(y, p >= ACCURACY_THRESHOLD))
        elif name == "all_zeros_accuracy":
            values[name] = float(accuracy_score(y, np.zeros_like(y)))
        elif name == "brier":
            values[name] = float(brier_score_loss(y, p, pos_label=1))
        else:
            values[name] = expected_calibration_error(y, p)
    return values


def session_resample_weights(groups: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) weight of each window in each replicate: how often its session was drawn."""
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    n_sessions = int(inverse.max()) + 1 if inverse.size else 0
    counts = rng.multinomial(n_sessions, np.full(n_sessions, 1.0 / max(n_sessions, 1)), size=n_boot)  # (B, S)
    return counts[:, inverse.reshape(-1)].astype(np.float64)


def weighted_metric(name: str, weights: np.ndarray, y: np.ndarray, p: np.ndarray, threshold: float) -> np.ndarray:
    """(B,) metric `name` under each row of `weights` (B, n); NaN where undefined in that replicate."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    total = weights.sum(axis=1)
    if name == "roc_auc":
        return _weighted_roc_auc(weights, y, p)
    if name == "pr_auc":
        return _weighted_average_precision(weights, y, p)
    if name == "ece":
        return weighted_ece(weights, y, p)
    if name == "brier":
        return _ratio(weights @ (p - y) ** 2, total)
    if name == "all_zeros_accuracy":
        return _ratio(weights @ (1.0 - y), total)
    if name == "accuracy":
        return _ratio(weights @ ((p >= ACCURACY_THRESHOLD) == (y > 0)).astype(np.float64), total)
    if name == "f1":
        predicted = (p >= threshold).astype(np.float64)
        tp, fp, fn = weights @ (predicted * y), weights @ (predicted * (1 - y)), weights @ ((1 - predicted) * y)
        return _ratio(2 * tp, 2 * tp + fp + fn)  # NaN only with no positives and none predicted
    raise ValueError(f"unknown metric {name!r}; known: {METRICS}")


def bootstrap_estimates(
    y: np.ndarray,
    p: np.ndarray,
    groups: np.ndarray,
    threshold: float = 0.5,
    metrics: Iterable[str] = METRICS,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Each metric's scikit-learn value with a percentile 95 % CI over `n_boot` session resamples.

    y (n,) 0/1 labels, p (n,) scores, groups (n,) session of each window; F1 at `threshold`.
    """
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    names = list(metrics)
    points = point_metrics(y, p, threshold)
    predicted_positive = int((p >= threshold).sum())
    replicates = _replicates(names, y, p, np.asarray(groups), threshold, n_boot, seed)
    out: dict[str, Estimate] = {}
    for name in names:
        reason = undefined_reason(name, y, predicted_positive)
        if reason:
            out[name] = Estimate(None, reason=reason)
            continue
        out[name] = _interval(points[name], replicates[name])
    return out


def _replicates(
    names: list[str], y: np.ndarray, p: np.ndarray, groups: np.ndarray, threshold: float, n_boot: int, seed: int
) -> dict[str, np.ndarray]:
    """{name: (n_boot,)} replicate values, computed in blocks of replicates."""
    rng = np.random.default_rng(seed)
    block = max(1, min(n_boot, _BLOCK_CELLS // max(y.size, 1)))
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    if y.size == 0 or n_boot == 0:
        return {name: np.full(n_boot, np.nan) for name in names}
    for start in range(0, n_boot, block):
        weights = session_resample_weights(groups, min(block, n_boot - start), rng)
        for name in names:
            parts[name].append(weighted_metric(name, weights, y, p, threshold))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def _interval(value: float | None, replicates: np.ndarray) -> Estimate:
    valid = replicates[np.isfinite(replicates)]
    if value is None:
        return Estimate(None, reason="undefined")
    if replicates.size == 0:
        return Estimate(value)  # n_boot = 0: no interval asked for
    if valid.size < _MIN_VALID_SHARE * replicates.size or valid.size == 0:
        return Estimate(value, reason=f"CI omitted: defined in only {valid.size}/{replicates.size} resamples")
    tail = 100 * (1 - CI_LEVEL) / 2
    low, high = np.percentile(valid, [tail, 100 - tail])
    return Estimate(value, float(low), float(high))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.full(np.shape(num), np.nan), where=den > 0)


def _sorted_cumulative(weights: np.ndarray, y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, T) weighted true / false positives at each distinct score, highest score first."""
    order = np.argsort(-p, kind="mergesort")
    p_sorted, y_sorted, w_sorted = p[order], y[order], weights[:, order]
    last_of_score = np.r_[np.flatnonzero(np.diff(p_sorted)), p_sorted.size - 1]
    tps = np.cumsum(w_sorted * y_sorted, axis=1)[:, last_of_score]
    fps = np.cumsum(w_sorted * (1.0 - y_sorted), axis=1)[:, last_of_score]
    return tps, fps


def _weighted_roc_auc(weights: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    tps, fps = _sorted_cumulative(weights, y, p)
    zeros = np.zeros((weights.shape[0], 1))
    tpr = _ratio(np.hstack([zeros, tps]), tps[:, -1:])
    fpr = _ratio(np.hstack([zeros, fps]), fps[:, -1:])
    return np.trapezoid(tpr, fpr, axis=1)  # NaN rows (no positives or no negatives) stay NaN


def _weighted_average_precision(weights: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """AP = Σ_k (R_k − R_{k−1}) · P_k over distinct thresholds, as average_precision_score."""
    tps, fps = _sorted_cumulative(weights, y, p)
    precision = np.nan_to_num(_ratio(tps, tps + fps))
    recall = _ratio(tps, tps[:, -1:])
    recall_steps = np.diff(np.hstack([np.zeros((weights.shape[0], 1)), recall]), axis=1)
    return np.sum(recall_steps * precision, axis=1)


def paired_difference(
    metric: str,
    y: np.ndarray,
    p_a: np.ndarray,
    p_b: np.ndarray,
    groups: np.ndarray,
    thresholds: tuple[float, float] = (0.5, 0.5),
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Estimate:
    """metric(a) − metric(b) on the same windows, with a paired session-bootstrap CI.

    Both models are scored on the same resampled sessions in each replicate, so the interval reflects
    the uncertainty of the difference, which is much smaller than what two separate intervals suggest.
    """
    y = np.asarray(y, dtype=np.int64)
    a = bootstrap_estimates(y, p_a, groups, thresholds[0], (metric,), n_boot=0, seed=seed)[metric]
    b = bootstrap_estimates(y, p_b, groups, thresholds[1], (metric,), n_boot=0, seed=seed)[metric]
    if a.value is None or b.value is None:
        return Estimate(None, reason=a.reason or b.reason)
    groups = np.asarray(groups)
    rep_a = _replicates([metric], y, np.asarray(p_a, dtype=np.float64), groups, thresholds[0], n_boot, seed)[metric]
    rep_b = _replicates([metric], y, np.asarray(p_b, dtype=np.float64), groups, thresholds[1], n_boot, seed)[metric]
    return _interval(a.value - b.value, rep_a - rep_b)  # same seed, same groups: the same resamples
