"""Drift (docs/service.md "Drift"): the card's reference, PSI, the live gauges, and `card-reference`."""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from model.card import ModelCard
from model.drift import DWELL_EDGES_S, PSI_ALERT, bucket_counts, build_reference, event_dwell_s, psi
from model.features import ACTION_INDEX
from service.app import create_app
from service.drift import BufferedHistogram
from tests.redis_procs import RedisServer
from tests.service_support import metric_sample, service_settings, tiny_model_dir
from tests.uvicorn_proc import UvicornThread

T0 = time.time() - 3600  # clicks an hour old: within the accepted range of ts


def test_a_buffered_histogram_reads_as_the_librarys_own_observe() -> None:
    """BufferedHistogram adds per-bucket counts through prometheus_client's internals: same samples as
    observe(), values on a bucket edge included (le is inclusive)."""
    from prometheus_client import CollectorRegistry, Histogram

    edges = (0.1, 0.5, 1.0)
    values = [0.0, 0.1, 0.1000001, 0.5, 0.7, 1.0, 3.0, 3.0, -1.0]
    direct = Histogram("direct", "d", buckets=edges, registry=CollectorRegistry())
    bulk = Histogram("bulk", "b", buckets=edges, registry=CollectorRegistry())
    buffered = BufferedHistogram(bulk)
    for value in values:
        direct.observe(value)
        buffered.observe(value)
    assert [s.value for s in bulk.collect()[0].samples if s.name == "bulk_bucket"] == [0.0] * 4  # not yet
    buffered.flush()
    buffered.flush()  # nothing left: adds nothing
    samples = {(s.name.removeprefix("direct"), tuple(s.labels.items())): s.value for s in direct.collect()[0].samples
               if not s.name.endswith("_created")}
    assert samples == {(s.name.removeprefix("bulk"), tuple(s.labels.items())): s.value
                       for s in bulk.collect()[0].samples if not s.name.endswith("_created")}
    assert samples[("_count", ())] == len(values)


def test_buckets_follow_prometheus_le_and_psi_sees_a_shift() -> None:
    assert bucket_counts([1.0, 2.0, 2.5, 600.0, 601.0], DWELL_EDGES_S) == [2, 1, 0, 0, 0, 0, 0, 0, 1, 1]
    assert event_dwell_s(np.array([0.0, 0.5, 100.0, 0.0, 5000.0]), np.array([0, 3])).tolist() == [1.0, 99.5, 600.0]
    same = psi([100, 300, 600], [10, 30, 60])
    shifted = psi([100, 300, 600], [60, 30, 10])
    assert same == pytest.approx(0.0) and shifted > PSI_ALERT
    assert math.isnan(psi([1, 2], [0, 0])) and math.isnan(psi([1, 2], [1, 2, 3]))


def reference_of_home_clicks(n: int = 1000) -> dict:
    """A training reference where every click is `home`, 30 s apart, never from an ad, with scores near 0."""
    actions = np.full(n, ACTION_INDEX["home"])
    ts = T0 + 30.0 * np.arange(n)
    scores = {"p_make_order": np.full(n, 0.01), "abandonment_risk": np.full(n, 0.01)}
    return build_reference(actions, ts, np.zeros(n, dtype=bool), np.array([0]), scores, source="test")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def drifting(model_dir: Path, tmp_path_factory: pytest.TempPathFactory,
             redis_server: RedisServer) -> Iterator[httpx.Client]:
    with_reference = tmp_path_factory.mktemp("drift") / "model"
    shutil.copytree(model_dir, with_reference)
    card = ModelCard.load(with_reference)
    card.reference = reference_of_home_clicks()
    card.save(with_reference)
    settings = service_settings(with_reference, redis_server.url, drift_window_s=60.0)
    with UvicornThread(create_app(settings)) as server, httpx.Client(base_url=server.url) as http:
        yield http


def test_live_traffic_unlike_the_reference_raises_the_drift_gauges(drifting: httpx.Client) -> None:
    text = drifting.get("/metrics").text
    assert 'si_drift_psi{feature="action"} NaN' in text  # too few clicks yet: no figure, no alert
    for i in range(240):  # view_product every 2 s: another action and another dwell than the reference's
        answer = drifting.post(f"/v1/sessions/drift-{i % 8}/events",
                               json={"action": "view_product", "ts": T0 + 2.0 * i, "from_ad": i % 2 == 0})
        assert answer.status_code == 200
    text, deadline = "", time.monotonic() + 10
    while time.monotonic() < deadline:  # the next tick (60 s / 60) takes the new counts into the window
        text = drifting.get("/metrics").text
        if 'si_drift_psi{feature="action"} NaN' not in text:
            break
        time.sleep(0.05)
    assert metric_sample(text, 'si_drift_psi{feature="action"}') > PSI_ALERT
    assert metric_sample(text, 'si_drift_psi{feature="dwell_s"}') > PSI_ALERT
    assert metric_sample(text, 'si_drift_psi{feature="from_ad"}') > PSI_ALERT
    assert metric_sample(text, "si_input_dwell_seconds_count") == 240 - 8  # a session's first click has no dwell
    assert metric_sample(text, 'si_score_count{score="p_make_order"}') == 240
    assert metric_sample(text, "si_input_from_ad_events_total") == 120


def test_a_card_without_a_reference_has_no_drift_series(model_dir: Path, redis_server: RedisServer) -> None:
    with (UvicornThread(create_app(service_settings(model_dir, redis_server.url))) as server,
          httpx.Client(base_url=server.url) as http):
        assert http.post("/v1/sessions/plain/events", json={"action": "home"}).status_code == 200
        text = http.get("/metrics").text
    assert "si_drift_psi" not in text and "si_score_bucket" not in text


@pytest.mark.slow
def test_card_reference_stores_binned_counts_from_a_data_file(model_dir: Path, tmp_path: Path) -> None:
    from cli.main import app

    data, target = tmp_path / "synth.csv", tmp_path / "model"
    shutil.copytree(model_dir, target)
    before = json.loads((target / "card.json").read_text())
    runner = CliRunner()
    assert runner.invoke(app, ["synth", "--sessions", "300", "--seed", "5", "-o", str(data)]).exit_code == 0
    result = runner.invoke(app, ["card-reference", "--model", str(target), "--data", str(data)])
    assert result.exit_code == 0, result.output
    after = json.loads((target / "card.json").read_text())
    reference = after.pop("reference")
    assert not before.pop("reference", None) and after == before, "only the reference changes"
    features = reference["features"]
    windows = sum(reference["scores"]["p_make_order"]["counts"])
    assert windows == sum(features["action"]["counts"]) == sum(features["from_ad"]["counts"]) > 0
    assert sum(reference["scores"]["abandonment_risk"]["counts"]) == windows
    assert 0 < sum(features["dwell_s"]["counts"]) < windows  # each session's last event has no dwell
    assert "train part" in reference["source"]
