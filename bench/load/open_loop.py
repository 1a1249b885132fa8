"""The one open-loop Poisson click generator, on raw asyncio protocols: overload, chaos, failover, session RSS.

Why hand-written: no open-loop HTTP load generator is installable here. Debian packages none of wrk2,
vegeta or oha; wrk and hey are closed loop (a slow server slows their sending, so they never offer more
than it takes and their latencies omit the wait of the clicks they did not send: coordinated omission).
An aiohttp generator spends 0.3-0.5 ms of CPU per request, so on the service's own 2 cores it could
not offer 2 × the service's rate, and what it measured was mostly its own event loop's lag.

How it stays cheap and honest:
- the arrivals are drawn before the phase (Poisson times, sessions, actions, unique event_ids) and each
  request is prebuilt bytes, so sending is one `transport.write`;
- a bounded pool of persistent HTTP/1.1 keep-alive connections, one request at a time on each (no
  pipelining); a click due while every connection is busy waits in a FIFO, and past `max_pending`
  waiting it is recorded as not sent (status -1);
- latency runs from the click's *intended* send time, so the wait for a free connection counts (no
  coordinated omission);
- an answer is parsed only for its status line, Content-Length, Retry-After and, on a 200, its
  event_index (the acknowledged-click audit needs it);
- `keep_pool`: a connection the server closes (idle keep-alive timeout) is replaced, so a long run at a
  low rate still has its whole pool when a fault makes answers slow;
- uvloop when importable (`run_fast`).
The records are bench/load/clicks.py's `Click` and `LoadRecord`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import numpy as np

from bench.load.click_pools import SHELF, category, shelf_item, shoppers
from bench.load.clicks import NOT_SENT, TRANSPORT_ERROR, Click, LoadRecord
from model.features import ACTIONS

log = logging.getLogger(__name__)

T = TypeVar("T")
_PENDING = -2  # sent, not answered yet


@dataclass(frozen=True)
class OpenLoopPlan:
    rate: float  # clicks/s, mean of the Poisson process
    duration_s: float
    sessions: int
    seed: int = 0
    connections: int = 256  # the keep-alive pool
    max_pending: int = 4096  # clicks waiting for a free connection; past it, not sent
    timeout_s: float = 5.0  # an answer later than this, after the last arrival, counts as no answer
    session_prefix: str = "open"
    max_clicks: int | None = None  # stop drawing arrivals after this many, even before duration_s
    keep_pool: bool = False  # replace the connections the server closes
    # Clicks carry user_id, item_id and category_id, so the context state and the shoppers' histories are written
    # on every click, drawn from the pools of click_pools.py (the same as wrk's clicks with ids).
    ids: bool = False


def session_id(plan: OpenLoopPlan, index: int) -> str:
    return f"{plan.session_prefix}-{plan.seed}-{index}"


@dataclass(frozen=True)
class Arrivals:
    """The phase drawn in advance: (n,) offsets in s from the start, and each click's session, event_id, bytes."""

    due: np.ndarray
    sessions: list[str]
    event_ids: list[str]
    requests: list[bytes]


