"""model/evaluation/bootstrap.py agrees with scikit-learn, and its intervals come from resampling sessions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    roc_auc_score,
)

from model.evaluation.bootstrap import (
    METRICS,
    bootstrap_estimates,
    expected_calibration_error,
    paired_difference,
    point_metrics,
    session_resample_weights,
    weighted_ece,
    weighted_metric,
)


def _sklearn(name: str, y: np.ndarray, p: np.ndarray, threshold: float, w: np.ndarray | None = None) -> float:
    if name == "roc_auc":
        return float(roc_auc_score(y, p, sample_weight=w))
    if name == "pr_auc":
        return float(average_precision_score(y, p, sample_weight=w))
    if name == "f1":
        return float(f1_score(y, p >= threshold, sample_weight=w))
    if name == "accuracy":
        return float(accuracy_score(y, p >= 0.5, sample_weight=w))
    if name == "all_zeros_accuracy":
        return float(accuracy_score(y, np.zeros_like(y), sample_weight=w))
    return float(brier_score_loss(y, p, sample_weight=w))


def _clustered(n_sessions: int, per_session: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows that share their session's label and (noisy) score: strongly correlated within a session."""
    rng = np.random.default_rng(seed)
    y_s = (rng.random(n_sessions) < 0.3).astype(np.int64)
    score_s = 0.35 * y_s + 0.65 * rng.random(n_sessions)
    groups = np.repeat(np.arange(n_sessions), per_session)
    p = np.clip(score_s[groups] + rng.normal(0, 0.01, groups.size), 0, 1)
    return y_s[groups], p, groups


KNOWN_Y = np.array([0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 0, 1])
KNOWN_P = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.9, 0.2, 0.65, 0.65, 0.05, 0.5, 0.3])  # ties at 0.4 and 0.65


@pytest.mark.parametrize("name", [m for m in METRICS if m != "ece"])
def test_point_metrics_agree_with_sklearn(name: str) -> None:
    assert point_metrics(KNOWN_Y, KNOWN_P, threshold=0.45)[name] == pytest.approx(
        _sklearn(name, KNOWN_Y, KNOWN_P, 0.45)
    )


def test_known_values() -> None:
    values = point_metrics(KNOWN_Y, KNOWN_P, threshold=0.45)
    # 5 positives × 7 negatives: negatives below each positive 3 + 7 + 7 + 6.5 (one tie at 0.65) + 3.
    assert values["roc_auc"] == pytest.approx(26.5 / 35)
    assert values["all_zeros_accuracy"] == pytest.approx(7 / 12)
    # F1 at 0.45: predicted positive {0.8, 0.9, 0.65, 0.65, 0.5} → tp 3, fp 2, fn 2.
    assert values["f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 2))


@pytest.mark.parametrize("name", [m for m in METRICS if m != "ece"])
def test_weighted_replicates_agree_with_sklearn_sample_weight(name: str) -> None:
    rng = np.random.default_rng(7)
    y = (rng.random(400) < 0.2).astype(np.int64)
    p = np.round(np.clip(0.3 * y + 0.7 * rng.random(400), 0, 1), 2)  # rounding makes ties
    weights = rng.integers(0, 4, size=(3, 400)).astype(np.float64)
    got = weighted_metric(name, weights, y, p, threshold=0.4)
    for b in range(3):
        assert got[b] == pytest.approx(_sklearn(name, y, p, 0.4, weights[b]), rel=1e-9)


def test_ece_known_cases() -> None:
    assert expected_calibration_error(np.array([1, 0, 0, 0]), np.full(4, 0.25)) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([1, 0, 0, 0]), np.full(4, 0.9)) == pytest.approx(0.65)
    # two bins: [0.1]*2 with 1 positive (gap 0.4), [0.95]*2 with 2 positives (gap 0.05), equal weight.
    y, p = np.array([1, 0, 1, 1]), np.array([0.1, 0.1, 0.95, 0.95])
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.4 + 0.5 * 0.05)


def test_ci_contains_point_estimate_and_narrows_with_more_sessions() -> None:
    widths = []
    for n_sessions in (150, 1500):
        y, p, groups = _clustered(n_sessions, per_session=5, seed=1)
        estimates = bootstrap_estimates(y, p, groups, threshold=0.5, n_boot=400, seed=3)
        for name in ("roc_auc", "pr_auc", "f1", "accuracy", "brier", "ece"):
            est = estimates[name]
            assert est.ci_low is not None and est.ci_high is not None and est.value is not None
            assert est.ci_low <= est.value <= est.ci_high, name
        widths.append(estimates["roc_auc"].ci_high - estimates["roc_auc"].ci_low)  # type: ignore[operator]
    assert widths[1] < 0.5 * widths[0]  # 10× the sessions: under half the width (about 1/√10 expected)


