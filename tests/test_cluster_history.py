"""The shopper's history on a real six-node Redis Cluster (service/store/cluster_history.py, docs/redis.md
"Redis Cluster: history at a session's first click"): the same context as a single Redis and as model/context.py's
ContextTracker, what a click costs, concurrent starts, and a user's erasure.
"""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster

from model.context import CONTEXT_NAMES, CONTEXT_SETS
from model.context_tracker import ContextTracker
from model.features import ACTION_INDEX, ADD_CART
from service.store.context_record import USER_FIELDS
from service.store.lua_scripts import HISTORY_SCRIPTS, lua_script
from service.store.window_store import SessionWindowStore
from service.store.window_values import ClickIds
from tests.cluster_procs import RedisClusterProcs, cluster_round_trips
from tests.test_context_state import random_clicks

T0 = 1_764_000_000.0
VIEW = ACTION_INDEX["view_product"]
COL = {name: i for i, name in enumerate(CONTEXT_NAMES)}
HISTORY = [COL[name] for name in CONTEXT_NAMES if name.startswith("hist_") or name == "item_in_hist_cart"]


@pytest.fixture()
def client(cluster_client: RedisCluster) -> RedisCluster:
    """conftest.py's flushed client of the module's cluster."""
    return cluster_client


def user_ids(user: str | None, item: str | None = None, category: str | None = None) -> ClickIds:
    return ClickIds(item=item, category=category, user_hash=user and user.replace("-", ""))


@pytest.mark.parametrize("seed", range(4))
async def test_the_cluster_serves_the_single_redis_context(client: RedisCluster, redis_url: str, seed: int) -> None:
    """Parity: the same log gives a cluster, a single Redis and the ContextTracker the same context, history too."""
    single_client = aredis.Redis.from_url(redis_url)
    on_cluster = SessionWindowStore(client, cluster_history=True, user_ttl_s=3600)
    single = SessionWindowStore(single_client, cluster_history=True, user_ttl_s=3600)
    tracker = ContextTracker()
    rng = random.Random(seed)
    served_history = 0
    try:
        for n, (sid, user, action, ts, item, category) in enumerate(random_clicks(seed)):
            ids = user_ids(user, item, category)
            got = await on_cluster.append_event(sid, f"e{n}", action, ts, None, ids=ids)
            alone = await single.append_event(sid, f"e{n}", action, ts, None, ids=ids)
            want = tracker.click(sid, user, action, ts, item, category)
            assert got.context is not None and alone.context is not None
            np.testing.assert_array_equal(got.context, alone.context, err_msg=f"click {n} of seed {seed}")
            np.testing.assert_allclose(got.context, want, rtol=0, atol=1e-3, err_msg=f"click {n} of seed {seed}")
            served_history += int(got.context[COL["hist_sessions"]] > 0)
            if rng.random() < 0.2:  # a retry: nothing counted twice, the same context as a single Redis's retry
                again = await on_cluster.append_event(sid, f"e{n}", action, ts, None, ids=ids)
                alone_again = await single.append_event(sid, f"e{n}", action, ts, None, ids=ids)
                assert again.duplicate and again.context is not None and alone_again.context is not None
                np.testing.assert_array_equal(again.context, alone_again.context)
    finally:
        await single_client.aclose()
    assert served_history > 0  # the log has returning users: the history features were not all 0


async def test_the_history_reaches_later_clicks_and_the_next_session(client: RedisCluster) -> None:
    store = SessionWindowStore(client, cluster_history=True)
    alice = user_ids("a11ce", "sku-1", "c")
    await store.append_event("s-1", None, ADD_CART, T0, None, ids=alice)
    during = await store.append_event("s-1", None, VIEW, T0 + 10, None, ids=alice)
    assert during.context is not None and during.context[COL["hist_sessions"]] == 0
    first = await store.append_event("s-2", None, VIEW, T0 + 7200, None, ids=user_ids("a11ce", "sku-2"))
    second = await store.append_event("s-2", None, VIEW, T0 + 7260, None, ids=alice)
    for got in (first, second):  # the first click's row is filled in; the second reads the written snapshot
        assert got.context is not None
        assert got.context[COL["hist_sessions"]] == 1 and got.context[COL["hist_events"]] == 2
        assert got.context[COL["hist_gap_seconds"]] == 7190 and got.context[COL["hist_cart_items_open"]] == 1
    assert first.context is not None and first.context[COL["item_in_hist_cart"]] == 0  # sku-2: not in the cart
    assert second.context is not None and second.context[COL["item_in_hist_cart"]] == 1  # sku-1 was left there
    # s-1 was folded once and handed off: no user left on it, and it keeps the session TTL, not the user's
    assert await client.hget(store.key_scheme.context("s-1"), "u") is None
    assert 0 < await client.ttl(store.key_scheme.context("s-1")) <= store.ttl_s


