"""The service benchmark (docs/architecture.md §10): headless Locust at fixed rates against bare, service and naive.

All three servers run at once on loopback ports, against one real redis-server on loopback; for each
target rate every configuration gets its own bounded Locust run, one after another, so slow drifts in
the machine's background load hit all three alike. `session-intent bench service` is the entry point;
`bench/service_report.py` writes docs/benchmarks/service.{md,csv,png}.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import redis
from prometheus_client.parser import text_string_to_metric_families

from bench.servers import CONFIGS, RunningServer, http_text, running_server, server_spec
from model.artifacts import DEFAULT_MODEL_DIR, REPO_ROOT
from tests.redis_procs import RedisServer, free_port

log = logging.getLogger(__name__)

ALL_ROUTES = "all requests"
LOCUSTFILE = REPO_ROOT / "loadtest" / "locustfile.py"


@dataclass(frozen=True)
class BenchPlan:
    rates: tuple[int, ...] = (50, 200, 620)
    duration_s: float = 30.0
    warmup_s: float = 3.0  # samples in the first seconds of each run are dropped (connections, spawn)
    user_rate: float = 5.0  # requests/s of each Locust user: users = rate / user_rate
    configs: tuple[str, ...] = CONFIGS
    model_dir: Path = DEFAULT_MODEL_DIR


@dataclass(frozen=True)
class RouteStats:
    """One configuration × target rate × request name, over the measured window."""

    config: str
    target_qps: int
    route: str
    requests: int
    failures: int
    achieved_qps: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class RunCosts:
    """What one run cost, per request: CPU of the server, of Redis and of Locust; service-side metrics."""

    config: str
    target_qps: int
    server_cpu_ms_per_req: float
    redis_cpu_ms_per_req: float
    locust_cpu_share: float  # Locust CPU seconds / wall seconds; near 1.0 means the load generator saturated
    load_1m: float  # the machine's 1-minute load average right after the run
    mean_batch_size: float | None = None
    shed: int | None = None
    timeouts: int | None = None


@dataclass
class BenchResult:
    plan: BenchPlan
    routes: list[RouteStats]
    costs: list[RunCosts]
    started: str
    load_average: tuple[float, float, float]
    niceness: int
    service_engine: str  # "model on provider", as the service's /readyz reports it; "" when not run


def summarise(samples_csv: Path, config: str, target_qps: int, warmup_s: float) -> list[RouteStats]:
    """Per-route and overall latency statistics from Locust's raw samples, after the warmup."""
    rows = list(csv.DictReader(samples_csv.open()))
    if not rows:
        raise RuntimeError(f"{config} @ {target_qps} QPS: Locust recorded no requests ({samples_csv})")
    start = min(float(r["ts"]) for r in rows) + warmup_s
    kept = [r for r in rows if float(r["ts"]) >= start]
    by_route: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in kept:
        by_route[row["name"]].append(row)
    by_route[ALL_ROUTES] = kept
    span = max(max(float(r["ts"]) for r in kept) - start, 1e-9) if kept else 1.0
    stats = []
    for route, items in sorted(by_route.items()):
        if not items:
            continue
        ms = np.array([float(r["ms"]) for r in items])
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        stats.append(RouteStats(
            config=config, target_qps=target_qps, route=route, requests=len(items),
            failures=sum(r["ok"] == "0" for r in items), achieved_qps=len(items) / span, mean_ms=float(ms.mean()),
            p50_ms=float(p50), p95_ms=float(p95), p99_ms=float(p99), max_ms=float(ms.max()),
        ))
    return stats


def service_counters(server: RunningServer) -> dict[str, float]:
    """Batch-size sum/count, shed and timeouts from the service's /metrics (absent for bare and naive)."""
    if server.spec.name != "service":
        return {}
    wanted = {"si_batch_size_sum", "si_batch_size_count", "si_shed_total", "si_timeouts_total"}
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(http_text(f"{server.url}/metrics")):
        for sample in family.samples:
            if sample.name in wanted:
                values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    return values


