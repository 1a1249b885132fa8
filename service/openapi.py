"""The OpenAPI document as the running replica behaves, and its /docs and /redoc pages served offline.

- The numeric `ts` carries the accepted window as of the request.
- The at-risk `limit` carries the replica's SI_AT_RISK_MAX_LIMIT as its maximum.
- Security follows the auth mode: with auth on, every route that depends on `require_scope` lists the
  `APIKeyHeader` requirement and its 401/403 answers; with auth off (the embedded default) neither appears,
  so a client generated from the spec sends no key and expects no 401.
- /docs and /redoc load Swagger UI and ReDoc from the assets the fastapi-offline package ships
  (`docs_app`), so they work without a network.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline

from service.routes.paths import AT_RISK_PATH
from service.schemas import MAX_CLOCK_SKEW_S, MAX_EVENT_AGE_S
from service.settings import Settings

TS_BOUND_MARGIN_S = 86_400.0

AUTH_ONLY_STATUSES = ("401", "403")
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def docs_app(**kwargs: Any) -> FastAPI:
    """A FastAPI app whose /docs and /redoc pages load their JavaScript and CSS from this process."""
    return FastAPIOffline(**kwargs)


def without_auth(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with every security requirement, security scheme and 401/403 answer removed (in place)."""
    for path_item in schema.get("paths", {}).values():
        for method in HTTP_METHODS:
            operation = path_item.get(method)
            if operation is None:
                continue
            operation.pop("security", None)
            for code in AUTH_ONLY_STATUSES:
                operation.get("responses", {}).pop(code, None)
    components = schema.get("components", {})
    components.pop("securitySchemes", None)
    return schema


def with_limit_maximum(schema: dict[str, Any], max_limit: int) -> dict[str, Any]:
    """The at-risk `limit` query parameter with the maximum this replica's settings allow (in place)."""
    for parameter in schema["paths"].get(AT_RISK_PATH, {}).get("get", {}).get("parameters", []):
        if parameter["name"] == "limit":
            for branch in parameter["schema"].get("anyOf", [parameter["schema"]]):
                if branch.get("type") == "integer":
                    branch["maximum"] = max_limit
    return schema


def with_ts_bounds(schema: dict[str, Any], now: float) -> dict[str, Any]:
    """A copy whose numeric `ts` branch carries the epoch-seconds window the service accepts at `now`.

    The lower bound is TS_BOUND_MARGIN_S inside the real one, so a value taken from this document stays
    acceptable for that long after it was fetched. An RFC 3339 string cannot carry such bounds in
    OpenAPI; its description states them (docs/service.md "Bounded input").
    """
    out = copy.deepcopy(schema)
    ts = out["components"]["schemas"]["EventIn"]["properties"]["ts"]
    for branch in ts.get("anyOf", []):
        if branch.get("type") == "number":
            branch["minimum"] = math.ceil(now - MAX_EVENT_AGE_S + TS_BOUND_MARGIN_S)
            branch["maximum"] = math.floor(now + MAX_CLOCK_SKEW_S)
    return out


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Make `app.openapi()` describe this replica as configured: its auth mode and its at-risk limit
    (computed once), and the ts window as of the request."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                                 description=app.description, routes=app.routes)
            schema = with_limit_maximum(schema, settings.at_risk_max_limit)
            app.openapi_schema = schema if settings.auth_active else without_auth(schema)
        return with_ts_bounds(app.openapi_schema, time.time())

    app.openapi = build  # type: ignore[method-assign]
