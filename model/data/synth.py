"""Seeded synthetic clickstream calibrated to the published statistics (docs/architecture.md §5).

It is the embedded default data source: it proves the pipeline end to end, and says nothing about
accuracy on a real shop. How it works, in order:

1. classes: exact counts from `CLASS_SHARE` (largest remainder), so the shares carry no sampling noise;
2. lengths: a lognormal discretised and truncated to [3, 250], with `mu` solved per class so the
   expected length is `MEAN_LENGTH[c]`; drawn by stratified inverse CDF, so the marginals are tight;
3. actions: the class's mandatory events (purchase: add_cart + order; abandonment: add_cart), the rest
   multinomial with weights chosen so the pooled share of every action equals `ACTION_SHARE[c]`;
4. order within a session: sort by a noisy per-action "funnel depth" key (landing pages early, cart
   and order late; an order always after the mandatory add_cart);
5. time: session starts over `SPAN_DAYS` with a diurnal and weekly profile; heavy-tailed dwell times;
6. shoppers and a catalogue (for the context of model/context.py), from a stream of their own so that
   steps 1-5 draw exactly what they drew before: sessions go to returning shoppers (Zipf-like activity;
   a shopper's sessions never overlap, so the 30-min gap rule would keep them apart), items to
   categories; a session browses a few items of one category, carts one of them and orders what it carted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np

from model.features import ACTION_INDEX, ACTIONS, N_ACTIONS, EventLog

logger = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = ("browse", "cart_abandonment", "purchase")
BROWSE, CART_ABANDONMENT, PURCHASE = range(3)

# --- published targets (the test, the CLI and docs/synthetic.md read these) ---
CLASS_SHARE: dict[str, float] = {"browse": 0.909, "cart_abandonment": 0.0596, "purchase": 0.0314}
MEAN_LENGTH: dict[str, float] = {"browse": 11.05, "cart_abandonment": 18.8, "purchase": 19.54}
MEDIAN_LENGTH = 8
MIN_LENGTH, MAX_LENGTH = 3, 250  # the published curation drops sessions outside this range
# Table 1: share of a class's events by action. Actions not listed share the remainder (below).
PUBLISHED_ACTION_SHARE: dict[str, dict[str, float]] = {
    "browse": {"category": 0.585, "view_product": 0.335, "view_cart": 0.006, "add_cart": 0.0, "order": 0.0},
    "cart_abandonment": {
        "category": 0.406, "view_product": 0.265, "view_cart": 0.183, "add_cart": 0.092, "order": 0.0,
    },
    "purchase": {"category": 0.205, "view_product": 0.234, "view_cart": 0.372, "add_cart": 0.083, "order": 0.054},
}  # fmt: skip
# Tolerances of the calibration check (tests/test_synth.py, and the CLI's table).
CLASS_SHARE_TOL = 0.005
ACTION_SHARE_TOL = 0.02
MEAN_LENGTH_TOL_REL = 0.10
MEDIAN_LENGTH_TOL = 1

# --- our choices, where the published data is silent ---
# How the unlisted remainder (5-7 % of events) splits over the other actions.
REMAINDER_WEIGHT: dict[str, float] = {
    "home": 4, "search": 3, "account": 2, "recommend": 2, "ask_question": 1, "contact": 1, "concerned": 1,
}  # fmt: skip
# Events every session of a class has. add_cart is listed first: it takes position 0 (generate_sessions).
MANDATORY: dict[str, dict[str, int]] = {
    "browse": {}, "cart_abandonment": {"add_cart": 1}, "purchase": {"add_cart": 1, "order": 1},
}  # fmt: skip
# sigma of log-length: 0.9 puts the mixture's median at 8 with ~3 pp of CDF margin either side.
LENGTH_SIGMA = 0.9
# Funnel depth in [0, 1]: where an action tends to sit in a session. Noise lets the funnel interleave.
FUNNEL_DEPTH: dict[str, float] = {
    "home": 0.05, "search": 0.25, "category": 0.3, "recommend": 0.45, "view_product": 0.5,
    "ask_question": 0.55, "concerned": 0.6, "contact": 0.65, "add_cart": 0.65, "view_cart": 0.75,
    "account": 0.8, "order": 0.95,
}  # fmt: skip
FUNNEL_NOISE = 0.25
# Median seconds on a page by action; lognormal with DWELL_SIGMA, so a few % exceed the 600 s clip.
DWELL_MEDIAN_S: dict[str, float] = {
    "category": 20, "view_product": 45, "home": 15, "ask_question": 90, "order": 120, "contact": 60,
    "add_cart": 10, "view_cart": 30, "search": 15, "concerned": 40, "account": 40, "recommend": 25,
}  # fmt: skip
DWELL_SIGMA = 1.3
# A longer gap would split the session under a 30-minute sessionisation (the real-log adapter's).
DWELL_CAP_S = 1799
DWELL_CLASS_FACTOR = (1.0, 1.15, 1.25)  # engaged shoppers read longer; indexed by class
FROM_AD_SHARE = (0.25, 0.28, 0.30)  # share of sessions landing from an ad; indexed by class
DEFAULT_START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday; 8 weeks run into high season (Nov)
SPAN_DAYS = 56
# Relative traffic by hour of day (shop time == UTC, FeatureConfig's default) and by weekday (Mon..Sun).
HOURLY_WEIGHT = (
    2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 9, 10, 11, 10, 9, 9, 10, 11, 12, 14, 15, 14, 10, 5,
)  # fmt: skip
WEEKDAY_WEIGHT = (1.0, 0.95, 0.95, 0.95, 1.0, 1.1, 1.25)
# Shoppers and the catalogue (step 6): our choices, the published data has neither.
SESSIONS_PER_SHOPPER = 3.0  # mean; activity is Zipf-like, so most shoppers come once and a few often
SHOPPER_ZIPF = 1.1
ITEMS_PER_SESSION = 4.0  # catalogue size = this × sessions, at least 50
ITEMS_PER_CATEGORY = 40
SESSION_POOL = 5  # items a session browses, from its category
GAP_S = 1801  # a shopper's next session starts at least this long after the previous one ends
ITEM_ACTIONS = frozenset({"view_product", "add_cart", "order", "ask_question", "concerned", "recommend"})


def action_share(cls: str) -> np.ndarray:
    """(12,) full share of a class's events by action: the published ones plus the remainder split."""
    published = PUBLISHED_ACTION_SHARE[cls]
    share = np.zeros(N_ACTIONS)
    for name, value in published.items():
        share[ACTION_INDEX[name]] = value
    rest = {n: w for n, w in REMAINDER_WEIGHT.items() if n not in published}
    for name, weight in rest.items():
        share[ACTION_INDEX[name]] = (1.0 - sum(published.values())) * weight / sum(rest.values())
    return share


