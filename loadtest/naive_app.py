"""The naive baseline of the service benchmark (docs/architecture.md §10): what a first, unoptimised version looks like.

Per click, in a sync handler on FastAPI's thread pool:
- 8 separate Redis round trips (HGETALL meta, LRANGE the window, RPUSH, LTRIM, EXPIRE, HSET meta, EXPIRE,
  ZADD at-risk), none of them atomic with the others; the at-risk read adds one HGETALL per listed session;
- one torch eager forward pass on a batch of 1, no micro-batching, no ONNX Runtime.

It does less than the service (no event_id dedupe, no deadline, no shedding, no metrics), so the
service's advantage over it is, if anything, understated. Same schemas and feature encoding as the service.

    SI_NAIVE_REDIS_URL=redis://127.0.0.1:6379/0 python -m uvicorn loadtest.naive_app:app --port 8002
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import redis
import torch
from fastapi import FastAPI, HTTPException

from model.features import ACTION_INDEX, action_index, encode_window
from model.risk import abandonment_risk, intent_name
from model.training.checkpoint import load_model
from service.schemas import AtRiskEntry, AtRiskOut, EventIn, RiskOut, ScoreOut, SessionId

REDIS_URL = os.environ.get("SI_NAIVE_REDIS_URL", "redis://127.0.0.1:6379/0")
MODEL_DIR = Path(os.environ.get("SI_MODEL_DIR", "models/default"))
TTL_S = 1800
AT_RISK_KEY = "naive:v1:atrisk"

# One intra-op thread, as the service's engine uses by default: the comparison is per CPU, not per knob.
torch.set_num_threads(int(os.environ.get("SI_NAIVE_TORCH_THREADS", "1")))
NET, CARD = load_model(MODEL_DIR)
WINDOW = CARD.window
MODEL_ID = f"{CARD.arch}-torch-eager"
REDIS = redis.Redis.from_url(REDIS_URL, decode_responses=True)

app = FastAPI(title="session-intent naive baseline")


def _key(session_id: str, part: str) -> str:
    return f"naive:v1:{{{session_id}}}:{part}"


def _score(window: np.ndarray) -> tuple[float, float]:
    """(p_add_cart, p_make_order) of one (N, 16) window, torch eager, batch of 1."""
    with torch.inference_mode():
        probs = torch.sigmoid(NET(torch.from_numpy(window[None])))  # (1, 2)
    return float(probs[0, 0]), float(probs[0, 1])


def _meta(session_id: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in REDIS.hgetall(_key(session_id, "m")).items()}  # type: ignore[union-attr]


@app.post("/v1/sessions/{session_id}/events", response_model=ScoreOut)
def post_event(session_id: SessionId, event: EventIn) -> ScoreOut:
    """Append the click with separate Redis calls, then score it alone."""
    ts = event.ts if event.ts is not None else time.time()
    action = action_index(event.action)
    w_key, m_key = _key(session_id, "w"), _key(session_id, "m")
    meta = _meta(session_id)
    stored = [str(item) for item in REDIS.lrange(w_key, -(WINDOW - 1), -1)]  # type: ignore[union-attr]
    REDIS.rpush(w_key, f"{action},{ts}")
    REDIS.ltrim(w_key, -WINDOW, -1)
    REDIS.expire(w_key, TTL_S)

    rows = [(int(a), float(t)) for a, t in (item.split(",") for item in stored)] + [(action, ts)]
    from_ad = bool(int(meta.get("from_ad", 0))) or bool(event.from_ad)
    window = encode_window(np.array([a for a, _ in rows]), np.array([t for _, t in rows]), np.full(len(rows), from_ad),
                           CARD.features)
    p_add, p_order = _score(window)
    cart = bool(int(meta.get("cart", 0))) or action == ACTION_INDEX["add_cart"]
    risk = float(abandonment_risk(p_add, p_order, cart))
    out = ScoreOut(session_id=session_id, event_index=int(meta.get("count", 0)), p_add_cart=p_add,
                   p_make_order=p_order, abandonment_risk=risk, intent=intent_name(p_order, risk, CARD.thresholds),
                   model=MODEL_ID, window=len(rows))
    REDIS.hset(m_key, mapping={"count": out.event_index + 1, "cart": int(cart), "from_ad": int(from_ad), "ts": ts,
                               "written": time.time(), "p_add_cart": p_add, "p_make_order": p_order,
                               "abandonment_risk": risk, "intent": out.intent, "window": out.window})
    REDIS.expire(m_key, TTL_S)
    REDIS.zadd(AT_RISK_KEY, {session_id: risk})
    return out


def _stored_risk(session_id: str, meta: dict[str, str]) -> RiskOut:
    return RiskOut(
        session_id=session_id, event_index=int(meta["count"]) - 1, p_add_cart=float(meta["p_add_cart"]),
        p_make_order=float(meta["p_make_order"]), abandonment_risk=float(meta["abandonment_risk"]),
        intent=meta["intent"], model=MODEL_ID, window=int(meta["window"]), ts=float(meta["ts"]),
        cart_has_items=bool(int(meta["cart"])), from_ad=bool(int(meta["from_ad"])), events=int(meta["count"]),
        last_event_ts=float(meta["ts"]), expires_in_s=max(0, int(TTL_S - (time.time() - float(meta["written"])))),
        latest_event_index=int(meta["count"]) - 1, pending=False, cart="open" if int(meta["cart"]) else "none",
    )


@app.get("/v1/sessions/{session_id}/risk", response_model=RiskOut)
def session_risk(session_id: SessionId) -> RiskOut:
    """The stored scores of the session's last click."""
    meta = _meta(session_id)
    if not meta:
        raise HTTPException(404, "session not found")
    return _stored_risk(session_id, meta)


@app.get("/v1/at-risk", response_model=AtRiskOut)
def at_risk(min_risk: float = 0.5, limit: int = 100) -> AtRiskOut:
    """Riskiest sessions first, one HGETALL per listed session (the naive N+1 reads)."""
    ranked = REDIS.zrevrangebyscore(AT_RISK_KEY, "+inf", min_risk, start=0, num=limit)
    entries = []
    for session_id in (str(s) for s in ranked):  # type: ignore[union-attr]
        meta = _meta(session_id)
        if meta:  # expired sessions stay in the index; skipped here, never removed
            stored = _stored_risk(session_id, meta).model_dump(include=set(AtRiskEntry.model_fields))
            entries.append(AtRiskEntry(**stored))
    return AtRiskOut(min_risk=min_risk, limit=limit, sessions=entries)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}


@app.get("/readyz")
def readyz() -> dict[str, bool]:
    """Ready when Redis answers (the model loaded at import)."""
    return {"ready": bool(REDIS.ping())}
