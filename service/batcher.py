"""Micro-batching in front of the engine (docs/architecture.md §7), in Triton's vocabulary.

- `max_batch_size`: most windows per engine run.
- `max_queue_delay_ms`: how long the oldest queued request may wait for others to join its batch.
- `max_queue_size`: most windows waiting; past it `submit` sheds at once with `QueueFull` (503).
- a per-request deadline (`time.monotonic()` seconds): past it the caller gets `DeadlineExceeded` (504),
  and a request still queued is dropped before it reaches the engine.

One task owns the queue and forms the batches; callers only enqueue and await their future. The
engine runs on one worker thread, so the event loop keeps serving while a batch runs. A request's
items are whatever `run_batch` takes: the service queues the stored windows as packed, and `run_batch` unpacks and
encodes the whole batch in one vectorised call each on the engine thread (docs/architecture.md §7), so no
per-click numpy work runs on the event loop.

`gil_switch_interval_ms` bounds how long the engine thread waits for the GIL. ONNX Runtime releases it while
the model runs; the busy event loop takes it, and the engine thread, to hand back its scores (likewise when
it is handed a batch, and after each numpy call that released the GIL), waits until the loop blocks or
CPython's switch interval (5 ms) forces it off. With a model that runs for milliseconds that wait is paid
on most batches, and every click queued behind the batch pays it too (docs/engine.md, "Where the published
size's latency goes"). `start` sets the process's interval (it is process-wide), `stop` restores the
previous one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.metrics import ServiceMetrics

logger = logging.getLogger(__name__)

RunBatch = Callable[[list[Any]], np.ndarray]  # B items (raw or encoded windows) -> (B, 2) float32


class QueueFull(RuntimeError):
    """The bounded queue has no room for the request: shed it now (503 + Retry-After)."""


class BatcherStopped(QueueFull):
    """The batcher is not running (not started yet, or shutting down); also answered with a 503."""


class DeadlineExceeded(TimeoutError):
    """The request's deadline passed before its scores were ready (504)."""


class EngineFailed(RuntimeError):
    """The engine raised, or returned the wrong shape, on the batch that held this request."""


@dataclass(eq=False)
class PendingRequest:
    """One caller's k windows and the future it awaits; k > 1 only for explain."""

    items: list[Any]
    deadline: float  # time.monotonic() seconds
    future: asyncio.Future[np.ndarray]
    enqueued_at: float = field(default_factory=time.monotonic)

    def __len__(self) -> int:
        return len(self.items)

    def expire(self) -> None:
        """The deadline timer: answer 504 now, whether the request is queued or its batch is running."""
        if not self.future.done():
            self.future.set_exception(DeadlineExceeded("scores were not ready within the request deadline"))

    @property
    def waiting(self) -> bool:
        """False once its caller gave up (deadline, cancellation) or it was answered."""
        return not self.future.done()


@dataclass(eq=False)
class Batch:
    """Requests run together: their items concatenated, in order, into one engine input of B windows."""

    requests: list[PendingRequest]
    items: list[Any]

    @classmethod
    def from_requests(cls, requests: Sequence[PendingRequest]) -> Batch:
        return cls(list(requests), [item for r in requests for item in r.items])

    def __len__(self) -> int:
        return len(self.items)

    def resolve(self, outputs: np.ndarray) -> None:
        """Hand each caller its rows of the (B, 2) outputs, in the order the windows were concatenated."""
        start = 0
        for request in self.requests:
            stop = start + len(request)
            if request.waiting:
                request.future.set_result(outputs[start:stop])  # a view: outputs is this batch's own array
            start = stop

    def fail(self, error: Exception) -> None:
        for request in self.requests:
            if request.waiting:
                request.future.set_exception(error)


class MicroBatcher:
    """Coalesces concurrent `submit`s into engine batches of at most `max_batch_size` windows."""

    def __init__(
        self,
        run_batch: RunBatch,
        max_batch_size: int = 64,
        max_queue_delay_ms: float = 2.0,
        max_queue_size: int = 2048,
        metrics: ServiceMetrics | None = None,
        gil_switch_interval_ms: float = 0.0,
    ) -> None:
        """`gil_switch_interval_ms`: 0 leaves the process's switch interval as it is."""
        if max_batch_size < 1 or max_queue_size < 1 or max_queue_delay_ms < 0 or gil_switch_interval_ms < 0:
            raise ValueError(
                "max_batch_size and max_queue_size must be ≥ 1, max_queue_delay_ms and gil_switch_interval_ms ≥ 0"
            )
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_ms / 1000.0
        self.max_queue_size = max_queue_size
        self.metrics = metrics
        self.gil_switch_interval_s = gil_switch_interval_ms / 1000.0
        self._switch_interval_before: float | None = None
        self._queue: deque[PendingRequest] = deque()
        self._queued_windows = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: Batch | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._accepting = False

    @property
    def queue_depth(self) -> int:
        """Windows waiting for a batch (not counting the batch being run)."""
        return self._queued_windows

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self.running:
            return
        if self.gil_switch_interval_s > 0:
            self._switch_interval_before = sys.getswitchinterval()
            sys.setswitchinterval(self.gil_switch_interval_s)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self._accepting = True
        self._task = asyncio.create_task(self._serve(), name="micro-batcher")

    async def stop(self, drain: bool = True, timeout_s: float = 5.0) -> None:
        """Refuse new work; run what is queued (drain) or fail it with BatcherStopped, then stop the task."""
        self._accepting = False
        if self._task is None:
            self._restore_switch_interval()
            return
        if drain:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained(), timeout_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self._fail_queued(BatcherStopped("the batcher stopped before this request ran"))
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        self._restore_switch_interval()

    def _restore_switch_interval(self) -> None:
        if self._switch_interval_before is not None:
            sys.setswitchinterval(self._switch_interval_before)
            self._switch_interval_before = None

    async def run_on_engine_thread(self, job: Callable[[], Any]) -> Any:
        """Run `job` on the engine thread, between two batches (a reload warms its model here)."""
        if self._executor is None:
            raise BatcherStopped("the batcher is not running")
        return await asyncio.get_running_loop().run_in_executor(self._executor, job)

    async def submit(self, window: Any, deadline_s: float) -> np.ndarray:
        """Scores (2,) of one window, by `deadline_s` on the `time.monotonic()` clock."""
        return (await self.submit_many([window], deadline_s))[0]

    async def submit_many(self, windows: Sequence[Any], deadline_s: float) -> np.ndarray:
        """Scores (k, 2) of k windows; one engine batch when k ≤ max_batch_size."""
        if len(windows) == 0:
            return np.zeros((0, 2), dtype=np.float32)
        items = list(windows)
        chunks = [items[i : i + self.max_batch_size] for i in range(0, len(items), self.max_batch_size)]
        requests = self._enqueue(chunks, deadline_s)
        if len(requests) == 1:
            return await requests[0].future
        # return_exceptions: every chunk's outcome is retrieved; the first failure is raised below.
        parts = await asyncio.gather(*(r.future for r in requests), return_exceptions=True)
        failures = [p for p in parts if isinstance(p, BaseException)]
        if failures:
            raise failures[0]
        return np.concatenate([p for p in parts if isinstance(p, np.ndarray)], axis=0)

    def _enqueue(self, chunks: list[list[Any]], deadline_s: float) -> list[PendingRequest]:
        if not self._accepting or not self.running:
            raise BatcherStopped("the batcher is not running")
        total = sum(len(c) for c in chunks)
        if self._queued_windows + total > self.max_queue_size:
            raise QueueFull(f"{self._queued_windows} windows queued, the bound is {self.max_queue_size}")
        now = time.monotonic()
        if deadline_s <= now:
            raise DeadlineExceeded("the request deadline passed before it was queued")
        loop = asyncio.get_running_loop()
        requests = [PendingRequest(chunk, deadline_s, loop.create_future(), now) for chunk in chunks]
        # One timer per request instead of asyncio.wait_for (a task and two callbacks per click on 3.11);
        # loop.time() need not be time.monotonic() (uvloop), so the deadline is carried over as a delay.
        for request in requests:
            loop.call_later(deadline_s - now, request.expire)
        was_empty = not self._queue
        self._queue.extend(requests)
        self._queued_windows += total
        self._observe_depth()
        # Wake the owner only when it has something to do: a first request, or a full batch.
        if was_empty or self._queued_windows >= self.max_batch_size:
            self._wakeup.set()
        return requests

    async def _serve(self) -> None:
        """The one owner of the queue: wait, form a batch, run it, answer its callers; until cancelled."""
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    await self._wait_for_fill()
                    batch = self._next_batch()
                    if batch is not None:
                        await self._run(batch)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must not leave callers waiting until their deadlines
            logger.exception("the micro-batcher's queue task died")
            self._accepting = False
            self._fail_queued(BatcherStopped("the micro-batcher failed; see the service log"))
            raise

    async def _wait_for_fill(self) -> None:
        """Until a full batch is queued or the oldest request has waited max_queue_delay."""
        flush_at = self._queue[0].enqueued_at + self.max_queue_delay_s
        while self._queued_windows < self.max_batch_size:
            remaining = flush_at - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)

    def _next_batch(self) -> Batch | None:
        """Dequeue whole requests up to max_batch_size windows; drop expired and abandoned ones."""
        now = time.monotonic()
        taken: list[PendingRequest] = []
        size = 0
        while self._queue and size + len(self._queue[0]) <= self.max_batch_size:
            request = self._queue.popleft()
            self._queued_windows -= len(request)
            if request.waiting and request.deadline <= now:
                request.future.set_exception(DeadlineExceeded("the request deadline passed while it was queued"))
            if not request.waiting:
                continue
            taken.append(request)
            size += len(request)
            if self.metrics is not None:
                self.metrics.stage_queue.observe(now - request.enqueued_at)
        self._observe_depth()
        return Batch.from_requests(taken) if taken else None

    async def _run(self, batch: Batch) -> None:
        assert self._executor is not None, "started batchers own an executor"
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        self._in_flight = batch
        try:
            # asanyarray: the runner's ndarray subclass (service/served_model.py ModelScores) names the model.
            outputs = np.asanyarray(await loop.run_in_executor(self._executor, self.run_batch, batch.items))
            if outputs.shape != (len(batch), 2):
                raise ValueError(f"engine returned shape {outputs.shape} for a batch of {len(batch)}")
        except asyncio.CancelledError:
            batch.fail(BatcherStopped("the batcher stopped while this request's batch ran"))
            raise
        except Exception as exc:
            logger.exception("engine failed on a batch of %d windows", len(batch))
            error = EngineFailed(f"engine failed on a batch of {len(batch)} windows: {exc!r}")
            error.__cause__ = exc
            batch.fail(error)
            return
        finally:
            self._in_flight = None
        if self.metrics is not None:
            self.metrics.stage_infer.observe(time.perf_counter() - started)
            self.metrics.batch_size.observe(len(batch))
        batch.resolve(outputs)

    async def _drained(self) -> None:
        while (self._queue or self._in_flight is not None) and self.running:
            await asyncio.sleep(0.001)

    def _fail_queued(self, error: Exception) -> None:
        while self._queue:
            request = self._queue.popleft()
            if request.waiting:
                request.future.set_exception(error)
        self._queued_windows = 0
        self._observe_depth()

    def _observe_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(self._queued_windows)
