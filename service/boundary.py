"""The one error boundary (docs/architecture.md §7): every failure becomes a JSON `{"error", "fields"?}` body here.

- bad input → 422 naming each field; body over `max_body_bytes` → 413;
- Redis down, the batch queue full, or more than `max_in_flight` API requests in progress → 503 with
  `Retry-After`; a passed deadline → 504;
- anything else → 500, traceback logged here and never sent.

`BoundaryMiddleware` wraps the whole app: it admits an API request only when `Admission` says so (fewer
in progress than a limit that adapts to keep their latency under a target), enforces the body limit, catches what no
handler did, and records the request histogram, so that even its own 413/503/500 answers are measured.
A refusal is the cheapest answer there is: prebuilt bytes in two raw ASGI messages, before the body is
read, because under overload the service spends its CPU mostly on refusals.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import messages, tracing
from service.admission import Admission
from service.batcher import DeadlineExceeded, EngineFailed, QueueFull
from service.live_gauges import LiveGauges
from service.metrics import ServiceMetrics
from service.request_id import HEADER_KEY as REQUEST_ID_KEY
from service.request_id import RequestIds, request_id_var
from service.routes.paths import is_api, is_click
from service.schemas import JSON_MEDIA_TYPE, is_json_media
from service.store.window_values import EventIdConflict

log = logging.getLogger(__name__)
access_log = logging.getLogger("service.access")

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)


class BodyTooLarge(HTTPException):
    """Raised while streaming a body past the limit; an HTTPException so FastAPI's body reader re-raises it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, messages.body_too_large(limit))


