"""The synthetic generator against the published statistics (docs/architecture.md §5), on 20k sessions, seed 1.

Statistics are computed here from the raw arrays, not through `calibration_table`, so a bug in the
module's own measurement cannot hide a bug in the generator.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from model.context import CONTEXT_NAMES
from model.data.synth import (
    ACTION_SHARE_TOL,
    CLASS_SHARE,
    CLASS_SHARE_TOL,
    CLASSES,
    MAX_LENGTH,
    MEAN_LENGTH,
    MEAN_LENGTH_TOL_REL,
    MEDIAN_LENGTH,
    MEDIAN_LENGTH_TOL,
    MIN_LENGTH,
    PUBLISHED_ACTION_SHARE,
    SynthLog,
    calibration_table,
    generate_sessions,
    write_csv,
)
from model.features import ACTION_INDEX, ACTIONS, MAX_DWELL_S, dwell_seconds

N_SESSIONS, SEED = 20_000, 1
ORDER, ADD_CART = ACTION_INDEX["order"], ACTION_INDEX["add_cart"]


@pytest.fixture(scope="module")
def log() -> SynthLog:
    return generate_sessions(N_SESSIONS, SEED)


@pytest.fixture(scope="module")
def per_session_counts(log: SynthLog) -> np.ndarray:
    """(S, 12) events of each action in each session."""
    counts = np.zeros((len(log.starts), len(ACTIONS)), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(log.starts)), log.lengths()), log.actions), 1)
    return counts


def test_class_shares(log: SynthLog) -> None:
    for c, name in enumerate(CLASSES):
        produced = float(np.mean(log.session_class == c))
        assert produced == pytest.approx(CLASS_SHARE[name], abs=CLASS_SHARE_TOL), name


def test_action_shares_follow_table_1(log: SynthLog, per_session_counts: np.ndarray) -> None:
    for c, name in enumerate(CLASSES):
        pooled = per_session_counts[log.session_class == c].sum(axis=0)
        share = pooled / pooled.sum()
        for action, target in PUBLISHED_ACTION_SHARE[name].items():
            produced = share[ACTION_INDEX[action]]
            assert produced == pytest.approx(target, abs=ACTION_SHARE_TOL), f"{name}: {action}"


def test_lengths(log: SynthLog) -> None:
    lengths = log.lengths()
    assert lengths.sum() == len(log.actions)
    for c, name in enumerate(CLASSES):
        produced = lengths[log.session_class == c].mean()
        assert produced == pytest.approx(MEAN_LENGTH[name], rel=MEAN_LENGTH_TOL_REL), name
    assert abs(np.median(lengths) - MEDIAN_LENGTH) <= MEDIAN_LENGTH_TOL
    assert lengths.min() >= MIN_LENGTH
    assert lengths.max() <= MAX_LENGTH


def test_class_semantics(log: SynthLog, per_session_counts: np.ndarray) -> None:
    orders, carts = per_session_counts[:, ORDER], per_session_counts[:, ADD_CART]
    browse, abandon, purchase = (log.session_class == c for c in range(len(CLASSES)))
    assert (orders[purchase] >= 1).all()
    assert (carts[abandon] >= 1).all() and (orders[abandon] == 0).all()
    assert (carts[browse] == 0).all() and (orders[browse] == 0).all()
    for s in np.flatnonzero(purchase):  # an order never comes before the session's first add_cart
        events = log.actions[log.starts[s] : log.starts[s] + log.lengths()[s]].tolist()
        assert events.index(ADD_CART) < events.index(ORDER)


def test_calibration_table_agrees_and_passes(log: SynthLog) -> None:
    rows = calibration_table(log)
    assert [r.metric for r in rows if not r.ok] == []
    assert {r.metric for r in rows} >= {f"share {c}" for c in CLASSES}


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    # a smaller run keeps this cheap; determinism does not depend on size
    paths = [tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"]
    for path, seed in zip(paths, (7, 7, 8), strict=True):
        write_csv(generate_sessions(2000, seed), path)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_csv_is_the_common_form(tmp_path: Path) -> None:
    start = datetime(2026, 11, 2, tzinfo=UTC)
    path = tmp_path / "nested" / "synth.csv"
    write_csv(generate_sessions(500, 3, start=start), path)
    with path.open(newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == ["session_id", "ts", "action", "from_ad", "user_id", "item_id", "category_id"]
        rows = list(reader)
    last: dict[str, int] = {}
    seen_order: list[str] = []
    for session_id, ts, action, from_ad, *_ in rows:
        assert action in ACTIONS and from_ad in {"0", "1"}
        if session_id not in last:
            seen_order.append(session_id)
        else:
            assert from_ad == "0", "from_ad is set on the landing event only"
            assert int(ts) >= last[session_id], "ts ascending within a session"
        last[session_id] = int(ts)
    assert len(seen_order) == len(set(seen_order)) == 500, "rows grouped by session"
    first_ts = min(int(r[1]) for r in rows)
    assert first_ts >= start.timestamp()


def test_time_and_flags_are_plausible(log: SynthLog) -> None:
    dwell = dwell_seconds(log.to_event_log())
    not_last = np.ones(len(log.actions), dtype=bool)
    not_last[np.append(log.starts[1:], len(log.actions)) - 1] = False
    raw_gaps = np.diff(log.ts)[not_last[:-1]]
    assert raw_gaps.min() >= 1
    assert 0.005 < np.mean(raw_gaps > MAX_DWELL_S) < 0.05, "heavy tail: the 600 s clip must matter"
    assert dwell.max() == MAX_DWELL_S
    assert 0.2 < log.from_ad[log.starts].mean() < 0.35
    hours = (log.ts[log.starts] // 3600) % 24
    assert np.mean((hours >= 18) & (hours <= 22)) > np.mean(hours <= 4) * 2, "evening beats night"
    days = np.unique(log.ts[log.starts] // 86400)
    assert len(days) > 28, "starts spread over several weeks"


def test_targets_are_the_published_ones() -> None:
    # Pinned literally (docs/architecture.md §5): the calibration tests read the module's table, so a drifted
    # constant would otherwise move the generator and its test together.
    assert CLASS_SHARE == {"browse": 0.909, "cart_abandonment": 0.0596, "purchase": 0.0314}
    assert MEAN_LENGTH == {"browse": 11.05, "cart_abandonment": 18.8, "purchase": 19.54}
    assert MEDIAN_LENGTH == 8
    assert PUBLISHED_ACTION_SHARE["purchase"] == {
        "category": 0.205, "view_product": 0.234, "view_cart": 0.372, "add_cart": 0.083, "order": 0.054,
    }  # fmt: skip
    assert PUBLISHED_ACTION_SHARE["browse"] == {
        "category": 0.585, "view_product": 0.335, "view_cart": 0.006, "add_cart": 0.0, "order": 0.0,
    }  # fmt: skip
    assert PUBLISHED_ACTION_SHARE["cart_abandonment"] == {
        "category": 0.406, "view_product": 0.265, "view_cart": 0.183, "add_cart": 0.092, "order": 0.0,
    }  # fmt: skip


def test_shoppers_return_and_their_sessions_never_overlap(log: SynthLog) -> None:
    from model.context import ContextIds, compute_context

    sessions_per_user = np.bincount(log.users)
    assert (sessions_per_user >= 2).sum() > 0.1 * len(np.unique(log.users)), "returning shoppers"
    ends = log.ts[np.append(log.starts[1:], len(log.ts)) - 1]
    order = np.lexsort((log.ts[log.starts], log.users))
    same = log.users[order][1:] == log.users[order][:-1]
    assert (log.ts[log.starts][order][1:][same] >= ends[order][:-1][same] + 1800).all()
    context = compute_context(log.to_event_log(), ContextIds(log.items, log.categories, log.users))
    purchase = np.repeat(log.session_class == 2, log.lengths())
    order_clicks = log.actions == ACTION_INDEX["order"]
    carted = context[:, CONTEXT_NAMES.index("item_carted_before")]
    assert carted[order_clicks & purchase].mean() > 0.9, "a purchase orders the item it carted"
    assert context[:, CONTEXT_NAMES.index("hist_sessions")].max() >= 2
