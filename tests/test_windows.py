"""SessionWindowStore against a real redis-server (tests/conftest.py `redis_url`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis
import redis.asyncio as aredis

from bench.procs.round_trips import RoundTripCounter
from model.features import ACTION_INDEX, ADD_CART, ORDER
from service.store.packing import pack_event, packed_ts, unpack_events, unpack_windows
from service.store.score_record import body_key, differing_parts
from service.store.window_store import ScoreRecord, SessionWindowStore
from service.store.window_values import EventIdConflict, event_id_digest

T0 = 1_764_000_000.0  # 2025-11-24, epoch seconds
VIEW = ACTION_INDEX["view_product"]


@pytest.fixture()
async def client(redis_url: str) -> AsyncIterator[aredis.Redis]:
    # A blocking pool, as the service needs: past max_connections a call waits instead of failing.
    client = aredis.Redis(connection_pool=aredis.BlockingConnectionPool.from_url(redis_url, max_connections=32))
    yield client
    await client.aclose()


def record(session_id: str, event_id: str | None, event_index: int, risk: float, **overrides: object) -> ScoreRecord:
    fields: dict[str, object] = {
        "session_id": session_id, "event_id": event_id, "event_index": event_index, "p_add_cart": 0.3125,
        "p_make_order": 0.0625, "abandonment_risk": risk, "intent": "browse", "model": "lstm-gru-int8@3f2a9c",
        "window_len": min(event_index + 1, 10), "ts": T0 + event_index,
    }
    fields.update(overrides)
    return ScoreRecord(**fields)  # type: ignore[arg-type]


async def test_concurrent_appends_keep_last_n_in_arrival_order(client: aredis.Redis) -> None:
    store = SessionWindowStore(client, window=10)
    # Each click carries a unique ts, so the window tells which clicks it holds.
    results = await asyncio.gather(
        *(store.append_event("s-hot", f"c-{i}", i % 12, T0 + i, None) for i in range(200))
    )
    indexes = sorted(r.event_index for r in results)
    assert indexes == list(range(200)), "event_index must have no gaps and no duplicates"
    ts_by_index = {r.event_index: float(r.ts[-1]) for r in results}  # each reply ends with its own event
    window = await store.read_window("s-hot")
    assert window is not None
    assert window.ts.tolist() == [ts_by_index[i] for i in range(190, 200)]
    assert window.actions.tolist() == [round(t - T0) % 12 for t in window.ts]
    for r in results:
        assert len(r) == min(r.event_index + 1, 10)


async def test_retried_event_id_appends_nothing_and_returns_the_first_answer(client: aredis.Redis) -> None:
    store = SessionWindowStore(client)
    first = await store.append_event("s-1", "c-0001", VIEW, T0, True)
    retry = await store.append_event("s-1", "c-0001", VIEW, T0, True)
    assert (retry.duplicate, retry.event_index, retry.stored_answer, len(retry)) == (True, 0, None, 1)
    answer = record("s-1", "c-0001", first.event_index, 0.2929, p_add_cart=0.31, p_make_order=0.08)
    await store.write_scores([answer])
    await store.append_event("s-1", "c-0002", VIEW, T0 + 5, None)
    late_retry = await store.append_event("s-1", "c-0001", VIEW, T0, True)
    assert late_retry.duplicate and late_retry.event_index == 0 and len(late_retry) == 2
    assert late_retry.stored_answer == {
        "session_id": "s-1", "event_index": 0, "p_add_cart": 0.31, "p_make_order": 0.08, "abandonment_risk": 0.2929,
        "intent": "browse", "model": "lstm-gru-int8@3f2a9c", "window": 1,
    }
    assert await client.hget(store.keys("s-1")[1], "c") == b"2"


async def test_a_reused_event_id_with_another_body_is_refused_and_appends_nothing(client: aredis.Redis) -> None:
    store = SessionWindowStore(client)
    body = body_key(VIEW, T0, True)
    await store.append_event("s-1", "c-1", VIEW, T0, True, body=body)
    with pytest.raises(EventIdConflict) as refused:
        await store.append_event("s-1", "c-1", ADD_CART, T0, True, body=body_key(ADD_CART, T0, True))
    assert refused.value.parts == ["action"]
    await store.write_scores([record("s-1", "c-1", 0, 0.29)])  # the stored answer keeps the body beside it
    with pytest.raises(EventIdConflict) as later:
        await store.append_event("s-1", "c-1", VIEW, T0 + 1, None, body=body_key(VIEW, T0 + 1, None))
    assert later.value.parts == ["ts", "from_ad"]
    again = await store.append_event("s-1", "c-1", VIEW, T0, True, body=body)
    assert again.duplicate and again.stored_answer is not None and again.stored_answer["abandonment_risk"] == 0.29
    assert await client.llen(store.keys("s-1")[0]) == 1 and await client.hget(store.keys("s-1")[1], "c") == b"1"


def test_a_body_without_ids_is_the_body_as_before_and_compares_part_by_part_with_one_with_ids() -> None:
    """A click without ids keeps the three-part body, so bodies remembered before ids joined still match."""
    assert body_key(VIEW, T0, None) == f"{VIEW}:{round(T0 * 1000)}:"
    with_ids = body_key(VIEW, T0, None, "sku-1", None, "ab" * 16)
    assert with_ids.startswith(body_key(VIEW, T0, None) + ":") and "sku-1" not in with_ids
    assert differing_parts(body_key(VIEW, T0, None), with_ids) == ["item_id", "user_id"]
    assert differing_parts(with_ids, body_key(VIEW, T0, None, "sku-2", None, "ab" * 16)) == ["item_id"]


async def test_event_ids_stored_before_bodies_still_dedupe(client: aredis.Redis) -> None:
    """A value written before the body was stored ("index|answer") is still a retry; its body is unknown."""
    store = SessionWindowStore(client)
    await store.append_event("s-1", "c-1", VIEW, T0, None, body=body_key(VIEW, T0, None))
    ids_key = store.keys("s-1")[2]
    digest = event_id_digest("c-1")
    await client.hset(ids_key, digest, "0|0.31|0.08|0.2929|0|1")
    old = await store.append_event("s-1", "c-1", ADD_CART, T0, None, body=body_key(ADD_CART, T0, None))
    assert old.duplicate and old.stored_answer is not None and old.stored_answer["p_add_cart"] == 0.31


async def test_event_ids_beyond_memory_are_forgotten(client: aredis.Redis) -> None:
    store = SessionWindowStore(client, event_id_memory=3)
    for i in range(5):
        await store.append_event("s-1", f"c-{i}", VIEW, T0 + i, None)
    assert await client.hlen(store.keys("s-1")[2]) == 3
    assert (await store.append_event("s-1", "c-4", VIEW, T0, None)).duplicate
    assert not (await store.append_event("s-1", "c-1", VIEW, T0 + 9, None)).duplicate


async def test_ttl_is_refreshed_on_every_write(client: aredis.Redis) -> None:
    store = SessionWindowStore(client, ttl_s=300)
    await store.append_event("s-1", "c-1", VIEW, T0, None)
    keys = store.keys("s-1")
    for key in keys:
        await client.expire(key, 5)
    await store.append_event("s-1", "c-2", VIEW, T0 + 1, None)
    assert [await client.ttl(k) for k in keys] == [300, 300, 300]
    for key in keys:
        await client.expire(key, 5)
    await store.append_event("s-1", "c-2", VIEW, T0 + 1, None)  # a retry is activity too
    assert [await client.ttl(k) for k in keys] == [300, 300, 300]


async def test_session_state_flags_and_out_of_order(client: aredis.Redis) -> None:
    store = SessionWindowStore(client, window=4)
    first = await store.append_event("s-1", None, VIEW, T0 + 100, None)
    assert not first.out_of_order and not first.cart_has_items
    ad = await store.append_event("s-1", None, ADD_CART, T0 + 50.25, True)
    assert ad.out_of_order and ad.cart_has_items
    later = await store.append_event("s-1", None, VIEW, T0 + 60, False)
    assert not later.out_of_order, "compared with the previous event, as the encoder's gaps are"
    assert later.ts.tolist() == [T0 + 100, T0 + 50.25, T0 + 60], "kept in arrival order"
    assert later.from_ad.tolist() == [False, True, True], "from_ad is sticky from its first true"
    assert later.actions.tolist() == [VIEW, ADD_CART, VIEW] and later.cart_has_items


async def test_lua_packs_each_event_as_packing_py_defines(client: aredis.Redis) -> None:
    """append_event.lua writes its list entries with the constants packing.py puts in its prelude."""
    store = SessionWindowStore(client, window=4)
    await store.append_event("s-pack", None, VIEW, T0 + 0.125, None)
    await store.append_event("s-pack", None, ORDER, T0 + 1, True)
    stored = [int(v) for v in await client.lrange(store.keys("s-pack")[0], 0, -1)]
    ts_ms = [round((T0 + 0.125) * 1000), round((T0 + 1) * 1000)]
    assert stored == [pack_event(ts_ms[0], VIEW, False), pack_event(ts_ms[1], ORDER, True)]


def test_a_batch_unpacks_its_windows_as_each_window_alone() -> None:
    """unpack_windows (the engine thread's, once per batch) and packed_ts (the scorer's newest ts) give exactly what
    unpack_events gives each window, empty windows and the list's bytes included."""
    rng = np.random.default_rng(3)
    windows: list[list[bytes | int]] = []
    for k in [3, 0, 10, 1, 7]:
        ts_ms = np.sort(rng.integers(1_700_000_000_000, 1_800_000_000_000, size=k))
        entries = [pack_event(int(t), int(rng.integers(0, 16)), bool(rng.random() < 0.5)) for t in ts_ms]
        windows.append([str(e).encode() for e in entries] if k % 2 else entries)
    for window, (actions, ts, from_ad) in zip(windows, unpack_windows(windows), strict=True):
        alone = unpack_events(window)
        for got, want in zip((actions, ts, from_ad), alone, strict=True):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
        assert [packed_ts(e) for e in window] == alone[1].tolist()


