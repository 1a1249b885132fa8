"""The gauges of admission and the event loop (docs/service.md "Metrics"): `si_in_flight`,
`si_admission_limit`, `si_loop_lag_seconds`. None of them costs the click anything.

One process: each gauge reads its value when scraped (`set_function`). `--workers N` (prometheus_client's
multiprocess mode): a scrape runs in one worker only, so each worker writes its values to its own
multiprocess file every `SAMPLE_S` instead, and the scrape merges them (`livesum`, `livemax`).
The loop lag comes from admission's own timer when adaptive admission runs it; otherwise from a slower
one started here (`LAG_TICK_S`), which costs a few wake-ups a second.
"""

from __future__ import annotations

import asyncio
import contextlib

from service.admission import Admission, LoopLag
from service.metrics import ServiceMetrics, multiprocess_dir

SAMPLE_S = 1.0
LAG_TICK_S = 0.05


class LiveGauges:
    """Binds the gauges to `admission` and a loop-lag timer for as long as the app runs."""

    def __init__(self, metrics: ServiceMetrics, admission: Admission) -> None:
        self.metrics = metrics
        self.admission = admission
        self._own_lag = admission.loop_lag is None
        self.lag = admission.loop_lag or LoopLag(tick_s=LAG_TICK_S)
        self._task: asyncio.Task[None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._own_lag:
            self.lag.start(loop)
        if multiprocess_dir() is None:
            self.metrics.in_flight.set_function(lambda: self.admission.in_flight)
            self.metrics.admission_limit.set_function(lambda: self.admission.limit)
            self.metrics.loop_lag.set_function(lambda: self.lag.lag_s)
            return
        self._task = loop.create_task(self._sample(), name="live-gauges")

    def stop(self) -> None:
        if self._own_lag:
            self.lag.stop()
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _sample(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                self.metrics.in_flight.set(self.admission.in_flight)
                self.metrics.admission_limit.set(self.admission.limit)
                self.metrics.loop_lag.set(self.lag.lag_s)
                await asyncio.sleep(SAMPLE_S)
