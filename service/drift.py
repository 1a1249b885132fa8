"""Live drift of inputs and scores against the card's training reference (docs/service.md "Drift").

Per click (cheap: three list appends, plus a counter for an ad click):
    si_input_dwell_seconds     dwell of the click's previous event, now known (buckets: the card's edges)
    si_input_from_ad_events_total
    si_score{score="p_make_order"|"abandonment_risk"}   the answered scores (buckets: the card's edges)
The action mix is `si_events_total{action}`, counted already. The three histograms take their values in
bulk (`BufferedHistogram`): every `FLUSH_EVERY` clicks, at every tick and before every scrape of this
process, one bisection and one locked add per bucket instead of a bisection and two locked adds per click.
With `--workers`, another worker's scrape misses at most this worker's last `FLUSH_EVERY - 1` clicks.

Every `window_s / TICKS` seconds a task snapshots those series, and over the last `window_s` (a sliding
window of snapshots) computes each feature's PSI against the reference into `si_drift_psi{feature}`;
NaN until the window holds `MIN_EVENTS` clicks, so a quiet replica never alerts. A model whose card has
no `reference` gets none of this (`start_drift` returns None). After a hot reload the reference is the
newly serving card's: the window starts over, and a card without one (or with other bins) reads NaN.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from model.card import ModelCard
from model.drift import SCORES, psi
from model.features import ACTIONS, MAX_DWELL_S, MIN_DWELL_S
from service.metrics import ServiceMetrics

TICKS = 60  # snapshots per window
MIN_EVENTS = 200
FLUSH_EVERY = 64  # clicks buffered before their values go into the histograms


class BufferedHistogram:
    """One histogram child (no labels left) fed in bulk: `observe` appends to a list, `flush` adds the
    list's per-bucket counts and sum, as that many `observe` calls would (a value goes into the first
    bucket whose `le` it does not exceed). Reads prometheus_client's `_upper_bounds`, `_buckets` and `_sum`:
    tests/test_drift.py holds the result equal to the library's own `observe`."""

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds = np.asarray(child._upper_bounds, dtype=np.float64)  # ends with +Inf
        self.values: list[float] = []

    def observe(self, value: float) -> None:
        self.values.append(value)

    def flush(self) -> None:
        if not self.values:
            return
        values = np.asarray(self.values, dtype=np.float64)
        self.values.clear()
        per_bucket = np.bincount(np.searchsorted(self.bounds, values, side="left"), minlength=len(self.bounds))
        self.child._sum.inc(float(values.sum()))
        for bucket in np.flatnonzero(per_bucket[: len(self.bounds)]):  # a NaN counts in no bucket, as observe's
            self.child._buckets[bucket].inc(int(per_bucket[bucket]))


class DriftMonitor:
    """The live histograms, and PSI over a sliding window against one card's reference."""

    def __init__(self, metrics: ServiceMetrics, reference: dict[str, Any], window_s: float,
                 current_reference: Callable[[], dict[str, Any]] | None = None) -> None:
        r = metrics.registry
        self.reference = reference
        self._current_reference = current_reference or (lambda: reference)
        self.window_s = window_s
        features, scores = reference["features"], reference["scores"]
        self.dwell_histogram = Histogram("si_input_dwell_seconds", "Dwell of each click's previous event (s), clipped.",
                                         buckets=features["dwell_s"]["edges"], registry=r)
        self.from_ad = Counter("si_input_from_ad_events_total", "Accepted clicks sent with from_ad.", registry=r)
        score = Histogram("si_score", "Scores answered, by score.", ["score"],
                          buckets=scores[SCORES[0]]["edges"], registry=r)
        self.dwell = BufferedHistogram(self.dwell_histogram)
        self.p_make_order, self.risk = (BufferedHistogram(score.labels(score=name)) for name in SCORES)
        self._buffered = (self.dwell, self.p_make_order, self.risk)
        self._unflushed = 0
        metrics.before_scrape.append(self.flush)
        self.score = score
        self.psi = Gauge("si_drift_psi", "PSI of the last window against the training reference, by feature.",
                         ["feature"], registry=r, multiprocess_mode="livemax")
        self._events = metrics.events
        self.psi_features = (*features, *scores)
        self._snapshots: deque[dict[str, np.ndarray]] = deque(maxlen=TICKS + 1)
        self._task: asyncio.Task[None] | None = None

    def observe(self, ts: Sequence[float], from_ad: bool, p_make_order: float, risk: float) -> None:
        """One answered click: its window's newest timestamps (at least the last two when it has them, the newest
        last), its flag and its scores."""
        if len(ts) > 1:
            self.dwell.observe(min(max(float(ts[-1] - ts[-2]), MIN_DWELL_S), MAX_DWELL_S))
        if from_ad:
            self.from_ad.inc()
        self.p_make_order.observe(p_make_order)
        self.risk.observe(risk)
        self._unflushed += 1
        if self._unflushed >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Push the buffered values into the histograms."""
        self._unflushed = 0
        for histogram in self._buffered:
            histogram.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="drift")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(self.window_s / TICKS)

    def tick(self) -> None:
        """Snapshot the live counts and set each feature's PSI over the window they span."""
        self.flush()
        reference = self._current_reference()
        if reference is not self.reference:  # another model serves: its window starts now
            self.reference = reference
            self._snapshots.clear()
        self._snapshots.append(self.counts())
        oldest, newest = self._snapshots[0], self._snapshots[-1]
        expected = {**self.reference.get("features", {}), **self.reference.get("scores", {})}
        for feature in self.psi_features:
            ref = expected.get(feature)
            window = newest[feature] - oldest[feature]
            enough = ref is not None and window.sum() >= MIN_EVENTS
            value = psi(ref["counts"], window) if enough and ref is not None else math.nan
            self.psi.labels(feature=feature).set(value)

    def counts(self) -> dict[str, np.ndarray]:
        """Cumulative counts per bin of every feature, from this process's own series."""
        out = {"action": np.zeros(len(ACTIONS))}
        for sample in _samples(self._events):
            if sample.name.endswith("_total") and sample.labels.get("action") in ACTIONS:
                out["action"][ACTIONS.index(sample.labels["action"])] = sample.value
        ads = next((s.value for s in _samples(self.from_ad) if s.name.endswith("_total")), 0.0)
        out["from_ad"] = np.array([out["action"].sum() - ads, ads])
        out["dwell_s"] = _bucket_counts(self.dwell_histogram)
        for name in SCORES:
            out[name] = _bucket_counts(self.score, score=name)
        return out


def _samples(metric: Any) -> list[Any]:
    return [sample for family in metric.collect() for sample in family.samples]


def _bucket_counts(histogram: Histogram, **labels: str) -> np.ndarray:
    """Per-bucket counts (not cumulative) of one histogram child, +Inf last."""
    cumulative = [s.value for s in _samples(histogram)
                  if s.name.endswith("_bucket") and all(s.labels.get(k) == v for k, v in labels.items())]
    return np.diff(np.asarray(cumulative, dtype=np.float64), prepend=0.0)


def start_drift(metrics: ServiceMetrics, card: ModelCard, window_s: float,
                current_card: Callable[[], ModelCard] | None = None) -> DriftMonitor | None:
    """The running monitor of `card`'s reference (then of `current_card()`'s, the serving one after a
    reload); None (drift off) when the card at startup has none."""
    if not card.reference:
        return None
    follow = (lambda: current_card().reference) if current_card is not None else None
    monitor = DriftMonitor(metrics, card.reference, window_s, follow)
    monitor.start()
    return monitor