async def test_script_is_reloaded_after_script_flush(client: aredis.Redis) -> None:
    store = SessionWindowStore(client)
    await store.append_event("s-1", None, VIEW, T0, None)
    await client.script_flush()
    assert (await store.append_event("s-1", None, VIEW, T0 + 1, None)).event_index == 1


async def test_round_trips_per_click_under_concurrent_load(client: aredis.Redis, redis_url: str) -> None:
    store = SessionWindowStore(client)
    sessions = [f"s-{i}" for i in range(50)]

    async def click_round(step: int) -> None:
        """50 concurrent clicks, then their batch's write-back, as the service does it."""
        results = await asyncio.gather(*(store.append_event(s, f"{s}-{step}", VIEW, T0 + step, None) for s in sessions))
        pairs = zip(sessions, results, strict=True)
        await store.write_scores([record(s, f"{s}-{step}", r.event_index, 0.5) for s, r in pairs])

    await click_round(0)  # loads the scripts and opens the pool's connections
    with redis.Redis.from_url(redis_url) as watcher, RoundTripCounter(watcher) as trips:
        for step in range(1, 9):
            await click_round(step)
        sent = trips.take()
    clicks = 8 * len(sessions)
    per_click = sum(sent.values()) / clicks
    print(f"\nredis round trips per click: {per_click:.3f} (sent {dict(sent)})")
    assert sent == {"evalsha": clicks + 8}, "one EVALSHA per click plus one per batch, nothing else"
    assert per_click <= 1.1


