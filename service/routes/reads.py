"""Reads for the coupon engine and support staff (`risk:read`). Only /explain runs the model."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError

from model.risk import decision_thresholds
from service import messages
from service.auth import require_scope
from service.deps import StateDep
from service.model_schemas import VERSION_PATTERN
from service.routes.convertors import ANY  # noqa: F401 (registers the `any` path convertor)
from service.routes.paths import API_PREFIX, AT_RISK_ROUTE
from service.schemas import AtRiskOut, ExplainOut, RiskOut, SessionId, error_responses
from service.scopes import RISK_READ
from service.store.score_record import scores_of

router = APIRouter(
    prefix=API_PREFIX, tags=["reads"], dependencies=[Depends(require_scope(RISK_READ))],
    responses=error_responses(401, 403, 422, 503),
)


@router.get("/sessions/{session_id:any}/risk", response_model=RiskOut, responses=error_responses(404))
async def get_risk(session_id: SessionId, state: StateDep) -> RiskOut:
    """The session's latest scores, never older than an answer this replica gave; never runs the model."""
    stored = await state.store.read_scores(session_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, messages.NO_SCORES)
    # Read-your-writes on this replica: an answer still in the write-behind buffer is newer than Redis.
    unwritten = state.scorer.writer.latest(session_id)
    if unwritten is not None and unwritten.event_index >= stored.get("event_index", -1):
        stored.update(scores_of(unwritten))
    scored = stored.get("event_index")
    return RiskOut.model_validate({**stored, "pending": scored is None or scored < stored["latest_event_index"]})


@router.get(AT_RISK_ROUTE, response_model=AtRiskOut)
async def list_at_risk(
    state: StateDep,
    min_risk: Annotated[float | None, Query(
        ge=0.0, le=1.0, description="Lowest abandonment_risk to list; default: the card's alert policy threshold.",
        examples=[0.5])] = None,
    limit: Annotated[int | None, Query(ge=1, description="At most this many (capped by SI_AT_RISK_MAX_LIMIT).",
                                       examples=[100])] = None,
    model_version: Annotated[str | None, Query(pattern=VERSION_PATTERN, description=(
        "Only sessions scored by this model version (the `model` field's label, e.g. taobao/2), "
        "as during a rolling update."), examples=["default"])] = None,
) -> AtRiskOut:
    """Live sessions with abandonment_risk ≥ min_risk, riskiest first, from stored scores; never runs the model."""
    settings = state.settings
    wanted = settings.at_risk_default_limit if limit is None else limit
    if wanted > settings.at_risk_max_limit:
        raise RequestValidationError([{
            "loc": ("query", "limit"), "type": "less_than_equal",
            "msg": f"Input should be less than or equal to {settings.at_risk_max_limit} (SI_AT_RISK_MAX_LIMIT)",
        }])
    if min_risk is None:  # the threshold behind the intent `cart_abandonment` and the alerts (model.risk)
        min_risk = decision_thresholds(state.slot.serving.card).risk
    rows = await state.store.at_risk(min_risk, wanted, model_version)
    return AtRiskOut.model_validate({"min_risk": min_risk, "limit": wanted, "sessions": rows})


@router.get("/sessions/{session_id:any}/explain", response_model=ExplainOut, responses=error_responses(404, 504))
async def explain_session(session_id: SessionId, state: StateDep) -> ExplainOut:
    """Each event's contribution by occlusion. The one read that RUNS THE MODEL: one engine batch of N+1 windows."""
    explained = await state.scorer.explain(session_id)
    if explained is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, messages.NO_LIVE_SESSION)
    return explained
