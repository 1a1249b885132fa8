"""The HTTP floor of the service benchmark (docs/architecture.md §10): the same routes, framework and schemas, no work.

It parses and validates the click with the service's own `EventIn` and answers a constant `ScoreOut`,
so the gap between this and the full service is Redis, micro-batching and the model, nothing else.

    python -m uvicorn loadtest.bare_app:app --host 127.0.0.1 --port 8001 --no-access-log
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from service.schemas import EventIn, ScoreOut, SessionId

app = FastAPI(title="session-intent bare floor")


@app.post("/v1/sessions/{session_id}/events", response_model=ScoreOut)
async def post_event(session_id: SessionId, event: EventIn) -> ScoreOut:
    """Validate the click and answer a constant score."""
    return ScoreOut(session_id=session_id, event_index=0, p_add_cart=0.0, p_make_order=0.0, abandonment_risk=0.0,
                    intent="browse", model="bare", window=1)


# The reads answer constant JSON without a response model: their schemas evolve with the service, the
# benchmark's floor is the POST path above.
STORED: dict[str, Any] = {
    "event_index": 0, "p_add_cart": 0.0, "p_make_order": 0.0, "abandonment_risk": 0.0, "intent": "browse",
    "model": "bare", "window": 1, "ts": 0.0,
}


@app.get("/v1/sessions/{session_id}/risk")
async def session_risk(session_id: SessionId) -> dict[str, Any]:
    """A constant stored score."""
    return {"session_id": session_id, **STORED}


@app.get("/v1/at-risk")
async def at_risk(min_risk: float = 0.5, limit: int = 100) -> dict[str, Any]:
    """An empty ranking."""
    return {"min_risk": min_risk, "limit": limit, "sessions": []}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}


@app.get("/readyz")
async def readyz() -> dict[str, bool]:
    """Always ready: nothing to warm up."""
    return {"ready": True}


@app.get("/metrics")
async def metrics() -> PlainTextResponse:
    """A constant exposition: the floor of a scrape."""
    return PlainTextResponse("# bare floor: no series\n")
