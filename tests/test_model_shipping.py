"""The README's "retrain on your own log" path with a tiny model: a served repository, a new version exported
beside it, the pointer moved, and the new version serving without a restart while clicks keep answering 200."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.model_repo_support import make_repository
from tests.redis_procs import RedisServer
from tests.service_support import copy_with_card, tiny_model_dir
from tests.uvicorn_proc import ServeProcess


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.getbasetemp())


def test_a_new_version_serves_without_a_restart(model_dir: Path, redis_server: RedisServer, tmp_path: Path) -> None:
    repository = make_repository(tmp_path / "models", model_dir, versions=1)
    folder = repository / "tiny"
    (folder / "serving").write_text("1\n")
    serve = ServeProcess({"SI_MODEL_REPOSITORY": str(repository), "SI_MODEL_POLL_S": "0.2",
                          "SI_REDIS_URL": redis_server.url, "SI_AUTH_ENABLED": "false",
                          "SI_PROVIDERS": "CPUExecutionProvider"}, tmp_path / "serve.log").start()
    statuses: list[int] = []
    models: list[str] = []
    stop = threading.Event()

    def storefront() -> None:
        with httpx.Client(base_url=serve.url, timeout=10) as http:
            while not stop.is_set():
                answer = http.post(f"/v1/sessions/ship-{len(statuses) % 7}/events", json={"action": "view_product"})
                statuses.append(answer.status_code)
                models.append(answer.json().get("model", ""))

    clicking = threading.Thread(target=storefront)
    clicking.start()
    try:
        started = time.monotonic()  # the old version answers first: else a fast poll could switch before any click
        while time.monotonic() - started < 20 and not any(m.startswith("tiny/1:") for m in models):
            time.sleep(0.05)
        # "retrain + export": a version written beside the served one, moved into place whole, then pointed at.
        staged = copy_with_card(model_dir, folder / ".2-staging", thresholds={"order": 0.5, "risk": 0.3})
        shutil.move(staged, folder / "2")
        (folder / "serving").write_text("2\n")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (models and models[-1].startswith("tiny/2:")):
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        clicking.join()
        log = serve.stop()
    assert models and models[-1].startswith("tiny/2:"), log[-3000:]
    assert any(m.startswith("tiny/1:") for m in models)
    assert set(statuses) == {200}, log[-3000:]
    switched = [m.split(":")[0] for m in models]
    assert switched == sorted(switched)  # once on tiny/2, never back to tiny/1
