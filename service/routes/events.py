"""Writes to a session: the storefront's click (`events:write`) and erasure (`admin`).

Reads below a session take `{session_id:any}` (service/routes/convertors.py), and the click has a hidden
twin route with it, so that an encoded slash (`a%2Fb`, which the HTTP layer decodes to `a/b`) or newline
still reaches a route and gets a 422 naming path.session_id, not a 404. DELETE of the session itself
does not: `{session_id:any}` at the end would swallow `/x/risk` and answer its other methods with
`Allow: DELETE`; `DELETE /v1/sessions/a%2Fb` is a 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Response, status

from service import messages
from service.auth import require_scope
from service.deps import StateDep
from service.routes.paths import API_PREFIX, CLICK_METHOD, CLICK_ROUTE, CLICK_ROUTE_ANY
from service.schemas import EventIn, ScoreOut, SessionId, error_responses
from service.scopes import ADMIN, EVENTS_WRITE

router = APIRouter(prefix=API_PREFIX, tags=["sessions"])


async def post_event(session_id: SessionId, event: EventIn, state: StateDep) -> ScoreOut:
    """Append one click to the session's window and score it. A retried event_id appends nothing: the same
    body gets the first answer, another body a 409 (EventIdConflict, answered by service/boundary.py)."""
    return await state.scorer.score_event(session_id, event)


# The click route keeps the plain `{session_id}` template, which the lean path (service/click_path.py) serves;
# the same handler under `{session_id:any}`, hidden from the spec, answers ids with a slash or newline
# with the 422 that names path.session_id. The body must be JSON: 415 otherwise, at the boundary.
for template, documented in ((CLICK_ROUTE, True), (CLICK_ROUTE_ANY, False)):
    router.add_api_route(
        template, post_event, methods=[CLICK_METHOD], response_model=ScoreOut, include_in_schema=documented,
        responses=error_responses(400, 401, 403, 409, 413, 415, 422, 503, 504),
        dependencies=[Depends(require_scope(EVENTS_WRITE))],
    )


@router.delete(
    "/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422, 503),
    dependencies=[Depends(require_scope(ADMIN))],
)
async def delete_session(session_id: SessionId, state: StateDep) -> Response:
    """Erase a session: its window, meta, event ids, stored scores and at-risk entry."""
    if not await state.store.delete_session(session_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, messages.SESSION_NOT_FOUND)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
