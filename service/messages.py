"""Every error message the API answers with, defined once: the code that raises or answers it and the
OpenAPI examples (`service/schemas.py` `ERROR_EXAMPLES`) both take it from here.

Plain strings for fixed messages, functions for the ones that name a value.
"""

from __future__ import annotations

INVALID_REQUEST = "invalid request"  # 422; `fields` names each offending field
# 400 on a body FastAPI cannot read as JSON text: FastAPI's own wording, quoted here for the example.
BODY_NOT_READABLE = "There was an error parsing the body"
UNKNOWN_API_KEY = "unknown API key"
SESSION_NOT_FOUND = "session not found"
NO_SCORES = "no scores for this session (unknown or expired)"
NO_LIVE_SESSION = "no live session with events"
DIFFERS_FROM_FIRST = "differs from the first request with this event_id"  # a 409's field message
OVERLOADED = "overloaded; retry later"  # the 503 of admission and of a full batch queue
STORE_UNAVAILABLE = "session store unavailable; retry later"
DEADLINE_MISSED = "scoring did not finish within the request deadline"
INFERENCE_FAILED = "model inference failed"
INTERNAL_ERROR = "internal error"
ID_FORMAT = "must be 1-128 characters of [A-Za-z0-9_.:-]"  # a click's user_id, item_id, category_id (422)


def missing_api_key(header: str) -> str:
    return f"missing {header} header"


def lacks_scope(scope: str) -> str:
    return f"this API key lacks the {scope!r} scope"


def body_too_large(limit: int) -> str:
    return f"request body exceeds {limit} bytes"


def wrong_media_type(expected: str, declared: str) -> str:
    return f"Content-Type must be {expected}, got {declared or 'none'}"


def event_id_reused(event_id: str) -> str:
    return f"event_id {event_id!r} was already used with another body"
