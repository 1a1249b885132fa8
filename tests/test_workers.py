"""`session-intent serve --workers N` (docs/scaling.md): N processes, each with its own engine, sharing the ONE
embedded Redis the parent started; a worker that dies is reported and replaced; SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.service_support import tiny_model_dir
from tests.uvicorn_proc import ServeProcess


def workers_of(parent: psutil.Process) -> list[psutil.Process]:
    return [p for p in parent.children() if "spawn_main" in " ".join(p.cmdline())]


def wait_for(predicate: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise TimeoutError(f"not true within {timeout_s} s")


def _two_workers_on_the_embedded_default(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> tuple[ServeProcess, psutil.Process]:
    """`serve --workers 2` with no Redis URL or auth settings (the embedded default), and its parent process."""
    for name in ("SI_REDIS_URL", "SI_API_KEYS", "SI_AUTH_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    model_dir = tiny_model_dir(tmp_path_factory.getbasetemp())
    serve = ServeProcess({"SI_MODEL_DIR": str(model_dir), "SI_WORKERS": "2"}, log_path=tmp_path / "serve.log").start()
    return serve, psutil.Process(serve.pid)


@pytest.mark.slow
def test_workers_share_one_embedded_redis_report_a_death_and_exit_cleanly(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    serve, parent = _two_workers_on_the_embedded_default(tmp_path_factory, tmp_path, monkeypatch)
    try:
        (redis_server,) = [p for p in parent.children() if "redis-server" in p.name()]
        wait_for(lambda: len(workers_of(parent)) == 2)
        with httpx.Client(base_url=serve.url) as http:
            # Fresh connections land on either worker; one session's count runs on regardless.
            indices = [httpx.post(f"{serve.url}/v1/sessions/w-1/events", json={"action": "view_product"}).json()
                       ["event_index"] for _ in range(12)]
            assert indices == list(range(12))
            # One view across workers (prometheus_client multiprocess): whichever worker answers, it counts all 12,
            # and lists each live worker's process series by pid.
            for _ in range(4):
                text = httpx.get(f"{serve.url}/metrics").text
                assert 'si_events_total{action="view_product"} 12.0' in text, text
                assert {f'process_cpu_seconds_total{{pid="{w.pid}"}}' in text for w in workers_of(parent)} == {True}
            metrics_dir = Path(workers_of(parent)[0].environ()["PROMETHEUS_MULTIPROC_DIR"])
            assert any(metrics_dir.glob("*.db"))
            socket = f"unix://{Path(redis_server.cwd()) / 'redis.sock'}"  # redis-server runs in its --dir
            assert {w.environ().get("SI_REDIS_URL") for w in workers_of(parent)} == {socket}

            victim = workers_of(parent)[0]
            os.kill(victim.pid, signal.SIGKILL)
            wait_for(lambda: f"worker [{victim.pid}] died (killed by SIGKILL)" in serve.output())
            wait_for(lambda: len(workers_of(parent)) == 2 and victim.pid not in {w.pid for w in workers_of(parent)})
            wait_for(lambda: http.post("/v1/sessions/w-1/events", json={"action": "home"}).status_code == 200)
        survivors = workers_of(parent)
    finally:
        proc = serve.proc
        output = serve.stop()
    assert proc is not None and proc.returncode == 0, output
    assert not redis_server.is_running()
    assert not metrics_dir.exists()
    assert not any(w.is_running() for w in survivors)
    assert output.count("AUTH IS OFF") >= 2  # every worker keeps the embedded default's meaning


@pytest.mark.slow
def test_a_worker_that_dies_while_uvicorn_pings_another_is_still_reported(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvicorn's pass pings each worker in turn and replaces a dead one on the spot; a death that lands while it
    waits on an earlier worker's ping is replaced before the supervisor's own check runs. It must still be logged."""
    serve, parent = _two_workers_on_the_embedded_default(tmp_path_factory, tmp_path, monkeypatch)
    try:
        wait_for(lambda: len(workers_of(parent)) == 2)
        first, second = sorted(workers_of(parent), key=lambda w: w.create_time())  # uvicorn pings in start order
        os.kill(first.pid, signal.SIGSTOP)  # its ping now waits out the health-check timeout
        time.sleep(1.5)  # a pass (every 0.5 s) is now stuck on the first worker's ping
        os.kill(second.pid, signal.SIGKILL)
        wait_for(lambda: f"worker [{second.pid}] died (killed by SIGKILL)" in serve.output())
        wait_for(lambda: f"worker [{first.pid}] died" in serve.output())  # the hung one, killed by uvicorn
        gone = {first.pid, second.pid}
        wait_for(lambda: len(workers_of(parent)) == 2 and not gone & {w.pid for w in workers_of(parent)})
    finally:
        output = serve.stop()
    assert output.count("died (") == 2, output
