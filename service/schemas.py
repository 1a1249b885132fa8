"""Request and response bodies of the HTTP API (docs/architecture.md §2), with the examples OpenAPI shows."""

from __future__ import annotations

import math
import re
import time
from typing import Annotated, Any, Literal, get_args

from fastapi import Path
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from model.features import ACTION_INDEX, ACTIONS, action_index
from model.risk import CART_STATES
from service import messages
from service.auth import API_KEY_HEADER
from service.scopes import RISK_READ
from service.store.score_record import body_key

SESSION_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
ID_PATTERN = re.compile(SESSION_ID_PATTERN)  # a click's user_id, item_id and category_id: the same bound
ID_FIELDS: tuple[str, ...] = ("user_id", "item_id", "category_id")
# Epoch seconds in [2000-01-01, 2200-01-01): rejects milliseconds and other unit mix-ups.
MIN_EPOCH_S = 946_684_800.0
MAX_EPOCH_S = 7_258_118_400.0
# A click's ts against this replica's clock (docs/service.md "Bounded input"): a storefront clock may run
# ahead by up to MAX_CLOCK_SKEW_S; a click older than MAX_EVENT_AGE_S (a year) is no live session's and no
# plausible replay's, so it is refused rather than stored. Sessions idle out after 30 min by default, but
# replays and load tests send recorded clicks weeks old, so the bound is loose on purpose.
MAX_CLOCK_SKEW_S = 300.0
MAX_EVENT_AGE_S = 365 * 86_400.0

JSON_MEDIA_TYPE = "application/json"


def is_json_media(content_type: str) -> bool:
    """A Content-Type header naming JSON: application/json or an application/*+json type."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON_MEDIA_TYPE or (media.startswith("application/") and media.endswith("+json"))


SessionId = Annotated[
    str,
    Path(
        min_length=1, max_length=128, pattern=SESSION_ID_PATTERN,
        description="Opaque session id: 1-128 chars of [A-Za-z0-9_.:-].", examples=["s-8f3a1c"],
    ),
]


def ts_ahead_message(ahead_s: float) -> str:
    """The 422 field message of a ts `ahead_s` seconds past this replica's clock."""
    return f"ts is {ahead_s:.0f} s in the future; at most {MAX_CLOCK_SKEW_S:.0f} s of clock skew is allowed"


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
    ahead = seconds - time.time()
    if ahead > MAX_CLOCK_SKEW_S:
        raise ValueError(ts_ahead_message(ahead))
    if -ahead > MAX_EVENT_AGE_S:
        raise ValueError(f"ts is {-ahead / 86_400:.1f} days old; clicks older than "
                         f"{MAX_EVENT_AGE_S / 86_400:.0f} days are refused")
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
                # No ts: the server's clock (a fixed ts would age past MAX_EVENT_AGE_S).
                {"event_id": "c-0001", "action": "view_product", "from_ad": True},
                {"event_id": "c-0002", "action": "add_cart", "user_id": "u-1029", "item_id": "sku-553",
                 "category_id": "shoes"},
            ]
        },
    )

    event_id: str | None = Field(
        default=None, min_length=1, max_length=128,
        description="Idempotency key: a retried event_id appends nothing and returns the first answer.",
    )
    ts: EventTime = Field(
        default=None,
        description="RFC 3339 with an offset, or epoch seconds; default: now. At most 300 s ahead of the "
                    "server's clock and at most 365 days old.",
    )
    action: Annotated[str, Field(description="The page type of the click.", json_schema_extra={"enum": list(ACTIONS)})]
    from_ad: StrictBool | None = Field(
        default=None, description="The session landed from an ad; sticky once true. JSON true/false only."
    )
    # The context beside the window (docs/architecture.md §3.1); each optional, a missing one leaves its
    # features at 0. The user id is stored only as a keyed hash (docs/privacy.md).
    user_id: str | None = Field(
        default=None, description="The shopper, for their history; 1-128 chars of [A-Za-z0-9_.:-]. The session's "
                                  "first click decides its user.", examples=["u-1029"],
    )
    item_id: str | None = Field(default=None, description="The item clicked; 1-128 chars of [A-Za-z0-9_.:-].")
    category_id: str | None = Field(default=None, description="The item's category; 1-128 chars of [A-Za-z0-9_.:-].")

    @field_validator("user_id", "item_id", "category_id")
    @classmethod
    def _bounded_id(cls, value: str | None) -> str | None:
        if value is not None and not ID_PATTERN.match(value):
            raise ValueError(messages.ID_FORMAT)
        return value

    @field_validator("action")
    @classmethod
    def _known_action(cls, name: str) -> str:
        action_index(name)  # ValueError listing the valid names
        return name

    def body_key(self, user_hash: str | None = None) -> str:
        """The body as sent, as stored beside the event_id: a retry must repeat it (else 409). `user_hash`: the
        user_id's keyed hash, which stands for it (docs/privacy.md)."""
        return body_key(ACTION_INDEX[self.action], self.ts, self.from_ad, self.item_id, self.category_id, user_hash)



