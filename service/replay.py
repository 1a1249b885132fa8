"""Replay a log's clicks through the serving path (docs/service.md "Replay"), for `session-intent replay`.

Each click goes where a live click goes: `SessionScorer.score_event` appends it with append_event.lua
to a Redis (a private embedded redis-server unless a URL is given), the MicroBatcher batches the raw
windows, `engine_runner` encodes and scores them on the engine thread, and the ScoreWriter writes them
back with write_scores.lua. So a replayed score is the answer the live service gives for the same
clicks in the same order; the one difference is the batch company a click keeps. Sessions replay
concurrently (each in order), so batches form as they do under load; an int8 model quantizes each
batch's activations with the batch's own range, so its scores move slightly with the company
(`max_batch_size=1` removes that, as a live service at low traffic does).

A model with context gets each click's context from the command (service/replay_context.py).

numpy only: the command (cli/replay_command.py) reads the log and computes the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial

import numpy as np

from service.batcher import MicroBatcher
from service.metrics import ServiceMetrics
from service.model_repository import ModelVersion
from service.replay_context import ContextTaggingStore, rows_by_session
from service.schemas import EventIn, ScoreOut
from service.scorer import SessionScorer, engine_runner
from service.served_model import ModelSlot, load_served
from service.settings import Settings
from service.store.client import connect_redis
from service.store.embedded import EmbeddedRedis
from service.store.window_store import SessionWindowStore
from service.store.write_behind import ScoreWriter
from service.user_ids import click_hasher, keeps_history

logger = logging.getLogger(__name__)

REPLAY_DEADLINE_S = 600.0  # replay waits for every score; no click is shed for lateness
# Nobody waits on a replayed click, so a Redis call may take as long as a busy machine needs: the live
# 500 ms bound failed a whole replay with "No connection available" on a loaded 2-core box.
REPLAY_REDIS_TIMEOUT_MS = 30_000.0


@dataclass(frozen=True)
class Click:
    """One logged click, as the storefront would POST it."""

    session_id: str
    ts: float
    action: str
    from_ad: bool | None = None


async def replay_clicks(clicks: Sequence[Click], version: ModelVersion, settings: Settings,
                        concurrency: int = 64, contexts: np.ndarray | None = None) -> list[ScoreOut]:
    """The answer to each click, in the order of `clicks`; sessions replay concurrently, each in its order.
    `contexts`: (E, CONTEXT_DIM) raw context of each click (model/context.py), for a model with context."""
    by_session: dict[str, list[int]] = {}
    for i, c in enumerate(clicks):
        by_session.setdefault(c.session_id, []).append(i)
    answers: list[ScoreOut | None] = [None] * len(clicks)
    settings = settings.model_copy(
        update={"redis_timeout_ms": max(settings.redis_timeout_ms, REPLAY_REDIS_TIMEOUT_MS)})
    # Each replaying session holds one pooled connection at a time; one more stays free for the write-behind.
    concurrency = max(1, min(concurrency, settings.redis_max_connections - 1))
    async with AsyncExitStack() as stack:
        scorer = await _serving_path(version, settings, stack, clicks, contexts)
        gate = asyncio.Semaphore(concurrency)

        async def one_session(indexes: list[int]) -> None:
            async with gate:
                for i in indexes:
                    c = clicks[i]
                    # model_construct: a logged click is replayed as it was, however old (the live route
                    # refuses a ts more than a year old).
                    event = EventIn.model_construct(event_id=None, ts=c.ts, action=c.action, from_ad=c.from_ad)
                    answers[i] = await scorer.score_event(c.session_id, event)

        started = time.perf_counter()
        await asyncio.gather(*(one_session(ix) for ix in by_session.values()))
        logger.info("replayed %d clicks of %d sessions on %s in %.1f s", len(clicks), len(by_session),
                    version.label, time.perf_counter() - started)
    return [a for a in answers if a is not None]


async def _serving_path(version: ModelVersion, settings: Settings, stack: AsyncExitStack, clicks: Sequence[Click],
                        contexts: np.ndarray | None) -> SessionScorer:  # fmt: skip
    """The lifespan's parts (service/app.py) for one model: store, write-behind, batcher, scorer."""
    served = await asyncio.to_thread(load_served, version, settings)
    make_store: Callable[..., SessionWindowStore] = SessionWindowStore
    if served.card.context_names:
        if contexts is None:
            raise ValueError(f"{version.label} takes context {list(served.card.context_names)}: replay needs "
                             "each click's context (a log with user_id, item_id, category_id)")  # fmt: skip
        make_store = partial(ContextTaggingStore, rows=rows_by_session([c.session_id for c in clicks],
                                                                                  contexts))  # fmt: skip
    url = settings.redis_url
    if url is None:
        embedded = await asyncio.to_thread(EmbeddedRedis(maxmemory_mb=0).start)
        stack.callback(embedded.stop)
        url = embedded.url
    client = connect_redis(url, settings)
    stack.push_async_callback(client.aclose)
    metrics = ServiceMetrics()
    store = make_store(client, window=served.card.window, ttl_s=settings.ttl_s,
                       prefix=f"{settings.redis_prefix}:replay", event_id_memory=settings.event_id_memory,
                       context_state=settings.context_state)
    writer = ScoreWriter(store, metrics, flush_s=settings.score_flush_ms / 1000,
                         max_records=settings.score_flush_records)
    writer.start()
    stack.push_async_callback(writer.stop)
    slot = ModelSlot(served)
    batcher = MicroBatcher(engine_runner(slot), max_batch_size=settings.max_batch_size,
                           max_queue_delay_ms=settings.max_queue_delay_ms, max_queue_size=10**9, metrics=metrics)
    await batcher.start()
    stack.push_async_callback(batcher.stop)
    return SessionScorer(store, batcher, slot, metrics, deadline_s=REPLAY_DEADLINE_S, writer=writer,
                         user_ids=click_hasher(settings),
                         history=keeps_history(settings))
