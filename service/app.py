"""The app factory and its lifespan: engine, Redis (external or embedded), batcher, warmup.

Startup order fails fast: the model is loaded (and its fingerprint checked) before anything else
starts. The app serves /readyz as 503 until a warmup batch has run through the batcher; Redis being
unreachable at startup does not stop the process, it only keeps /readyz red until Redis answers.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import numpy as np
from fastapi import FastAPI

from model.card import FingerprintMismatch
from model.context import CONTEXT_SETS
from service.admission import Admission
from service.alerting import alert_config, arm_assigner
from service.auth import ApiKeyAuth
from service.batcher import MicroBatcher
from service.boundary import BoundaryMiddleware, install_error_handlers
from service.click_path import ClickFastPath
from service.deps import ServiceState
from service.drift import start_drift
from service.engine.providers import NoUsableProvider
from service.metrics import GcPauses, ServiceMetrics, multiprocess_dir
from service.model_repository import ModelRepository, UnknownVersion
from service.openapi import docs_app, install_openapi
from service.reloader import ModelRefused, ModelReloader
from service.rollout_metrics import RolloutMetrics, pooled_correlation
from service.routes import events as routes_events
from service.routes import model as routes_model
from service.routes import ops as routes_ops
from service.routes import reads as routes_reads
from service.routes import users as routes_users
from service.scorer import SessionScorer, engine_runner
from service.served_model import ModelSlot, ServedModel, load_served
from service.settings import Settings
from service.store.client import connect_redis
from service.store.embedded import EmbeddedRedis
from service.store.window_store import SessionWindowStore
from service.store.write_behind import ScoreWriter
from service.tracing import start_tracing, stop_tracing
from service.user_ids import click_hasher, keeps_history

log = logging.getLogger(__name__)

WARMUP_DEADLINE_S = 30.0


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    metrics: ServiceMetrics = app.state.metrics
    if not settings.auth_active:
        log.warning("AUTH IS OFF: every route is open to anyone who can reach this service. Set SI_API_KEYS "
                    "(sha256 digests) and SI_REDIS_URL for anything but a local trial.")
    try:
        repository = ModelRepository(settings.model_repository, settings.model_name, settings.model_dir)
        served: ServedModel = await asyncio.to_thread(load_served, repository.resolve(), settings)
    except (FingerprintMismatch, FileNotFoundError, NoUsableProvider, UnknownVersion, ValueError) as exc:
        log.critical("refusing to start: %s", exc)
        raise
    engine = served.engine
    reads_history = bool(set(engine.card.context_names) & set(CONTEXT_SETS["history"]))
    if settings.redis_cluster and not settings.cluster_history and reads_history:
        log.warning("this model reads the shopper's history, which a Redis Cluster serves only with "
                    "SI_CLUSTER_HISTORY=true (docs/redis.md): its history features stay 0 here")
    slot = ModelSlot(served)
    async with AsyncExitStack() as stack:
        if start_tracing(settings.tracing) is not None:
            stack.callback(stop_tracing)
        pauses = GcPauses(metrics)
        pauses.install()
        stack.callback(pauses.remove)
        url = settings.redis_url
        if url is None:
            embedded = await asyncio.to_thread(EmbeddedRedis(maxmemory_mb=settings.embedded_redis_maxmemory_mb).start)
            stack.callback(embedded.stop)
            url = embedded.url
        client = connect_redis(url, settings)
        stack.push_async_callback(client.aclose)
        store = SessionWindowStore(
            client, window=engine.window, ttl_s=settings.ttl_s, prefix=settings.redis_prefix,
            event_id_memory=settings.event_id_memory, alerts=alert_config(settings, engine.card),
            context_state=settings.context_state, user_ttl_s=round(settings.user_history_ttl_days * 86_400),
            cluster_history=settings.cluster_history,
        )
        writer = ScoreWriter(store, metrics, flush_s=settings.score_flush_ms / 1000,
                             max_records=settings.score_flush_records)
        writer.start()
        stack.push_async_callback(writer.stop)
        batcher = MicroBatcher(engine_runner(slot), max_batch_size=settings.max_batch_size,
                               max_queue_delay_ms=settings.max_queue_delay_ms,
                               max_queue_size=settings.max_queue_size, metrics=metrics,
                               gil_switch_interval_ms=settings.gil_switch_interval_ms)
        await batcher.start()
        stack.push_async_callback(batcher.stop)  # stops first: its last batches still hand records to the writer
        scorer = SessionScorer(store, batcher, slot, metrics,
                               deadline_s=settings.request_deadline_ms / 1000, writer=writer,
                               arms=arm_assigner(settings), user_ids=click_hasher(settings),
                               history=keeps_history(settings))
        metrics.drift = start_drift(metrics, engine.card, settings.drift_window_s, lambda: slot.serving.card)
        if metrics.drift is not None:
            stack.push_async_callback(metrics.drift.stop)
        metrics.model.info({"model": served.model, "provider": engine.provider, "window": str(engine.window),
                            "fingerprint": engine.card.fingerprint})
        reloader = ModelReloader(repository, slot, batcher, settings, app.state.rollout_metrics)
        app.state.rollout_metrics.serving.labels(served.label).set(1)
        stack.push_async_callback(reloader.set_shadow, None)
        state = ServiceState(settings=settings, metrics=metrics, redis=client, store=store,
                             batcher=batcher, scorer=scorer, slot=slot, reloader=reloader)
        app.state.service = state
        await asyncio.to_thread(engine.warmup)
        # Ready means warmed: one real batch through the batcher and the encoder, as a click would travel.
        first_click = (np.zeros(1, dtype=np.int64), np.array([time.time()]), np.zeros(1, dtype=bool))
        await batcher.submit(first_click, time.monotonic() + WARMUP_DEADLINE_S)
        # Everything allocated so far (modules, the app, the ONNX session) lives for the whole process:
        # freeze it out of the GC's reach, so a full collection walks only what requests allocate.
        # Without it, a gen-2 collection over every imported object stalls the event loop for
        # milliseconds at a time (si_gc_pause_seconds shows it; docs/benchmarks/service.md measures it).
        if settings.gc_freeze:
            pauses.freeze_startup_objects()
        # A click allocates a few hundred containers; at CPython's default (700) a young collection runs
        # about every other click and costs ~3 % of the CPU. Cyclic garbage is rare here (refcounting
        # frees almost everything), so collecting every `gc_gen0_threshold` net allocations loses nothing.
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(settings.gc_gen0_threshold, gen1, gen2)
        state.warmed = True
        await _start_shadow(reloader)
        _reload_on_sighup(reloader, stack)
        if settings.model_poll_s > 0 and settings.model_repository is not None:
            watcher = asyncio.create_task(reloader.watch(settings.model_poll_s), name="model-watch")
            stack.callback(watcher.cancel)
        log.info("ready: model %s on %s, redis %s", engine.model_id, engine.provider,
                 "embedded" if settings.embedded_redis else "external")
        yield


async def _start_shadow(reloader: ModelReloader) -> None:
    """The candidate the repository's `shadow` pointer names, if any; a refused one is logged, not fatal."""
    candidate = reloader.repository.pointer("shadow")
    if candidate is None:
        return
    try:
        await reloader.set_shadow(candidate)
    except (UnknownVersion, ModelRefused) as exc:
        log.error("no shadow candidate: %s", exc)