async def test_round_trips_per_click(client: RedisCluster, cluster: RedisClusterProcs) -> None:
    """What a click costs on a cluster, counted from the clients' side on every master: L EVALSHAs for a session of
    L clicks, plus 2 at a new user's first click and 4 at a returning user's; nothing for later clicks or clicks
    without a user."""
    store = SessionWindowStore(client, cluster_history=True)
    for name in ("append_event.lua", *HISTORY_SCRIPTS):  # on every master: a first EVALSHA would add a SCRIPT LOAD
        await client.script_load(lua_script(name))
    length = 6  # Taobao's mean session (data/taobao.csv: 99,957 clicks in 16,724 sessions, 5.98 per session)
    sessions = [("new", "u-1"), ("returning", "u-1"), ("returning-2", "u-1"), ("anonymous", None)]
    with cluster_round_trips(cluster) as trips:
        sent = {}
        for sid, user in sessions:
            for i in range(length):
                ts = T0 + sessions.index((sid, user)) * 7200 + i * 30
                await store.append_event(sid, f"{sid}-{i}", ADD_CART if i == 2 else VIEW, ts, None,
                                         ids=user_ids(user, f"it{i}"))
            sent[sid] = trips.take()
    assert sent == {
        "new": {"evalsha": length + 2},
        "returning": {"evalsha": length + 4},
        "returning-2": {"evalsha": length + 4},
        "anonymous": {"evalsha": length},
    }, sent
    per_click = {sid: counts["evalsha"] / length for sid, counts in sent.items()}
    print(f"\nround trips per click, sessions of {length} clicks: {per_click}")


async def test_without_the_opt_in_a_cluster_click_is_one_call_and_history_stays_zero(
        client: RedisCluster, cluster: RedisClusterProcs) -> None:
    """SI_CLUSTER_HISTORY off (the default): a returning user's session costs one EVALSHA a click, history 0."""
    store = SessionWindowStore(client)
    await client.script_load(lua_script("append_event.lua"))
    history = np.isin(np.array(CONTEXT_NAMES), CONTEXT_SETS["history"])
    for session in ("off-1", "off-2"):
        with cluster_round_trips(cluster) as trips:
            start = T0 + 7200 * (session == "off-2")
            results = [await store.append_event(session, f"{session}-{i}", VIEW, start + i * 30, None,
                                                ids=user_ids("u-off", f"it{i}")) for i in range(3)]
            assert trips.take() == {"evalsha": 3}
    assert all(r.context is not None and not r.context[history].any() for r in results)


async def test_concurrent_first_clicks_fold_the_running_session_once(client: RedisCluster) -> None:
    store = SessionWindowStore(client, cluster_history=True)
    ids = user_ids("b0b", "sku-1")
    for i in range(3):
        await store.append_event("old", None, ADD_CART if i == 0 else VIEW, T0 + i, None, ids=ids)
    # Two clicks of one new session and the first click of another, all at once (three replicas, say)
    clicks = [("new-a", T0 + 7200), ("new-a", T0 + 7201), ("new-b", T0 + 7202)]
    got = await asyncio.gather(*(store.append_event(sid, None, VIEW, ts, None, ids=ids) for sid, ts in clicks))
    user = await client.hgetall(store.key_scheme.user("b0b"))
    sessions, events = (int(user[USER_FIELDS[name].encode()]) for name in ("sessions", "events"))
    # "old" folded once (3 clicks); "new-a" too (1 or 2 clicks) when "new-b" started after it
    assert (sessions, events) in {(1, 3), (2, 4), (2, 5)}, (sessions, events)
    for result in got:
        assert result.context is not None and result.context[COL["hist_sessions"]] >= 1
    new_a = [r.context for r in got[:2]]
    assert new_a[0] is not None and new_a[1] is not None
    np.testing.assert_array_equal(new_a[0][HISTORY[:-1]], new_a[1][HISTORY[:-1]])  # one snapshot per session


