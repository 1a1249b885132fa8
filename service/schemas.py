"""Request and response bodies of the HTTP API (docs/architecture.md §2), with the examples OpenAPI shows."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Path
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from model.features import ACTIONS, action_index

SESSION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
# Epoch seconds in [2000-01-01, 2200-01-01): rejects milliseconds and other unit mix-ups.
MIN_EPOCH_S = 946_684_800.0
MAX_EPOCH_S = 7_258_118_400.0

SessionId = Annotated[
    str,
    Path(
        min_length=1, max_length=128, pattern=SESSION_ID_PATTERN,
        description="Opaque session id: 1-128 chars of [A-Za-z0-9_.:-].", examples=["s-8f3a1c"],
    ),
]


def parse_event_time(raw: object) -> float | None:
    """RFC 3339 with an offset, or epoch seconds → epoch seconds; one clear message for anything else."""
    if raw is None:
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        seconds = float(raw)
    elif isinstance(raw, str):
        try:
            seconds = _RFC3339.validate_python(raw).timestamp()
        except ValidationError:
            raise ValueError("ts must be RFC 3339 with an offset (2026-11-22T10:15:03Z) or epoch seconds") from None
    else:
        raise ValueError("ts must be an RFC 3339 string with an offset or a number of epoch seconds")
    if not math.isfinite(seconds) or not MIN_EPOCH_S <= seconds < MAX_EPOCH_S:
        raise ValueError("ts must fall between the years 2000 and 2200 (epoch seconds, not milliseconds)")
    return seconds


_RFC3339 = TypeAdapter(AwareDatetime)
EventTime = Annotated[
    float | None,
    BeforeValidator(parse_event_time),
    WithJsonSchema({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}, {"type": "null"}]}),
]


class EventIn(BaseModel):
    """One click of a storefront session."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"event_id": "c-0001", "ts": "2026-11-22T10:15:03Z", "action": "view_product", "from_ad": True}
            ]
        },
    )

    event_id: str | None = Field(
        default=None, min_length=1, max_length=128,
        description="Idempotency key: a retried event_id appends nothing and returns the first answer.",
    )
    ts: EventTime = Field(default=None, description="RFC 3339 with an offset, or epoch seconds; default: now.")
    action: Annotated[str, Field(description="The page type of the click.", json_schema_extra={"enum": list(ACTIONS)})]
    from_ad: bool | None = Field(default=None, description="The session landed from an ad; sticky once true.")

    @field_validator("action")
    @classmethod
    def _known_action(cls, name: str) -> str:
        action_index(name)  # ValueError listing the valid names
        return name



class ScoreOut(BaseModel):
    """The session's scores after one event."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{
                "session_id": "s-8f3a1c", "event_index": 7, "p_add_cart": 0.31, "p_make_order": 0.08,
                "abandonment_risk": 0.29, "intent": "browse", "model": "lstm-gru-int8@3f2a9c", "window": 7,
            }]
        }
    )

    session_id: str
    event_index: int = Field(description="0-based position of the event in its session.")
    p_add_cart: float
    p_make_order: float
    abandonment_risk: float = Field(description="(cart_has_items ? 1 : p_add_cart) × (1 − p_make_order)")
    intent: str = Field(description="purchase, cart_abandonment or browse, by the model card's thresholds.")
    model: str
    window: int = Field(description="Events in the scored window (at most the model's N).")


class AtRiskEntry(ScoreOut):
    """A session's stored scores, as the at-risk index lists them."""

    ts: float = Field(description="Epoch seconds of the scored event.")


class RiskOut(AtRiskEntry):
    """The stored scores of a session's latest scored event, and its meta; reading them never runs the model."""

    cart_has_items: bool
    from_ad: bool
    events: int = Field(description="Events the session has had so far.")
    last_event_ts: float = Field(description="Epoch seconds of the session's newest event.")
    expires_in_s: int = Field(description="Seconds until the idle TTL erases the session.")


class AtRiskOut(BaseModel):
    """Live sessions with abandonment_risk ≥ min_risk, riskiest first."""

    min_risk: float
    limit: int
    sessions: list[AtRiskEntry]


class EventContribution(BaseModel):
    """How much one event moves each score: full-window score minus the score with the event removed."""

    position: int = Field(description="0-based position in the window, oldest first.")
    action: str
    ts: float
    p_add_cart: float
    p_make_order: float
    abandonment_risk: float


class ExplainOut(BaseModel):
    """Occlusion explanation of a session's current window (runs the model: one batch)."""

    session_id: str
    model: str
    window: int
    scores: dict[str, float] = Field(description="p_add_cart, p_make_order, abandonment_risk of the full window.")
    intent: str
    contributions: list[EventContribution]


class FieldError(BaseModel):
    field: str
    message: str


class ErrorOut(BaseModel):
    """Every error body: a message, and the offending fields for a 422."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"error": "invalid request", "fields": [
            {"field": "body.action", "message": "unknown action 'checkout'; expected one of: category, ..."}
        ]}]}
    )

    error: str
    fields: list[FieldError] | None = None


class ReadyOut(BaseModel):
    ready: bool
    redis: bool
    warmed: bool
    model: str | None = None
    provider: str | None = None


ERROR_DESCRIPTIONS: dict[int, str] = {
    401: "missing or unknown API key", 403: "the key lacks this route's scope", 404: "no such live session",
    413: "body over SI_MAX_BODY_BYTES", 422: "invalid path, query or body; names each field",
    503: "Redis unavailable or overloaded; see Retry-After", 504: "scoring missed the request deadline",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses=` for the error statuses a route can answer, all with the ErrorOut body."""
    return {code: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[code]} for code in codes}
