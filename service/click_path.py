"""The lean path of the storefront's click (docs/architecture.md §7): POST /v1/sessions/{id}/events as plain ASGI.

A well-formed click skips FastAPI's routing, dependency tree and second validation of the response
model; everything else falls through to the full app, unchanged:

    match the route's own path regex ─► auth.check(route's scope) ─► EventIn.model_validate_json
        ─► SessionScorer.score_event ─► ScoreOut.model_dump_json   (the bytes FastAPI would send)

- one definition: the path, the required scope and the response model are read from the registered
  route (routes/events.py), so the OpenAPI contract stays the route's;
- one error boundary: an exception is answered by the handler `install_error_handlers` registered
  for it (service/boundary.py), and anything unhandled goes on to `BoundaryMiddleware`'s catch-all;
- a click that fails validation is replayed, body and all, through the full app, so its 422 is the
  one FastAPI writes. Nothing has happened yet at that point: auth and validation come before the store.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.auth import API_KEY_HEADER
from service.boundary import handler_for
from service.routes.paths import CLICK_METHOD, CLICK_PATH
from service.schemas import EventIn, ScoreOut, SessionId

log = logging.getLogger(__name__)

_KEY_HEADER = API_KEY_HEADER.lower().encode()
_JSON_HEADERS = [(b"content-type", b"application/json")]
_SESSION_ID: TypeAdapter[str] = TypeAdapter(SessionId)


@dataclass(frozen=True)
class ClickRoute:
    """What the lean path takes from the registered route: its object (for metrics), regex and scope."""

    route: APIRoute
    scope: str | None  # None: the route has no scope check

    @classmethod
    def find(cls, app: FastAPI) -> ClickRoute | None:
        """The click route, if it still has the shape the lean path reproduces; else None (no lean path)."""
        for route in _flat_routes(app):
            if isinstance(route, APIRoute) and route.path == CLICK_PATH and CLICK_METHOD in (route.methods or ()):
                scopes = [getattr(d.dependency, "required_scope", None) for d in route.dependencies]
                if route.response_model is not ScoreOut or len(scopes) > 1 or None in scopes:
                    log.warning("%s %s has dependencies the lean path does not know: it runs through FastAPI",
                                CLICK_METHOD, CLICK_PATH)
                    return None
                return cls(route, scopes[0] if scopes else None)
        return None


def _flat_routes(app: FastAPI) -> Iterator[BaseRoute]:
    """Every route of the app, through included routers (FastAPI ≥ 0.16x includes them lazily)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # an older FastAPI: app.routes is flat already
        yield from app.routes
        return
    for context in iter_route_contexts(app.routes):
        yield context.route


class ClickFastPath:
    """ASGI middleware: serves well-formed clicks itself, hands every other request to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._click: ClickRoute | None = None
        self._looked = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != CLICK_METHOD or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        app: FastAPI = scope["app"]
        click = self._route(app)
        match = click.route.path_regex.match(scope["path"]) if click is not None else None
        state = getattr(app.state, "service", None)
        if click is None or match is None or state is None or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        scope["route"] = click.route  # the template label of si_request_seconds
        try:
            body = await _read_body(receive)
            if click.scope is not None:
                app.state.auth.check(_header(scope, _KEY_HEADER), click.scope)
            try:
                session_id = _SESSION_ID.validate_python(match.group("session_id"))
                event = EventIn.model_validate_json(body)
            except ValidationError:
                await self.app(scope, _replay(body, receive), send)
                return
            out = await state.scorer.score_event(session_id, event)
        except Exception as exc:
            handler = handler_for(app, exc)
            if handler is None:
                raise
            response = await handler(Request(scope), exc)
            await response(scope, receive, send)
            return
        payload = out.model_dump_json(by_alias=True).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    def _route(self, app: FastAPI) -> ClickRoute | None:
        if not self._looked:
            self._click, self._looked = ClickRoute.find(app), True
        return self._click


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _is_json(scope: Scope) -> bool:
    content_type = _header(scope, b"content-type")
    return content_type is not None and content_type.split(";", 1)[0].strip().lower() == "application/json"


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # a disconnect: what arrived is all there is, and validation will say so
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then the real channel (for disconnects)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed

