"""Memory of one replica: process RSS at idle and after N clicks, and Redis bytes per live session.

`session-intent bench session-rss` starts `session-intent serve` (its real entry point) against a private
redis-server on a free port, waits for /readyz, reads the RSS of the service process (the Redis process
is not counted), sends `requests` Poisson clicks (bench/load/open_loop.py) spread over `sessions`
sessions, then reads the RSS again and `MEMORY USAGE` of every live session's keys plus its share of the
at-risk index. Goals (issue 7): RSS ≤ 400 MB after 10k requests; ≤ 1.5 KB per live session.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil
import redis

from bench.load.clicks import LoadRecord
from bench.load.open_loop import OpenLoopPlan, run_fast, run_open_loop
from bench.procs.redis_server import RedisServer, free_port
from bench.procs.servers import running_server, server_spec
from model.artifacts import DEFAULT_MODEL_DIR
from service.store.keys import DEFAULT_PREFIX, KeyScheme


@dataclass(frozen=True)
class RssPlan:
    model_dir: Path = DEFAULT_MODEL_DIR
    requests: int = 10_000
    rate: float = 500.0  # Poisson clicks/s
    connections: int = 32
    sessions: int = 1000
    precision: str = "int8"


def measure_session_rss(plan: RssPlan) -> dict[str, object]:
    """One bounded run; every process it starts is stopped before it returns."""
    with tempfile.TemporaryDirectory(prefix="si-rss-") as scratch:
        work = Path(scratch)
        server = RedisServer(work / "redis").start()
        try:
            spec = server_spec("service", server.url, plan.model_dir.resolve())
            env = {"SI_PRECISION": plan.precision, "SI_PROVIDERS": "CPUExecutionProvider",
                   "SI_REQUEST_DEADLINE_MS": "5000"}
            with running_server(dataclasses.replace(spec, env={**spec.env, **env}), free_port(), work) as service:
                time.sleep(2.0)
                idle = rss_mb(service.proc.pid)
                load = run_fast(run_open_loop(service.url, _load_plan(plan)))
                time.sleep(1.0)  # let the write-behind flush
                after = rss_mb(service.proc.pid)
                ready = httpx.get(f"{service.url}/readyz").json()
            memory = session_bytes(server.url)
        finally:
            server.stop()
    return {
        "model": ready.get("model"), "provider": ready.get("provider"), "requests": len(load.clicks),
        "rate": plan.rate, "rss_idle_mb": round(idle, 1), "rss_after_mb": round(after, 1),
        "load": _summary(load), "redis": memory,
        "host": f"{platform.node()} {os.cpu_count()} CPUs, python {platform.python_version()}",
    }


def _load_plan(plan: RssPlan) -> OpenLoopPlan:
    """Exactly `requests` arrivals: the duration leaves room for a Poisson count that runs short."""
    return OpenLoopPlan(rate=plan.rate, duration_s=1.5 * plan.requests / plan.rate, sessions=plan.sessions,
                        connections=plan.connections, session_prefix="rss", max_clicks=plan.requests)


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss / 2**20)


def _summary(load: LoadRecord) -> dict[str, object]:
    ok = load.latency_ms(200)
    span = max((c.t for c in load.clicks), default=0.0)
    return {"statuses": load.statuses(), "seconds": round(span, 1),
            "qps": round(len(load.clicks) / span, 1) if span else 0.0,
            "p50_ms": round(float(np.percentile(ok, 50)), 2) if ok.size else None,
            "p99_ms": round(float(np.percentile(ok, 99)), 2) if ok.size else None}


def session_bytes(redis_url: str, prefix: str = DEFAULT_PREFIX) -> dict[str, float]:
    """MEMORY USAGE of every session's window, meta and event keys, and of the at-risk index per indexed session."""
    keys = KeyScheme(prefix)
    index_keys = (keys.at_risk, keys.at_risk_expiry)
    client = redis.Redis.from_url(redis_url)
    per_session: dict[str, int] = {}
    for key in client.scan_iter(match=keys.session_pattern, count=1000):
        name = key.decode()
        if name in index_keys:
            continue
        session = name[name.index("{") + 1 : name.index("}")]  # the hash tag is the session id
        per_session[session] = per_session.get(session, 0) + int(client.memory_usage(key, samples=0) or 0)
    index_bytes = sum(int(client.memory_usage(k, samples=0) or 0) for k in index_keys)
    indexed = int(client.zcard(keys.at_risk))
    sizes = sorted(per_session.values())
    return {"sessions": len(sizes), "mean_bytes": round(sum(sizes) / max(len(sizes), 1), 1),
            "max_bytes": float(sizes[-1]) if sizes else 0.0,
            "index_bytes_per_session": round(index_bytes / max(indexed, 1), 1)}
