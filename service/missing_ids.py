"""`si_clicks_without_ids_total{missing}` fed in bulk: a click adds one to a plain int, the counter's children
get the sums every `FLUSH_EVERY` clicks and before each scrape (as service/drift.py feeds its histograms).

An id-less click misses all three ids: counted one by one that was three prometheus_client increments (each
with its lock) on every such click, the most common click of a shop that sends no ids.
"""

from __future__ import annotations

from typing import Any

from service.metrics import ServiceMetrics
from service.schemas import ID_FIELDS

FLUSH_EVERY = 256  # clicks; with --workers a scrape flushes only its own worker, so the others' lag stays bounded


class MissingIdCounts:
    """Counts, per name of ID_FIELDS, the clicks that miss that id, then adds the counts to the counter."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics
        self._missing = dict.fromkeys(ID_FIELDS, 0)
        self._unflushed = 0  # clicks counted since the last flush
        metrics.before_scrape.append(self.flush)

    def count(self, event: Any) -> None:
        """One accepted click: which of its ids are missing."""
        missed = False
        for name in ID_FIELDS:
            if getattr(event, name) is None:
                self._missing[name] += 1
                missed = True
        if not missed:
            return
        self._unflushed += 1
        if self._unflushed >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self._unflushed:
            return
        self._unflushed = 0
        for name, n in self._missing.items():
            if n:  # a series appears once observed, as before
                self._metrics.child(self._metrics.clicks_without_ids, name).inc(n)
                self._missing[name] = 0
