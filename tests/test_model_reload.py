"""A model repository, GET /v1/model and hot reload against a real uvicorn, a real Redis and a tiny real model.

A refused version (wrong fingerprint, corrupt ONNX, missing card, unknown) answers a clear error and
leaves the old one serving; every answer after a reload carries the new version; at-risk filters by it.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from model.artifacts import CARD_FILE, FP32_FILE, INT8_FILE
from service.app import create_app
from service.auth import hash_key
from service.model_repository import ModelRepository, UnknownVersion
from tests.model_repo_support import click, make_repository
from tests.redis_procs import RedisServer
from tests.service_support import copy_with_card, service_settings, tiny_model_dir, written
from tests.uvicorn_proc import UvicornThread

ADMIN_KEY, READ_KEY = "reload-admin-key", "reload-read-key"
KEYS = {hash_key(ADMIN_KEY): ["admin"], hash_key(READ_KEY): ["risk:read"]}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def repository(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repository(tmp_path_factory.mktemp("repo"), model_dir)


@pytest.fixture(scope="module")
def server(repository: Path, model_dir: Path, redis_server: RedisServer) -> Iterator[UvicornThread]:
    settings = service_settings(model_dir, redis_server.url, model_repository=repository, auth_enabled=True,
                                api_keys=KEYS, score_flush_ms=5)
    with UvicornThread(create_app(settings)) as running:
        yield running


@pytest.fixture()
def admin(server: UvicornThread, redis_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"X-API-Key": ADMIN_KEY}, timeout=30) as client:
        assert client.post("/v1/admin/model", json={"version": "2"}).status_code == 200  # each test starts on 2
        yield client


def test_repository_serves_the_pointer_else_the_newest(repository: Path, model_dir: Path, tmp_path: Path) -> None:
    repo = ModelRepository(shutil.copytree(repository, tmp_path / "r"))
    assert repo.name == "tiny" and repo.versions() == ["tiny/1", "tiny/2"]
    assert repo.resolve().label == "tiny/2"
    (tmp_path / "r" / "tiny" / "serving").write_text("1\n")
    assert repo.resolve().label == "tiny/1" and repo.resolve("tiny/2").version == "2"
    with pytest.raises(UnknownVersion, match="no version '7'"):
        repo.resolve("7")
    single = ModelRepository(None, model_dir=repository / "tiny" / "1")
    assert single.resolve().label == "tiny/1" and single.versions() == ["tiny/1"]
    assert ModelRepository(None, model_dir=model_dir).resolve().label == model_dir.name


def test_model_route_shows_the_served_card(admin: httpx.Client, server: UvicornThread, model_dir: Path) -> None:
    with httpx.Client(base_url=server.url, headers={"X-API-Key": READ_KEY}) as reader:
        body = reader.get("/v1/model").json()
        assert reader.post("/v1/admin/model", json={}).status_code == 403  # reload needs admin
    serving = body["serving"]
    card = (model_dir / CARD_FILE).read_text()
    assert serving["version"] == "tiny/2" and serving["model"].startswith("tiny/2:lstm_gru_small-")
    assert serving["fingerprint"] in card and serving["window"] == 10
    assert serving["f1_thresholds"] == {"order": 0.5, "risk": pytest.approx(0.2)}
    assert serving["thresholds"] == serving["f1_thresholds"]  # tiny/2's card has no policies
    assert serving["validation"] == {"abandonment_risk": {"roc_auc": 0.52}} and serving["data_hash"] == f"{2:064x}"
    assert serving["slot_coverage"]["add_cart"] > 0 and body["shadow"] is None and serving["policy"] is None
    assert body["versions"] == ["tiny/1", "tiny/2"]


def test_reload_swaps_the_version_every_answer_and_stored_score_carries(admin: httpx.Client,
                                                                       redis_server: RedisServer) -> None:
    before = click(admin, "s-before")
    assert before["model"].startswith("tiny/2:")
    answer = admin.post("/v1/admin/model", json={"version": "tiny/1"})
    assert answer.status_code == 200 and answer.json()["serving"]["version"] == "tiny/1"
    after = click(admin, "s-after")
    assert after["model"].startswith("tiny/1:")
    written(redis_server.url, "s-after", 0)
    written(redis_server.url, "s-before", 0)
    assert admin.get("/v1/sessions/s-after/risk").json()["model"] == after["model"]
    listed = admin.get("/v1/at-risk", params={"min_risk": 0, "model_version": "tiny/1"}).json()["sessions"]
    assert [s["session_id"] for s in listed] == ["s-after"]
    both = admin.get("/v1/at-risk", params={"min_risk": 0}).json()["sessions"]
    assert {s["session_id"] for s in both} == {"s-before", "s-after"}


def _wrong_fingerprint(version: Path) -> None:
    copy_with_card(version.parent / "2", version, fingerprint="0123456789abcdef")


def _corrupt_onnx(version: Path) -> None:
    shutil.copytree(version.parent / "2", version)
    for name in (FP32_FILE, INT8_FILE):
        (version / name).write_bytes(b"this is not an ONNX graph")


def _missing_card(version: Path) -> None:
    shutil.copytree(version.parent / "2", version)
    (version / CARD_FILE).unlink()


@pytest.mark.parametrize(("breakage", "reason"), [
    (_wrong_fingerprint, "feature layout"), (_corrupt_onnx, "refused"), (_missing_card, "no card.json"),
])
def test_a_bad_version_is_refused_and_the_old_one_keeps_serving(admin: httpx.Client, repository: Path,
                                                                 breakage, reason: str) -> None:
    bad = repository / "tiny" / "9"
    breakage(bad)
    try:
        answer = admin.post("/v1/admin/model", json={"version": "9"})
        assert answer.status_code == 409, answer.text
        assert "tiny/9" in answer.json()["error"] and reason in answer.json()["error"]
        assert admin.get("/v1/model").json()["serving"]["version"] == "tiny/2"
        assert click(admin, "s-after-refusal")["model"].startswith("tiny/2:")
    finally:
        shutil.rmtree(bad)


def test_an_unknown_version_is_a_404(admin: httpx.Client) -> None:
    answer = admin.post("/v1/admin/model", json={"version": "42"})
    assert answer.status_code == 404 and "no version '42'" in answer.json()["error"]
    assert admin.post("/v1/admin/model", json={"version": "../etc"}).status_code == 422


def test_admin_routes_skip_admission_and_every_other_api_route_counts() -> None:
    """A reload must get through an overload (admission refuses /v1 requests past its limit)."""
    from service.routes.paths import is_api

    assert not is_api("/v1/admin/model") and not is_api("/v1/admin/shadow")
    assert is_api("/v1/sessions/s-1/events") and is_api("/v1/model") and is_api("/v1/at-risk")
    assert not is_api("/metrics") and not is_api("/readyz")


def test_a_reload_to_a_context_model_serves_it(admin: httpx.Client, repository: Path,
                                               tmp_path_factory: pytest.TempPathFactory) -> None:  # fmt: skip
    """A version whose card names context features (model/context.py) loads, warms and serves after a reload."""
    from model.context import CONTEXT_SETS

    context_model = tiny_model_dir(tmp_path_factory.getbasetemp(), CONTEXT_SETS["session+history"])
    version = copy_with_card(context_model, repository / "tiny" / "3")
    try:
        answer = admin.post("/v1/admin/model", json={"version": "3"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["serving"]["version"] == "tiny/3"
        assert click(admin, "s-context")["model"].startswith("tiny/3:")
    finally:
        admin.post("/v1/admin/model", json={"version": "2"})
        shutil.rmtree(version)


def test_the_card_route_shows_the_policy_thresholds_answers_apply(repository: Path, model_dir: Path) -> None:
    from model.policy import WINDOWS, AlertPolicy
    from service.model_schemas import ModelCardOut
    from service.served_model import load_served

    served = load_served(ModelRepository(repository).resolve("2"), service_settings(model_dir, None))
    purchase = AlertPolicy("budget", 0.05, 0.375, 0.05, None, None, unit=WINDOWS)
    served.engine.card = dataclasses.replace(served.card, purchase_policy=purchase)
    shown = ModelCardOut.of(served)
    assert shown.thresholds == {"order": 0.375, "risk": pytest.approx(0.2)}
    assert shown.f1_thresholds == {"order": 0.5, "risk": pytest.approx(0.2)}
