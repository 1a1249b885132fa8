"""The alert policy: when a session's abandonment risk is worth a coupon alert (docs/architecture.md §4).

numpy only, part of the shared contract: training picks the policy, the card stores it, serving applies
it. A coupon engine has a budget, not an F1, so the threshold is picked on validation *sessions* for a
stated budget (alert at most B % of sessions) or a precision target.

The unit is the session. A session is alerted when, at some click, its cart is open and its risk is at or
above the threshold (`model.risk.alert_due`, the rule append_event.lua/write_scores.lua mirror); its
alert score is therefore its highest risk over the prefixes with an open cart (−inf when the cart never
opened). It is a positive when it ends with its cart open (model.data.dataset.abandonment_targets).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

PolicyKind = Literal["budget", "precision"]
POLICY_KINDS: tuple[str, ...] = ("budget", "precision")
DEFAULT_BUDGET = 0.10  # alert at most 10 % of sessions
REPORT_BUDGETS: tuple[float, ...] = (0.05, 0.10, 0.20)  # the evaluation report's policy table


@dataclass(frozen=True)
class AlertPolicy:
    """A threshold on abandonment risk and what it did on the validation sessions it was picked on."""

    kind: str  # one of POLICY_KINDS
    target: float  # budget: largest share of sessions alerted; precision: lowest precision
    threshold: float  # alert when the cart is open and risk ≥ threshold
    alert_share: float  # share of validation sessions alerted (the expected share in serving)
    precision: float | None  # of the alerted validation sessions, the share that ended with the cart open
    recall: float | None  # of the validation sessions that ended with the cart open, the share alerted
    n_sessions: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AlertPolicy:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})

    @property
    def label(self) -> str:
        """Short text carried by each alert, e.g. "budget:0.1"."""
        return f"{self.kind}:{self.target:g}"


def session_alert_scores(
    risk: npt.ArrayLike, cart_open: npt.ArrayLike, session: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """(sessions (S,), score (S,)): per session, its highest risk over prefixes with an open cart; −inf
    when its cart never opened. risk, cart_open, session (n,) per prefix."""
    risk_arr = np.asarray(risk, dtype=np.float64)
    ids, inverse = np.unique(np.asarray(session), return_inverse=True)
    score = np.full(ids.size, -np.inf)
    open_rows = np.asarray(cart_open, dtype=bool)
    np.maximum.at(score, inverse[open_rows], risk_arr[open_rows])
    return ids, score


def session_any(flags: npt.ArrayLike, session: npt.ArrayLike) -> np.ndarray:
    """(S,) bool: any prefix of the session has the flag, sessions in np.unique order."""
    _, inverse = np.unique(np.asarray(session), return_inverse=True)
    out = np.zeros(inverse.max() + 1 if inverse.size else 0, dtype=bool)
    np.logical_or.at(out, inverse, np.asarray(flags, dtype=bool))
    return out


def policy_outcomes(threshold: float, score: npt.ArrayLike, positive: npt.ArrayLike) -> dict[str, Any]:
    """Share alerted, precision and recall of alerting sessions whose score reaches `threshold`."""
    s, y = np.asarray(score, dtype=np.float64), np.asarray(positive, dtype=bool)
    alerted = s >= threshold
    n_alerted, hits, positives = int(alerted.sum()), int((alerted & y).sum()), int(y.sum())
    return {
        "n_sessions": int(s.size),
        "n_alerted": n_alerted,
        "alert_share": n_alerted / s.size if s.size else 0.0,
        "precision": hits / n_alerted if n_alerted else None,
        "recall": hits / positives if positives else None,
    }


def budget_threshold(score: npt.ArrayLike, budget: float) -> float:
    """The lowest threshold that alerts at most `budget` of the sessions (ties can make it fewer)."""
    s = np.sort(np.asarray(score, dtype=np.float64))[::-1]  # riskiest first
    allowed = int(np.floor(budget * s.size + 1e-9))
    finite = s[np.isfinite(s)]
    if allowed >= finite.size:  # the budget covers every session whose cart ever opened
        return float(finite.min()) if finite.size else 1.0
    # Strictly above the (allowed+1)-th score: that session and everything below it stay quiet.
    return float(np.nextafter(s[allowed], np.inf))


def precision_threshold(score: npt.ArrayLike, positive: npt.ArrayLike, target: float) -> float:
    """The lowest threshold whose alerted sessions reach `target` precision (the most recall at that
    precision); the most precise threshold, with a warning, when none reaches it."""
    s, y = np.asarray(score, dtype=np.float64), np.asarray(positive, dtype=bool)
    keep = np.isfinite(s)
    s, y = s[keep], y[keep]
    if s.size == 0:
        return 1.0
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last_of_value = np.r_[s[1:] != s[:-1], True]  # a threshold at s[i] alerts rows 0..i of its last tie
    precision = (np.cumsum(y) / np.arange(1, s.size + 1))[last_of_value]
    values = s[last_of_value]
    reaching = np.flatnonzero(precision >= target)
    if reaching.size:
        return float(values[reaching[-1]])
    best = int(np.argmax(precision))
    log.warning("no threshold reaches precision %.3f on validation; the best is %.3f", target, precision[best])
    return float(values[best])


def pick_policy(kind: str, target: float, score: npt.ArrayLike, positive: npt.ArrayLike) -> AlertPolicy:
    """Pick the threshold for a budget or a precision target on (validation) sessions."""
    if kind not in POLICY_KINDS:
        raise ValueError(f"unknown policy kind {kind!r}; expected one of {', '.join(POLICY_KINDS)}")
    if not 0.0 < target <= 1.0:
        raise ValueError(f"policy target must be in (0, 1], got {target}")
    threshold = budget_threshold(score, target) if kind == "budget" else precision_threshold(score, positive, target)
    found = policy_outcomes(threshold, score, positive)
    return AlertPolicy(
        kind=kind, target=float(target), threshold=threshold, alert_share=found["alert_share"],
        precision=found["precision"], recall=found["recall"], n_sessions=found["n_sessions"],
    )
