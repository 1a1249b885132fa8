"""The model a replica serves: its card (`risk:read`), and hot reload and shadowing (`admin`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status

from service.auth import require_scope
from service.deps import ServiceState, StateDep
from service.model_repository import UnknownVersion
from service.model_schemas import ModelCardOut, ModelOut, ReloadIn, ShadowIn, ShadowOut, model_error_responses
from service.reloader import ModelRefused
from service.routes.paths import ADMIN_ROUTE_PREFIX, API_PREFIX
from service.schemas import error_responses
from service.scopes import ADMIN, RISK_READ

router = APIRouter(prefix=API_PREFIX, tags=["model"], responses=error_responses(401, 403, 503))
_ADMIN_ANSWERS = error_responses(400, 422) | model_error_responses(404, 409)


@router.get("/model", response_model=ModelOut, dependencies=[Depends(require_scope(RISK_READ))])
async def get_model(state: StateDep) -> ModelOut:
    """The served version's card, and the shadow candidate's if one runs."""
    return model_out(state)


@router.post(ADMIN_ROUTE_PREFIX + "/model", response_model=ModelOut, responses=_ADMIN_ANSWERS,
             dependencies=[Depends(require_scope(ADMIN))])
async def reload_model(body: ReloadIn, state: StateDep) -> ModelOut:
    """Load a version, check and warm it, and swap it in between two batches; a refused one changes nothing."""
    try:
        await state.reloader.load(body.version)
    except UnknownVersion as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except ModelRefused as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return model_out(state)


@router.put(ADMIN_ROUTE_PREFIX + "/shadow", response_model=ModelOut, responses=_ADMIN_ANSWERS,
            dependencies=[Depends(require_scope(ADMIN))])
async def put_shadow(body: ShadowIn, state: StateDep) -> ModelOut:
    """Run a version as the shadow candidate on a share of the batches (replaces any running one); null stops it."""
    try:
        await state.reloader.set_shadow(body.version, body.share)
    except UnknownVersion as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except ModelRefused as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return model_out(state)


def model_out(state: ServiceState) -> ModelOut:
    slot, repository = state.slot, state.reloader.repository
    shadow = slot.shadow
    return ModelOut(
        serving=ModelCardOut.of(slot.serving),
        shadow=None if shadow is None else ShadowOut(candidate=ModelCardOut.of(shadow.candidate), share=shadow.share),
        versions=repository.versions(),
        reloads=slot.reloads,
    )