def run_locust(url: str, rate: int, plan: BenchPlan, samples_csv: Path, log_path: Path) -> float:
    """One bounded headless Locust run at `rate` requests/s; returns Locust's CPU seconds."""
    users = max(1, math.ceil(rate / plan.user_rate))
    max_requests = int(rate * plan.duration_s * 1.5) + 100
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url,
        "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{plan.duration_s:.0f}s",
        "--stop-timeout", "5", "--only-summary", "--loglevel", "WARNING",
        "--si-user-rate", str(plan.user_rate), "--si-max-requests", str(max_requests),
        "--si-max-seconds", str(plan.duration_s + 30), "--si-latency-file", str(samples_csv),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log_path.open("ab") as log_file:
        # Locust exits 1 when any request failed: that is a result to report, not a crash.
        subprocess.run(argv, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, stdout=log_file,
                       stderr=subprocess.STDOUT, timeout=plan.duration_s + 90, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if not samples_csv.is_file():
        raise RuntimeError(f"Locust wrote no samples for {url} @ {rate} QPS:\n{log_path.read_text()[-3000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_bench(plan: BenchPlan, on_run: Callable[[str, int], None] | None = None) -> BenchResult:
    """Start redis and the configured servers, then run every rate against every config."""
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load_average = psutil.getloadavg()
    routes: list[RouteStats] = []
    costs: list[RunCosts] = []
    with tempfile.TemporaryDirectory(prefix="si-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        redis_server = RedisServer(work / "redis").start()
        stack.callback(redis_server.stop)
        assert redis_server.proc is not None
        redis_proc = psutil.Process(redis_server.proc.pid)
        client = redis.Redis.from_url(redis_server.url)
        stack.callback(client.close)
        servers = {
            name: stack.enter_context(running_server(server_spec(name, redis_server.url, plan.model_dir),
                                                     free_port(), work))
            for name in plan.configs
        }
        service_engine = _engine_of(servers["service"]) if "service" in servers else ""
        for rate in plan.rates:
            for name, server in servers.items():
                if on_run is not None:
                    on_run(name, rate)
                client.flushall()
                counters0, cpu0, redis0 = service_counters(server), server.cpu_seconds(), _cpu(redis_proc)
                wall0 = time.monotonic()
                samples = work / f"{name}-{rate}.csv"
                locust_cpu = run_locust(server.url, rate, plan, samples, work / "locust.log")
                wall = time.monotonic() - wall0
                counters1, cpu1, redis1 = service_counters(server), server.cpu_seconds(), _cpu(redis_proc)
                stats = summarise(samples, name, rate, plan.warmup_s)
                routes.extend(stats)
                total = next(s.requests for s in stats if s.route == ALL_ROUTES)
                # CPU over the whole run (warmup included), divided by every request Locust sent.
                sent = sum(1 for _ in samples.open()) - 1
                costs.append(_costs(name, rate, cpu1 - cpu0, redis1 - redis0, locust_cpu / wall, sent,
                                    counters0, counters1))
                log.info("%s @ %d QPS: %d requests measured", name, rate, total)
    return BenchResult(plan, routes, costs, started, load_average, os.nice(0), service_engine)


def _engine_of(server: RunningServer) -> str:
    ready = json.loads(http_text(f"{server.url}/readyz"))
    return f"{ready.get('model')} on {ready.get('provider')}"


def _cpu(proc: psutil.Process) -> float:
    return float(sum(proc.cpu_times()[:2]))


def _costs(name: str, rate: int, server_cpu: float, redis_cpu: float, locust_share: float, sent: int,
           before: dict[str, float], after: dict[str, float]) -> RunCosts:
    per_req = 1000.0 / max(sent, 1)
    delta = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    batches = delta.get("si_batch_size_count", 0.0)
    return RunCosts(
        config=name, target_qps=rate, server_cpu_ms_per_req=server_cpu * per_req,
        redis_cpu_ms_per_req=redis_cpu * per_req if name != "bare" else 0.0, locust_cpu_share=locust_share,
        load_1m=psutil.getloadavg()[0],
        mean_batch_size=delta["si_batch_size_sum"] / batches if batches else None,
        shed=int(delta["si_shed_total"]) if "si_shed_total" in delta else None,
        timeouts=int(delta["si_timeouts_total"]) if "si_timeouts_total" in delta else None,
    )