def error_response(status: int, message: str, *, fields: list[dict[str, str]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if fields is not None:
        body["fields"] = fields
    request_id = request_id_var.get()
    if request_id is not None:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status, headers=headers)


def field_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """pydantic error dicts → [{"field": "body.action", "message": ...}], without echoing the input."""
    out = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", ())]
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        out.append({"field": ".".join(loc) or "body", "message": message})
    return out


def install_error_handlers(app: FastAPI, metrics: ServiceMetrics, retry_after_s: int) -> None:
    """Register the handlers for every exception type a route may raise."""
    retry_after = {"Retry-After": str(retry_after_s)}

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, messages.INVALID_REQUEST, fields=field_errors(exc.errors()))

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return error_response(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    async def on_redis_down(_: Request, exc: Exception) -> JSONResponse:
        metrics.errors.labels(cause="redis").inc()
        log.warning("redis unavailable: %s", exc)
        return error_response(503, messages.STORE_UNAVAILABLE, headers=retry_after)

    async def on_queue_full(_: Request, exc: Exception) -> JSONResponse:
        metrics.errors.labels(cause="overload").inc()
        return error_response(503, messages.OVERLOADED, headers=retry_after)

    async def on_deadline(_: Request, exc: Exception) -> JSONResponse:
        metrics.errors.labels(cause="deadline").inc()
        return error_response(504, messages.DEADLINE_MISSED)

    async def on_engine_failed(_: Request, exc: Exception) -> JSONResponse:
        metrics.errors.labels(cause="engine").inc()
        log.error("engine failed: %s", exc, exc_info=exc)
        return error_response(500, messages.INFERENCE_FAILED)

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    for redis_error in REDIS_DOWN:
        app.add_exception_handler(redis_error, on_redis_down)
    app.add_exception_handler(QueueFull, on_queue_full)
    app.add_exception_handler(DeadlineExceeded, on_deadline)
    app.add_exception_handler(EngineFailed, on_engine_failed)

    async def on_conflict(_: Request, exc: Exception) -> JSONResponse:  # a reused event_id, another body
        assert isinstance(exc, EventIdConflict)
        fields = [{"field": f"body.{part}", "message": messages.DIFFERS_FROM_FIRST}
                  for part in exc.parts]
        return error_response(409, messages.event_id_reused(exc.event_id), fields=fields)

    app.add_exception_handler(EventIdConflict, on_conflict)


async def _respond(handler: Any, request: Request, exc: Exception) -> Response:
    result = handler(request, exc)
    return await result if inspect.isawaitable(result) else result  # type: ignore[no-any-return]


def handler_for(app: FastAPI, exc: Exception) -> Callable[[Request, Exception], Awaitable[Response]] | None:
    """The handler registered for `exc`'s nearest class, as Starlette's ExceptionMiddleware would pick it.

    For code that answers outside FastAPI's routing (service/click_path.py), so it still answers through
    this one boundary.
    """
    for cls in type(exc).__mro__:
        handler = app.exception_handlers.get(cls)
        if handler is not None:
            return functools.partial(_respond, handler)
    return None


class BoundaryMiddleware:
    """Pure ASGI around the whole app: admission, the body limit, the catch-all 500, and
    `si_request_seconds{route,method,status}`. Each job is one method below; `__call__` only orders them."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, max_body_bytes: int, admission: Admission,
                 retry_after_s: int = 1, log_requests: bool = False) -> None:
        self.app = app
        self.log_requests = log_requests
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.admission = admission
        self.request_ids = RequestIds()
        # The refusal, built once but for its request id: the very bytes error_response(503, ...) would send.
        shed = error_response(503, messages.OVERLOADED, headers={"Retry-After": str(retry_after_s)})
        self._shed_headers = [(k, v) for k, v in shed.raw_headers if k != b"content-length"]
        self._shed_body_head = bytes(shed.body)[:-1] + b',"request_id":"'

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = self.request_ids.of(scope["headers"])
        token = request_id_var.set(request_id)
        try:
            if tracing.ACTIVE is None:
                await self._http(scope, receive, send, request_id, start)
            else:
                with tracing.ACTIVE.request(scope, request_id):
                    await self._http(scope, receive, send, request_id, start)
        finally:
            request_id_var.reset(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str, start: float) -> None:
        """One HTTP request: admitted or shed, served, caught, measured."""
        tracked = TrackedSend(send, request_id.encode())
        waited: float | None = None  # an admitted API request's wait for the event loop (s)
        if is_api(scope["path"]):
            waited = self.admission.admit()
            if waited is None:
                await self._shed(scope, tracked, start)
                return
        try:
            await self._serve(scope, receive, tracked, admitted=waited is not None)
        except Exception as exc:
            self._log_unhandled(scope, exc)
            if tracked.started:
                raise  # too late for a clean answer; the server closes the connection
            await error_response(500, messages.INTERNAL_ERROR)(scope, receive, tracked)
        finally:
            now = time.perf_counter()
            if waited is not None:
                self.admission.done(waited + now - start, now)
            self._observe(scope, tracked.status, now - start)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, admitted: bool) -> None:
        """The app, with the body limit on every read, unless the request is refused before its body is read."""
        refusal = self._refusal(scope, admitted)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, limit_body(receive, self.max_body_bytes), send)

    def _refusal(self, scope: Scope, admitted: bool) -> Response | None:
        """413 for a declared length past the limit; 415 for an admitted click whose body is not declared JSON."""
        if declared_length(scope) > self.max_body_bytes:
            return error_response(413, messages.body_too_large(self.max_body_bytes))
        if admitted:
            declared = dict(scope.get("headers", ())).get(b"content-type", b"").decode("latin-1")
            if not is_json_media(declared) and is_click(scope):
                return error_response(415, messages.wrong_media_type(JSON_MEDIA_TYPE, declared))
        return None

    async def _shed(self, scope: Scope, send: TrackedSend, start: float) -> None:
        """503 + Retry-After before the body is read: the same answer and series as any other 503 overload."""
        self.metrics.child(self.metrics.errors, "overload").inc()
        body = self._shed_body_head + send.request_id + b'"}'
        headers = [*self._shed_headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self._observe(scope, 503, time.perf_counter() - start)

    def _log_unhandled(self, scope: Scope, exc: Exception) -> None:
        self.metrics.errors.labels(cause="internal").inc()
        log.error("unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        """One request into si_request_seconds, by its route's template ('unmatched' before routing or without one)."""
        template = getattr(scope.get("route"), "path_format", "unmatched")  # {session_id}, without :any
        self.metrics.child(self.metrics.requests, template, scope.get("method", ""), str(status)).observe(seconds)
        if self.log_requests:  # the template, never the path: a session id is a user's, and stays out of logs
            access_log.info("%s %s %d %.1f ms", scope.get("method"), template, status, seconds * 1000,
                            extra={"method": scope.get("method"), "route": template, "status": status,
                                   "ms": round(seconds * 1000, 2)})

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app's lifespan, with the loop-lag timer and the live gauges running for as long as the app is up."""
        lag = self.admission.loop_lag
        if lag is not None:
            lag.start(asyncio.get_running_loop())
        gauges = LiveGauges(self.metrics, self.admission)
        gauges.start(asyncio.get_running_loop())
        try:
            await self.app(scope, receive, send)
        finally:
            gauges.stop()
            if lag is not None:
                lag.stop()


class TrackedSend:
    """A `send` that remembers the status it sent (500 until a response starts: what the catch-all answers)
    and puts the request id in the answer's `X-Request-ID` header."""

    __slots__ = ("_send", "request_id", "started", "status")

    def __init__(self, send: Send, request_id: bytes) -> None:
        self._send = send
        self.request_id = request_id
        self.status = 500
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status, self.started = int(message["status"]), True
            message = {**message, "headers": [*message.get("headers", ()), (REQUEST_ID_KEY, self.request_id)]}
        await self._send(message)


def declared_length(scope: Scope) -> int:
    """The request's Content-Length; 0 when absent or unreadable (a streamed body is counted by limit_body)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def limit_body(receive: Receive, max_bytes: int) -> Receive:
    """Count streamed (e.g. chunked) body bytes; past `max_bytes`, raise 413 inside the body read."""
    received = 0

    async def receive_limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise BodyTooLarge(max_bytes)
        return message

    return receive_limited