async def test_write_scores_keeps_the_newest_and_never_recreates_a_deleted_session(client: aredis.Redis) -> None:
    store = SessionWindowStore(client)
    for i in range(2):
        await store.append_event("s-1", f"c-{i}", VIEW, T0 + i, None)
    await store.write_scores([record("s-1", "c-1", 1, 0.7), record("s-1", "c-0", 0, 0.1)])
    scores = await store.read_scores("s-1")
    assert scores is not None
    assert (scores["event_index"], scores["abandonment_risk"], scores["events"]) == (1, 0.7, 2)
    assert 1790 <= scores["expires_in_s"] <= 1800
    assert await store.read_scores("unknown") is None
    assert await store.delete_session("s-1")
    await store.write_scores([record("s-1", "c-1", 1, 0.7)])  # a batch that finishes after the delete
    assert await store.read_scores("s-1") is None
    assert await client.exists(*store.keys("s-1")) == 0


async def test_at_risk_is_ranked_and_never_returns_an_expired_session(client: aredis.Redis) -> None:
    store = SessionWindowStore(client, ttl_s=1)
    for name, risk in (("a", 0.9), ("b", 0.5), ("c", 0.7)):
        await store.append_event(name, None, VIEW, T0, None)
        await store.write_scores([record(name, None, 0, risk)])
    ranked = await store.at_risk(min_risk=0.0, limit=10)
    assert [(r["session_id"], r["abandonment_risk"]) for r in ranked] == [("a", 0.9), ("c", 0.7), ("b", 0.5)]
    assert [r["session_id"] for r in await store.at_risk(min_risk=0.6, limit=10)] == ["a", "c"]
    assert [r["session_id"] for r in await store.at_risk(min_risk=0.0, limit=1)] == ["a"]
    await asyncio.sleep(0.7)
    await store.append_event("c", None, VIEW, T0 + 1, None)  # c stays live, a and b run out
    await store.write_scores([record("c", None, 1, 0.7)])
    await asyncio.sleep(0.5)
    assert [r["session_id"] for r in await store.at_risk(min_risk=0.0, limit=10)] == ["c"]
    assert await client.zrange(store.risk_key, 0, -1) == [b"c"], "expired entries are pruned from the index"


