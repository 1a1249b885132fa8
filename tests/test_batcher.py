"""MicroBatcher with a deterministic pure-python engine: each window's score is (sum, max) of its values."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from service.batcher import BatcherStopped, DeadlineExceeded, EngineFailed, MicroBatcher, QueueFull
from service.metrics import ServiceMetrics

N = 10
POISON = -1.0  # a window filled with it makes the fake engine raise


class SummingEngine:
    """(B, N, 16) → (B, 2) [sum, max]; records every batch it runs. Optionally slow or gated."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.batches: list[np.ndarray] = []
        self.gate = threading.Event()
        self.gate.set()

    def run(self, items: list[np.ndarray]) -> np.ndarray:
        windows = np.stack(items)  # the batcher hands over its items as a list, in queue order
        self.gate.wait(5)
        time.sleep(self.delay_s)
        self.batches.append(windows.copy())
        if (windows == POISON).all(axis=(1, 2)).any():
            raise RuntimeError("poisoned window")
        return np.stack([windows.sum(axis=(1, 2)), windows.max(axis=(1, 2))], axis=1)

    @property
    def sizes(self) -> list[int]:
        return [len(b) for b in self.batches]


def window(value: float) -> np.ndarray:
    return np.full((N, 16), value, dtype=np.float32)


def deadline(seconds: float = 2.0) -> float:
    return time.monotonic() + seconds


@pytest.fixture()
async def make_batcher() -> AsyncIterator[Callable[..., MicroBatcher]]:
    started: list[MicroBatcher] = []

    def make(engine: SummingEngine, **knobs: float) -> MicroBatcher:
        batcher = MicroBatcher(engine.run, **knobs)  # type: ignore[arg-type]
        started.append(batcher)
        return batcher

    yield make
    for batcher in started:
        await batcher.stop(drain=False)


async def test_concurrent_submits_coalesce_and_map_back(make_batcher: Callable[..., MicroBatcher]) -> None:
    engine = SummingEngine(delay_s=0.002)
    metrics = ServiceMetrics()
    batcher = make_batcher(engine, max_batch_size=16, max_queue_delay_ms=5.0, metrics=metrics)
    await batcher.start()
    results = await asyncio.gather(*(batcher.submit(window(i), deadline()) for i in range(200)))
    for i, scores in enumerate(results):
        assert scores.tolist() == [i * N * 16, i], f"caller {i} got another caller's scores"
    assert max(engine.sizes) <= 16 and sum(engine.sizes) == 200
    assert len(engine.batches) <= 20, f"200 concurrent submits ran as {len(engine.batches)} batches"
    assert metrics.registry.get_sample_value("si_batch_size_count") == len(engine.batches)
    assert metrics.registry.get_sample_value("si_stage_seconds_count", {"stage": "queue"}) == 200
    assert metrics.registry.get_sample_value("si_stage_seconds_count", {"stage": "infer"}) == len(engine.batches)
    assert metrics.registry.get_sample_value("si_queue_depth") == 0


async def test_a_lone_request_waits_at_most_the_queue_delay(make_batcher: Callable[..., MicroBatcher]) -> None:
    engine = SummingEngine()
    batcher = make_batcher(engine, max_batch_size=64, max_queue_delay_ms=20.0)
    await batcher.start()
    started = time.monotonic()
    await batcher.submit(window(1), deadline())
    assert 0.015 <= time.monotonic() - started < 0.2


async def test_a_full_batch_runs_without_waiting_for_the_queue_delay(
    make_batcher: Callable[..., MicroBatcher],
) -> None:
    engine = SummingEngine()
    batcher = make_batcher(engine, max_batch_size=8, max_queue_delay_ms=1000.0)
    await batcher.start()
    started = time.monotonic()
    first = asyncio.create_task(batcher.submit(window(0), deadline()))
    await asyncio.sleep(0.01)  # the owner now waits for batch-mates, up to 1 s
    await asyncio.gather(first, *(batcher.submit(window(i), deadline()) for i in range(1, 8)))
    assert time.monotonic() - started < 0.5 and engine.sizes == [8]


async def test_submit_many_runs_all_variants_in_one_batch(make_batcher: Callable[..., MicroBatcher]) -> None:
    engine = SummingEngine()
    batcher = make_batcher(engine, max_batch_size=16, max_queue_delay_ms=0.0)
    await batcher.start()
    variants = np.stack([window(i) for i in range(11)])
    scores = await batcher.submit_many(variants, deadline())
    assert engine.sizes == [11]
    assert scores[:, 1].tolist() == list(range(11))
    big = await batcher.submit_many(np.stack([window(i) for i in range(40)]), deadline())
    assert big[:, 1].tolist() == list(range(40)) and max(engine.sizes) <= 16


async def test_full_queue_sheds_at_once(make_batcher: Callable[..., MicroBatcher]) -> None:
    engine = SummingEngine()
    engine.gate.clear()  # the engine holds its first batch until released
    metrics = ServiceMetrics()
    batcher = make_batcher(engine, max_batch_size=1, max_queue_delay_ms=0.0, max_queue_size=4, metrics=metrics)
    await batcher.start()
    running = asyncio.create_task(batcher.submit(window(0), deadline()))
    await asyncio.sleep(0.05)  # the owner has taken it off the queue and is blocked in the engine
    queued = [asyncio.create_task(batcher.submit(window(i), deadline())) for i in range(1, 5)]
    await asyncio.sleep(0.01)
    assert batcher.queue_depth == 4
    started = time.monotonic()
    with pytest.raises(QueueFull):
        await batcher.submit(window(9), deadline())
    assert time.monotonic() - started < 0.01
    engine.gate.set()
    assert [float(s[1]) for s in await asyncio.gather(running, *queued)] == [0, 1, 2, 3, 4]