async def test_deleting_a_user_removes_their_history_on_a_cluster(client: RedisCluster) -> None:
    store = SessionWindowStore(client, cluster_history=True)
    ids = user_ids("c4a01", "sku-1")
    await store.append_event("s-1", None, ADD_CART, T0, None, ids=ids)
    await store.append_event("s-2", None, VIEW, T0 + 7200, None, ids=ids)
    assert await store.delete_user("c4a01")
    assert await client.exists(store.key_scheme.user("c4a01")) == 0
    assert await client.exists(store.key_scheme.context("s-2")) == 0
    fresh = await store.append_event("s-3", None, VIEW, T0 + 9000, None, ids=ids)
    assert fresh.context is not None and fresh.context[COL["hist_sessions"]] == 0
    assert fresh.context[COL["item_in_hist_cart"]] == 0
    assert not await store.delete_user("c4a01" + "0")


async def test_the_history_is_kept_as_long_as_the_user_record(client: RedisCluster) -> None:
    store = SessionWindowStore(client, cluster_history=True, user_ttl_s=7 * 86_400)
    await store.append_event("s-1", None, VIEW, T0, None, ids=user_ids("d0d", "sku-1"))
    assert await client.ttl(store.key_scheme.context("s-1")) > store.ttl_s  # the next session will fold it
    assert await client.ttl(store.key_scheme.user("d0d")) > 6 * 86_400


async def test_a_reused_session_id_folds_its_earlier_state_as_a_single_redis_does(
    client: RedisCluster, redis_url: str,
) -> None:
    """A session id whose window expired while it was still its user's running session starts over; its earlier
    clicks join the history, on a cluster as on a single Redis."""
    single_client = aredis.Redis.from_url(redis_url)
    try:
        for store, redis_client in ((SessionWindowStore(client, cluster_history=True), client),
                                    (SessionWindowStore(single_client, cluster_history=True), single_client)):
            ids = user_ids("e11e", "sku-1")
            for i in range(3):
                await store.append_event("same", None, ADD_CART if i == 0 else VIEW, T0 + i, None, ids=ids)
            for key in store.keys("same"):  # the window, meta and ids expired; the context state has the user's TTL
                await redis_client.delete(key)
            again = await store.append_event("same", None, VIEW, T0 + 7200, None, ids=ids)
            assert again.event_index == 0 and again.context is not None
            assert again.context[COL["hist_sessions"]] == 1 and again.context[COL["hist_events"]] == 3
            assert again.context[COL["item_in_hist_cart"]] == 1 and again.context[COL["clicks"]] == 1
    finally:
        await single_client.aclose()


async def test_a_start_cut_short_before_its_snapshot_loses_no_click(
    client: RedisCluster, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replica that dies after the user's record made the session the running one, before the snapshot was
    written: the session keeps the user's TTL while its history is pending, and the user's next session folds it."""
    store = SessionWindowStore(client, cluster_history=True, user_ttl_s=7 * 86_400)
    history = store._history
    assert history is not None

    async def died(*args: object) -> None:
        raise ConnectionError("the replica died before writing the snapshot")

    with monkeypatch.context() as patch:
        patch.setattr(history, "_write", died)
        with pytest.raises(ConnectionError):
            await store.append_event("cut", "cut-0", ADD_CART, T0, None, ids=user_ids("f00", "sku-1"))
    cut = store.key_scheme.context("cut")
    assert await client.hget(cut, "hp") == b"f00" and await client.ttl(cut) > store.ttl_s
    later = await store.append_event("next", None, VIEW, T0 + 86_400, None, ids=user_ids("f00", "sku-1"))
    assert later.context is not None
    assert later.context[COL["hist_sessions"]] == 1 and later.context[COL["hist_carts"]] == 1
    assert later.context[COL["item_in_hist_cart"]] == 1


async def test_the_retry_of_a_click_whose_start_failed_gets_the_history(
    client: RedisCluster, monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = SessionWindowStore(client, cluster_history=True)
    history = store._history
    assert history is not None
    ids = user_ids("9a9", "sku-1")
    await store.append_event("before", None, ADD_CART, T0, None, ids=ids)

    async def unreachable(*args: object) -> None:
        raise ConnectionError("the session's node did not answer")

    with monkeypatch.context() as patch:
        patch.setattr(history, "_write", unreachable)
        with pytest.raises(ConnectionError):
            await store.append_event("after", "a-0", VIEW, T0 + 7200, None, ids=ids)
    retry = await store.append_event("after", "a-0", VIEW, T0 + 7200, None, ids=ids)
    assert retry.duplicate and retry.context is not None
    assert retry.context[COL["hist_sessions"]] == 1 and retry.context[COL["hist_carts"]] == 1
    assert retry.context[COL["clicks"]] == 1  # nothing counted twice
    assert await client.hget(store.key_scheme.context("after"), "hp") is None  # written: later clicks need no start
