"""How well the abandonment risk of docs/architecture.md §4 serves its users: the coupon engine and the ops dashboard.

All on test windows of one model: the risk `abandonment_risk(p_add_cart, p_make_order, cart_so_far)`
(model/risk.py) against the event-level truth `abandonment_targets` (model/data/dataset.py). Both follow
the cart semantics of model/risk.py: add_cart opens a cart, an order closes it. A session "abandons"
when its cart is open at its last click; a purchase session is one with an order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.data.dataset import Dataset, SessionClass, WindowSet
from model.data.published import AGGREGATE_ABANDONMENT_ERROR_PP
from model.evaluation.bootstrap import Estimate, bootstrap_estimates
from model.features import ORDER, utc_offsets
from model.risk import CART_CLOSED, abandonment_risk, cart_states
from model.training.thresholds import abandonment_inputs

COUPON_TOP_PCT: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0)


@dataclass(frozen=True)
class RiskWindows:
    """Per test window (n,): the risk, its truth, and where the window sits."""

    risk: np.ndarray
    target: np.ndarray  # abandonment_targets, 0/1
    abandons: np.ndarray  # the window's session ends in cart abandonment (its cart is open at the end)
    session: np.ndarray  # ordinal into dataset.sessions
    position: np.ndarray
    session_length: np.ndarray
    session_class: np.ndarray  # SessionClass of the window's session
    order_follows: np.ndarray  # make_order target: the session still buys after this prefix
    cart: np.ndarray  # cart_so_far: the cart is open after this prefix
    closed: np.ndarray  # an order closed the cart at or before this prefix (and no add_cart since)
    order_click: np.ndarray  # the window's newest event is an order
    ts: np.ndarray  # epoch seconds of the window's newest event

    @classmethod
    def build(cls, dataset: Dataset, windows: WindowSet, proba: np.ndarray) -> RiskWindows:
        """The windows' risk, targets and session facts under model.risk's cart semantics."""
        cart, target = abandonment_inputs(dataset, windows)
        abandons = _session_max(target, windows.session)
        events = dataset.sessions.events
        rows = events.starts[windows.session] + windows.position
        return cls(
            risk=abandonment_risk(proba[:, 0], proba[:, 1], cart),
            target=target.astype(np.int64),
            abandons=abandons.astype(bool),
            session=windows.session,
            position=windows.position.astype(np.int64),
            session_length=dataset.sessions.lengths[windows.session],
            session_class=dataset.classes[windows.session],
            order_follows=windows.Y[:, 1] > 0,
            cart=cart,
            closed=cart_states(events.actions, events.starts)[rows] == CART_CLOSED,
            order_click=events.actions[rows] == ORDER,
            ts=events.ts[rows],
        )


def _session_max(values: np.ndarray, session: np.ndarray) -> np.ndarray:
    """(n,) each window's value replaced by the largest over its session's windows."""
    if session.size == 0:
        return values
    _, inverse = np.unique(session, return_inverse=True)
    top = np.full(inverse.max() + 1, -np.inf)
    np.maximum.at(top, inverse, values)
    return top[inverse]


def risk_auc(rw: RiskWindows, n_boot: int, seed: int) -> dict[str, Estimate]:
    """ROC-AUC and PR-AUC of the risk against the abandonment target, CIs over sessions."""
    return bootstrap_estimates(rw.target, rw.risk, rw.session, metrics=("roc_auc", "pr_auc"), n_boot=n_boot, seed=seed)


def _rate_row(risk: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    if risk.size == 0:
        return {"n_windows": 0, "predicted": None, "actual": None, "abs_error_pp": None}
    predicted, actual = float(risk.mean()), float(target.mean())
    return {
        "n_windows": int(risk.size),
        "predicted": predicted,
        "actual": actual,
        "abs_error_pp": 100 * abs(predicted - actual),
    }


def aggregate_rates(rw: RiskWindows, timezone: str) -> dict[str, Any]:
    """Predicted (mean risk) vs actual abandonment rate: over all test prefixes, at each session's
    first click, and per local day of the test period."""
    local_day = np.floor_divide(np.floor(rw.ts).astype(np.int64) + utc_offsets(rw.ts, timezone), 86400)
    first = rw.position == 0
    per_day = []
    for day in np.unique(local_day):
        on_day = local_day == day
        row = {"day": str(np.datetime64(int(day), "D")), **_rate_row(rw.risk[on_day], rw.target[on_day])}
        row["first_click"] = _rate_row(rw.risk[on_day & first], rw.target[on_day & first])
        per_day.append(row)
    errors = [d["abs_error_pp"] for d in per_day if d["abs_error_pp"] is not None]
    return {
        "all_prefixes": _rate_row(rw.risk, rw.target),
        "first_click": _rate_row(rw.risk[first], rw.target[first]),
        "per_day": per_day,
        "max_daily_abs_error_pp": max(errors) if errors else None,
        "median_daily_abs_error_pp": float(np.median(errors)) if errors else None,
        "published_abs_error_pp": AGGREGATE_ABANDONMENT_ERROR_PP,
        "timezone": timezone,
    }


def _per_session(values: np.ndarray, session: np.ndarray, reduce: Any) -> tuple[np.ndarray, np.ndarray]:
    """(sessions, reduced values) over the contiguous runs of `session` (windows keep event order)."""
    if session.size == 0:
        return session, values
    starts = np.r_[0, np.flatnonzero(np.diff(session)) + 1]
    return session[starts], reduce.reduceat(values, starts)


def time_to_detection(rw: RiskWindows, tau_risk: float) -> dict[str, Any]:
    """For test sessions that end with an open cart: clicks before the end at which the risk first
    reaches τ_risk. Also how often it fires on sessions that do not abandon (the coupon's cost), and on
    buyers: before their order, and at or after it while the order keeps the cart closed."""
    crossed = rw.risk >= tau_risk
    big = np.iinfo(np.int64).max
    first_cross_pos = np.where(crossed, rw.position, big)
    sessions, first_pos = _per_session(first_cross_pos, rw.session, np.minimum)
    _, length = _per_session(rw.session_length, rw.session, np.maximum)
    _, first_cart_pos = _per_session(np.where(rw.cart, rw.position, big), rw.session, np.minimum)
    _, cls = _per_session(rw.session_class.astype(np.int64), rw.session, np.maximum)
    _, abandon = _per_session(rw.abandons, rw.session, np.maximum)
    detected = abandon & (first_pos != big)
    before_end = (length - 1 - first_pos)[detected]  # clicks still to come when the risk first fired
    _, buyer_alarm = _per_session((crossed & rw.order_follows).astype(np.int64), rw.session, np.maximum)
    _, any_alarm = _per_session(crossed.astype(np.int64), rw.session, np.maximum)
    _, closed_alarm = _per_session((crossed & rw.closed).astype(np.int64), rw.session, np.maximum)
    n_abandon = int(abandon.sum())
    out: dict[str, Any] = {
        "tau_risk": float(tau_risk),
        "n_abandon_sessions": n_abandon,
        "detected_share": float(detected.sum() / n_abandon) if n_abandon else None,
        "clicks_before_end": _describe(before_end),
        # With items in the cart the risk is 1 − p_make_order, so firing at the add_cart is easy;
        # firing before it is what the model itself contributes.
        "detected_before_first_add_cart_share": float((detected & (first_pos < first_cart_pos)).sum() / n_abandon)
        if n_abandon
        else None,
        "histogram": {str(k): int(v) for k, v in zip(*np.unique(before_end, return_counts=True), strict=True)},
    }
    for name, cls_value, alarm in (
        ("browse_sessions_alarmed_share", SessionClass.BROWSE, any_alarm),
        ("purchase_sessions_alarmed_before_order_share", SessionClass.PURCHASE, buyer_alarm),
        ("purchase_sessions_alarmed_after_order_share", SessionClass.PURCHASE, closed_alarm),
    ):
        members = cls == cls_value
        out[name] = float(alarm[members].mean()) if members.any() else None
    out["n_sessions"] = int(sessions.size)
    at_order = rw.order_click
    out["risk_at_order_click"] = {**_describe(rw.risk[at_order]),
                                  "alarmed_share": float(crossed[at_order].mean()) if at_order.any() else None}
    return out


def _describe(values: np.ndarray) -> dict[str, float | int | None]:
    if values.size == 0:
        return {"n": 0, "mean": None, "median": None, "p25": None, "p75": None}
    p25, median, p75 = np.percentile(values, [25, 50, 75])
    return {
        "n": int(values.size),
        "mean": float(values.mean()),
        "median": float(median),
        "p25": float(p25),
        "p75": float(p75),
    }


def _top_k(score: np.ndarray, truth: np.ndarray, pct: float) -> dict[str, Any]:
    n_selected = max(1, math.ceil(score.size * pct / 100)) if score.size else 0
    chosen = np.argsort(-score, kind="stable")[:n_selected]
    hits, positives = int(truth[chosen].sum()), int(truth.sum())
    return {
        "top_pct": pct,
        "n_selected": n_selected,
        "precision": hits / n_selected if n_selected else None,
        "recall": hits / positives if positives else None,
    }


def coupon_policy(rw: RiskWindows, top_pct: tuple[float, ...] = COUPON_TOP_PCT) -> dict[str, Any]:
    """Precision and recall of giving coupons to the top k % by risk.

    sessions: a session's score is its highest risk at any prefix (it reached the at-risk list at some
    click); positive when the session ends with an open cart. windows: every test prefix is one
    snapshot of the at-risk index; positive when the abandonment target holds.
    """
    sessions, max_risk = _per_session(rw.risk, rw.session, np.maximum)
    _, abandons = _per_session(rw.abandons, rw.session, np.maximum)
    abandon = abandons.astype(np.int64)
    return {
        "sessions": {
            "n": int(sessions.size),
            "base_rate": float(abandon.mean()) if abandon.size else None,
            "top_k": [_top_k(max_risk, abandon, k) for k in top_pct],
        },
        "windows": {
            "n": int(rw.risk.size),
            "base_rate": float(rw.target.mean()) if rw.target.size else None,
            "top_k": [_top_k(rw.risk, rw.target, k) for k in top_pct],
        },
    }


def evaluate_abandonment(
    dataset: Dataset, test: WindowSet, proba: np.ndarray, tau_risk: float, timezone: str, n_boot: int, seed: int
) -> tuple[dict[str, Any], RiskWindows]:
    """Everything about the risk for one model's test predictions, as a metrics.json section."""
    rw = RiskWindows.build(dataset, test, proba)
    auc = risk_auc(rw, n_boot, seed)
    section = {
        "roc_auc": auc["roc_auc"].to_dict(),
        "pr_auc": auc["pr_auc"].to_dict(),
        "base_rate": float(rw.target.mean()) if rw.target.size else None,
        "aggregate_rate": aggregate_rates(rw, timezone),
        "time_to_detection": time_to_detection(rw, tau_risk),
        "coupon_policy": coupon_policy(rw),
    }
    return section, rw
