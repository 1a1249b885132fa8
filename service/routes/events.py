"""Writes to a session: the storefront's click (`events:write`) and erasure (`admin`).

Routes below a session take `{session_id:any}` (service/routes/convertors.py) so that an encoded slash
(`a%2Fb`, which the HTTP layer decodes to `a/b`) or newline still reaches the route and gets a 422 naming
path.session_id, not a 404. DELETE of the session itself does not: `{session_id:any}` at the end would
swallow `/x/risk` and answer its other methods with `Allow: DELETE`; `DELETE /v1/sessions/a%2Fb` is a 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse

from service.auth import require_scope
from service.deps import StateDep
from service.errors import error_response
from service.routes.convertors import ANY  # noqa: F401 (registers the `any` path convertor)
from service.schemas import EventIn, ScoreOut, SessionId, error_responses
from service.scopes import ADMIN, EVENTS_WRITE
from service.store.window_store import EventIdConflict

router = APIRouter(prefix="/v1", tags=["sessions"])

JSON_MEDIA_TYPE = "application/json"


async def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON (application/json or a +json type)."""
    declared = request.headers.get("content-type", "")
    media = declared.split(";", 1)[0].strip().lower()
    if media == JSON_MEDIA_TYPE or (media.startswith("application/") and media.endswith("+json")):
        return
    raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                        f"Content-Type must be {JSON_MEDIA_TYPE}, got {declared or 'none'}")


@router.post(
    "/sessions/{session_id:any}/events", response_model=ScoreOut,
    responses=error_responses(400, 401, 403, 409, 413, 415, 422, 503, 504),
    dependencies=[Depends(require_scope(EVENTS_WRITE)), Depends(require_json)],
)
async def post_event(session_id: SessionId, event: EventIn, state: StateDep) -> ScoreOut | JSONResponse:
    """Append one click to the session's window and score it. A retried event_id appends nothing: the same
    body gets the first answer, another body a 409."""
    try:
        return await state.scorer.score_event(session_id, event)
    except EventIdConflict as conflict:
        fields = [{"field": f"body.{part}", "message": "differs from the first request with this event_id"}
                  for part in conflict.parts]
        return error_response(status.HTTP_409_CONFLICT,
                              f"event_id {conflict.event_id!r} was already used with another body", fields=fields)


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
