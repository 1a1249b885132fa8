"""A shadow candidate: a second version scores a sampled share of the serving batches, off the critical path.

    engine thread: serving model runs the batch ─► offer(windows, probs) ─► put_nowait ─► answer callers
                                                                  │ full: dropped, counted
    shadow thread:                      bounded queue ◄───────────┘ ─► candidate runs ─► compare ─► metrics

The engine thread only draws a random number and, for a sampled batch, puts one tuple on a bounded
queue; a full queue drops the batch (si_shadow_batches_total{outcome="dropped"}), so a slow candidate
never delays an answer. Nothing the candidate computes is answered or stored.

The risks compared use the cart state the window itself shows (its newest add_cart or order): the engine
thread sees windows, not the session's whole history. For a window holding the session's last cart move
(most windows) that is the served state.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import defaultdict
from typing import Any

import numpy as np

from model.risk import abandonment_risk, cart_open_after, decision_thresholds, intent_codes
from service.model_inputs import raw_windows, run_model
from service.rollout_metrics import MOMENTS, RolloutMetrics, pearson
from service.served_model import ServedModel

logger = logging.getLogger(__name__)

_STOP = None


class ShadowRunner:
    """Owns the candidate, its queue and its thread; `offer` is the only call made on the engine thread."""

    def __init__(self, candidate: ServedModel, serving: ServedModel, share: float, metrics: RolloutMetrics,
                 queue_size: int = 4, seed: int | None = None) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"shadow share must be in (0, 1], got {share}")
        self.candidate = candidate
        self.serving = serving  # thresholds of the serving side's intents; refreshed by the reloader
        self.share = share
        self.metrics = metrics
        label = candidate.label
        self._batches = {o: metrics.shadow_batches.labels(label, o) for o in ("scored", "dropped", "failed")}
        self._windows = metrics.shadow_windows.labels(label)
        self._latency = metrics.shadow_latency.labels(label)
        self._agree = {a: metrics.intent_agreement.labels(label, a) for a in ("true", "false")}
        self._diff = metrics.risk_diff.labels(label)
        self._moment = {m: metrics.moments.labels(label, m) for m in MOMENTS}
        self._correlation = metrics.correlation.labels(label) if metrics.correlation is not None else None
        self._sums: dict[str, float] = defaultdict(float)
        self._random = random.Random(seed)
        self._queue: queue.Queue[tuple[list[Any], np.ndarray] | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._serve, name=f"shadow-{label}", daemon=True)

    @property
    def label(self) -> str:
        return self.candidate.label

    def start(self) -> ShadowRunner:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Drop what is queued and end the thread (it finishes the batch it runs)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(_STOP)
        self._thread.join(timeout_s)

    def offer(self, windows: list[Any], probs: np.ndarray) -> None:
        """On the engine thread: queue a sampled batch for the candidate, or drop it when the queue is full."""
        if self._random.random() >= self.share:
            return
        try:
            self._queue.put_nowait((windows, np.array(probs, dtype=np.float32)))
        except queue.Full:
            self._batches["dropped"].inc()

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            windows, served = item
            try:
                self._compare(windows, served)
            except Exception:  # a broken candidate must not take the thread down silently
                logger.exception("shadow candidate %s failed on a batch of %d", self.label, len(windows))
                self._batches["failed"].inc()

    def _compare(self, items: list[Any], served: np.ndarray) -> None:
        """`items` as the batch held them: raw windows, or ContextWindows (service/model_inputs.py)."""
        started = time.perf_counter()
        cand = run_model(self.candidate, items)  # (B, 2)
        self._latency.observe(time.perf_counter() - started)
        windows = raw_windows(items)
        cart = np.array([bool(cart_open_after(w[0])[-1]) if len(w[0]) else False for w in windows])  # (B,)
        risk_s = abandonment_risk(served[:, 0], served[:, 1], cart)
        risk_c = abandonment_risk(cand[:, 0], cand[:, 1], cart)
        intents_s = intent_codes(served[:, 1], risk_s, decision_thresholds(self.serving.card))
        intents_c = intent_codes(cand[:, 1], risk_c, decision_thresholds(self.candidate.card))
        agree = int(np.sum(intents_s == intents_c))
        self._agree["true"].inc(agree)
        self._agree["false"].inc(len(windows) - agree)
        for d in risk_c - risk_s:
            self._diff.observe(float(d))
        step = {"n": float(len(windows)), "s": float(risk_s.sum()), "c": float(risk_c.sum()),
                "ss": float((risk_s**2).sum()), "cc": float((risk_c**2).sum()), "sc": float((risk_s * risk_c).sum())}
        for name, value in step.items():
            self._moment[name].inc(value)
            self._sums[name] += value
        correlation = pearson(self._sums)
        if correlation is not None and self._correlation is not None:
            self._correlation.set(correlation)
        self._windows.inc(len(windows))
        self._batches["scored"].inc()