async def test_index_is_pruned_by_writes_without_any_reader(client: aredis.Redis) -> None:
    store = SessionWindowStore(client, ttl_s=1)
    for name in ("a", "b"):
        await store.append_event(name, None, VIEW, T0, None)
        await store.write_scores([record(name, None, 0, 0.5)])
    await asyncio.sleep(1.1)
    await store.append_event("c", None, VIEW, T0, None)
    await store.write_scores([record("c", None, 0, 0.5)])
    assert await client.zrange(store.risk_key, 0, -1) == [b"c"]
    assert await client.zrange(store.expiry_key, 0, -1) == [b"c"]


async def test_at_risk_checks_the_session_even_when_the_index_trails(client: aredis.Redis) -> None:
    store = SessionWindowStore(client, ttl_s=600)
    for name, risk in (("a", 0.9), ("b", 0.8)):
        await store.append_event(name, None, VIEW, T0, None)
        await store.write_scores([record(name, None, 0, risk)])
    await client.pexpire(store.keys("a")[1], 1)  # the session runs out before its index entry does
    await asyncio.sleep(0.01)
    assert [r["session_id"] for r in await store.at_risk(min_risk=0.0, limit=10)] == ["b"]
    assert await client.zscore(store.risk_key, "a") is None


async def test_delete_removes_every_key_and_index_entry(client: aredis.Redis) -> None:
    store = SessionWindowStore(client)
    for name in ("keep", "gone"):
        await store.append_event(name, f"{name}-1", VIEW, T0, None)
        await store.write_scores([record(name, f"{name}-1", 0, 0.5)])
    assert await store.delete_session("gone")
    assert not await store.delete_session("gone")
    remaining = {k.decode() for k in await client.keys("*") if isinstance(k, bytes)}
    assert remaining == {*store.keys("keep"), store.key_scheme.context("keep"), store.risk_key, store.expiry_key}
    for index_key in (store.risk_key, store.expiry_key):
        assert await client.zrange(index_key, 0, -1) == [b"keep"]
    assert await store.read_window("gone") is None and await store.ping()


async def session_bytes(client: aredis.Redis, store: SessionWindowStore, session_id: str) -> int:
    return sum([int(await client.memory_usage(k, samples=0) or 0) for k in store.keys(session_id)])


async def test_memory_per_live_session(client: aredis.Redis) -> None:
    store = SessionWindowStore(client, window=10)
    rng = np.random.default_rng(0)

    async def live_session(session_id: str, events: int) -> int:
        for i in range(events):
            event_id = str(uuid.UUID(int=int(rng.integers(2**62))))  # 36-char ids, as storefronts send
            result = await store.append_event(session_id, event_id, int(rng.integers(12)), T0 + 7 * i, i == 0)
            p_add, p_order = (round(float(p), 4) for p in rng.random(2))
            await store.write_scores([record(
                session_id, event_id, result.event_index, round(p_add * (1 - p_order), 4),
                p_add_cart=p_add, p_make_order=p_order, window_len=len(result),
            )])
        return await session_bytes(client, store, session_id)

    ten = await live_session("s-10-events", 10)
    long = await live_session("s-100-events", 100)
    # The shared at-risk index adds two sorted-set entries per scored session (skiplist past 128).
    await store.write_scores([record(f"idx-{i}", None, 0, float(rng.random())) for i in range(1000)])
    index = sum([int(await client.memory_usage(k, samples=0) or 0) for k in (store.risk_key, store.expiry_key)])
    print(f"\nMEMORY USAGE per session, N=10: {ten} B after 10 events, {long} B after 100 events "
          f"({store.event_id_memory} event ids remembered); at-risk index {index / 1002:.0f} B per session")
    assert ten <= 1536


async def test_an_order_takes_the_session_out_of_the_index_at_write_time(client: aredis.Redis) -> None:
    """On a single Redis the write that carries the order's score also unlists the session."""
    store = SessionWindowStore(client)
    await store.append_event("s-buy", None, ADD_CART, T0, None)
    await store.write_scores([record("s-buy", None, 0, 0.91)])
    assert await client.zscore(store.risk_key, "s-buy") == 0.91
    await store.append_event("s-buy", None, ORDER, T0 + 1, None)
    await store.write_scores([record("s-buy", None, 1, 0.2)])
    assert await client.zscore(store.risk_key, "s-buy") is None
    assert await client.zscore(store.expiry_key, "s-buy") is None
    await store.append_event("s-buy", None, ADD_CART, T0 + 2, None)  # a new cart lists it again
    await store.write_scores([record("s-buy", None, 2, 0.9)])
    assert await client.zscore(store.risk_key, "s-buy") == 0.9
