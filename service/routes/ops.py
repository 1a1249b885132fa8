"""Probes and metrics for operators and orchestrators; open, no API key."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service.deps import ServiceState, StateDep
from service.schemas import ReadyOut

log = logging.getLogger(__name__)

router = APIRouter(tags=["ops"])


METRICS_EXAMPLE = (
    "# HELP si_events_total Clicks appended, by action.\n# TYPE si_events_total counter\n"
    'si_events_total{action="add_cart"} 42.0\n'
)


@router.get("/healthz", responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}})
async def healthz() -> dict[str, str]:
    """Liveness: the process answers HTTP."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, responses={503: {
    "model": ReadyOut, "description": "not ready",
    "content": {"application/json": {"example": {"ready": False, "redis": True, "warmed": False}}},
}})
async def readyz(state: StateDep) -> JSONResponse:
    """Readiness: Redis answers now and a warmup batch has run through the engine."""
    redis_ok = await _redis_answers(state)
    ready = ReadyOut(ready=redis_ok and state.warmed, redis=redis_ok, warmed=state.warmed,
                     model=state.slot.serving.model, provider=state.engine.provider)
    return JSONResponse(ready.model_dump(), status_code=200 if ready.ready else 503)


@router.get("/metrics", response_class=PlainTextResponse, responses={200: {
    "description": "Prometheus text exposition format.",
    "content": {"text/plain": {"schema": {"type": "string"}, "example": METRICS_EXAMPLE}},
}})
async def metrics(state: StateDep) -> Response:
    """Prometheus exposition of this replica's series."""
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def _redis_answers(state: ServiceState) -> bool:
    try:
        return bool(await asyncio.wait_for(state.store.ping(), timeout=state.settings.redis_timeout_ms / 1000))
    except Exception as exc:  # any failure to answer means not ready; the probe itself must not fail
        log.debug("readiness ping failed: %s", exc)
        return False