def test_ci_resamples_sessions_not_windows() -> None:
    y, p, groups = _clustered(80, per_session=40, seed=2)
    by_session = bootstrap_estimates(y, p, groups, n_boot=400, seed=0)["roc_auc"]
    by_window = bootstrap_estimates(y, p, np.arange(y.size), n_boot=400, seed=0)["roc_auc"]
    width = by_session.ci_high - by_session.ci_low  # type: ignore[operator]
    naive = by_window.ci_high - by_window.ci_low  # type: ignore[operator]
    assert width > 3 * naive  # 40 near-copies per session are not 40 independent observations


def test_resample_weights_are_per_session() -> None:
    groups = np.array([5, 5, 5, 9, 9, 2, 7, 7, 7, 7])
    weights = session_resample_weights(groups, 200, np.random.default_rng(0))
    assert weights.shape == (200, 10)
    for g in np.unique(groups):
        members = weights[:, groups == g]
        assert (members == members[:, :1]).all()  # every window of a session shares its weight
    per_session = weights[:, [0, 3, 5, 6]]  # one window per session: the draw counts
    assert (per_session.sum(axis=1) == 4).all()  # each replicate draws as many sessions as there are


def test_bootstrap_is_seeded() -> None:
    y, p, groups = _clustered(100, per_session=3, seed=4)
    a = bootstrap_estimates(y, p, groups, n_boot=100, seed=11)["pr_auc"]
    b = bootstrap_estimates(y, p, groups, n_boot=100, seed=11)["pr_auc"]
    c = bootstrap_estimates(y, p, groups, n_boot=100, seed=12)["pr_auc"]
    assert a == b
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)


def test_undefined_metrics_are_null_with_a_reason() -> None:
    y = np.zeros(20, dtype=np.int64)
    p = np.linspace(0, 0.4, 20)
    estimates = bootstrap_estimates(y, p, np.arange(20) // 4, threshold=0.5, n_boot=50)
    for name in ("roc_auc", "pr_auc", "f1"):
        assert estimates[name].value is None
        assert estimates[name].reason
        assert "reason" in estimates[name].to_dict()
    assert estimates["all_zeros_accuracy"].value == 1.0
    assert estimates["brier"].value == pytest.approx(float(np.mean(p**2)))
    empty = bootstrap_estimates(np.zeros(0), np.zeros(0), np.zeros(0), n_boot=10)
    assert all(e.value is None for e in empty.values())


def test_paired_difference_of_a_model_with_itself_is_zero() -> None:
    y, p, groups = _clustered(200, per_session=4, seed=5)
    same = paired_difference("pr_auc", y, p, p, groups, n_boot=100)
    assert (same.value, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0)
    worse = np.clip(p + np.random.default_rng(0).normal(0, 0.3, p.size), 0, 1)
    diff = paired_difference("roc_auc", y, p, worse, groups, n_boot=200)
    assert diff.value is not None and diff.ci_low is not None and diff.ci_low > 0


def _slow_ece(w: np.ndarray, y: np.ndarray, p: np.ndarray, n_bins: int = 15) -> float:
    """The ECE written out: per bin, the weighted share of windows times |mean label − mean score|."""
    total, ece = sum(float(wi) for wi in w), 0.0
    bin_of = [min(int(float(pi) * n_bins), n_bins - 1) for pi in p]  # [k/bins, (k+1)/bins); 1.0 in the last
    for b in range(n_bins):
        members = [i for i in range(len(p)) if bin_of[i] == b]
        mass = sum(float(w[i]) for i in members)
        if mass == 0:
            continue
        mean_y = sum(float(w[i] * y[i]) for i in members) / mass
        mean_p = sum(float(w[i] * p[i]) for i in members) / mass
        ece += mass / total * abs(mean_y - mean_p)
    return ece


def test_weighted_ece_is_the_slow_definition() -> None:
    """One ECE for the plain figure and the bootstrap's weighted replicates; both match the written-out sum."""
    rng = np.random.default_rng(4)
    p = rng.uniform(size=600)
    p[:5] = [0.0, 1.0, 1 / 15, 14 / 15, 0.5]  # the edges: 1.0 joins the last bin
    y = (rng.uniform(size=600) < p**2).astype(np.int64)
    weights = rng.integers(0, 4, size=(6, 600)).astype(np.float64)
    got = weighted_ece(weights, y, p)
    for row, value in zip(weights, got, strict=True):
        assert abs(value - _slow_ece(row, y, p)) < 1e-12
    assert abs(expected_calibration_error(y, p) - _slow_ece(np.ones(600), y, p)) < 1e-12
    assert np.isnan(expected_calibration_error(np.zeros(0), np.zeros(0)))
    assert np.isnan(weighted_ece(np.zeros((1, 600)), y, p)[0])  # nothing drawn: undefined, not 0


def test_ece_replicates_hold_no_one_hot_matrix() -> None:
    """Memory of the weights' size, not (n, bins): the 20M-event run's validation set scored in one row."""
    import tracemalloc

    n = 400_000
    rng = np.random.default_rng(0)
    p, y, ones = rng.uniform(size=n), (rng.uniform(size=n) < 0.3).astype(np.float64), np.ones((1, n))
    tracemalloc.start()
    weighted_ece(ones, y, p)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 6 * n * 8  # a few (n,) float64 arrays; an (n, 15) one-hot is 15
