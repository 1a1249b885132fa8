"""Prometheus metrics (docs/architecture.md §8). One registry per app; names carry the `si_` prefix.

One process (the default): the registry also holds prometheus_client's process, GC and platform
collectors. `--workers N`: prometheus_client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set by
cli/serve_workers.py), so any worker's /metrics answers for all of them: counters and histograms summed,
gauges by their `multiprocess_mode`, and each live worker's process_* series with a `pid` label.
"""

from __future__ import annotations

import functools
import gc
import os
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import Metric

# Buckets that resolve 0.5-100 ms, with a tail for overload.
LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 256, 512)


class ServiceMetrics:
    """All series of one service instance, on their own registry so tests can build several apps."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Histogram(
            "si_request_seconds", "HTTP request latency by route template and status.",
            ["route", "method", "status"], buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.stage = Histogram(
            "si_stage_seconds", "Latency of one scoring stage: redis, queue, infer.",
            ["stage"], buckets=LATENCY_BUCKETS_S, registry=r,
        )
        # The whole click has its own series: beside its stages, a sum over `stage` would count it twice.
        self.click = Histogram(
            "si_click_seconds", "A click end to end in the scorer: the Redis call, the queue and the engine.",
            buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.batch_size = Histogram(
            "si_batch_size", "Windows per engine run.", buckets=BATCH_BUCKETS, registry=r,
        )
        self.queue_depth = Gauge("si_queue_depth", "Windows waiting for the engine.", registry=r,
                                 multiprocess_mode="livesum")
        self.in_flight = Gauge("si_in_flight", "API requests admitted and not yet answered.", registry=r,
                               multiprocess_mode="livesum")
        self.admission_limit = Gauge(
            "si_admission_limit", "API requests admitted at once before a 503 (adapts with SI_ADMISSION_TARGET_MS).",
            registry=r, multiprocess_mode="livesum",
        )
        self.loop_lag = Gauge("si_loop_lag_seconds", "How late the event loop ran a timer at its last tick.",
                              registry=r, multiprocess_mode="livemax")
        self.errors = Counter("si_errors_total", "Failed requests by cause.", ["cause"], registry=r)
        self.events = Counter("si_events_total", "Accepted events by action.", ["action"], registry=r)
        self.duplicates = Counter("si_duplicate_events_total", "Retried event_ids answered from store.", registry=r)
        self.out_of_order = Counter(
            "si_out_of_order_events_total", "Events whose ts is older than the session's last event.", registry=r,
        )
        self.unseen_actions = Counter(
            "si_unseen_action_events_total",
            "Events whose action slot never occurred in the model's training data.", ["action"], registry=r,
        )
        self.clicks_without_ids = Counter(
            "si_clicks_without_ids_total",
            "Accepted clicks missing an id of the context (docs/architecture.md §3.1), by the id missing; "
            "scored with its features at 0.", ["missing"], registry=r,
        )
        self.model = ModelInfo(Gauge(
            "si_model_info", "Model and execution provider in use (value 1).", ["model", "provider", "window",
                                                                                "fingerprint"],
            registry=r, multiprocess_mode="livemax",
        ))
        self.gc_pause = Histogram(
            "si_gc_pause_seconds", "Pauses of Python's cyclic garbage collector, by generation.", ["generation"],
            buckets=LATENCY_BUCKETS_S, registry=r,
        )
        # Children bound once: `labels()` takes a lock and builds a key on every call, on the click's path.
        self.stage_redis, self.stage_queue, self.stage_infer = (
            self.stage.labels(stage=name) for name in ("redis", "queue", "infer")
        )
        self._children: dict[tuple[Any, ...], Any] = {}
        self.drift: Any = None  # service/drift.py DriftMonitor, when the model's card has a reference
        # --workers: series computed at scrape time from the merged view of all workers (a pooled statistic)
        self.derived: list[Callable[[list[Metric]], list[Metric]]] = []
        # Series fed in bulk (service/drift.py) push what they hold before each scrape of this process.
        self.before_scrape: list[Callable[[], None]] = []
        if multiprocess_dir() is None:
            for collector in (PROCESS_COLLECTOR, GC_COLLECTOR, PLATFORM_COLLECTOR):
                type(collector)(registry=r)  # a fresh instance of the default ones, on this app's registry

    def exposition(self) -> bytes:
        """The text of /metrics: this registry, or in multiprocess mode every worker's series merged."""
        for flush in self.before_scrape:
            flush()
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        families = list(multiprocess.MultiProcessCollector(None).collect())
        for derive in self.derived:
            families += derive(families)
        merged = CollectorRegistry()
        merged.register(Collected(families))
        merged.register(WorkerProcesses())
        return generate_latest(merged)

    def child(self, metric: Histogram | Counter, *values: str) -> Any:
        """`metric.labels(*values)`, bound on first use and reused (series appear only once observed)."""
        key = (metric, *values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found


def multiprocess_dir() -> str | None:
    """prometheus_client's multiprocess directory, when this process shares its metrics with other workers."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


class ModelInfo:
    """`si_model_info{model,provider,window,fingerprint} 1`: an Info metric made of a gauge, since
    prometheus_client's multiprocess mode has no Info."""

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge

    def info(self, labels: dict[str, str]) -> None:
        self.gauge.clear()  # as Info does: the new labels replace the old ones
        self.gauge.labels(**labels).set(1)


class Collected:
    """Families collected already, as a collector."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


class WorkerProcesses:
    """process_* of every live worker, each with a `pid` label, read from /proc at scrape time: the
    multiprocess files hold no process metrics, and the answering worker's alone would hide the others."""

    def collect(self) -> list[Metric]:
        directory = multiprocess_dir()
        assert directory is not None
        pids = {int(name.rsplit("_", 1)[1].removesuffix(".db")) for name in os.listdir(directory)
                if name.endswith(".db") and name.rsplit("_", 1)[1].removesuffix(".db").isdigit()}
        families: dict[str, Metric] = {}
        for pid in sorted(pids):
            if not os.path.exists(f"/proc/{pid}"):
                continue
            for family in ProcessCollector(pid=functools.partial(str, pid), registry=None).collect():
                merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        return list(families.values())


class GcPauses:
    """Times every collection of the cyclic GC into `si_gc_pause_seconds`: a stop-the-world pause of the loop."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._by_generation = [metrics.gc_pause.labels(generation=str(g)) for g in range(3)]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._by_generation[info["generation"]].observe(time.perf_counter() - self._started)

    def install(self) -> None:
        gc.callbacks.append(self)

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)

    def freeze_startup_objects(self) -> None:
        """One full collection, then `gc.freeze()`: what exists now is out of every later collection's walk.
        That collection runs before /readyz turns green and stalls no click, so it is not timed: counted,
        it read as the run's one gen-2 pause (64-270 ms on the shared machine, docs/benchmarks/click-cpu.md)."""
        self.remove()
        try:
            gc.collect()
            gc.freeze()
        finally:
            self.install()