@lru_cache(maxsize=8)
def length_pmf(mean: float, sigma: float = LENGTH_SIGMA) -> np.ndarray:
    """(MAX-MIN+1,) pmf over lengths MIN..MAX: discretised truncated lognormal with the given mean."""
    k = np.arange(MIN_LENGTH, MAX_LENGTH + 1)
    erf = np.vectorize(math.erf)

    def pmf(mu: float) -> np.ndarray:
        edges = np.log(np.arange(MIN_LENGTH, MAX_LENGTH + 2) - 0.5)
        p = np.diff(0.5 * (1.0 + erf((edges - mu) / (sigma * math.sqrt(2.0)))))
        return np.asarray(p / p.sum())

    lo, hi = 0.0, math.log(MAX_LENGTH)
    for _ in range(60):  # the mean grows monotonically with mu; bisection to float precision
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if float(pmf(mid) @ k) < mean else (lo, mid)
    result = pmf(0.5 * (lo + hi))
    result.setflags(write=False)  # cached and shared between calls
    return result


@dataclass(frozen=True)
class SynthLog:
    """A generated log, grouped by session (sessions in start order), events in time order.

    session_ids    (S,) str    opaque ids, unique per seed
    session_class  (S,) int8   index into CLASSES
    starts         (S,) int64  index of each session's first event
    actions        (E,) int8   index into ACTIONS
    ts             (E,) int64  epoch seconds, UTC
    from_ad        (E,) bool   set on the landing (first) event of ad sessions only
    users          (S,) int64  shopper of each session
    items          (E,) int64  item of each event, -1 on pages without one (home, search, category, ...)
    categories     (E,) int64  the item's category; a category page carries its category, other pages -1
    """

    session_ids: np.ndarray
    session_class: np.ndarray
    starts: np.ndarray
    actions: np.ndarray
    ts: np.ndarray
    from_ad: np.ndarray
    users: np.ndarray
    items: np.ndarray
    categories: np.ndarray

    def lengths(self) -> np.ndarray:
        """(S,) events per session."""
        return np.diff(np.append(self.starts, len(self.actions)))

    def to_event_log(self) -> EventLog:
        return EventLog(actions=self.actions.astype(np.int64), ts=self.ts.astype(np.float64),
                        from_ad=self.from_ad, starts=self.starts)  # fmt: skip


