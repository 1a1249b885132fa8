"""One click → one score (docs/architecture.md §7): store, encoder, batcher, derived scores, in order.

    append (1 Redis call) ─► MicroBatcher.submit(packed window) ─► [engine thread: unpack, encode_windows + model]
        ─► risk + intent ─► ScoreWriter

The event loop never unpacks or encodes: `engine_runner` turns a whole batch of the store's packed windows into
(B, N, 16) with one unpacking and one vectorised `encode_windows` call on the engine thread (docs/architecture.md §7).

Scores go back to Redis behind the answer: the `ScoreWriter` (service/store/write_behind.py) gathers the
records answered within `SI_SCORE_FLUSH_MS` (or until `SI_SCORE_FLUSH_RECORDS` wait) into one `write_scores` call.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from model.card import ModelCard
from model.features import ACTION_INDEX, ACTIONS, RawWindow
from model.risk import abandonment_risk, click_alert_due, click_risk, intent_name
from service import tracing
from service.arms import ArmAssigner
from service.batcher import MicroBatcher, RunBatch
from service.metrics import ServiceMetrics
from service.missing_ids import MissingIdCounts
from service.model_inputs import ContextWindow, PackedWindow, run_model
from service.schemas import EventContribution, EventIn, ExplainOut, ScoreOut
from service.served_model import ModelSlot, ServedModel, scored_by
from service.store.score_record import ScoreRecord, scores_of
from service.store.window_store import SessionWindowStore
from service.store.window_values import NO_IDS, ClickIds
from service.store.write_behind import ScoreWriter
from service.user_ids import UserIdHasher

log = logging.getLogger(__name__)

# Scores are float32 model outputs: 6 decimals keep their resolution, and keep answers stored per event
# id and per session short in Redis. Risk and intent are derived from the rounded values, so an answer
# is consistent with itself.
DECIMALS = 6


class SessionScorer:
    """Scores events and explains sessions with the slot's serving model and one store."""

    def __init__(self, store: SessionWindowStore, batcher: MicroBatcher, slot: ModelSlot,
                 metrics: ServiceMetrics, deadline_s: float, writer: ScoreWriter,
                 arms: ArmAssigner | None = None, user_ids: UserIdHasher | None = None, history: bool = True) -> None:
        self.store = store
        self.batcher = batcher
        self.slot = slot
        self.metrics = metrics
        self.deadline_s = deadline_s
        self.writer = writer
        self.arms = arms  # None: this replica raises no coupon alerts (SI_ALERTS_ENABLED=false)
        self._unseen_of: tuple[ServedModel, frozenset[str]] | None = None
        # The keyed hash of a click's user_id: names the shopper's history (when `history`) and stands for the id
        # in the body a retry must repeat. None: user_ids are ignored.
        self.user_ids = user_ids
        self.history = history
        # Clicks the context sees less of (docs/architecture.md §3.1): each id missing, counted by name, in bulk.
        self._missing_ids = MissingIdCounts(metrics)

    @property
    def _unseen(self) -> frozenset[str]:
        """Actions the serving model never saw in training: a click on one is scored, and counted."""
        served = self.slot.serving
        if self._unseen_of is None or self._unseen_of[0] is not served:
            coverage = served.card.slot_coverage
            self._unseen_of = (served, frozenset(a for a in ACTIONS if coverage and coverage.get(a, 0) == 0))
        return self._unseen_of[1]

    async def score_event(self, session_id: str, event: EventIn) -> ScoreOut:
        start = time.perf_counter()
        deadline = time.monotonic() + self.deadline_s
        ts = time.time() if event.ts is None else event.ts
        user_hash = self._user_hash(event.user_id)
        with tracing.span("redis append_event"):
            appended = await self.store.append_event(
                session_id, event.event_id, ACTION_INDEX[event.action], ts, event.from_ad,
                body=event.body_key(user_hash), ids=self._ids(event, user_hash),
            )
        self.metrics.stage_redis.observe(time.perf_counter() - start)
        if appended.duplicate:
            self.metrics.duplicates.inc()
            if appended.stored_answer is not None:
                return ScoreOut.model_validate({**appended.stored_answer, "session_id": session_id})
            unwritten = self.writer.unwritten(session_id, event.event_id or "")
            if unwritten is not None:
                return _answer_of(unwritten)
            # The first attempt appended the event but left no answer (shed, deadline, or still in
            # flight; or answered by another replica a moment ago): score the window as it is now.
        else:
            self._count_event(event.action, appended.out_of_order)
            self._missing_ids.count(event)

        with tracing.span("batch wait"):
            # The window as the store's list holds it: the batch unpacks all its windows at once (model_inputs.py).
            item = ContextWindow(PackedWindow(appended.packed), appended.given_context, appended.context_row)
            probs = await self.batcher.submit(item, deadline)  # (2,)
        served = self.slot.model_of(probs)  # the model that scored this batch, whatever serves now
        out = self._score(session_id, appended.event_index, probs, served, appended.cart_has_items, len(appended))
        newest_ts = appended.newest_ts(2)
        if self.metrics.drift is not None:
            self.metrics.drift.observe(newest_ts, event.from_ad, out.p_make_order, out.abandonment_risk)
        self.writer.add(ScoreRecord(
            session_id=session_id, event_id=event.event_id, event_index=out.event_index, p_add_cart=out.p_add_cart,
            p_make_order=out.p_make_order, abandonment_risk=out.abandonment_risk, intent=out.intent,
            model=out.model, window_len=out.window, ts=newest_ts[-1],
            **self._alert(session_id, served.card, out.abandonment_risk, appended.cart_has_items),
        ))
        self.metrics.click.observe(time.perf_counter() - start)
        return out

    def _alert(self, session_id: str, card: ModelCard, risk: float, cart_has_items: bool) -> dict[str, str]:
        """The record's arm and policy when this click is due an alert under the scoring model's policy
        (write_scores.lua raises it once per open cart); nothing otherwise."""
        policy = card.policy
        if self.arms is None or policy is None or not click_alert_due(risk, cart_has_items, policy.threshold):
            return {}
        return {"arm": self.arms.arm(session_id), "policy": policy.label}

    def _ids(self, event: EventIn, user_hash: str | None) -> ClickIds:
        """The ids the store keeps state for; the user's only when this replica keeps history."""
        user = user_hash if self.history else None
        if event.item_id is None and event.category_id is None and user is None:
            return NO_IDS
        return ClickIds(item=event.item_id, category=event.category_id, user_hash=user)

    def _user_hash(self, user_id: str | None) -> str | None:
        return None if user_id is None or self.user_ids is None else self.user_ids.digest(user_id)

    def _count_event(self, action: str, out_of_order: bool) -> None:
        self.metrics.child(self.metrics.events, action).inc()
        if action in self._unseen:
            self.metrics.child(self.metrics.unseen_actions, action).inc()
        if out_of_order:
            self.metrics.out_of_order.inc()

    def _score(self, session_id: str, event_index: int, probs: np.ndarray, served: ServedModel, cart_has_items: bool,
               window_len: int) -> ScoreOut:
        p_add, p_order = round(float(probs[0]), DECIMALS), round(float(probs[1]), DECIMALS)
        risk = round(click_risk(p_add, p_order, cart_has_items), DECIMALS)  # plain floats: no numpy per click
        return ScoreOut(
            session_id=session_id, event_index=event_index, p_add_cart=p_add, p_make_order=p_order,
            abandonment_risk=risk, intent=intent_name(p_order, risk, served.thresholds),
            model=served.model, window=window_len,
        )

    async def explain(self, session_id: str) -> ExplainOut | None:
        """Occlusion: the window, and the window without each one of its events, scored in ONE batch."""
        deadline = time.monotonic() + self.deadline_s
        stored = await self.store.read_window(session_id)
        if stored is None or len(stored) == 0:
            return None
        actions, ts, from_ad = stored.unpacked()
        n_events = len(actions)
        variants: list[RawWindow] = [(actions, ts, from_ad)]
        for drop in range(n_events):
            keep = np.arange(n_events) != drop
            variants.append((actions[keep], ts[keep], from_ad[keep]))
        probs = await self.batcher.submit_many(variants, deadline)  # (1 + n_events, 2)
        risks = abandonment_risk(probs[:, 0], probs[:, 1], stored.cart_has_items)  # (1 + n_events,)
        full = self._score(session_id, 0, probs[0], self.slot.model_of(probs), stored.cart_has_items, n_events)
        contributions = [
            EventContribution(
                position=i, action=ACTIONS[int(actions[i])], ts=float(ts[i]),
                p_add_cart=round(float(probs[0, 0] - probs[i + 1, 0]), DECIMALS),
                p_make_order=round(float(probs[0, 1] - probs[i + 1, 1]), DECIMALS),
                abandonment_risk=round(float(risks[0] - risks[i + 1]), DECIMALS),
            )
            for i in range(n_events)
        ]
        return ExplainOut(
            session_id=session_id, model=full.model, window=n_events,
            scores={"p_add_cart": full.p_add_cart, "p_make_order": full.p_make_order,
                    "abandonment_risk": full.abandonment_risk},
            intent=full.intent, contributions=contributions,
        )


def engine_runner(slot: ModelSlot) -> RunBatch:
    """The batcher's `run_batch`, on the engine thread: B raw windows → encode_windows (B, N, 16) → (B, 2).

    The slot's serving model is read once per batch, so a reload swaps models between batches; the scores
    carry the model that computed them (service/served_model.py). A shadow candidate is offered the batch
    after it is scored and never delays it (service/shadow.py)."""

    def run(items: list[Any]) -> np.ndarray:
        served = slot.serving
        with tracing.span("engine batch", {"batch.size": len(items)}):
            probs = run_model(served, items)  # the card's context beside the windows when it takes one
        shadow = slot.shadow
        if shadow is not None:
            shadow.offer(items, probs)
        return scored_by(probs, served)

    return run


def _answer_of(record: ScoreRecord) -> ScoreOut:
    return ScoreOut.model_validate(scores_of(record))