class ScoreOut(BaseModel):
    """The session's scores after one event."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{
                "session_id": "s-8f3a1c", "event_index": 7, "p_add_cart": 0.31, "p_make_order": 0.08,
                "abandonment_risk": 0.29, "intent": "browse", "model": "default:lstm-gru-int8@3f2a9c", "window": 7,
            }]
        }
    )

    session_id: str
    event_index: int = Field(description="0-based position of the event in its session.")
    p_add_cart: float
    p_make_order: float
    abandonment_risk: float = Field(
        description="(cart_has_items ? 1 : p_add_cart) × (1 − p_make_order). An add_cart opens the cart, an order "
                    "closes it: after an order it is p_add_cart × (1 − p_make_order)."
    )
    intent: str = Field(description="purchase, cart_abandonment or browse, by the model card's thresholds.")
    model: str
    window: int = Field(description="Events in the scored window (at most the model's N).")


class AtRiskEntry(ScoreOut):
    """A session's stored scores, as the at-risk index lists them."""

    ts: float = Field(description="Epoch seconds of the scored event.")


CartState = Literal["none", "open", "closed"]
assert get_args(CartState) == CART_STATES, "RiskOut.cart must list model.risk.CART_STATES"


class RiskOut(BaseModel):
    """A session's state and the stored scores of its latest scored event; reading them never runs the model.

    `pending` is true while the newest event's score has not reached this read (another replica answered
    it within the last SI_SCORE_FLUSH_MS, or its scoring failed): `event_index` then trails
    `latest_event_index`, and the score fields are null until a first score is stored.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "session_id": "s-8f3a1c", "event_index": 7, "latest_event_index": 7, "pending": False, "p_add_cart": 0.31,
        "p_make_order": 0.08, "abandonment_risk": 0.92, "intent": "cart_abandonment",
        "model": "default:lstm-gru-int8@3f2a9c", "window": 8, "ts": 1795000421.0, "cart": "open",
        "cart_has_items": True, "from_ad": False, "events": 8,
        "last_event_ts": 1795000421.0, "expires_in_s": 1794,
    }]})

    session_id: str
    event_index: int | None = Field(default=None,
                                    description="0-based index of the event these scores are for; null: none yet.")
    latest_event_index: int = Field(description="0-based index of the session's newest appended event.")
    pending: bool = Field(description="The newest event's score is not in this answer yet (event_index trails).")
    p_add_cart: float | None = None
    p_make_order: float | None = None
    abandonment_risk: float | None = None
    intent: str | None = None
    model: str | None = None
    window: int | None = Field(default=None, description="Events in the scored window.")
    ts: float | None = Field(default=None, description="Epoch seconds of the scored event.")
    cart: CartState = Field(
        description="none: no add_cart yet; open: an add_cart since the last order; closed: an order since the "
                    "last add_cart (model/risk.py)."
    )
    cart_has_items: bool = Field(description="cart == open.")
    from_ad: bool
    events: int = Field(description="Events the session has had so far.")
    last_event_ts: float = Field(description="Epoch seconds of the session's newest event.")
    expires_in_s: int = Field(description="Seconds until the idle TTL erases the session.")


class AtRiskOut(BaseModel):
    """Live sessions with abandonment_risk ≥ min_risk, riskiest first; a session an order closed is not listed."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "min_risk": 0.5, "limit": 100, "sessions": [{
            "session_id": "s-8f3a1c", "event_index": 7, "p_add_cart": 0.31, "p_make_order": 0.08,
            "abandonment_risk": 0.92, "intent": "cart_abandonment", "model": "default:lstm-gru-int8@3f2a9c",
            "window": 8, "ts": 1795000421.0,
        }],
    }]})

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

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "session_id": "s-8f3a1c", "model": "default:lstm-gru-int8@3f2a9c", "window": 2,
        "scores": {"p_add_cart": 0.31, "p_make_order": 0.08, "abandonment_risk": 0.92},
        "intent": "cart_abandonment",
        "contributions": [
            {"position": 0, "action": "view_product", "ts": 1795000400.0, "p_add_cart": 0.012,
             "p_make_order": -0.004, "abandonment_risk": 0.003},
            {"position": 1, "action": "add_cart", "ts": 1795000421.0, "p_add_cart": -0.05,
             "p_make_order": 0.01, "abandonment_risk": 0.64},
        ],
    }]})

    session_id: str
    model: str
    window: int
    scores: dict[str, float] = Field(description="p_add_cart, p_make_order, abandonment_risk of the full window.")
    intent: str
    contributions: list[EventContribution]


