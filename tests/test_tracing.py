"""OpenTelemetry tracing (docs/service.md "Tracing"): a click's spans, under the caller's W3C traceparent.

The spans go to the SDK's in-memory exporter in place of OTLP (no collector runs here); everything else,
the provider, the batching processor and the propagator, is the real SDK.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service import tracing
from service.app import create_app
from tests.redis_procs import RedisServer
from tests.service_support import service_settings, tiny_model_dir
from tests.uvicorn_proc import UvicornThread

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def test_a_click_is_traced_under_the_callers_traceparent(tmp_path_factory: pytest.TempPathFactory,
                                                         redis_server: RedisServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    monkeypatch.setattr(tracing, "exporter_for", lambda mode: exporter)
    model_dir: Path = tiny_model_dir(tmp_path_factory.getbasetemp())
    settings = service_settings(model_dir, redis_server.url, tracing="otlp")
    with UvicornThread(create_app(settings)) as server, httpx.Client(base_url=server.url) as http:
        answer = http.post("/v1/sessions/traced-1/events", json={"action": "home"},
                           headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01", "X-Request-ID": "traced-click"})
        assert answer.status_code == 200 and answer.headers["X-Request-ID"] == "traced-click"
        assert http.get("/healthz").status_code == 200  # no traceparent: a trace of its own
    assert tracing.ACTIVE is None  # the lifespan shut the provider down, flushing every span
    spans = exporter.get_finished_spans()
    (click,) = [s for s in spans if s.attributes and s.attributes.get("request.id") == "traced-click"]
    assert click.name == "POST /v1/sessions/{session_id}/events"
    assert f"{click.context.trace_id:032x}" == TRACE_ID and f"{click.parent.span_id:016x}" == CALLER_SPAN
    assert "traced-1" not in str([(s.name, dict(s.attributes or {})) for s in spans])  # no session id
    children = {s.name: s for s in spans if s.parent is not None and s.parent.span_id == click.context.span_id}
    assert set(children) == {"redis append_event", "batch wait"}
    assert all(s.context.trace_id == click.context.trace_id for s in children.values())
    batches = [s for s in spans if s.name == "engine batch"]
    assert batches and all(s.attributes and s.attributes["batch.size"] >= 1 for s in batches)
    (health,) = [s for s in spans if s.name == "GET /healthz"]
    assert health.context.trace_id != click.context.trace_id


def test_tracing_is_off_by_default(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> None:
    model_dir = tiny_model_dir(tmp_path_factory.getbasetemp())
    with UvicornThread(create_app(service_settings(model_dir, redis_server.url))) as server:
        assert httpx.post(f"{server.url}/v1/sessions/untraced/events", json={"action": "home"}).status_code == 200
        assert tracing.ACTIVE is None
