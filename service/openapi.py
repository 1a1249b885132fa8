"""The OpenAPI document as the running replica behaves, and its /docs and /redoc pages served offline.

- Security follows the auth mode: with auth on, every route that depends on `require_scope` lists the
  `APIKeyHeader` requirement and its 401/403 answers; with auth off (the embedded default) neither appears,
  so a client generated from the spec sends no key and expects no 401.
- /docs and /redoc load Swagger UI and ReDoc from the assets the fastapi-offline package ships
  (`docs_app`), so they work without a network.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline

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


def install_openapi(app: FastAPI, auth_active: bool) -> None:
    """Make `app.openapi()` describe the auth mode this app runs with (computed once, then cached)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                                 description=app.description, routes=app.routes)
            app.openapi_schema = schema if auth_active else without_auth(schema)
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]