# One example per error status, each message the one the service answers with (service/messages.py).
ERROR_EXAMPLES: dict[int, dict[str, Any]] = {
    400: {"error": messages.BODY_NOT_READABLE},
    401: {"error": messages.missing_api_key(API_KEY_HEADER)},
    403: {"error": messages.lacks_scope(RISK_READ)},
    404: {"error": messages.NO_SCORES},
    409: {"error": messages.event_id_reused("c-0001"),
          "fields": [{"field": "body.action", "message": messages.DIFFERS_FROM_FIRST}]},
    413: {"error": messages.body_too_large(4096)},
    415: {"error": messages.wrong_media_type(JSON_MEDIA_TYPE, "text/plain")},
    422: {"error": messages.INVALID_REQUEST, "fields": [{"field": "body.ts", "message": ts_ahead_message(86_400)}]},
    503: {"error": messages.STORE_UNAVAILABLE},
    504: {"error": messages.DEADLINE_MISSED},
}


class FieldError(BaseModel):
    field: str
    message: str


class ErrorOut(BaseModel):
    """Every error body: a message, and the offending fields for a 422."""

    model_config = ConfigDict(json_schema_extra={"examples": [ERROR_EXAMPLES[422]]})

    error: str
    fields: list[FieldError] | None = None
    request_id: str | None = Field(default=None, description="The request's X-Request-ID (docs/service.md).")


class ReadyOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"ready": True, "redis": True, "warmed": True, "model": "default:lstm-gru-int8@3f2a9c",
         "provider": "CPUExecutionProvider"}
    ]})

    ready: bool
    redis: bool
    warmed: bool
    model: str | None = None
    provider: str | None = None


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "the body could not be read as JSON text (e.g. not UTF-8)",
    401: "missing or unknown API key", 403: "the key lacks this route's scope", 404: "no such live session",
    409: "the event_id was used before with another body; names the parts that differ",
    413: "body over SI_MAX_BODY_BYTES", 415: "the body is not sent as application/json",
    422: "invalid path, query or body; names each field",
    503: "Redis unavailable or overloaded; see Retry-After", 504: "scoring missed the request deadline",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses=` for the error statuses a route can answer, all with the ErrorOut body and an example."""
    return {
        code: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[code],
               "content": {"application/json": {"example": ERROR_EXAMPLES[code]}}}
        for code in codes
    }