async def test_passed_deadline_raises_and_expired_requests_never_run(make_batcher: Callable[..., MicroBatcher]) -> None:
    engine = SummingEngine(delay_s=0.2)
    metrics = ServiceMetrics()
    batcher = make_batcher(engine, max_batch_size=1, max_queue_delay_ms=0.0, metrics=metrics)
    await batcher.start()
    with pytest.raises(DeadlineExceeded):
        await batcher.submit(window(1), time.monotonic() - 0.001)
    slow = asyncio.create_task(batcher.submit(window(2), deadline()))
    await asyncio.sleep(0.02)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await batcher.submit(window(3), deadline(0.05))  # queued behind a 200 ms batch
    assert time.monotonic() - started < 0.15, "the caller is answered at its deadline, not after the batch"
    assert float((await slow)[1]) == 2
    await asyncio.sleep(0.05)
    assert [float(b.max()) for b in engine.batches] == [2], "the expired request never reached the engine"


async def test_engine_failure_reaches_the_whole_batch_and_serving_goes_on(
    make_batcher: Callable[..., MicroBatcher],
) -> None:
    engine = SummingEngine()
    batcher = make_batcher(engine, max_batch_size=8, max_queue_delay_ms=20.0)
    await batcher.start()
    outcomes = await asyncio.gather(
        batcher.submit(window(POISON), deadline()), *(batcher.submit(window(i), deadline()) for i in range(5)),
        return_exceptions=True,
    )
    assert engine.sizes == [6]
    assert all(isinstance(o, EngineFailed) and "poisoned window" in str(o) for o in outcomes)
    assert float((await batcher.submit(window(7), deadline()))[1]) == 7


async def test_wrong_output_shape_is_an_engine_failure(make_batcher: Callable[..., MicroBatcher]) -> None:
    batcher = make_batcher(SummingEngine(), max_queue_delay_ms=0.0)
    batcher.run_batch = lambda windows: np.zeros((len(windows), 3), dtype=np.float32)
    await batcher.start()
    with pytest.raises(EngineFailed, match="shape"):
        await batcher.submit(window(1), deadline())


async def test_event_loop_stays_responsive_while_a_slow_batch_runs(make_batcher: Callable[..., MicroBatcher]) -> None:
    batcher = make_batcher(SummingEngine(delay_s=0.3), max_queue_delay_ms=0.0)
    await batcher.start()
    scoring = asyncio.create_task(batcher.submit(window(1), deadline()))
    gaps: list[float] = []
    last = time.monotonic()
    while not scoring.done():
        await asyncio.sleep(0.01)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    assert len(gaps) >= 10 and max(gaps) < 0.1, f"loop stalled for {max(gaps):.3f}s"


async def test_stop_drains_then_refuses(make_batcher: Callable[..., MicroBatcher]) -> None:
    engine = SummingEngine(delay_s=0.01)
    batcher = make_batcher(engine, max_batch_size=2, max_queue_delay_ms=0.0)
    with pytest.raises(BatcherStopped):
        await batcher.submit(window(1), deadline())
    await batcher.start()
    pending = [asyncio.create_task(batcher.submit(window(i), deadline())) for i in range(6)]
    await asyncio.sleep(0)
    await batcher.stop(drain=True)
    assert [float(s[1]) for s in await asyncio.gather(*pending)] == list(range(6))
    with pytest.raises(QueueFull):  # BatcherStopped is a QueueFull: the app answers 503
        await batcher.submit(window(1), deadline())


async def test_stop_without_drain_fails_queued_requests_clearly(make_batcher: Callable[..., MicroBatcher]) -> None:
    engine = SummingEngine()
    engine.gate.clear()
    batcher = make_batcher(engine, max_batch_size=1, max_queue_delay_ms=0.0)
    await batcher.start()
    pending = [asyncio.create_task(batcher.submit(window(i), deadline())) for i in range(3)]
    await asyncio.sleep(0.05)
    await batcher.stop(drain=False)
    engine.gate.set()
    outcomes = await asyncio.gather(*pending, return_exceptions=True)
    assert all(isinstance(o, BatcherStopped) and "stopped" in str(o) for o in outcomes)


async def test_the_gil_switch_interval_is_set_while_running_and_restored_after(
    make_batcher: Callable[..., MicroBatcher],
) -> None:
    before = sys.getswitchinterval()
    batcher = make_batcher(SummingEngine(), gil_switch_interval_ms=0.5)
    await batcher.start()
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    assert (await batcher.submit(window(1), deadline())).tolist() == [N * 16, 1]
    await batcher.stop()
    assert sys.getswitchinterval() == pytest.approx(before)
    untouched = make_batcher(SummingEngine(), gil_switch_interval_ms=0.0)
    await untouched.start()
    assert sys.getswitchinterval() == pytest.approx(before)
    with pytest.raises(ValueError, match="gil_switch_interval_ms"):
        MicroBatcher(SummingEngine().run, gil_switch_interval_ms=-1)  # type: ignore[arg-type]
