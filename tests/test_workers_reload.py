"""`serve --workers 2` under clicks: a SIGHUP to the parent reloads the model in every worker in place (no worker
restarts, no failed click), and /metrics merges the rollout gauges by their meaning across the workers."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.procs.servers import RunningServer, ServerSpec
from bench.service.run import _counters
from tests.model_repo_support import make_repository
from tests.redis_procs import RedisServer
from tests.service_support import tiny_model_dir
from tests.test_workers import wait_for, workers_of
from tests.uvicorn_proc import ServeProcess

ACTIONS = ("home", "view_product", "add_cart", "view_cart", "view_product")


class ClickLoop:
    """Clicks on a fresh connection each (so both workers take some) until stopped; every answer kept."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[tuple[float, int, str]] = []  # (sent at, status, the answer's model or its text)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ClickLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                answer = httpx.post(f"{self.url}/v1/sessions/hup-{i % 7}/events", timeout=10,
                                    json={"action": ACTIONS[i % len(ACTIONS)]})
                model = answer.json()["model"] if answer.status_code == 200 else answer.text
                self.answers.append((sent, answer.status_code, model))
            except httpx.HTTPError as exc:
                self.answers.append((sent, 0, repr(exc)))
            i += 1
            time.sleep(0.02)


def samples(url: str, name: str) -> list[tuple[dict[str, str], float]]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return [(s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name]


def serving(url: str) -> dict[str, float]:
    """si_model_serving by version: the live workers that serve it."""
    return {labels["version"]: value for labels, value in samples(url, "si_model_serving")}


@pytest.mark.slow
def test_sighup_reloads_every_worker_in_place_under_clicks(tmp_path_factory: pytest.TempPathFactory,
                                                          tmp_path: Path, redis_server: RedisServer) -> None:
    repository = make_repository(tmp_path / "repo", tiny_model_dir(tmp_path_factory.getbasetemp()))
    folder = repository / "tiny"
    (folder / "shadow").write_text("1\n")  # tiny/1 shadows the newest, tiny/2, on every batch
    serve = ServeProcess({"SI_MODEL_REPOSITORY": str(repository), "SI_REDIS_URL": redis_server.url,
                          "SI_AUTH_ENABLED": "false", "SI_PROVIDERS": "CPUExecutionProvider", "SI_WORKERS": "2",
                          "SI_SHADOW_SHARE": "1.0"}, tmp_path / "serve.log").start()
    parent = psutil.Process(serve.pid)
    try:
        wait_for(lambda: serving(serve.url) == {"tiny/2": 2})  # both workers up: one series, summed
        pids = {w.pid for w in workers_of(parent)}
        clicks = ClickLoop(serve.url).start()
        wait_for(lambda: len(clicks.answers) >= 20)
        (folder / "serving").write_text("1\n")
        os.kill(serve.pid, signal.SIGHUP)
        wait_for(lambda: serving(serve.url) == {"tiny/1": 2, "tiny/2": 0})
        reloaded_at = time.monotonic()
        wait_for(lambda: sum(sent > reloaded_at for sent, _, _ in clicks.answers) >= 20)
        clicks.stop()
        assert {w.pid for w in workers_of(parent)} == pids, "SIGHUP restarted a worker instead of reloading it"
        correlation = samples(serve.url, "si_shadow_risk_correlation")
        batches = _counters(RunningServer(ServerSpec("service-workers", (), {"SI_WORKERS": "2"}), serve.port,
                                          serve.proc, serve.log_path))  # type: ignore[arg-type]
    finally:
        output = serve.stop()
    failed = [answer for answer in clicks.answers if answer[1] != 200]
    assert not failed, failed
    assert all(model.startswith("tiny/1:") for sent, _, model in clicks.answers if sent > reloaded_at)
    assert any(model.startswith("tiny/2:") for _, _, model in clicks.answers)  # the clicks spanned the reload
    assert "died" not in output and output.count("now serves") == 2, output[-3000:]
    # The replica's correlation, from the moments summed over both workers: one series, no pid.
    assert [labels for labels, _ in correlation] == [{"candidate": "tiny/1"}]
    assert correlation[0][1] == pytest.approx(1.0, abs=1e-6)  # the same weights score alike
    # bench service reads a --workers run's counters: every worker's windows, not one worker's.
    assert batches["si_batch_size_sum"] >= len(clicks.answers)
    assert {"si_gc_pause_seconds_count_gen0", "si_gc_pause_seconds_sum_gen2"} <= set(batches)
