"""Prometheus metrics (docs/architecture.md §8). One registry per process; names carry the `si_` prefix."""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

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
            "si_stage_seconds", "Latency of one scoring stage: redis, queue, infer, total.",
            ["stage"], buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.batch_size = Histogram(
            "si_batch_size", "Windows per engine run.", buckets=BATCH_BUCKETS, registry=r,
        )
        self.queue_depth = Gauge("si_queue_depth", "Windows waiting for the engine.", registry=r)
        self.shed = Counter("si_shed_total", "Requests refused with 503: too many in flight, or the batch queue full.",
                            registry=r)
        self.timeouts = Counter("si_timeouts_total", "Requests that passed their deadline (504).", registry=r)
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
        self.model = Info("si_model", "Model and execution provider in use.", registry=r)
        self.gc_pause = Histogram(
            "si_gc_pause_seconds", "Pauses of Python's cyclic garbage collector, by generation.", ["generation"],
            buckets=LATENCY_BUCKETS_S, registry=r,
        )
        # Children bound once: `labels()` takes a lock and builds a key on every call, on the click's path.
        self.stage_redis, self.stage_queue, self.stage_infer, self.stage_total = (
            self.stage.labels(stage=name) for name in ("redis", "queue", "infer", "total")
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Histogram | Counter, *values: str) -> Any:
        """`metric.labels(*values)`, bound on first use and reused (series appear only once observed)."""
        key = (metric, *values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found


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
