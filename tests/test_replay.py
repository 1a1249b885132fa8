"""`session-intent replay` gives, click for click, the answers the live service gave for the same clicks, and
compares two models with the log's outcomes."""

from __future__ import annotations

import asyncio
import csv
import json
import random
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app as cli_app
from service.app import create_app
from service.model_repository import version_at
from service.replay import Click, replay_clicks
from tests.redis_procs import RedisServer
from tests.service_support import copy_with_card, service_settings, tiny_model_dir
from tests.uvicorn_proc import UvicornThread

ACTIONS = ("home", "category", "view_product", "view_product", "add_cart", "view_cart", "search", "order")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.getbasetemp())


def a_log(n_sessions: int, seed: int) -> list[dict]:
    """Clicks of a few sessions, in the last hour, interleaved across sessions as a storefront sends them."""
    rng = random.Random(seed)
    t0 = time.time() - 3600
    clicks = []
    for s in range(n_sessions):
        ts = t0 + rng.uniform(0, 600)
        for _ in range(rng.randint(2, 14)):  # past N=10: the window slides
            ts += rng.uniform(1, 90)
            clicks.append({"session_id": f"r-{s}", "ts": round(ts, 3), "action": rng.choice(ACTIONS),
                           "from_ad": rng.random() < 0.2})
    return sorted(clicks, key=lambda c: c["ts"])


def write_log(clicks: list[dict], path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["session_id", "ts", "action", "from_ad"])
        writer.writeheader()
        writer.writerows({**c, "from_ad": int(c["from_ad"])} for c in clicks)
    return path


def test_replay_scores_equal_the_live_answers(model_dir: Path, redis_server: RedisServer, redis_url: str,
                                              tmp_path: Path) -> None:
    clicks = a_log(6, seed=11)
    settings = service_settings(model_dir, redis_url)
    with UvicornThread(create_app(settings)) as server, httpx.Client(base_url=server.url) as http:
        # One click at a time: each runs in a batch of its own, as replay's --max-batch-size 1 runs it (an int8
        # model quantizes a batch's activations by the batch's own range, docs/service.md "Replay").
        live = {}
        for c in clicks:
            answer = http.post(f"/v1/sessions/{c['session_id']}/events",
                               json={"action": c["action"], "ts": c["ts"], "from_ad": c["from_ad"]})
            assert answer.status_code == 200, answer.text
            live[(c["session_id"], answer.json()["event_index"])] = answer.json()
    out = tmp_path / "replay"
    result = CliRunner().invoke(cli_app, ["replay", "--data", str(write_log(clicks, tmp_path / "log.csv")),
                                          "--model", str(model_dir), "--max-batch-size", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with (out / "scores.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(clicks) == len(live)
    label = model_dir.name
    index: dict[str, int] = {}
    for row in rows:  # session by session, in order: the k-th row of a session is its event_index k
        k = index[row["session_id"]] = index.get(row["session_id"], -1) + 1
        answer = live[(row["session_id"], k)]
        for column in ("p_add_cart", "p_make_order", "abandonment_risk"):
            assert float(row[f"{label}:{column}"]) == answer[column], (row, answer)
        assert row[f"{label}:intent"] == answer["intent"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["clicks"] == len(clicks) and summary["models"][label]["model"] == answer["model"]


def test_replay_compares_a_candidate(model_dir: Path, tmp_path: Path) -> None:
    candidate = copy_with_card(model_dir, tmp_path / "candidate", thresholds={"order": 0.9, "risk": 0.05})
    clicks = a_log(30, seed=5)
    out = tmp_path / "replay"
    result = CliRunner().invoke(cli_app, ["replay", "--data", str(write_log(clicks, tmp_path / "log.csv")),
                                          "--model", str(model_dir), "--candidate", str(candidate), "-o", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    comparison = summary["comparison"]
    assert comparison["a"] == model_dir.name and comparison["b"] == "candidate"
    # Same weights: identical risks up to int8's batch-dependent quantization; τ_risk 0.05 alerts more sessions.
    assert comparison["risk_correlation"] > 0.99
    assert comparison["alerted_sessions"]["b_only"] >= 0 and summary["models"]["candidate"]["alerts"] > 0
    assert summary["models"]["candidate"]["alerts"] >= summary["models"][model_dir.name]["alerts"]
    assert set(summary["models"][model_dir.name]["metrics"]) >= {"add_cart", "abandonment"}
    assert (out / "alerts.csv").read_text().startswith("model,session_id,ts,event_index,abandonment_risk")


def test_a_context_model_replays_with_each_clicks_context(tmp_path: Path) -> None:
    """Until the click path carries ids, replay feeds a context model each click's context computed over the
    whole log (service/replay_context.py): its scores equal the engine's on the same windows and contexts."""
    import numpy as np

    from model.card import ModelCard
    from model.context import CONTEXT_SETS
    from model.data.dataset import build_windows, read_events_csv
    from service.engine.onnx_engine import load_engine

    context_dir = tiny_model_dir(tmp_path.parent, CONTEXT_SETS["session+history"])
    rng = random.Random(2)
    clicks = [{**c, "user_id": f"u{int(c['session_id'][2:]) % 4}", "item_id": f"i{rng.randint(0, 5)}",
               "category_id": f"c{rng.randint(0, 2)}"} for c in a_log(12, seed=9)]  # fmt: skip
    log = tmp_path / "log.csv"
    with log.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(clicks[0]))
        writer.writeheader()
        writer.writerows({**c, "from_ad": int(c["from_ad"])} for c in clicks)
    out = tmp_path / "replay"
    result = CliRunner().invoke(cli_app, ["replay", "--data", str(log), "--model", str(context_dir), "--precision",
                                          "fp32", "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    with (out / "scores.csv").open() as handle:
        replayed = np.array([float(r[f"{context_dir.name}:p_make_order"]) for r in csv.DictReader(handle)])
    card = ModelCard.load(context_dir)
    sessions = read_events_csv(log)
    windows = build_windows(sessions, card.features)  # one per prefix, in the log's session order, as replay's rows
    engine = load_engine(context_dir, precision="fp32", providers=["CPUExecutionProvider"])
    expected = engine.run(windows.X, windows.contexts(slice(None), card.context_names))[:, 1]
    np.testing.assert_allclose(replayed, expected, atol=1e-4)
    assert np.abs(expected - engine.run(windows.X)[:, 1]).max() > 1e-3  # the context moved the scores


def test_replay_of_many_sessions_waits_for_a_small_pool_instead_of_failing(model_dir: Path, redis_url: str) -> None:
    """Offline, nobody waits on a click: more replaying sessions than pooled connections, and a Redis bound
    tighter than any busy machine keeps, must still score every click (a loaded box failed a Taobao replay
    with "No connection available" from the live 500 ms pool wait)."""
    clicks = [Click(c["session_id"], c["ts"], c["action"], c["from_ad"]) for c in a_log(40, seed=3)]
    settings = service_settings(model_dir, redis_url, redis_max_connections=2, redis_timeout_ms=1)
    answers = asyncio.run(replay_clicks(clicks, version_at(model_dir), settings, concurrency=64))
    assert len(answers) == len(clicks)
