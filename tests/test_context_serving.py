"""Serving the context (docs/architecture.md §3.1): optional ids on the click, their 422s and counter, the user's
erasure, and the (B, C) contexts the batch hands an engine, through a recording adapter around the real tiny model.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
import redis.asyncio as aredis

from model.context import CONTEXT_NAMES, CONTEXT_SETS, context_card, context_columns
from model.features import ACTION_INDEX, ADD_CART
from service import messages
from service.app import create_app
from service.batcher import MicroBatcher
from service.engine.onnx_engine import load_engine
from service.model_inputs import ContextWindow
from service.model_repository import ModelVersion
from service.scorer import engine_runner
from service.served_model import ModelSlot, ServedModel
from service.store.keys import KeyScheme
from service.store.window_store import SessionWindowStore
from service.store.window_values import ClickIds
from service.user_ids import UserIdHasher
from tests.redis_procs import RedisServer
from tests.service_support import metric_sample, service_settings, tiny_model_dir
from tests.uvicorn_proc import UvicornThread

T0 = time.time() - 3600
KEY = "test-user-id-key"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def server(model_dir: Path, redis_server: RedisServer) -> Iterator[UvicornThread]:
    settings = service_settings(model_dir, redis_server.url, request_deadline_ms=10_000, redis_timeout_ms=5_000,
                                user_id_key=KEY)
    with UvicornThread(create_app(settings)) as running:
        yield running


@pytest.fixture()
def http(server: UvicornThread, redis_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.mark.parametrize("field", ["user_id", "item_id", "category_id"])
@pytest.mark.parametrize("value", ["", "x" * 129, "a b", "sku/1", 7])
def test_a_bad_id_is_a_422_naming_the_field(http: httpx.Client, field: str, value: object) -> None:
    answer = http.post("/v1/sessions/s-1/events", json={"action": "home", field: value})
    assert answer.status_code == 422, answer.text
    assert any(f["field"] == f"body.{field}" for f in answer.json()["fields"]), answer.json()
    if isinstance(value, str) and value:
        assert messages.ID_FORMAT in answer.text


def test_clicks_with_and_without_ids_are_scored_and_the_missing_ones_counted(http: httpx.Client,
                                                                              redis_url: str) -> None:
    def missing(name: str) -> float:
        text = http.get("/metrics").text
        series = f'si_clicks_without_ids_total{{missing="{name}"}}'
        return metric_sample(text, series) if series in text else 0.0  # a series appears once observed

    before = {name: missing(name) for name in ("user_id", "item_id", "category_id")}
    full = {"user_id": "u-1029", "item_id": "sku-553", "category_id": "shoes"}
    assert http.post("/v1/sessions/s-ids/events", json={"action": "add_cart", "ts": T0, **full}).status_code == 200
    assert http.post("/v1/sessions/s-ids/events", json={"action": "home", "ts": T0 + 5}).status_code == 200
    assert http.post("/v1/sessions/s-ids/events",
                     json={"action": "home", "ts": T0 + 9, "item_id": "sku-553"}).status_code == 200
    assert {name: missing(name) - before[name] for name in before} == {"user_id": 2, "item_id": 1, "category_id": 2}
    keys = KeyScheme()
    with redis.Redis.from_url(redis_url) as r:
        user_key = keys.user(UserIdHasher(KEY).digest("u-1029"))
        assert r.exists(user_key) and r.ttl(user_key) > 80 * 86_400  # SI_USER_HISTORY_TTL_DAYS
        assert b"u-1029" not in b"".join(r.keys("*")) and b"u-1029" not in str(r.hgetall(user_key)).encode()
        assert r.hget(keys.context("s-ids"), "i:sku-553") == b"7"  # seen, carted, open


def test_deleting_a_user_erases_their_history(http: httpx.Client, redis_url: str) -> None:
    assert http.post("/v1/sessions/s-del/events", json={"action": "add_cart", "user_id": "u-del"}).status_code == 200
    user_key = KeyScheme().user(UserIdHasher(KEY).digest("u-del"))
    with redis.Redis.from_url(redis_url) as r:
        assert r.exists(user_key, KeyScheme().context("s-del")) == 2
        assert http.delete("/v1/users/u-del").status_code == 204
        assert r.exists(user_key, KeyScheme().context("s-del")) == 0
    assert http.delete("/v1/users/u-del").status_code == 204  # erasure is idempotent
    assert http.delete("/v1/users/a%20b").status_code == 422


class RecordingEngine:
    """The real tiny ONNX engine behind a card that takes context: records each batch's contexts, scores the
    windows with the real model (which takes none until the export branch lands)."""

    def __init__(self, engine: Any, names: tuple[str, ...]) -> None:
        self.engine = engine
        self.card = replace(engine.card, context=context_card(names)) if names else engine.card
        self.provider, self.model_id, self.window = engine.provider, engine.model_id, engine.window
        self.calls: list[tuple[int, np.ndarray | None]] = []

    def run(self, windows: np.ndarray, contexts: np.ndarray | None = None) -> np.ndarray:
        self.calls.append((windows.shape[0], contexts))
        return self.engine.run(windows)

    def warmup(self, batch_sizes: Any = (1,)) -> None:
        self.engine.warmup(batch_sizes)


@pytest.mark.parametrize("context", ["none", "session", "session+history"])
async def test_the_batch_hands_the_engine_the_cards_context_columns(model_dir: Path, redis_url: str,
                                                                    context: str) -> None:
    names = CONTEXT_SETS[context]
    engine = RecordingEngine(load_engine(model_dir, providers=("CPUExecutionProvider",)), names)
    slot = ModelSlot(ServedModel(ModelVersion("tiny", None, model_dir), engine))  # type: ignore[arg-type]
    batcher = MicroBatcher(engine_runner(slot), max_batch_size=8, max_queue_delay_ms=50)
    client = aredis.Redis.from_url(redis_url)
    store = SessionWindowStore(client)
    await batcher.start()
    try:
        clicks = [await store.append_event(f"s-{i % 3}", None, ADD_CART if i % 2 else ACTION_INDEX["home"], T0 + i,
                                           None, ids=ClickIds(item=f"it{i % 2}", user_hash="ab12"))
                  for i in range(6)]
        # As the scorer hands them (the store's rows, in ms, decoded a batch at a time) and as replay does (rows in
        # seconds), mixed in one batch.
        items = [ContextWindow((c.actions, c.ts, c.from_ad), None, c.context_row) if i % 2 else
                 ContextWindow((c.actions, c.ts, c.from_ad), c.context) for i, c in enumerate(clicks)]
        scores = await batcher.submit_many(items, time.monotonic() + 30)
    finally:
        await batcher.stop()
        await client.aclose()
    assert scores.shape == (6, 2)
    (size, contexts), = engine.calls
    assert size == 6
    if not names:
        assert contexts is None  # a card without context: engine.run(windows), as before
        return
    assert contexts is not None and contexts.dtype == np.float32 and contexts.shape == (6, len(names))
    expected = np.stack([c.context for c in clicks])[:, context_columns(names)]  # type: ignore[misc]
    np.testing.assert_array_equal(contexts, expected)
    # One user in three sessions at once: a session's start folds the other, which keeps its own state.
    assert contexts[:, list(names).index("clicks")].tolist() == [1, 1, 1, 2, 2, 2]
    assert set(names) <= set(CONTEXT_NAMES)
