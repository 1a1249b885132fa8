"""The coupon loop through the real service (uvicorn), a real redis-server and the documented consumer example:
the policy drives intent and /v1/at-risk, alerts reach the stream with their arm, the consumer skips the
holdout, and a consumer killed mid-stream loses no alert."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from examples.coupon_consumer import GROUP, CouponConsumer
from model.card import ModelCard
from model.policy import AlertPolicy
from service.app import create_app
from service.arms import ArmAssigner
from service.store.keys import KeyScheme
from tests.redis_procs import RedisServer
from tests.service_support import copy_with_card, service_settings, tiny_model_dir
from tests.uvicorn_proc import UvicornThread

REPO = Path(__file__).resolve().parents[1]
CONSUMER = REPO / "examples" / "coupon_consumer.py"
T0 = float(int(time.time()) // 86_400 * 86_400 - 86_400)
KEYS = KeyScheme()
SECRET = "test-holdout-key"
# Every open cart reaches it (risk with items in the cart is 1 − p_make_order > 0.001 for the tiny model).
POLICY = AlertPolicy(kind="budget", target=0.5, threshold=0.001, alert_share=0.5, precision=None, recall=None)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tiny = tiny_model_dir(tmp_path_factory.getbasetemp())
    return copy_with_card(tiny, tmp_path_factory.mktemp("coupons") / "model", policy=POLICY.to_dict())


@pytest.fixture(scope="module")
def server(model_dir: Path, redis_server: RedisServer) -> Iterator[UvicornThread]:
    settings = service_settings(model_dir, redis_server.url, request_deadline_ms=10_000, redis_timeout_ms=5_000,
                                score_flush_ms=20, holdout_share=0.5, holdout_secret=SECRET)
    with UvicornThread(create_app(settings)) as running:
        yield running


def wait_for(predicate: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_the_policy_drives_intent_and_the_at_risk_default(server: UvicornThread, redis_url: str,
                                                          model_dir: Path) -> None:
    assert ModelCard.load(model_dir).policy == POLICY
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for i, action in enumerate(("view_product", "add_cart")):
            answer = http.post("/v1/sessions/p-1/events", json={"action": action, "ts": T0 + i}).json()
        assert answer["abandonment_risk"] >= POLICY.threshold and answer["intent"] in ("cart_abandonment", "purchase")
        wait_for(lambda: http.get("/v1/at-risk").json()["sessions"])
        listed = http.get("/v1/at-risk").json()
    assert listed["min_risk"] == POLICY.threshold
    assert [s["session_id"] for s in listed["sessions"]] == ["p-1"]


def test_alerts_reach_the_stream_with_their_arm_and_the_consumer_skips_the_holdout(
    server: UvicornThread, redis_url: str
) -> None:
    sessions = [f"shopper-{i}" for i in range(40)]
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for sid in sessions:
            for i, action in enumerate(("home", "view_product", "add_cart", "view_cart")):
                assert http.post(f"/v1/sessions/{sid}/events", json={"action": action, "ts": T0 + i}).status_code == 200
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    wait_for(lambda: client.xlen(KEYS.alerts) == len(sessions))
    alerts = [fields for _, fields in client.xrange(KEYS.alerts)]
    arms = ArmAssigner(SECRET, 0.5)
    assert {a["session"]: a["arm"] for a in alerts} == {sid: arms.arm(sid) for sid in sessions}
    assert {a["event_index"] for a in alerts} == {"2"}  # the add_cart that opened the cart; once per cart
    held = {sid for sid in sessions if arms.arm(sid) == "hold"}
    assert 0 < len(held) < len(sessions)

    consumer = CouponConsumer(client, KEYS.prefix, "engine-test", claim_idle_ms=60_000)
    consumer.ensure_group()
    while consumer.step(block_ms=100):
        pass
    assert set(client.hkeys(consumer.coupons)) == set(sessions) - held
    assert client.xpending(KEYS.alerts, GROUP)["pending"] == 0


def test_a_consumer_killed_mid_stream_loses_no_alert(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    sessions = [f"k-{i}" for i in range(60)]
    for i, sid in enumerate(sessions):
        client.xadd(KEYS.alerts, {"session": sid, "event_index": 2, "risk": 0.9, "model": "m", "policy": "budget:0.1",
                                  "arm": "hold" if i % 10 == 0 else "treat", "ts": T0})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    url = ["--redis-url", redis_url]
    slow = subprocess.Popen([sys.executable, str(CONSUMER), *url, "--consumer", "doomed", "--act-delay-s", "0.05"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    coupons = f"{KEYS.alerts}:coupons"
    try:
        wait_for(lambda: client.hlen(coupons) >= 5, timeout_s=30)
    finally:
        os.kill(slow.pid, signal.SIGKILL)  # mid-stream: it holds read, unacknowledged alerts
        slow.wait()
    pending = client.xpending(KEYS.alerts, GROUP)["pending"]
    assert pending > 0 and client.hlen(coupons) < 54, "the kill must leave alerts read but not handled"
    subprocess.run([sys.executable, str(CONSUMER), *url, "--consumer", "heir", "--claim-idle-ms", "200",
                    "--idle-exit-s", "2"], env=env, check=True, timeout=60, capture_output=True)
    treated = {sid for i, sid in enumerate(sessions) if i % 10}
    assert set(client.hkeys(coupons)) == treated
    assert client.xpending(KEYS.alerts, GROUP)["pending"] == 0


def test_the_simulation_recovers_a_coupon_that_always_converts(tmp_path: Path, model_dir: Path) -> None:
    # The tiny model with a policy every open cart reaches: the loop is under test, not a model's policy.
    from bench.coupon.simulate import Shoppers, simulate
    from model.evaluation.uplift import uplift

    run = simulate(Shoppers(n=250, browse_share=0.0, base_rate=0.0, effect=1.0, seed=3), model_dir, tmp_path,
                   hold_share=0.5, ttl_s=8)  # a slow shared machine must not expire a shopper while it lingers
    found = uplift(run["rows"], n_boot=200)
    assert run["returning_shoppers"] > 0 and run["carted_visits"] == run["visits"]
    assert found["n_pending"] == 0 and found["treat"]["n"] > 10 and found["hold"]["n"] > 10
    # Only a coupon converts: every couponed shopper's order is on record against its alert, no held one bought
    # (a busy machine may coupon a treat shopper after it left: then it neither bought nor counts as couponed).
    assert found["hold"]["orders"] == 0 and found["treat"]["orders"] == run["couponed"] > found["treat"]["n"] // 2


def test_alert_cost_sessions_carry_ids_and_report_the_alerts_they_raise(tmp_path: Path, model_dir: Path) -> None:
    from bench.coupon.alert_cost import carted_visits, measure

    visits = carted_visits(model_dir, 30)
    assert len(visits) == 30 and all(v.order is not None for v in visits)
    clicks = [c for v in visits for c in v.clicks]
    assert all("user_id" in c for c in clicks)
    assert all({"item_id", "category_id"} <= set(c) for c in clicks if c["action"] in ("view_product", "add_cart"))
    off, on = measure(model_dir, tmp_path, sessions=10, repeats=1, every_cart=True)
    # Every session opens a cart and every open cart reaches the policy: one alert each, none with alerts off.
    assert (off["alerts"], off["alerts_raised"]) == ("off", 0)
    assert (on["alerts"], on["alerts_raised"]) == ("on", on["sessions"])
    assert set(on["commands"]) == {"evalsha"} and on["round_trips_per_click"] <= 1.5


def test_the_default_models_policy_alerts_on_the_simulated_shoppers(tmp_path: Path) -> None:
    # The committed default takes context: shoppers whose clicks carried no ids raised no alert on it at all.
    from bench.coupon.simulate import Shoppers, simulate
    from model.artifacts import DEFAULT_MODEL_DIR

    run = simulate(Shoppers(n=200, browse_share=0.0, seed=5), DEFAULT_MODEL_DIR, tmp_path, ttl_s=8)
    alerted = {r["session"] for r in run["rows"]}
    assert 0 < len(alerted) < run["carted_visits"], "its policy alerts some carted visits, not every one"
