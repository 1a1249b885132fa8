"""SessionWindowStore, unchanged, on a real six-node Redis Cluster (3 masters, 3 replicas)."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack

import pytest
import redis
from redis.asyncio.cluster import RedisCluster

from model.features import ACTION_INDEX
from service.settings import Settings
from service.store.client import connect_redis
from service.store.lua_scripts import lua_script
from service.store.window_store import ScoreRecord, SessionWindowStore
from tests.cluster_procs import RedisClusterProcs, cluster_round_trips

T0 = 1_764_000_000.0
VIEW = ACTION_INDEX["view_product"]


@pytest.fixture()
def client(cluster_client: RedisCluster) -> RedisCluster:
    """conftest.py's flushed client of the module's cluster."""
    return cluster_client


def record(session_id: str, event_id: str | None, event_index: int, risk: float) -> ScoreRecord:
    return ScoreRecord(
        session_id=session_id, event_id=event_id, event_index=event_index, p_add_cart=0.5, p_make_order=0.25,
        abandonment_risk=risk, intent="cart_abandonment", model="m@1", window_len=min(event_index + 1, 10),
        ts=T0 + event_index,
    )


async def test_a_session_lives_on_one_slot_and_sessions_spread_over_masters(client: RedisCluster) -> None:
    store = SessionWindowStore(client)
    sessions = [f"s-{i}" for i in range(30)]
    for session_id in sessions:
        assert len({client.keyslot(k) for k in store.keys(session_id)}) == 1
    masters = {getattr(client.get_node_from_key(store.keys(s)[0]), "name", None) for s in sessions}
    assert len(masters) == 3
    assert client.keyslot(store.risk_key) == client.keyslot(store.expiry_key)


async def test_store_api_on_a_cluster(client: RedisCluster) -> None:
    store = SessionWindowStore(client, window=10)
    results = await asyncio.gather(*(store.append_event("hot", f"h-{i}", i % 12, T0 + i, None) for i in range(60)))
    assert sorted(r.event_index for r in results) == list(range(60))
    ts_by_index = {r.event_index: float(r.ts[-1]) for r in results}
    window = await store.read_window("hot")
    assert window is not None and window.ts.tolist() == [ts_by_index[i] for i in range(50, 60)]

    sessions = [f"s-{i}" for i in range(30)]
    appended = await asyncio.gather(*(store.append_event(s, f"{s}-0", VIEW, T0, None) for s in sessions))
    pairs = enumerate(zip(sessions, appended, strict=True))
    await store.write_scores([record(s, f"{s}-0", r.event_index, i / 100) for i, (s, r) in pairs])

    retry = await store.append_event("s-7", "s-7-0", VIEW, T0, None)
    assert retry.duplicate and retry.stored_answer is not None
    assert retry.stored_answer["abandonment_risk"] == 0.07 and retry.stored_answer["intent"] == "cart_abandonment"
    scores = await store.read_scores("s-29")
    assert scores is not None and scores["abandonment_risk"] == 0.29

    top = await store.at_risk(min_risk=0.2, limit=5)
    assert [r["session_id"] for r in top] == ["s-29", "s-28", "s-27", "s-26", "s-25"]
    assert await store.delete_session("s-29")
    assert await client.exists(*store.keys("s-29")) == 0
    assert await client.zscore(store.risk_key, "s-29") is None
    assert await client.zscore(store.expiry_key, "s-29") is None
    assert [r["session_id"] for r in await store.at_risk(min_risk=0.27, limit=5)] == ["s-28", "s-27"]
    assert await store.ping()


async def test_at_risk_drops_a_session_deleted_while_its_batch_wrote_the_index(client: RedisCluster) -> None:
    """On a cluster the index write is a separate call: it can land after a delete; readers must not care."""
    store = SessionWindowStore(client)
    await store.append_event("late", None, VIEW, T0, None)
    await store.delete_session("late")
    await store.write_scores([record("late", None, 0, 0.9)])  # the batch's write lands after the delete
    assert await client.zscore(store.risk_key, "late") == 0.9
    assert await store.at_risk(min_risk=0.0, limit=10) == []
    assert await client.zscore(store.risk_key, "late") is None


async def test_a_write_back_costs_one_call_per_slot(client: RedisCluster, cluster: RedisClusterProcs) -> None:
    """On a cluster a batch's write-back is one EVALSHA per slot its sessions are on, plus one for the index
    (docs/redis.md "Write-behind"): about one per record when the batch's sessions are on different slots."""
    store = SessionWindowStore(client)
    sessions = [f"wb-{i}" for i in range(64)]
    for session_id in sessions:
        await store.append_event(session_id, None, VIEW, T0, None)
    await client.script_load(lua_script("write_scores.lua"))
    slots = {client.keyslot(store.keys(s)[1]) for s in sessions}
    with cluster_round_trips(cluster) as trips:
        await store.write_scores([record(s, None, 0, 0.5) for s in sessions])
        sent = trips.take()
    assert sent["evalsha"] == len(slots) + 1, (sent, len(slots))
    print(f"\n64-record write-back on a cluster: {sent['evalsha']} EVALSHAs ({len(slots)} slots + the index)")


