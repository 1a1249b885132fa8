"""ScoreWriter against a real redis-server: what a flush does on the event loop, and what it writes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis

from service.metrics import ServiceMetrics
from service.store.window_store import ScoreRecord, SessionWindowStore
from service.store.window_values import ScoreParts
from service.store.write_behind import ScoreWriter

T0 = 1_764_000_000.0


@pytest.fixture()
async def client(redis_url: str) -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def record(session_id: str, event_id: str, event_index: int, risk: float) -> ScoreRecord:
    return ScoreRecord(session_id=session_id, event_id=event_id, event_index=event_index, p_add_cart=0.3125,
                       p_make_order=0.0625, abandonment_risk=risk, intent="browse", model="lstm-gru-int8@3f2a9c",
                       window_len=event_index + 1, ts=T0 + event_index)


class CountingStore(SessionWindowStore):
    """The real store, counting the records whose write_scores arguments it builds."""

    built = 0

    def score_parts(self, record: ScoreRecord) -> ScoreParts:
        self.built += 1
        return super().score_parts(record)


async def test_a_flush_joins_arguments_built_as_each_record_was_added(client: aredis.Redis) -> None:
    store = CountingStore(client)
    writer = ScoreWriter(store, ServiceMetrics(), flush_s=60, max_records=1000)
    records = [record(f"s-{i % 5}", f"c-{i}", i // 5, i / 100) for i in range(40)]
    for r in records:  # the clicks, as the service appends them before it scores them
        await store.append_event(r.session_id, r.event_id, 1, r.ts, None)
    for r in records:
        writer.add(r)
    assert store.built == 40  # built on add, one click at a time
    await writer.flush()
    assert store.built == 40  # the flush built none: it only joined them
    assert writer.unwritten("s-0", "c-0") is None and writer.latest("s-0") is None
    for session in range(5):  # each session's newest record is what Redis holds
        scores = await store.read_scores(f"s-{session}")
        assert scores is not None and scores["event_index"] == 7
        assert scores["abandonment_risk"] == pytest.approx((35 + session) / 100)


async def test_write_scores_and_write_prepared_write_the_same(client: aredis.Redis) -> None:
    store = SessionWindowStore(client)
    batch = [record("a", "c-1", 0, 0.25), record("a", "c-2", 1, 0.75), record("b", "c-3", 0, 0.5)]

    async def clicks() -> None:
        await client.flushall()
        for r in batch:
            await store.append_event(r.session_id, r.event_id, 1, r.ts, None)

    await clicks()
    await store.write_scores(batch)
    first = await stored(store)
    await clicks()
    await store.write_prepared([store.score_parts(r) for r in batch])
    assert await stored(store) == first
    assert first["a"]["event_index"] == 1 and first["b"]["abandonment_risk"] == 0.5


async def stored(store: SessionWindowStore) -> dict[str, dict[str, object]]:
    """Each session's stored scores, less the TTL (a second may pass between two writes)."""
    found = {}
    for session in ("a", "b"):
        scores = await store.read_scores(session)
        assert scores is not None
        found[session] = {k: v for k, v in scores.items() if k != "expires_in_s"}
    return found
