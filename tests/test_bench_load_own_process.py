"""The open-loop generator in its own process: every click answered, its send lateness recorded, its GC off."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest

from bench.load.click_pools import CATEGORIES, SHELF
from bench.load.open_loop import OpenLoopPlan, draw_arrivals
from bench.load.own_process import run_in_own_process, run_inline

ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{"event_index":1}'


class _Http(asyncio.Protocol):
    """Answers each request on a keep-alive connection with a fixed 200 (one at a time, as the generator sends)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            length = int(head.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            self.transport.write(ANSWER)  # type: ignore[attr-defined]


@pytest.fixture
def http_url() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(_Http, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    server.close()
    loop.close()


def test_the_generator_runs_in_its_own_process_with_no_collection_and_records_lateness(http_url: str) -> None:
    plan = OpenLoopPlan(rate=200, duration_s=1.0, sessions=10, connections=4)
    started: list[bool] = []
    record, stats = run_in_own_process(http_url, plan, on_start=lambda: started.append(True))
    assert started == [True]
    assert record.statuses() == {200: len(record.clicks)} and len(record.clicks) > 100
    assert stats.own_process and stats.gc_off and stats.pauses == []
    late = [c.late_s for c in record.clicks]
    assert all(0.0 <= s < 1.0 for s in late) and any(s > 0 for s in late)
    # latency runs from the due time, lateness included (to uvloop's cached 1 ms clock, which times the answer)
    assert all(c.latency_s >= c.late_s - 0.002 for c in record.clicks)


def test_inline_records_the_collections_of_this_process(http_url: str) -> None:
    plan = OpenLoopPlan(rate=100, duration_s=0.5, sessions=5, connections=2)
    record, stats = run_inline(http_url, plan, on_start=_churn)
    assert not stats.own_process and record.statuses() == {200: len(record.clicks)}
    assert stats.pauses, "the GC watch saw no collection"


def _churn() -> None:
    """Enough new containers that this process's GC collects while the generator runs."""
    cycles = []
    for i in range(50_000):
        a: list[object] = [i]
        a.append(a)  # a cycle: only the cyclic GC frees it
        cycles.append(a)


def test_clicks_with_ids_name_the_sessions_shopper_and_an_item_of_its_shelf() -> None:
    """`ids`: every click names its session's one shopper and an item of its shelf; without, no ids at all, and the
    draw (times, sessions, actions) is the same either way."""
    plan = OpenLoopPlan(rate=500, duration_s=2.0, sessions=40, seed=3)
    plain, with_ids = draw_arrivals(plan, "h"), draw_arrivals(replace(plan, ids=True), "h")
    np.testing.assert_array_equal(plain.due, with_ids.due)
    assert plain.sessions == with_ids.sessions
    bodies = [json.loads(r.split(b"\r\n\r\n", 1)[1]) for r in with_ids.requests]
    assert all("user_id" not in json.loads(r.split(b"\r\n\r\n", 1)[1]) for r in plain.requests)
    users: dict[str, set[str]] = {}
    shelves: dict[str, set[str]] = {}
    for session, body in zip(with_ids.sessions, bodies, strict=True):
        users.setdefault(session, set()).add(body["user_id"])
        shelves.setdefault(session, set()).add(body["item_id"])
        assert body["category_id"] == f"c-{int(body['item_id'][2:]) % CATEGORIES}"
    assert all(len(u) == 1 for u in users.values())  # one shopper per session
    assert len({u for us in users.values() for u in us}) == 4  # a tenth as many shoppers as sessions: they return
    assert all(len(items) <= SHELF for items in shelves.values()) and max(map(len, shelves.values())) > 1
