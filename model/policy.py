"""Decision policies: a threshold picked for a budget or a precision target, not by F1 (docs/architecture.md §4).

numpy only, part of the shared contract: training picks the policies, the card stores them, serving applies
them. A consumer of a decision has a budget or a precision it needs, not an F1, so each threshold is picked on
validation data for a stated budget (act on at most B % of the units) or a precision target. Two use it:

- the alert policy (`ModelCard.policy`, τ_risk): when a session's abandonment risk is worth a coupon alert;
  its unit is the session;
- the purchase policy (`ModelCard.purchase_policy`, τ_order): when a click's p_make_order answers the intent
  `purchase`; its unit is the click (a window, positive when an order follows it). An F1-best τ_order sits
  below the base rate of a rare label, so an average first click would answer `purchase`.

For alerts the unit is the session. A session is alerted when, at some click, its cart is open and its risk is at or
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
SESSIONS, WINDOWS = "sessions", "windows"  # what a policy counts: alerted sessions, clicks answered `purchase`
DEFAULT_BUDGET = 0.10  # alert at most 10 % of sessions
REPORT_BUDGETS: tuple[float, ...] = (0.05, 0.10, 0.20)  # the evaluation report's policy table
# `purchase` on at most 5 % of clicks, the likeliest to be followed by an order: a budget holds for any shop,
# where a precision target below a shop's own order rate would make every click a `purchase`.
DEFAULT_PURCHASE_BUDGET = 0.05
REPORT_PURCHASE_TARGETS: tuple[tuple[str, float], ...] = (
    ("precision", 0.2), ("precision", 0.25), ("precision", 0.3), ("budget", 0.05), ("budget", 0.10),
)  # the evaluation report's purchase-policy table


@dataclass(frozen=True)
class AlertPolicy:
    """A threshold on a score and what it did on the validation units it was picked on.

    The names speak of alerts (the first use); for the purchase policy read "answered `purchase`" for
    "alerted" and "clicks" for "sessions".
    """

    kind: str  # one of POLICY_KINDS
    target: float  # budget: largest share of units acted on; precision: lowest precision
    threshold: float  # act when the score ≥ threshold (alerts: and the cart is open)
    alert_share: float  # share of validation units acted on (the expected share in serving)
    precision: float | None  # of the units acted on, the share that were positives
    recall: float | None  # of the positive units, the share acted on
    n_sessions: int = 0  # how many validation units it was picked on (sessions, or windows per `unit`)
    unit: str = SESSIONS  # SESSIONS or WINDOWS; cards written before the purchase policy have sessions

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


def pick_policy(
    kind: str, target: float, score: npt.ArrayLike, positive: npt.ArrayLike, unit: str = SESSIONS
) -> AlertPolicy:
    """Pick the threshold for a budget or a precision target on (validation) units: one score and one truth
    per unit, sessions for the alert policy, windows for the purchase policy."""
    if kind not in POLICY_KINDS:
        raise ValueError(f"unknown policy kind {kind!r}; expected one of {', '.join(POLICY_KINDS)}")
    if not 0.0 < target <= 1.0:
        raise ValueError(f"policy target must be in (0, 1], got {target}")
    threshold = budget_threshold(score, target) if kind == "budget" else precision_threshold(score, positive, target)
    found = policy_outcomes(threshold, score, positive)
    return AlertPolicy(
        kind=kind, target=float(target), threshold=threshold, alert_share=found["alert_share"],
        precision=found["precision"], recall=found["recall"], n_sessions=found["n_sessions"], unit=unit,
    )
