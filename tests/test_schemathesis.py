"""A short Schemathesis run, every check, against a real uvicorn with auth off and with auth on.

The longer runs (≥ 1,000 cases each, the embedded default) and their figures: docs/service.md
"Schemathesis". Allowed failures are the explained ones, and only on the click route: the accepted `ts`
window moves with the server's clock, which an OpenAPI document fetched a moment earlier cannot state
exactly (and cannot state at all for an RFC 3339 string), so a value at its edge may be accepted
(ST201) or refused (ST202).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.app import create_app
from service.auth import hash_key
from tests.redis_procs import RedisServer
from tests.service_support import service_settings, tiny_model_dir
from tests.uvicorn_proc import UvicornThread

KEY = "schemathesis-admin-key"
EXPLAINED = {("ST201", "POST /v1/sessions/{session_id}/events"), ("ST202", "POST /v1/sessions/{session_id}/events")}
SERVER_ERRORS = {"ST101", "ST102"}
ST = Path(sys.executable).with_name("st")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module", params=["auth-off", "auth-on"])
def server(request: pytest.FixtureRequest, model_dir: Path,
           redis_server: RedisServer) -> Iterator[tuple[UvicornThread, str]]:
    auth = request.param == "auth-on"
    settings = service_settings(model_dir, redis_server.url,
                                request_deadline_ms=10_000, auth_enabled=auth,
                                api_keys={hash_key(KEY): ["admin"]} if auth else {})
    with UvicornThread(create_app(settings)) as running:
        yield running, request.param


@pytest.mark.skipif(not ST.exists() and shutil.which("st") is None, reason="needs schemathesis (dev extra)")
def test_no_server_errors_and_only_the_explained_failures(server: tuple[UvicornThread, str], tmp_path: Path) -> None:
    running, mode = server
    report = tmp_path / "report.json"
    command = [str(ST if ST.exists() else "st"), "run", f"{running.url}/openapi.json", "--checks", "all",
               "--max-examples", "5", "--seed", "1", "--workers", "1", "--no-shrink",
               "--report", "json", "--report-json-path", str(report)]
    if mode == "auth-on":
        command += ["--header", f"X-API-Key: {KEY}"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert report.exists(), done.stdout[-3000:] + done.stderr[-2000:]
    result = json.loads(report.read_text())
    assert result["test_cases"]["generated"] > 0 and not result["errors"], done.stdout[-3000:]
    found = {(f["code"], op) for f in result["failures"] for op in f["operations"]}
    assert not {code for code, _ in found} & SERVER_ERRORS, done.stdout[-5000:]
    assert found <= EXPLAINED, done.stdout[-5000:]
