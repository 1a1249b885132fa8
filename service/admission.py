"""Admission control (docs/architecture.md §7): whether one more API request may start, before its body is read.

`BoundaryMiddleware` (service/boundary.py) asks `Admission.admit` for every API request and answers a
refusal with a prebuilt 503; `LoopLag` feeds the adaptive limit the event loop's own delay.
"""

from __future__ import annotations

import asyncio


class LoopLag:
    """How late a timer that should fire every `TICK_S` fires: how long a request that has just arrived
    waits for the event loop before any of its code runs. No count of requests in progress sees that wait."""

    TICK_S = 0.005

    def __init__(self, tick_s: float | None = None) -> None:
        if tick_s is not None:  # a slower tick, where the lag is only watched (service/live_gauges.py)
            self.TICK_S = tick_s
        self.lag_s = 0.0  # of the last tick
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due = loop.time() + self.TICK_S
        self._handle = loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self.lag_s = None, 0.0

    def _tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        self.lag_s = max(0.0, now - self._due)
        self._due = now + self.TICK_S
        self._handle = self._loop.call_at(self._due, self._tick)


class Admission:
    """Whether one more API request may start: fewer than `limit` in progress.

    Little's law: requests in progress = rate × latency. At the service's own rate, a cap on the count
    is a cap on the latency, and the excess is refused at once instead of waiting in a queue. The right
    cap is rate × `target_s`, which depends on the machine and the model, so it adapts (AIMD, as TCP's
    congestion window) between `floor` and `max_in_flight` from each admitted request's latency:
    its time in the app plus the event loop's lag when it was admitted (the wait before it was read):
    - over `target_s`: the limit × `DECREASE`, at most once per `target_s` (a burst of late answers is one signal);
    - within it: the limit + 1 / limit (one more per limit's worth of answers on time).
    The loop's lag only feeds the latency; it never refuses on its own: refusing everything while the
    loop is behind turns a closed-loop client into a storm of instant 503s that keeps the loop behind.
    The floor is `max_in_flight` / `FLOOR_SHARE`: enough in flight for the nominal load (Little's law:
    ~1,300 clicks/s × 8 ms ≈ 10), so a latency the limit cannot cure (another process taking the CPU)
    never starves the service; a lower floor refuses most clicks in the recovery after an overload.
    `target_s` = 0: the fixed `max_in_flight` alone.
    """

    FLOOR_SHARE = 4
    DECREASE = 0.9

    def __init__(self, max_in_flight: int, target_s: float = 0.0) -> None:
        self.max_in_flight = max_in_flight
        self.target_s = target_s
        self.limit = float(max_in_flight)
        self.floor = max(1.0, max_in_flight / self.FLOOR_SHARE)
        self.in_flight = 0  # API requests admitted and not yet answered (one event loop: no lock needed)
        self.loop_lag = LoopLag() if target_s > 0 else None
        self._last_cut = 0.0

    def admit(self) -> float | None:
        """None: refuse. Else the request is counted in, and this is its wait for the loop (s), for `done`."""
        if self.in_flight >= self.limit:
            return None
        self.in_flight += 1
        return self.loop_lag.lag_s if self.loop_lag is not None else 0.0

    def done(self, latency_s: float, now: float) -> None:
        """An admitted request answered after `latency_s`; `now` is a `time.perf_counter()` reading."""
        self.in_flight -= 1
        if self.target_s <= 0:
            return
        if latency_s > self.target_s:
            if now - self._last_cut > self.target_s:
                self.limit, self._last_cut = max(self.floor, self.limit * self.DECREASE), now
        elif self.limit < self.max_in_flight:
            self.limit = min(float(self.max_in_flight), self.limit + 1 / self.limit)
