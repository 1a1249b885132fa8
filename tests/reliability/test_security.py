"""Security: every route is guarded unless it is a named probe, keys are digests compared in constant time,
no secret reaches the logs or /metrics, and loading a model runs no code from its files.

tests/test_auth.py holds the full status matrix per key; here the guard is read from the route table
itself, so a route added without `require_scope` fails even before anyone extends that matrix.
"""

from __future__ import annotations

import hmac
import json
import logging
import pickle
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from service.app import create_app
from service.auth import API_KEY_HEADER, ApiKeyAuth, hash_key
from service.scopes import SCOPES
from tests.redis_procs import RedisServer
from tests.service_support import service_settings
from tests.uvicorn_proc import REPO_ROOT, UvicornThread

# Open on purpose: orchestrator probes and Prometheus scrape (ops.py), and FastAPI's own documentation.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# FastAPI's own documentation, served offline (fastapi-offline mounts its assets under /static-offline-docs).
DOC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/static-offline-docs"})
WRITER_KEY = "sk-live-writer-5f1c0d9e8a7b"  # plaintext secrets a leak test can search for
ADMIN_KEY = "sk-live-admin-0c2b4a6e8d1f"
WRONG_KEY = "sk-live-guess-77e1a2b3c4d5"


def required_scopes(route: RouteContext) -> set[str]:
    """Scopes demanded by the route's own and its router's dependencies (the effective, merged dependant)."""
    return {scope for dep in route.dependant.dependencies if (scope := getattr(dep.call, "required_scope", None))}


def test_every_route_but_the_named_probes_requires_a_scope() -> None:
    app = create_app(service_settings(Path("unused"), "redis://127.0.0.1:1/0", auth_enabled=True,
                                      api_keys={hash_key(ADMIN_KEY): ["admin"]}))
    guarded: dict[str, set[str]] = {}
    open_paths: set[str] = set()
    for route in iter_route_contexts(app.routes):  # routes of included routers too, with their prefix
        assert route.path is not None
        if route.path in DOC_PATHS:
            continue
        assert isinstance(route.original_route, APIRoute), f"unexpected {type(route.original_route)} {route.path}"
        scopes = required_scopes(route)
        assert scopes or route.path in OPEN_PATHS, f"{route.methods} {route.path} has no require_scope guard"
        assert scopes <= set(SCOPES), scopes
        if scopes:
            guarded[route.path] = scopes
        else:
            open_paths.add(route.path)
    assert open_paths == OPEN_PATHS
    assert len([path for path in guarded if path.startswith("/v1/")]) >= 4


@pytest.mark.parametrize("position", ["first", "last", "absent"])
def test_a_key_is_compared_with_every_digest_whatever_matches(position: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant time: the number of compare_digest calls does not depend on where (or whether) the key matches."""
    keys = [f"k-{i}" for i in range(5)]
    auth = ApiKeyAuth({hash_key(k): ["risk:read"] for k in keys}, enabled=True)
    assert all(len(digest) == 64 for digest, _ in auth._keys)  # only sha256 hex digests are held
    assert not any(k.encode() in digest for k in keys for digest, _ in auth._keys)
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("service.auth.hmac.compare_digest", counting)
    presented = {"first": keys[0], "last": keys[-1], "absent": "k-unknown"}[position]
    found = auth.scopes_of(presented)
    assert (found is None) == (position == "absent")
    assert len(calls) == len(keys)


@pytest.fixture(scope="module")
def guarded_server(model_dir: Path, redis_server: RedisServer) -> Iterator[UvicornThread]:
    settings = service_settings(model_dir, redis_server.url, auth_enabled=True,
                                api_keys={hash_key(WRITER_KEY): ["events:write"], hash_key(ADMIN_KEY): ["admin"]},
                                request_deadline_ms=10_000, log_level="debug")
    with UvicornThread(create_app(settings)) as running:
        yield running


def test_no_secret_reaches_the_logs_or_metrics(guarded_server: UvicornThread, redis_url: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    secrets = [WRITER_KEY, ADMIN_KEY, WRONG_KEY, hash_key(WRITER_KEY), hash_key(ADMIN_KEY), hash_key(WRONG_KEY)]
    with caplog.at_level(logging.DEBUG), httpx.Client(base_url=guarded_server.url, timeout=10) as http:
        for key in (WRITER_KEY, ADMIN_KEY, WRONG_KEY, None):
            headers = {API_KEY_HEADER: key} if key else {}
            http.post("/v1/sessions/leak-1/events", json={"action": "home"}, headers=headers)
            http.post("/v1/sessions/leak-1/events", json={"action": "nope"}, headers=headers)  # a 422 path
            http.get("/v1/sessions/leak-1/risk", headers=headers)  # a 403 for the writer
            http.get(f"/v1/at-risk?limit={key or 'x'}", headers=headers)  # a key pasted into a query field
        metrics = http.get("/metrics").text
        openapi = http.get("/openapi.json").text
    client_side = ("httpx", "httpcore")  # this test's own client logs the URLs it requested
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records
                       if not r.name.startswith(client_side))
    assert "si_events_total" in metrics and logged  # both were really produced
    for secret in secrets:
        assert secret not in logged and secret not in metrics and secret not in openapi


LOADER = """
import json, sys
from pathlib import Path
from service.engine.onnx_engine import load_engine

model_dir = Path(sys.argv[1])
load_engine(model_dir, providers=["CPUExecutionProvider"])  # imports and lazy initialisation, before auditing
events = []
def hook(event, args):
    if event in ("pickle.find_class", "exec", "compile", "marshal.loads", "os.system", "subprocess.Popen",
                 "ctypes.dlopen", "import"):
        events.append([event, repr(args)[:200]])
sys.addaudithook(hook)
engine = load_engine(model_dir, providers=["CPUExecutionProvider"])
engine.warmup()
json.dump(events, sys.stdout)
"""


class _Payload:
    """Unpickling this writes a marker file: proof that something executed code from the model directory."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, ...]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_loading_a_model_executes_no_code_from_its_files(model_dir: Path, tmp_path: Path) -> None:
    """Python's audit hooks watch the load: no unpickling, no exec/compile, no new imports, no process."""
    planted = shutil.copytree(model_dir, tmp_path / "model")
    marker = tmp_path / "pwned"
    for name in ("model.pt", "card.pkl", "engine.pkl"):
        (planted / name).write_bytes(pickle.dumps(_Payload(marker)))
    done = subprocess.run([sys.executable, "-c", LOADER, str(planted)], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == []
    assert not marker.exists()
