"""The shadow candidate (off the critical path, bounded, counted), its report command, and SIGHUP reload of a real
`session-intent serve` process following the repository's pointers."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from model.features import ACTION_INDEX
from service.app import create_app
from service.model_inputs import run_model
from service.model_repository import ModelRepository
from service.rollout_metrics import RolloutMetrics
from service.served_model import load_served
from service.shadow import ShadowRunner
from tests.model_repo_support import click, make_repository
from tests.redis_procs import RedisServer
from tests.service_support import metric_sample, service_settings, tiny_model_dir
from tests.uvicorn_proc import ServeProcess, UvicornThread


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def repository(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repository(tmp_path_factory.mktemp("repo"), model_dir)


@pytest.fixture(scope="module")
def server(repository: Path, model_dir: Path, redis_server: RedisServer) -> Iterator[UvicornThread]:
    settings = service_settings(model_dir, redis_server.url, model_repository=repository)
    with UvicornThread(create_app(settings)) as running:
        yield running


def shadow_sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.split()[-1])
    raise AssertionError(f"{name}{{{wanted}}} not in /metrics")


def test_shadow_scores_sampled_batches_and_the_report_summarises_them(server: UvicornThread, redis_url: str) -> None:
    from cli.main import app

    with httpx.Client(base_url=server.url, timeout=30) as http:
        answer = http.put("/v1/admin/shadow", json={"version": "1", "share": 1.0})
        assert answer.status_code == 200, answer.text
        assert answer.json()["shadow"] == {"candidate": answer.json()["shadow"]["candidate"], "share": 1.0}
        assert answer.json()["shadow"]["candidate"]["version"] == "tiny/1"
        answers = [click(http, f"sh-{i % 4}", action) for i, action in
                   enumerate(["home", "view_product", "add_cart", "view_cart", "view_product"] * 4)]
        assert all(a["model"].startswith("tiny/2:") for a in answers)  # the candidate is never answered
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = http.get("/metrics").text
            if shadow_sample(text, "si_shadow_windows_total", candidate="tiny/1") >= len(answers):
                break
            time.sleep(0.05)
        assert shadow_sample(text, "si_shadow_windows_total", candidate="tiny/1") == len(answers)
        # Same weights, other thresholds (τ_risk 0.1 against 0.2): risks agree exactly, intents may not.
        assert shadow_sample(text, "si_shadow_risk_diff_bucket", candidate="tiny/1", le="0.0") == len(answers)
        agree = shadow_sample(text, "si_shadow_intent_total", candidate="tiny/1", agree="true")
        disagree = shadow_sample(text, "si_shadow_intent_total", candidate="tiny/1", agree="false")
        assert agree + disagree == len(answers)
        report = CliRunner().invoke(app, ["shadow-report", "--url", server.url, "--json"])
        assert report.exit_code == 0, report.output
        assert '"candidate": "tiny/1"' in report.output and f'"windows": {len(answers)}' in report.output
        stopped = http.put("/v1/admin/shadow", json={"version": None})
        assert stopped.status_code == 200 and stopped.json()["shadow"] is None


def test_a_busy_shadow_drops_batches_instead_of_waiting(repository: Path, model_dir: Path) -> None:
    """Not started, the candidate's thread takes nothing: one batch fills the queue, the rest are dropped."""
    from prometheus_client import CollectorRegistry

    settings = service_settings(model_dir, None)
    repo = ModelRepository(repository)
    metrics = RolloutMetrics(CollectorRegistry())
    runner = ShadowRunner(load_served(repo.resolve("1"), settings), load_served(repo.resolve("2"), settings),
                          share=1.0, metrics=metrics, queue_size=1)
    window = (np.array([ACTION_INDEX["home"]]), np.array([time.time()]), np.array([False]))
    started = time.perf_counter()
    for _ in range(5):
        runner.offer([window], np.zeros((1, 2), dtype=np.float32))
    assert time.perf_counter() - started < 0.5  # offer never waits
    assert metrics.shadow_batches.labels("tiny/1", "dropped")._value.get() == 4


def test_sighup_follows_the_serving_and_shadow_pointers(repository: Path, redis_server: RedisServer,
                                                        tmp_path: Path) -> None:
    serve = ServeProcess({"SI_MODEL_REPOSITORY": str(repository), "SI_REDIS_URL": redis_server.url,
                          "SI_AUTH_ENABLED": "false", "SI_PROVIDERS": "CPUExecutionProvider"},
                         tmp_path / "serve.log").start()
    folder = repository / "tiny"
    try:
        assert httpx.get(f"{serve.url}/v1/model").json()["serving"]["version"] == "tiny/2"
        (folder / "serving").write_text("1\n")
        (folder / "shadow").write_text("2\n")
        os.kill(serve.pid, signal.SIGHUP)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            body = httpx.get(f"{serve.url}/v1/model").json()
            if body["serving"]["version"] == "tiny/1" and body["shadow"] is not None:
                break
            time.sleep(0.1)
        assert body["serving"]["version"] == "tiny/1" and body["shadow"]["candidate"]["version"] == "tiny/2"
        metrics = httpx.get(f"{serve.url}/metrics").text
        assert metric_sample(metrics.replace('si_model_reloads_total{outcome="loaded"}', "loaded"), "loaded") >= 1
    finally:
        (folder / "serving").unlink(missing_ok=True)
        (folder / "shadow").unlink(missing_ok=True)
        serve.stop()


def test_shadow_intents_use_the_thresholds_serving_applies(repository: Path, model_dir: Path) -> None:
    """Intent agreement compares the intents each side would answer: its policies' thresholds, not the F1 ones."""
    from prometheus_client import CollectorRegistry

    from model.policy import WINDOWS, AlertPolicy

    settings = service_settings(model_dir, None)
    repo = ModelRepository(repository)
    metrics = RolloutMetrics(CollectorRegistry())
    serving, candidate = (load_served(repo.resolve("1"), settings) for _ in range(2))  # one version: equal F1 τs
    never, always = (AlertPolicy("budget", 0.0, t, 0.0, None, None, unit=WINDOWS) for t in (2.0, 0.0))
    serving.engine.card = dataclasses.replace(serving.card, purchase_policy=never)
    candidate.engine.card = dataclasses.replace(candidate.card, purchase_policy=always)
    runner = ShadowRunner(candidate, serving, share=1.0, metrics=metrics)
    window = (np.array([ACTION_INDEX["home"]]), np.array([time.time()]), np.array([False]))
    items = [window] * 3
    runner._compare(items, run_model(candidate, items))  # the same scores on both sides: only thresholds differ
    assert metrics.intent_agreement.labels("tiny/1", "false")._value.get() == 3  # purchase against never purchase