def draw_arrivals(plan: OpenLoopPlan, host: str) -> Arrivals:
    rng = random.Random(plan.seed)
    shelf_rng = random.Random(f"{plan.seed}-items")  # its own stream: the ids leave times, sessions, actions as drawn
    counters = [0] * plan.sessions
    due: list[float] = []
    sessions: list[str] = []
    event_ids: list[str] = []
    requests: list[bytes] = []
    t = rng.expovariate(plan.rate)
    limit = plan.max_clicks if plan.max_clicks is not None else float("inf")
    while t < plan.duration_s and len(due) < limit:
        index = rng.randrange(plan.sessions)
        session = session_id(plan, index)
        event_id = f"{session}-{counters[index]}"
        counters[index] += 1
        body = _click_body(rng.choice(ACTIONS), plan, index, event_id, shelf_rng)
        requests.append(
            f"POST /v1/sessions/{session}/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        due.append(t)
        sessions.append(session)
        event_ids.append(event_id)
        t += rng.expovariate(plan.rate)
    return Arrivals(np.array(due), sessions, event_ids, requests)


def _click_body(action: str, plan: OpenLoopPlan, index: int, event_id: str, shelf_rng: random.Random) -> bytes:
    """One click's JSON, and with `plan.ids` the session's shopper and an item of its shelf."""
    if not plan.ids:
        return f'{{"event_id":"{event_id}","action":"{action}"}}'.encode()
    shopper = index % shoppers(plan.sessions)
    item = shelf_item(index, shelf_rng.randrange(SHELF))
    return (f'{{"event_id":"{event_id}","action":"{action}","user_id":"u-{shopper}","item_id":"i-{item}",'
            f'"category_id":"c-{category(item)}"}}').encode()


class _Connection(asyncio.Protocol):
    """One keep-alive connection: writes a click's bytes, reads one answer, hands itself back."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.click = -1  # index of the click in flight, -1 when idle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of asyncio.Transport

    def send(self, click: int) -> None:
        assert self.transport is not None
        self.click = click
        self.transport.write(self.run.arrivals.requests[click])

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end]).lower()
        length = _header_int(head, b"\r\ncontent-length:")
        if len(buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        index = _event_index(bytes(buffer[end + 4 : end + 4 + length])) if status == 200 else None
        del buffer[: end + 4 + length]
        retry_at = head.find(b"\r\nretry-after:")
        retry_after = head[retry_at + 14 :].split(b"\r\n", 1)[0].strip().decode() if retry_at >= 0 else None
        click, self.click = self.click, -1
        if click < 0:  # an answer to nothing (the server's own 4xx before closing): not a click's
            return
        self.run.answered(self, click, status, retry_after, index)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.run.lost(self)


def _header_int(head: bytes, name: bytes) -> int:
    at = head.find(name)
    return int(head[at + len(name) :].split(b"\r\n", 1)[0]) if at >= 0 else 0


def _event_index(body: bytes) -> int | None:
    """The answer's event_index, found without parsing the JSON (the service writes it as a plain integer)."""
    at = body.find(b'"event_index":')
    if at < 0:
        return None
    digits = body[at + 14 :].lstrip().split(b",", 1)[0].split(b"}", 1)[0].strip()
    return int(digits) if digits.isdigit() else None


class _Run:
    """The state of one phase on one event loop."""

    def __init__(self, plan: OpenLoopPlan, arrivals: Arrivals, host: str, port: int) -> None:
        self.plan, self.arrivals, self.host, self.port = plan, arrivals, host, port
        n = len(arrivals.due)
        self.status = [_PENDING] * n
        self.done_at = [0.0] * n  # loop time of the answer
        # time.monotonic() when the generator reached the click (uvloop's loop time is the iteration's, cached):
        # how well it kept its own schedule, before any wait for a free connection
        self.dispatched_at = [0.0] * n
        self.retry_after: list[str | None] = [None] * n
        self.event_index: list[int | None] = [None] * n
        self.pool: list[_Connection] = []
        self.idle: list[_Connection] = []
        self.waiting: deque[int] = deque()
        self.next = 0
        self.outstanding = 0
        self.start = 0.0
        self.loop = asyncio.get_running_loop()
        self.finished = self.loop.create_future()
        self._replacements: set[asyncio.Task[None]] = set()
        self.closing = False

    async def connect(self) -> None:
        for _ in range(self.plan.connections):
            _, conn = await self.loop.create_connection(lambda: _Connection(self), self.host, self.port)
            self.pool.append(conn)
        self.idle = list(self.pool)

    async def _replace(self) -> None:
        try:
            _, conn = await self.loop.create_connection(lambda: _Connection(self), self.host, self.port)
        except OSError as exc:
            log.debug("no replacement connection: %r", exc)
            return
        if self.closing:
            assert conn.transport is not None
            conn.transport.close()
            return
        self.pool.append(conn)
        if self.waiting:
            conn.send(self.waiting.popleft())
        else:
            self.idle.append(conn)

    def begin(self) -> None:
        self.start = self.loop.time() + 0.01
        if len(self.arrivals.due):
            self.loop.call_at(self.start + self.arrivals.due[0], self._tick)
        else:
            self.finished.set_result(None)

    def _tick(self) -> None:
        due, now = self.arrivals.due, self.loop.time() - self.start
        n, first = len(due), self.next
        reached = time.monotonic()
        while self.next < n and due[self.next] <= now:
            click = self.next
            self.next += 1
            self.dispatched_at[click] = reached
            if self.idle:
                self.outstanding += 1
                self.idle.pop().send(click)
            elif len(self.waiting) < self.plan.max_pending:
                self.outstanding += 1
                self.waiting.append(click)
            else:
                self.status[click] = NOT_SENT
        if self.next < n:
            # uvloop's timers have 1 ms resolution and may fire early: then wait a tick past the due
            # time rather than spin (the latency still runs from the due time).
            late = 0.001 if self.next == first else 0.0
            self.loop.call_at(self.start + due[self.next] + late, self._tick)
        else:
            self._maybe_finished()

    def answered(self, conn: _Connection, click: int, status: int, retry_after: str | None,
                 event_index: int | None) -> None:
        self.status[click], self.done_at[click], self.retry_after[click] = status, self.loop.time(), retry_after
        self.event_index[click] = event_index
        self.outstanding -= 1
        if self.waiting:
            conn.send(self.waiting.popleft())
        else:
            self.idle.append(conn)
            self._maybe_finished()

    def lost(self, conn: _Connection) -> None:
        """The server closed a connection: its click has no answer; the pool shrinks by one."""
        if conn.click >= 0:
            self.status[conn.click], self.done_at[conn.click] = TRANSPORT_ERROR, self.loop.time()
            self.outstanding -= 1
            conn.click = -1
        if conn in self.idle:
            self.idle.remove(conn)
        if conn in self.pool:
            self.pool.remove(conn)
        if self.plan.keep_pool and not self.closing and self.next < len(self.arrivals.due):
            self._replacements.add(task := self.loop.create_task(self._replace()))
            task.add_done_callback(self._replacements.discard)
        self._maybe_finished()

    def _maybe_finished(self) -> None:
        if self.next == len(self.arrivals.due) and self.outstanding == 0 and not self.finished.done():
            self.finished.set_result(None)

    def close(self) -> None:
        self.closing = True
        for conn in list(self.pool):
            if conn.transport is not None:
                conn.transport.close()

    def record(self) -> LoadRecord:
        """Every click as a `Click`; latency from its intended send time; unanswered ones as transport errors."""
        a = self.arrivals
        record = LoadRecord(started=self.start)
        for i, due in enumerate(a.due):
            status = self.status[i]
            if status == NOT_SENT:
                latency = 0.0
            elif status == _PENDING:
                status, latency = TRANSPORT_ERROR, self.plan.timeout_s
            else:
                latency = self.done_at[i] - self.start - float(due)
            late = self.dispatched_at[i] - self.start - float(due) if self.dispatched_at[i] else 0.0
            record.clicks.append(
                Click(float(due), latency, status, self.retry_after[i], a.sessions[i], a.event_ids[i],
                      self.event_index[i], max(late, 0.0))
            )
        return record


async def run_open_loop(
    base_url: str, plan: OpenLoopPlan, arrivals: Arrivals | None = None, on_start: Callable[[], None] | None = None
) -> LoadRecord:
    """Offer `plan`'s Poisson clicks for `plan.duration_s`, then wait at most `timeout_s` for the last answers."""
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    arrivals = arrivals if arrivals is not None else draw_arrivals(plan, f"{host}:{port}")
    run = _Run(plan, arrivals, host, port)
    await run.connect()
    if on_start is not None:
        on_start()
    run.begin()
    try:
        await asyncio.wait_for(asyncio.shield(run.finished), timeout=plan.duration_s + plan.timeout_s + 0.05)
    except TimeoutError:
        log.warning("%d clicks without an answer %.0f s after the last arrival", run.outstanding, plan.timeout_s)
    finally:
        run.close()
    return run.record()


def run_fast(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop when it is importable (its loop costs the generator less CPU per request)."""
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
