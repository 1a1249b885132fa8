"""A shopper's history (docs/privacy.md): erasure only (`admin`). Clicks write it; nothing reads it over HTTP."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from service.auth import require_scope
from service.deps import StateDep
from service.routes.paths import API_PREFIX
from service.schemas import SESSION_ID_PATTERN, error_responses
from service.scopes import ADMIN
from service.user_ids import user_id_hasher

router = APIRouter(prefix=API_PREFIX, tags=["users"])

UserId = Annotated[
    str,
    Path(min_length=1, max_length=128, pattern=SESSION_ID_PATTERN,
         description="The user_id as clicks sent it: 1-128 chars of [A-Za-z0-9_.:-].", examples=["u-1029"]),
]


@router.delete(
    "/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 422, 503),
    dependencies=[Depends(require_scope(ADMIN))],
)
async def delete_user(user_id: UserId, state: StateDep) -> Response:
    """Erase a shopper's history and their running session's items; 204 whether or not any was kept."""
    await state.store.delete_user(user_id_hasher(state.settings).digest(user_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
