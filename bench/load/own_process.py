"""The open-loop generator (bench/load/open_loop.py) in a process of its own, its cyclic GC frozen and off.

Why: run on a thread of the bench's own process, the generator shares the GIL and the cyclic GC with
everything else there (the admin client, the metrics sampler, numpy, httpx, the model contract). A gen-2
collection walks all of it; while it runs the generator's loop sends nothing, and when it resumes the clicks
due meanwhile leave at once: a burst the Poisson plan never drew, which the service then has to shed. In
its own process, with everything imported frozen (`gc.freeze`) and the collector off for the run (`gc.disable`;
the phase allocates few cycles, and a minute of them is cheap to keep), the generator keeps its schedule.

Either way each click records its send lateness (`Click.late_s`), and `GeneratorStats` the collections the
generator's process ran during the load, so a report can show that it kept its schedule rather than assume it.
"""

from __future__ import annotations

import gc
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from bench.load.clicks import LoadRecord
from bench.load.open_loop import OpenLoopPlan, run_fast, run_open_loop

START_TIMEOUT_S = 60.0


@dataclass
class GeneratorStats:
    """Where the generator ran, and each cyclic-GC collection in its process during the load."""

    own_process: bool
    gc_off: bool
    pauses: list[tuple[float, int, float]] = field(default_factory=list)  # (time.monotonic(), generation, s)

    def longest(self, generation: int | None = None) -> float:
        return max((s for _, g, s in self.pauses if generation is None or g == generation), default=0.0)


class GcWatch:
    """Records every collection of this process's cyclic GC (a `gc.callbacks` entry) while installed."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, int, float]] = []
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.monotonic()
        else:
            self.pauses.append((self._began, info["generation"], time.monotonic() - self._began))

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def run_inline(base_url: str, plan: OpenLoopPlan, on_start: Callable[[], None] | None = None
               ) -> tuple[LoadRecord, GeneratorStats]:
    """The generator on this thread with the GC as it is: how the bench ran before it had a process of its own."""
    with GcWatch() as watch:
        record = run_fast(run_open_loop(base_url, plan, on_start=on_start))
    return record, GeneratorStats(own_process=False, gc_off=False, pauses=watch.pauses)


def run_in_own_process(base_url: str, plan: OpenLoopPlan, on_start: Callable[[], None] | None = None
                       ) -> tuple[LoadRecord, GeneratorStats]:
    """Run the phase in a spawned process; `on_start` runs here once its connections are open and it begins."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(target=_generate, args=(base_url, plan, theirs), name="open-loop", daemon=True)
    child.start()
    theirs.close()
    try:
        if not ours.poll(START_TIMEOUT_S):
            raise RuntimeError("the load generator did not start")
        ours.recv()  # "started"
        if on_start is not None:
            on_start()
        if not ours.poll(plan.duration_s + plan.timeout_s + START_TIMEOUT_S):
            raise RuntimeError("the load generator did not finish")
        record, stats = ours.recv()
    finally:
        ours.close()
        child.join(timeout=10)
        if child.is_alive():
            child.terminate()
            child.join()
    return record, stats


def _generate(base_url: str, plan: OpenLoopPlan, pipe: Connection) -> None:
    gc.collect()
    gc.freeze()
    gc.disable()
    with GcWatch() as watch:
        record = run_fast(run_open_loop(base_url, plan, on_start=lambda: pipe.send("started")))
    pipe.send((record, GeneratorStats(own_process=True, gc_off=True, pauses=watch.pauses)))
    pipe.close()
