"""The context state in Redis (append_event.lua + context.lua) against model/context.py, on a real redis-server.

Train/serve parity: the same clicks give the same context in Python (ContextTracker) and in Redis, on random
sessions with returning users, retries and out-of-order ts (docs/architecture.md §3.1).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis
import redis.asyncio as aredis

from bench.procs.round_trips import RoundTripCounter
from model.context import CONTEXT_NAMES
from model.context_tracker import ContextTracker
from model.features import ACTION_INDEX, ADD_CART, N_ACTIONS, ORDER
from service.store.window_store import SessionWindowStore
from service.store.window_values import ClickIds

T0 = 1_764_000_000.0
VIEW = ACTION_INDEX["view_product"]
COL = {name: i for i, name in enumerate(CONTEXT_NAMES)}


@pytest.fixture()
async def client(redis_url: str) -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def random_clicks(seed: int, n_users: int = 5) -> list[tuple[str, str | None, int, float, str | None, str | None]]:
    """(session, user, action, ts, item, category) in arrival order: each user's sessions one after another (30-min
    gaps), users interleaved, a few clicks out of order, some clicks without ids, some users anonymous."""
    rng = random.Random(seed)
    streams: list[list[tuple[str, str | None, int, float, str | None, str | None]]] = []
    for u in range(n_users):
        user = None if u == 0 else f"user-{seed}-{u}"
        t = T0 + rng.uniform(0, 3600)
        stream = []
        for s in range(rng.randint(1, 4)):
            sid = f"s-{seed}-{u}-{s}"
            for _ in range(rng.randint(1, 25)):
                t += rng.choice([rng.uniform(1, 120), 0.0])
                ts = round(t - (rng.uniform(1, 30) if rng.random() < 0.1 else 0.0), 3)  # out of order
                action = rng.choice([ADD_CART, ORDER, VIEW, *range(N_ACTIONS)[:12]])
                item = None if rng.random() < 0.1 else f"it{rng.randint(0, 12)}"
                category = None if rng.random() < 0.1 else f"c{rng.randint(0, 4)}"
                stream.append((sid, user, action, ts, item, category))
            t += 1800 + rng.uniform(1, 86_400)
        streams.append(stream)
    merged = []
    while any(streams):
        stream = rng.choice([s for s in streams if s])
        merged.append(stream.pop(0))
    return merged


@pytest.mark.parametrize("seed", range(6))
async def test_redis_context_equals_python_context(client: aredis.Redis, seed: int) -> None:
    store = SessionWindowStore(client, user_ttl_s=3600)
    tracker = ContextTracker()
    rng = random.Random(seed)
    for n, (sid, user, action, ts, item, category) in enumerate(random_clicks(seed)):
        ids = ClickIds(item=item, category=category, user_hash=user and user.replace("-", ""))
        got = await store.append_event(sid, f"e{n}", action, ts, None, ids=ids)
        # The session's user is its first click's (model/context.py keys history by the session's user).
        want = tracker.click(sid, user, action, ts, item, category)
        assert got.context is not None
        np.testing.assert_allclose(got.context, want, rtol=0, atol=1e-3, err_msg=f"click {n} of seed {seed}")
        if rng.random() < 0.2:  # a retry appends nothing and counts nothing
            again = await store.append_event(sid, f"e{n}", action, ts, None, ids=ids)
            assert again.duplicate and again.context is not None
            assert again.context[COL["clicks"]] == want[COL["clicks"]]


async def test_a_click_without_ids_keeps_item_and_history_features_at_zero(client: aredis.Redis) -> None:
    store = SessionWindowStore(client)
    first = await store.append_event("s-1", None, ADD_CART, T0, None)
    second = await store.append_event("s-1", None, VIEW, T0 + 90, None)
    assert first.context is not None and second.context is not None
    assert second.context[COL["clicks"]] == 2 and second.context[COL["session_seconds"]] == 90
    assert second.context[COL["cart_open"]] == 1 and second.context[COL["cart_open_seconds"]] == 90
    for name in ("item_seen_before", "distinct_items", "distinct_categories", "hist_sessions", "cart_items_open"):
        assert second.context[COL[name]] == 0, name


async def test_history_is_read_at_the_first_click_and_excludes_the_current_session(client: aredis.Redis) -> None:
    store = SessionWindowStore(client)
    alice = ClickIds(item="sku-1", category="c", user_hash="a11ce")
    await store.append_event("s-1", None, ADD_CART, T0, None, ids=alice)
    during = await store.append_event("s-1", None, VIEW, T0 + 10, None, ids=alice)
    assert during.context is not None and during.context[COL["hist_sessions"]] == 0  # its own session is no history
    later = await store.append_event("s-2", None, VIEW, T0 + 7200, None, ids=alice)
    assert later.context is not None
    assert later.context[COL["hist_sessions"]] == 1 and later.context[COL["hist_events"]] == 2
    assert later.context[COL["hist_gap_seconds"]] == 7190 and later.context[COL["item_in_hist_cart"]] == 1
    assert later.context[COL["hist_cart_items_open"]] == 1


async def test_a_conflict_writes_no_context_state(client: aredis.Redis) -> None:
    store = SessionWindowStore(client)
    ids = ClickIds(item="sku-1", user_hash="b0b")
    await store.append_event("s-1", "c-1", VIEW, T0, None, body="5::", ids=ids)
    before = await client.hgetall(store.key_scheme.context("s-1"))
    with pytest.raises(Exception, match="already used"):
        await store.append_event("s-1", "c-1", ADD_CART, T0, None, body="6::", ids=ClickIds(item="sku-2"))
    assert await client.hgetall(store.key_scheme.context("s-1")) == before


async def test_the_click_with_history_is_still_one_round_trip(client: aredis.Redis, redis_url: str) -> None:
    store = SessionWindowStore(client)
    await store.append_event("warm", None, VIEW, T0, None)  # SCRIPT LOAD on the first call
    with redis.Redis.from_url(redis_url) as watcher, RoundTripCounter(watcher) as trips:
        for i in range(20):  # first clicks (folds and snapshots) and later ones alike
            ids = ClickIds(item=f"it{i % 3}", category="c", user_hash=f"u{i % 4}")
            await store.append_event(f"s-{i % 5}-{i // 10}", f"e{i}", VIEW, T0 + i * 600, None, ids=ids)
        sent = trips.take()
    assert sent == {"evalsha": 20}


async def test_off_keeps_no_context_state(client: aredis.Redis) -> None:
    store = SessionWindowStore(client, context_state="off")
    got = await store.append_event("s-1", None, VIEW, T0, None, ids=ClickIds(item="x", user_hash="abc"))
    assert got.context is None
    assert await client.exists(store.key_scheme.context("s-1"), store.key_scheme.user("abc")) == 0


async def test_deleting_a_user_removes_their_history(client: aredis.Redis) -> None:
    store = SessionWindowStore(client)
    ids = ClickIds(item="sku-1", user_hash="c4a01")
    await store.append_event("s-1", None, ADD_CART, T0, None, ids=ids)
    await store.append_event("s-2", None, VIEW, T0 + 7200, None, ids=ids)
    assert await store.delete_user("c4a01")
    assert await client.exists(store.key_scheme.user("c4a01"), store.key_scheme.context("s-2")) == 0
    fresh = await store.append_event("s-3", None, VIEW, T0 + 9000, None, ids=ids)
    assert fresh.context is not None and fresh.context[COL["hist_sessions"]] == 0
    assert not await store.delete_user("c4a01" + "0")
