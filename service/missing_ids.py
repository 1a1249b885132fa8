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
    """Counts clicks by which ids they miss (a bit per name of ID_FIELDS), then adds them per name."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics
        self._by_pattern = [0] * (1 << len(ID_FIELDS))
        self._unflushed = 0
        metrics.before_scrape.append(self.flush)

    def count(self, event: Any) -> None:
        """One accepted click: which of its ids are missing."""
        pattern = 0
        for bit, name in enumerate(ID_FIELDS):
            if getattr(event, name) is None:
                pattern |= 1 << bit
        if not pattern:
            return
        self._by_pattern[pattern] += 1
        self._unflushed += 1
        if self._unflushed >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self._unflushed:
            return
        self._unflushed = 0
        totals = [0] * len(ID_FIELDS)
        for pattern, n in enumerate(self._by_pattern):
            if not n:
                continue
            self._by_pattern[pattern] = 0
            for bit in range(len(ID_FIELDS)):
                if pattern >> bit & 1:
                    totals[bit] += n
        for name, n in zip(ID_FIELDS, totals, strict=True):
            if n:  # a series appears once observed, as before
                self._metrics.child(self._metrics.clicks_without_ids, name).inc(n)