def _class_counts(n_sessions: int) -> np.ndarray:
    """(3,) sessions per class: largest-remainder rounding of the published shares."""
    exact = np.array([CLASS_SHARE[c] for c in CLASSES]) * n_sessions
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(counts - exact, kind="stable")[: n_sessions - counts.sum()]] += 1
    return counts


def _session_starts(rng: np.random.Generator, n: int, start: datetime) -> np.ndarray:
    """(n,) epoch seconds with the weekly and diurnal profile."""
    first_weekday = start.weekday()
    day_w = np.array([WEEKDAY_WEIGHT[(first_weekday + d) % 7] for d in range(SPAN_DAYS)])
    hour_w = np.asarray(HOURLY_WEIGHT, dtype=np.float64)
    day = rng.choice(SPAN_DAYS, size=n, p=day_w / day_w.sum())
    hour = rng.choice(24, size=n, p=hour_w / hour_w.sum())
    return int(start.timestamp()) + day * 86400 + hour * 3600 + rng.integers(0, 3600, size=n)


def _draw_actions(rng: np.random.Generator, cls: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """(E,) actions: mandatory ones at positions 0..M-1 of each session, the rest multinomial.

    With m_a mandatory events and target share f_a, drawing the others with weight
    (f_a * mean - m_a) / (mean - M) makes the pooled share of a exactly f_a in expectation.
    """
    actions = np.zeros(len(cls), dtype=np.int8)
    for c, name in enumerate(CLASSES):
        mandatory = [ACTION_INDEX[a] for a, k in MANDATORY[name].items() for _ in range(k)]
        mean, m = MEAN_LENGTH[name], np.zeros(N_ACTIONS)
        np.add.at(m, mandatory, 1)
        weight = (action_share(name) * mean - m) / (mean - len(mandatory))
        assert weight.min() >= 0.0, f"{name}: mandatory events exceed the target share"
        in_class = cls == c
        for p, action in enumerate(mandatory):  # add_cart first: generate_sessions relies on it
            actions[in_class & (pos == p)] = action
        free = in_class & (pos >= len(mandatory))
        actions[free] = rng.choice(N_ACTIONS, size=int(free.sum()), p=weight / weight.sum())
    return actions


def generate_sessions(n_sessions: int, seed: int, start: datetime | None = None) -> SynthLog:
    """Generate `n_sessions` sessions; the same (n_sessions, seed, start) gives identical output.

    `start` is the first day's midnight in shop time (naive means UTC): the daily profile counts hours
    from it. Default `DEFAULT_START`, never "now", so that output depends on the arguments alone.
    """
    if n_sessions < 1:
        raise ValueError("n_sessions must be at least 1")
    start = DEFAULT_START if start is None else start
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start  # naive means UTC
    rng = np.random.default_rng(seed)

    counts = _class_counts(n_sessions)
    session_class = np.repeat(np.arange(len(CLASSES), dtype=np.int8), counts)
    lengths = np.empty(n_sessions, dtype=np.int64)
    for c, (name, n_c) in enumerate(zip(CLASSES, counts, strict=True)):
        # stratified uniforms: one per 1/n_c slice, so the drawn lengths follow the pmf closely
        u = (rng.permutation(n_c) + rng.random(n_c)) / max(n_c, 1)
        cdf = np.cumsum(length_pmf(MEAN_LENGTH[name]))
        lengths[session_class == c] = MIN_LENGTH + np.minimum(np.searchsorted(cdf, u), len(cdf) - 1)
    session_start = _session_starts(rng, n_sessions, start)
    chrono = np.argsort(session_start, kind="stable")
    session_class, lengths, session_start = session_class[chrono], lengths[chrono], session_start[chrono]

    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    session = np.repeat(np.arange(n_sessions), lengths)  # (E,)
    pos = np.arange(len(session)) - starts[session]
    cls = session_class[session]
    actions = _draw_actions(rng, cls, pos)

    depth = np.array([FUNNEL_DEPTH[a] for a in ACTIONS])
    key = depth[actions] + rng.normal(0.0, FUNNEL_NOISE, size=len(actions))
    # The mandatory add_cart sits mid-funnel and every order after it, so an order never precedes
    # the session's first add_cart.
    first_add = (pos == 0) & (actions == ACTION_INDEX["add_cart"])  # _draw_actions puts it at position 0
    key[first_add] = rng.uniform(0.2, 0.8, size=int(first_add.sum()))
    is_order = actions == ACTION_INDEX["order"]
    key[is_order] = rng.uniform(0.85, 1.05, size=int(is_order.sum()))
    order = np.lexsort((key, session))
    actions = actions[order]

    median_s = np.array([DWELL_MEDIAN_S[a] for a in ACTIONS])[actions] * np.take(DWELL_CLASS_FACTOR, cls)
    dwell = np.exp(np.log(median_s) + rng.normal(0.0, DWELL_SIGMA, size=len(actions)))
    dwell = np.clip(np.rint(dwell), 1, DWELL_CAP_S).astype(np.int64)
    gap_before = np.concatenate([[0], dwell[:-1]])
    gap_before[starts] = 0  # a session's clock starts at its own first event
    elapsed = np.cumsum(gap_before)
    ts = session_start[session] + elapsed - elapsed[starts][session]

    from_ad = np.zeros(len(actions), dtype=bool)
    from_ad[starts] = rng.random(n_sessions) < np.take(FROM_AD_SHARE, session_class)

    width = max(6, len(str(n_sessions - 1)))
    session_ids = np.array([f"syn{seed}-{i:0{width}d}" for i in range(n_sessions)])
    ids_rng = np.random.default_rng([seed, 6])  # step 6's own stream: steps 1-5 draw what they always drew
    users = _shoppers(ids_rng, session_start, ts[np.append(starts[1:], len(ts)) - 1])
    items, categories = _catalogue(ids_rng, actions, session, starts)
    logger.info("generated %d sessions, %d events, %d shoppers (seed %d)", n_sessions, len(actions),
                len(np.unique(users)), seed)  # fmt: skip
    return SynthLog(session_ids, session_class, starts.astype(np.int64), actions, ts, from_ad, users, items, categories)


def _shoppers(rng: np.random.Generator, first_ts: np.ndarray, last_ts: np.ndarray) -> np.ndarray:
    """(S,) shopper of each session (sessions in start order): Zipf-like activity, never two overlapping sessions.

    A session drawn for a shopper whose previous session ends less than GAP_S before it goes to a new shopper.
    """
    n = len(first_ts)
    n_users = max(1, round(n / SESSIONS_PER_SHOPPER))
    weight = 1.0 / np.arange(1, n_users + 1) ** SHOPPER_ZIPF
    users = rng.choice(n_users, size=n, p=weight / weight.sum()).astype(np.int64)
    fresh = n_users
    while True:  # a few rounds: each moves the clashing sessions to shoppers of their own
        order = np.lexsort((np.arange(n), users))
        same = users[order][1:] == users[order][:-1]
        clash = same & (first_ts[order][1:] < last_ts[order][:-1] + GAP_S)
        if not clash.any():
            return users
        moved = order[1:][clash]
        users[moved] = fresh + np.arange(len(moved))
        fresh += len(moved)


def _catalogue(
    rng: np.random.Generator, actions: np.ndarray, session: np.ndarray, starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(E,) item and category of each event: a session browses SESSION_POOL items of one category, and its
    orders buy the item of its first add_cart."""
    n_sessions = len(starts)
    n_items = max(50, round(ITEMS_PER_SESSION * n_sessions))
    n_categories = max(1, n_items // ITEMS_PER_CATEGORY)
    focus = rng.integers(0, n_categories, size=n_sessions)  # (S,) the session's category
    # items of category c are c, c + n_categories, c + 2·n_categories, ...
    per_category = n_items // n_categories
    pool = focus[:, None] + n_categories * rng.integers(0, per_category, size=(n_sessions, SESSION_POOL))
    # earlier pool items are likelier: a shopper returns to what they looked at first
    pick = np.minimum(rng.geometric(0.45, size=len(actions)) - 1, SESSION_POOL - 1)
    items = pool[session, pick]
    cart = actions == ACTION_INDEX["add_cart"]
    first_cart = np.full(n_sessions, -1, dtype=np.int64)
    cart_events = np.flatnonzero(cart)[::-1]  # reversed: the first add_cart of a session is written last
    first_cart[session[cart_events]] = items[cart_events]
    ordered = (actions == ACTION_INDEX["order"]) & (first_cart[session] >= 0)
    items[ordered] = first_cart[session[ordered]]
    has_item = np.isin(actions, [ACTION_INDEX[a] for a in ITEM_ACTIONS])
    categories = np.where(has_item, items % n_categories, -1)
    categories[actions == ACTION_INDEX["category"]] = focus[session[actions == ACTION_INDEX["category"]]]
    return np.where(has_item, items, -1).astype(np.int64), categories.astype(np.int64)


def write_csv(log: SynthLog, path: Path | str, on_progress: Callable[[int], None] | None = None) -> None:
    """Write the common CSV form (docs/architecture.md §5); `on_progress(n)` is called after every n events written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sid = log.session_ids[np.repeat(np.arange(len(log.starts)), log.lengths())]
    names = np.array(ACTIONS)[log.actions]
    flags = np.where(log.from_ad, "1", "0")
    users = np.char.add("u", log.users.astype(str))[np.repeat(np.arange(len(log.starts)), log.lengths())]
    items = np.where(log.items >= 0, log.items.astype(str), "")
    categories = np.where(log.categories >= 0, log.categories.astype(str), "")
    chunk = 50_000
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("session_id,ts,action,from_ad,user_id,item_id,category_id\n")
        for lo in range(0, len(sid), chunk):
            hi = min(lo + chunk, len(sid))
            columns = (sid, log.ts, names, flags, users, items, categories)
            rows = zip(*(column[lo:hi].tolist() for column in columns), strict=True)
            out.write("".join(f"{s},{t},{a},{f},{u},{i},{c}\n" for s, t, a, f, u, i, c in rows))
            if on_progress is not None:
                on_progress(hi - lo)
    logger.info("wrote %d events to %s", len(sid), path)


@dataclass(frozen=True)
class CalibrationRow:
    metric: str
    target: float
    produced: float
    tolerance: float  # absolute, in the metric's own unit

    @property
    def ok(self) -> bool:
        return abs(self.produced - self.target) <= self.tolerance + 1e-12


def calibration_table(log: SynthLog) -> list[CalibrationRow]:
    """Target vs produced for every published statistic, with the tolerance the test applies."""
    lengths = log.lengths()
    n = len(lengths)
    event_class = np.repeat(log.session_class, lengths)
    rows = []
    for c, name in enumerate(CLASSES):
        rows.append(CalibrationRow(f"share {name}", CLASS_SHARE[name],
                                   float((log.session_class == c).sum() / n), CLASS_SHARE_TOL))  # fmt: skip
    for c, name in enumerate(CLASSES):
        target = MEAN_LENGTH[name]
        produced = float(lengths[log.session_class == c].mean()) if (log.session_class == c).any() else 0.0
        rows.append(CalibrationRow(f"mean length {name}", target, produced, target * MEAN_LENGTH_TOL_REL))
    rows.append(CalibrationRow("median length (all)", MEDIAN_LENGTH, float(np.median(lengths)),
                               MEDIAN_LENGTH_TOL))  # fmt: skip
    for c, name in enumerate(CLASSES):
        counts = np.bincount(log.actions[event_class == c], minlength=N_ACTIONS)
        produced_share = counts / max(int(counts.sum()), 1)
        for action, target in PUBLISHED_ACTION_SHARE[name].items():
            rows.append(CalibrationRow(f"{name}: {action}", target, float(produced_share[ACTION_INDEX[action]]),
                                       ACTION_SHARE_TOL))  # fmt: skip
    return rows
