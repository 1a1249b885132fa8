"""Writes to a session: the storefront's click (`events:write`) and erasure (`admin`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Response, status

from service.auth import require_scope
from service.deps import StateDep
from service.schemas import EventIn, ScoreOut, SessionId, error_responses
from service.scopes import ADMIN, EVENTS_WRITE

router = APIRouter(prefix="/v1", tags=["sessions"])

@router.post(
    "/sessions/{session_id}/events", response_model=ScoreOut, responses=error_responses(401, 403, 413, 422, 503, 504),
    dependencies=[Depends(require_scope(EVENTS_WRITE))],
)
async def post_event(session_id: SessionId, event: EventIn, state: StateDep) -> ScoreOut:
    """Append one click to the session's window and score the session (a retried event_id appends nothing)."""
    return await state.scorer.score_event(session_id, event)


@router.delete(
    "/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422, 503),
    dependencies=[Depends(require_scope(ADMIN))],
)
async def delete_session(session_id: SessionId, state: StateDep) -> Response:
    """Erase a session: its window, meta, event ids, stored scores and at-risk entry."""
    if not await state.store.delete_session(session_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "session not found")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
