"""model/context.py: batch == incremental on random logs, no leakage from the future, defaults without ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.context import (
    CONTEXT_DIM,
    CONTEXT_FEATURES,
    CONTEXT_NAMES,
    CONTEXT_SETS,
    HISTORY,
    ContextIds,
    compute_context,
    context_fingerprint,
    context_names,
    scale_context,
)
from model.context_tracker import ContextTracker
from model.features import ACTION_INDEX, EventLog

HIST = [i for i, f in enumerate(CONTEXT_FEATURES) if f.group == HISTORY]
# Taobao's four actions, cart and order often enough to exercise the cart sets
_ACTIONS = np.array([ACTION_INDEX[a] for a in ("view_product", "add_cart", "order", "concerned")])
_P = np.array([0.55, 0.2, 0.15, 0.1])


def random_log(seed: int, n_users: int = 6, max_sessions: int = 4) -> tuple[EventLog, ContextIds]:
    """Sessions of a few users (a user's sessions > 30 min apart), a small catalogue, shuffled session order."""
    rng = np.random.default_rng(seed)
    sessions: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for user in range(n_users):
        t = float(rng.integers(0, 10_000))
        for _ in range(int(rng.integers(1, max_sessions + 1))):
            k = int(rng.integers(1, 12))
            ts = t + np.cumsum(rng.integers(0, 120, size=k)).astype(np.float64)  # ties allowed
            items = rng.integers(-1, 8, size=k)  # -1: unknown item
            sessions.append((user if user else -1, rng.choice(_ACTIONS, size=k, p=_P), ts, items, items // 3))
            t = float(ts[-1]) + 1801 + float(rng.integers(0, 5000))
    order = rng.permutation(len(sessions))
    chosen = [sessions[i] for i in order]
    lengths = np.array([len(s[1]) for s in chosen])
    log = EventLog(
        actions=np.concatenate([s[1] for s in chosen]),
        ts=np.concatenate([s[2] for s in chosen]),
        from_ad=np.zeros(int(lengths.sum()), dtype=bool),
        starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
    )
    categories = np.concatenate([s[4] for s in chosen])
    ids = ContextIds(np.concatenate([s[3] for s in chosen]), np.where(categories < 0, -1, categories),
                     np.array([s[0] for s in chosen]))  # fmt: skip
    return log, ids


def incremental(log: EventLog, ids: ContextIds) -> np.ndarray:
    """Feed every click through ContextTracker in time order, as serving sees them."""
    session = log.session_of_event()
    position = np.arange(len(log)) - log.starts[session]
    tracker, out = ContextTracker(), np.zeros((len(log), CONTEXT_DIM), dtype=np.float32)
    assert ids.items is not None and ids.categories is not None and ids.users is not None
    for e in np.lexsort((position, session, log.ts)):
        user = int(ids.users[session[e]])
        out[e] = tracker.click(int(session[e]), user if user >= 0 else None, int(log.actions[e]), float(log.ts[e]),
                               int(ids.items[e]), int(ids.categories[e]))  # fmt: skip
    return out


@pytest.mark.parametrize("seed", range(12))
def test_batch_equals_incremental_on_random_logs(seed: int) -> None:
    log, ids = random_log(seed)
    np.testing.assert_allclose(compute_context(log, ids), incremental(log, ids), rtol=0, atol=1e-3)


def test_history_never_includes_the_current_session_or_later() -> None:
    log, ids = random_log(3, n_users=4, max_sessions=5)
    assert ids.users is not None and ids.items is not None
    base = compute_context(log, ids)
    first_ts = log.ts[log.starts]
    session = log.session_of_event()
    for s in range(len(log.starts)):
        user = ids.users[s]
        if user < 0:
            continue
        later = np.flatnonzero((ids.users == user) & (first_ts >= first_ts[s]))  # s itself and after it
        touched = np.isin(session, later) & (np.arange(len(log)) != log.starts[s])  # all but s's first click
        actions, items = log.actions.copy(), ids.items.copy()
        actions[touched] = ACTION_INDEX["add_cart"] if s % 2 else ACTION_INDEX["order"]
        items[touched] = 7 - np.maximum(items[touched], 0)
        perturbed = compute_context(EventLog(actions, log.ts, log.from_ad, log.starts),
                                    ContextIds(items, ids.categories, ids.users))  # fmt: skip
        first = log.starts[s]
        np.testing.assert_array_equal(perturbed[first], base[first])  # the first click sees nothing that changed
        mine = session == s
        np.testing.assert_array_equal(perturbed[mine][:, HIST[:-1]], base[mine][:, HIST[:-1]])


def test_a_users_first_session_has_no_history() -> None:
    log, ids = random_log(5)
    assert ids.users is not None
    context = compute_context(log, ids)
    first_ts = log.ts[log.starts]
    session = log.session_of_event()
    for s in range(len(log.starts)):
        earliest = ids.users[s] >= 0 and first_ts[s] == first_ts[ids.users == ids.users[s]].min()
        if ids.users[s] < 0 or earliest:
            assert not context[session == s][:, HIST].any()


def test_a_log_without_ids_leaves_item_and_history_features_at_zero() -> None:
    log, _ = random_log(7)
    context = compute_context(log)
    zero = [CONTEXT_NAMES.index(n) for n in ("item_seen_before", "item_carted_before", "cart_items_open",
                                              "distinct_items", "distinct_categories")] + HIST  # fmt: skip
    assert not context[:, zero].any()
    position = np.arange(len(log)) - log.starts[log.session_of_event()]
    np.testing.assert_array_equal(context[:, CONTEXT_NAMES.index("clicks")], position + 1)


def test_session_features_by_hand() -> None:
    v, cart, order = ACTION_INDEX["view_product"], ACTION_INDEX["add_cart"], ACTION_INDEX["order"]
    log = EventLog(np.array([v, cart, v, cart, order, v]), np.array([0.0, 10, 20, 30, 40, 100]),
                   np.zeros(6, dtype=bool), np.array([0]))  # fmt: skip
    ids = ContextIds(items=np.array([1, 1, 2, 2, 1, 1]), categories=np.array([5, 5, 5, 6, 5, 5]))
    c = compute_context(log, ids)
    col = {n: c[:, CONTEXT_NAMES.index(n)].tolist() for n in CONTEXT_NAMES}
    assert col["item_seen_before"] == [0, 1, 0, 1, 1, 1]
    assert col["item_carted_before"] == [0, 0, 0, 0, 1, 1]
    assert col["cart_items_open"] == [0, 1, 1, 2, 1, 1]
    assert col["distinct_items"] == [1, 1, 2, 2, 2, 2]
    assert col["distinct_categories"] == [1, 1, 1, 2, 2, 2]
    assert col["cart_open"] == [0, 1, 1, 1, 0, 0]
    assert col["cart_open_seconds"] == [0, 0, 10, 20, 0, 0]
    assert col["session_seconds"] == [0, 10, 20, 30, 40, 100]


def test_sets_scaling_and_fingerprint() -> None:
    assert context_names("none") == () and context_fingerprint(()) == ""
    assert set(CONTEXT_SETS["session+history"]) == set(CONTEXT_NAMES)
    assert context_fingerprint(CONTEXT_SETS["session"]) != context_fingerprint(CONTEXT_NAMES)
    assert context_names("clicks,cart_open") == ("clicks", "cart_open")
    with pytest.raises(ValueError, match="unknown context"):
        context_names("clicks,bogus")
    scaled = scale_context(np.array([[3.0, 1.0, 120.0]], dtype=np.float32), ("clicks", "cart_open", "session_seconds"))
    np.testing.assert_allclose(scaled, [[np.log1p(3.0), 1.0, np.log1p(2.0)]], rtol=1e-6)


def test_a_context_net_trains_saves_reloads_and_its_card_records_the_context(tmp_path: Path) -> None:
    from model.card import ModelCard
    from model.context import check_context, context_card
    from model.data.dataset import build_windows
    from model.data.sessions import Sessions
    from model.features import FeatureConfig
    from model.training.checkpoint import load_model, predict_proba, save_model
    from model.training.config import TrainConfig
    from model.training.loop import fit
    from model.training.nets import NetConfig, build_net

    log, ids = random_log(11, n_users=12)
    sessions = Sessions(np.array([f"s{i}" for i in range(len(log.starts))], dtype=object), log, ids)
    windows = build_windows(sessions, FeatureConfig(window=4))
    names = CONTEXT_SETS["session+history"]
    net = build_net(NetConfig.for_arch("lstm_gru_small", window=4, context=names))
    half = np.arange(len(windows)) % 2 == 0
    fit(net, windows.take(half), windows.take(~half), TrainConfig(epochs=1, patience=None), show_progress=False)
    card = ModelCard("ctx", "lstm_gru_small", {"net": net.config.to_dict()}, FeatureConfig(window=4),
                     context=context_card(names))  # fmt: skip
    save_model(tmp_path / "m", net, card)
    loaded, loaded_card = load_model(tmp_path / "m")
    assert loaded_card.context_names == names and check_context(loaded_card.context, "m") == names
    assert loaded.config.context == names
    context = windows.contexts(slice(None), names)
    np.testing.assert_allclose(predict_proba(loaded, windows.X, context), predict_proba(net, windows.X, context))
    with pytest.raises(ValueError, match="context"):
        predict_proba(loaded, windows.X)
    bad = {**loaded_card.context, "fingerprint": "0" * 16}
    with pytest.raises(ValueError, match="fingerprint"):
        check_context(bad, "m")


def test_an_old_card_without_context_loads_and_its_net_takes_windows_only(tmp_path: Path) -> None:
    import json

    from model.card import ModelCard
    from model.context import check_context
    from model.features import FeatureConfig
    from model.training.checkpoint import load_model, predict_proba, save_model
    from model.training.nets import NetConfig, build_net

    net = build_net(NetConfig.for_arch("lstm_gru_small", window=3))
    save_model(tmp_path / "old", net, ModelCard("old", "lstm_gru_small", {}, FeatureConfig(window=3)))
    raw = json.loads((tmp_path / "old" / "card.json").read_text())
    del raw["context"]  # a card written before context existed
    (tmp_path / "old" / "card.json").write_text(json.dumps(raw))
    loaded, card = load_model(tmp_path / "old")
    assert card.context == {} and card.context_names == () and check_context(card.context, "old") == ()
    assert loaded.config.context_dim == 0 and "head.weight" in loaded.state_dict()
    assert predict_proba(loaded, np.zeros((2, 3, 16), dtype=np.float32)).shape == (2, 2)
