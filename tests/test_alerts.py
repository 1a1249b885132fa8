"""Coupon alerts in the store (service/store/alerts.py) against a real redis-server and a real Redis Cluster:
one alert per open cart, written with the batch's scores, the order outcome written with the click."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from bench.procs.round_trips import RoundTripCounter
from model.features import ACTION_INDEX, ADD_CART, ORDER
from service.arms import ArmAssigner
from service.settings import Settings
from service.store.alerts import ALERT_FIELDS, AlertConfig, decode_outcomes
from service.store.client import connect_redis
from service.store.window_store import ScoreRecord, SessionWindowStore
from tests.cluster_procs import RedisClusterProcs, start_cluster_or_skip

T0 = 1_764_000_000.0
VIEW = ACTION_INDEX["view_product"]
ALERTS = AlertConfig(stream_maxlen=1000, outcome_ttl_s=86400)


def scored(session_id: str, event_index: int, risk: float, arm: str) -> ScoreRecord:
    return ScoreRecord(session_id=session_id, event_id=None, event_index=event_index, p_add_cart=0.5,
                       p_make_order=1 - risk, abandonment_risk=risk, intent="cart_abandonment", model="m@1",
                       window_len=event_index + 1, ts=T0 + event_index, arm=arm,
                       policy="budget:0.1" if arm else "")


@pytest.fixture()
async def client(redis_url: str) -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def click(store: SessionWindowStore, session_id: str, action: int, at: int) -> int:
    return (await store.append_event(session_id, None, action, T0 + at, None)).event_index


async def stream(client: aredis.Redis | RedisCluster, store: SessionWindowStore) -> list[dict[str, str]]:
    entries = await client.xrange(store.key_scheme.alerts)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


async def outcomes(client: aredis.Redis | RedisCluster, store: SessionWindowStore, sid: str) -> list[dict]:
    raw = await client.hgetall(store.key_scheme.outcomes(sid))
    live = bool(await client.exists(store.keys(sid)[1]))
    return decode_outcomes(sid, {k.decode(): v.decode() for k, v in raw.items()}, live)


async def test_one_alert_per_open_cart_and_a_new_cart_alerts_again(client: aredis.Redis) -> None:
    store = SessionWindowStore(client, alerts=ALERTS)
    await click(store, "s-1", VIEW, 0)
    await store.write_scores([scored("s-1", 0, 0.9, "treat")])  # due, but no cart is open: no alert
    first = await click(store, "s-1", ADD_CART, 1)
    await store.write_scores([scored("s-1", first, 0.9, "treat")])
    again = await click(store, "s-1", VIEW, 2)
    await store.write_scores([scored("s-1", again, 0.95, "treat")])  # same open cart: no second alert
    alerts = await stream(client, store)
    assert [a["event_index"] for a in alerts] == [str(first)]
    assert set(alerts[0]) == set(ALERT_FIELDS)
    assert (alerts[0]["session"], alerts[0]["arm"], alerts[0]["policy"], alerts[0]["model"]) == (
        "s-1", "treat", "budget:0.1", "m@1")
    assert float(alerts[0]["ts"]) == T0 + first and float(alerts[0]["risk"]) == 0.9

    order = await click(store, "s-1", ORDER, 3)  # closes the cart: the alert's outcome
    rows = await outcomes(client, store, "s-1")
    assert [(r["event_index"], r["outcome"], r["order_ts"]) for r in rows] == [(first, "order", T0 + 3)]
    assert order == 3
    new_cart = await click(store, "s-1", ADD_CART, 4)
    await store.write_scores([scored("s-1", new_cart, 0.9, "treat")])
    assert [a["event_index"] for a in await stream(client, store)] == [str(first), str(new_cart)]
    rows = {r["event_index"]: r["outcome"] for r in await outcomes(client, store, "s-1")}
    assert rows == {first: "order", new_cart: "pending"}
    assert await client.ttl(store.key_scheme.outcomes("s-1")) > store.ttl_s  # kept for days, not the session TTL
    assert await store.delete_session("s-1") and not await client.exists(store.key_scheme.outcomes("s-1"))


async def test_a_held_session_is_alerted_with_its_arm_and_an_expired_one_counts_as_open(client: aredis.Redis) -> None:
    store = SessionWindowStore(client, ttl_s=1, alerts=ALERTS)
    cart = await click(store, "s-h", ADD_CART, 0)
    await store.write_scores([scored("s-h", cart, 0.7, "hold"), scored("s-q", 0, 0.7, "")])
    assert [(a["session"], a["arm"]) for a in await stream(client, store)] == [("s-h", "hold")]
    for key in store.keys("s-h"):
        await client.delete(key)  # what the 1 s TTL does, without the wait
    assert [r["outcome"] for r in await outcomes(client, store, "s-h")] == ["expired"]


async def test_a_click_not_due_raises_nothing(client: aredis.Redis) -> None:
    store = SessionWindowStore(client)
    cart = await click(store, "s-off", ADD_CART, 0)
    await store.write_scores([scored("s-off", cart, 0.9, "")])
    assert await stream(client, store) == []


async def test_the_stream_is_capped_approximately(client: aredis.Redis) -> None:
    store = SessionWindowStore(client, alerts=AlertConfig(stream_maxlen=10))
    for i in range(300):
        sid = f"cap-{i}"
        await click(store, sid, ADD_CART, 0)
        await store.write_scores([scored(sid, 0, 0.9, "treat")])
    assert 10 <= await client.xlen(store.key_scheme.alerts) < 300  # '~': trimmed by whole macro nodes


async def test_alerts_cost_no_round_trip(client: aredis.Redis, redis_url: str) -> None:
    import redis as sync_redis

    store = SessionWindowStore(client, alerts=ALERTS)
    await client.ping()  # the connection's handshake is not a click's
    with RoundTripCounter(sync_redis.Redis.from_url(redis_url)) as trips:
        for i in range(20):
            await click(store, f"rt-{i}", ADD_CART, 0)
        await store.write_scores([scored(f"rt-{i}", 0, 0.9, "treat") for i in range(20)])
        await click(store, "rt-0", ORDER, 1)
        by_command = trips.take()
    assert by_command == {"evalsha": 22}, by_command  # 21 clicks + 1 batch, alerts and outcome inside
    assert len(await stream(client, store)) == 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcs]:
    procs = start_cluster_or_skip(tmp_path_factory.mktemp("cluster"))
    yield procs
    procs.stop()


async def test_on_a_cluster_the_crossing_batch_adds_one_call(cluster: RedisClusterProcs) -> None:
    host, port = cluster.startup_node
    client = RedisCluster(host=host, port=port)
    await client.flushall()
    try:
        store = SessionWindowStore(client, alerts=ALERTS)
        sessions = [f"c-{i}" for i in range(12)]
        for sid in sessions:
            await click(store, sid, ADD_CART, 0)
        await store.write_scores([scored(sid, 0, 0.9, "treat" if i % 2 else "hold") for i, sid in enumerate(sessions)])
        alerts = await stream(client, store)
        assert sorted(a["session"] for a in alerts) == sorted(sessions)
        expected = {sid: "treat" if i % 2 else "hold" for i, sid in enumerate(sessions)}
        assert {a["session"]: a["arm"] for a in alerts} == expected
        await store.write_scores([scored(sid, 0, 0.9, "treat") for sid in sessions])  # alerted carts: none again
        assert len(await stream(client, store)) == len(sessions)
        await click(store, "c-3", ORDER, 1)
        assert [r["outcome"] for r in await outcomes(client, store, "c-3")] == ["order"]
    finally:
        await client.aclose()


@pytest.mark.slow
async def test_on_a_cluster_a_dead_master_loses_only_its_own_alerts(tmp_path: Path) -> None:
    """The write-back goes as one pipeline per master: with a master dead its records fail (the flush raises, and
    the ScoreWriter logs and counts it), while the alerts the other masters' calls raised still reach the stream.
    Their markers are set, so dropping them with the failed flush would have lost them for good. No master has
    write_scores.lua yet, so the live masters' calls also go through the NOSCRIPT reload on their own node, which
    must not need the dead master (redis-py's own reload loads on every master)."""
    procs = start_cluster_or_skip(tmp_path, node_timeout_ms=30_000)  # no replica is promoted while this runs
    host, port = procs.startup_node
    client = connect_redis(f"redis://{host}:{port}/0", Settings(redis_cluster=True, redis_timeout_ms=3000))
    try:
        store = SessionWindowStore(client, alerts=ALERTS)
        sessions = [f"d-{i}" for i in range(24)]
        for sid in sessions:
            await click(store, sid, ADD_CART, 0)
        kept = {procs.master_of(store.key_scheme.alerts).port, procs.master_of(store.risk_key).port}
        master = {sid: procs.master_of(store.keys(sid)[1]).port for sid in sessions}
        victim = next(procs.master_of(store.keys(sid)[1]) for sid in sessions if master[sid] not in kept)
        assert victim.proc is not None
        victim.proc.kill()
        victim.proc.wait()
        victim.proc = None
        with pytest.raises(RedisError):
            await store.write_scores([scored(sid, 0, 0.9, "treat") for sid in sessions])
        alerted = sorted(a["session"] for a in await stream(client, store))
        assert alerted == sorted(sid for sid in sessions if master[sid] != victim.port), alerted
        assert alerted  # the premise: some sessions live on the other masters
    finally:
        await client.aclose()
        procs.stop()


def test_arms_are_stable_keyed_and_near_their_share() -> None:
    arms = ArmAssigner("k1", 0.1)
    ids = [f"s{i}" for i in range(20_000)]
    held = [s for s in ids if arms.arm(s) == "hold"]
    assert 0.09 < len(held) / len(ids) < 0.11
    assert [arms.arm(s) for s in ids[:50]] == [ArmAssigner("k1", 0.1).arm(s) for s in ids[:50]]
    other = ArmAssigner("k2", 0.1)
    assert {s for s in ids if other.arm(s) == "hold"} != set(held)
    assert ArmAssigner("k1", 0.0).arm("s1") == "treat" and ArmAssigner("k1", 1.0).arm("s1") == "hold"


def test_an_arm_is_the_first_64_bits_of_hmac_sha256_of_the_session_id() -> None:
    """A release must not reshuffle a running experiment's arms: the assignment is pinned to its definition."""
    import hashlib
    import hmac

    arms = ArmAssigner("k1", 0.5)
    for session_id in [f"s{i}" for i in range(200)]:
        mac = hmac.new(b"k1", session_id.encode(), hashlib.sha256).digest()
        expected = "hold" if int.from_bytes(mac[:8], "big") / 2**64 < 0.5 else "treat"
        assert arms.arm(session_id) == expected