async def test_a_write_back_is_one_round_trip_per_master(client: RedisCluster, cluster: RedisClusterProcs) -> None:
    """The per-slot calls of a write-back go as one pipeline per master (docs/redis.md "Write-behind"), so Redis
    reads them in one read per master, where one call per slot, each awaited on its own, meant about one read per
    record. Counted by the masters themselves (INFO stats total_reads_processed), on the service's own client (its
    pipelines wait for a slot and do not close the client on an error: service/store/client.py)."""
    host, port = cluster.startup_node
    service_client = connect_redis(f"redis://{host}:{port}/0", Settings(redis_cluster=True))
    try:
        reads, masters, scores = await _write_back_reads(SessionWindowStore(service_client), cluster)
    finally:
        await service_client.aclose()
    print(f"\n64-record write-back on a cluster: {reads} reads on {masters} masters")
    assert reads <= 2 * masters, (reads, masters)
    assert scores is not None and scores["abandonment_risk"] == 0.6


async def _write_back_reads(store: SessionWindowStore, cluster: RedisClusterProcs) -> tuple[int, int, dict | None]:
    """(the masters' reads during one 64-record write-back, the masters, a session's scores after it)."""
    sessions = [f"rt-{i}" for i in range(64)]
    for session_id in sessions:
        await store.append_event(session_id, None, VIEW, T0, None)
    await store.write_scores([record(s, None, 0, 0.5) for s in sessions])  # every master has the script now
    with ExitStack() as stack:
        nodes = [stack.enter_context(redis.Redis(host="127.0.0.1", port=node.port)) for node in cluster.nodes]
        masters = [node for node in nodes if node.info("replication")["role"] == "master"]
        before = [master.info("stats")["total_reads_processed"] for master in masters]
        await store.write_scores([record(s, None, 1, 0.6) for s in sessions])
        after = [master.info("stats")["total_reads_processed"] for master in masters]
    # Less each master's INFO read; a replica's REPLCONF ACK (once a second) may land in the window too.
    reads = sum(a - b - 1 for a, b in zip(after, before, strict=True))
    return reads, len(masters), await store.read_scores("rt-63")


async def test_a_write_back_reloads_the_script_on_masters_that_lost_it(client: RedisCluster,
                                                                       cluster: RedisClusterProcs) -> None:
    """A pipelined EVALSHA on a master without the script (a promoted replica, a restart) gets NOSCRIPT: the store
    loads it and sends those calls again, so the batch is written whole."""
    store = SessionWindowStore(client)
    sessions = [f"ns-{i}" for i in range(32)]
    for session_id in sessions:
        await store.append_event(session_id, None, VIEW, T0, None)
    for node in cluster.nodes:
        with redis.Redis(host="127.0.0.1", port=node.port) as direct:
            direct.script_flush()
    await store.write_scores([record(s, None, 0, i / 100) for i, s in enumerate(sessions)])
    risks = [(await store.read_scores(s) or {}).get("abandonment_risk") for s in sessions]
    assert risks == [i / 100 for i in range(len(sessions))], risks
    listed = await store.at_risk(min_risk=0.0, limit=100)
    assert {row["session_id"] for row in listed} >= set(sessions), listed