def _reload_on_sighup(reloader: ModelReloader, stack: AsyncExitStack) -> None:
    """SIGHUP loads what the repository's pointers name (kill -HUP <pid>); where the loop cannot take signal
    handlers (a server in a thread, Windows), only the admin route reloads."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[bool]] = set()

    def on_hup() -> None:
        task = loop.create_task(reloader.follow_pointers(force=True))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    except (ValueError, RuntimeError, NotImplementedError, AttributeError):
        log.info("SIGHUP reload unavailable here (not the main thread); the admin route reloads")
        return
    stack.callback(loop.remove_signal_handler, signal.SIGHUP)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A fresh app with its own metrics registry; nothing starts until the lifespan runs."""
    settings = settings or Settings()
    metrics = ServiceMetrics()
    app = docs_app(
        title="session-intent",
        summary="Real-time purchase-intent scoring of e-commerce sessions.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.rollout_metrics = RolloutMetrics(metrics.registry)
    if multiprocess_dir() is not None:
        metrics.derived.append(pooled_correlation)
    app.state.auth = ApiKeyAuth(settings.api_keys, enabled=settings.auth_active)
    install_error_handlers(app, metrics, settings.retry_after_s)
    app.add_middleware(ClickFastPath)  # inside the boundary: its body limit and request metrics apply
    app.state.admission = Admission(settings.max_in_flight, settings.admission_target_ms / 1000)
    app.add_middleware(BoundaryMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes,
                       admission=app.state.admission, retry_after_s=settings.retry_after_s,
                       log_requests=settings.access_log)
    for module in (routes_events, routes_reads, routes_ops, routes_model, routes_users):
        app.include_router(module.router)
    install_openapi(app, settings)
    return app
