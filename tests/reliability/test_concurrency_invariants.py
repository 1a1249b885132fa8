"""Concurrency invariants against real Redis, through the real HTTP service, on random interleavings.

Hypothesis draws a burst: many clicks on a few sessions, some sent several times at once (duplicate
event_ids), all in flight together; a click that is not answered 200 is retried with the same event_id
until it is. Afterwards, per session:
- every event_id has exactly one event_index, whichever of its copies answered;
- the event indices are exactly 0..k-1 for k distinct event_ids: nothing counted twice, nothing skipped;
- the stored window is the last N accepted events in server (event_index) order, and the meta count is k.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.features import ACTIONS
from service.app import create_app
from service.store.score_record import META_FIELDS
from service.store.window_store import SessionWindowStore
from tests.redis_procs import RedisServer
from tests.service_support import WINDOW, service_settings
from tests.uvicorn_proc import UvicornThread

T0_MS = 1_790_000_000_000
MAX_ATTEMPTS = 20


@pytest.fixture(scope="module")
def server(model_dir: Path, redis_server: RedisServer) -> Iterator[UvicornThread]:
    # A small queue and a short deadline: many copies are shed (503) or late (504) and must be retried.
    # Dedupe remembers the newest SI_EVENT_ID_MEMORY ids of a session (docs/redis.md); a burst puts up to
    # 80 clicks on one session, so remember them all here: the bound itself is the next test's subject.
    settings = service_settings(model_dir, redis_server.url, max_queue_size=4, request_deadline_ms=100,
                                max_queue_delay_ms=5, event_id_memory=128)
    with UvicornThread(create_app(settings)) as running:
        yield running


Click = tuple[int, int, int, int]  # (session, event number in the burst, action index, copies sent at once)

bursts = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 10_000), st.integers(0, len(ACTIONS) - 1), st.integers(1, 3)),
    min_size=20, max_size=80, unique_by=lambda click: click[1],
)


async def send_until_answered(http: httpx.AsyncClient, session: str, event_id: str, body: dict[str, object]
                              ) -> tuple[int, int]:
    """(event_index of the 200, attempts); retries with the same event_id on 503/504, as a client would."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        answer = await http.post(f"/v1/sessions/{session}/events", json=body)
        if answer.status_code == 200:
            return int(answer.json()["event_index"]), attempt
        assert answer.status_code in (503, 504), answer.text
        await asyncio.sleep(0.005 * attempt)
    raise AssertionError(f"{event_id} never answered 200 in {MAX_ATTEMPTS} attempts")


async def run_burst(url: str, redis_url: str, burst: list[Click]) -> None:
    run = uuid.uuid4().hex[:8]
    sessions = [f"inv-{run}-{i}" for i in range(3)]
    sent: dict[str, tuple[str, int, int]] = {}  # event_id -> (session, action, ts_ms)
    jobs = []
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=64)) as http:
        for session_no, number, action, copies in burst:
            event_id = f"{run}-{number}"
            ts_ms = T0_MS + number  # unique per event: identifies it in the stored window
            sent[event_id] = (sessions[session_no], action, ts_ms)
            body = {"event_id": event_id, "action": ACTIONS[action], "ts": ts_ms / 1000}
            jobs += [(event_id, send_until_answered(http, sessions[session_no], event_id, body))
                     for _ in range(copies)]
        answers = await asyncio.gather(*(job for _, job in jobs))
    indices: dict[str, set[int]] = defaultdict(set)
    for (event_id, _), (event_index, _) in zip(jobs, answers, strict=True):
        indices[event_id].add(event_index)
    assert all(len(found) == 1 for found in indices.values()), indices  # one index per event_id, copies agree

    client = aioredis.Redis.from_url(redis_url)
    store = SessionWindowStore(client, window=WINDOW)
    try:
        for session in sessions:
            mine = sorted((next(iter(indices[e])), e) for e, (s, _, _) in sent.items() if s == session)
            assert [index for index, _ in mine] == list(range(len(mine)))  # no gap, nothing twice
            window = await store.read_window(session)
            if not mine:
                assert window is None
                continue
            assert window is not None
            expected = [sent[e] for _, e in mine][-WINDOW:]
            assert window.actions.tolist() == [action for _, action, _ in expected]
            assert [round(t * 1000) for t in window.ts.tolist()] == [ts for _, _, ts in expected]
            count = await client.hget(store.keys(session)[1], META_FIELDS["count"])
            assert count is not None and int(count) == len(mine)
    finally:
        await client.aclose()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(burst=bursts)
def test_windows_hold_the_last_n_accepted_events_in_server_order(server: UvicornThread, redis_server: RedisServer,
                                                                  burst: list[Click]) -> None:
    asyncio.run(run_burst(server.url, redis_server.url, burst))


async def test_a_retry_older_than_the_event_id_memory_is_counted_again(server: UvicornThread) -> None:
    """The documented bound of dedupe: past SI_EVENT_ID_MEMORY newer events, an event_id is forgotten."""
    memory = server.app.state.settings.event_id_memory
    session = f"mem-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        first, _ = await send_until_answered(http, session, "old", {"event_id": "old", "action": "home"})
        for i in range(memory):
            await send_until_answered(http, session, f"n{i}", {"event_id": f"n{i}", "action": "home"})
        again, _ = await send_until_answered(http, session, "old", {"event_id": "old", "action": "home"})
    assert (first, again) == (0, memory + 1)
