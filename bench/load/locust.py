"""The Locust steps of the service benchmark: the mission's mixed load (storefront, coupon engine, ops) with
Poisson arrivals at a fixed offered rate, and a closed-loop run that finds the harness's own ceiling.

Locust runs headless over `processes` processes (`--processes`), each bounded in time and requests,
and each writes every request's latency to its own file; `summarise` reads them all.
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.procs.cpu import cpu_until_exit
from model.artifacts import REPO_ROOT

ALL_ROUTES = "all requests"
EVENTS_ROUTE = "POST /v1/sessions/{id}/events"
LOCUSTFILE = REPO_ROOT / "loadtest" / "locustfile.py"


@dataclass(frozen=True)
class RouteStats:
    """One configuration × offered rate × request name, over the measured window."""

    config: str
    target_qps: int  # 0: closed loop
    route: str
    requests: int
    failures: int
    achieved_qps: float
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    failures_by_status: str = ""  # e.g. "504: 12, 0: 1" (0: no HTTP answer)


@dataclass(frozen=True)
class LocustRun:
    """Where one run's samples went and what Locust itself cost."""

    samples: list[Path]
    cpu_s: float
    wall_s: float


def run_locust(url: str, rate: int, duration_s: float, samples_csv: Path, log_path: Path, *, user_rate: float,
               processes: int, users: int | None = None) -> LocustRun:
    """One bounded headless run: `rate` requests/s offered with Poisson arrivals, or closed loop with `users`."""
    closed = rate == 0
    n_users = users if closed and users else max(processes, math.ceil(rate / user_rate))
    max_requests = int((rate or 20_000) * duration_s * 1.5) + 100
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url,
        "--users", str(n_users), "--spawn-rate", str(n_users), "--run-time", f"{duration_s:.0f}s",
        "--stop-timeout", "5", "--only-summary", "--loglevel", "WARNING", "--processes", str(processes),
        "--si-user-rate", "0" if closed else str(user_rate), "--si-arrivals", "poisson",
        "--si-max-requests", str(max_requests), "--si-max-seconds", str(duration_s + 30),
        "--si-latency-file", str(samples_csv),
    ]
    wall0 = time.monotonic()
    with log_path.open("ab") as log_file:
        # Locust exits 1 when any request failed: that is a result to report, not a crash.
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                                stdout=log_file, stderr=subprocess.STDOUT)
        cpu = cpu_until_exit(proc, deadline=wall0 + duration_s + 90)
    wall = time.monotonic() - wall0
    samples = sorted(samples_csv.parent.glob(samples_csv.name + "*"))
    if not samples:
        raise RuntimeError(f"Locust wrote no samples for {url} @ {rate}:\n{log_path.read_text()[-3000:]}")
    return LocustRun(samples, cpu, wall)


def summarise(samples: Path | list[Path], config: str, target_qps: int, warmup_s: float) -> list[RouteStats]:
    """Per-route and overall latency statistics from Locust's raw samples (one or more files), after warmup."""
    files = [samples] if isinstance(samples, Path) else samples
    rows = [row for path in files for row in csv.DictReader(path.open())]
    if not rows:
        raise RuntimeError(f"{config} @ {target_qps} QPS: Locust recorded no requests ({files})")
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
        p50, p95, p99, p999 = np.percentile(ms, [50, 95, 99, 99.9])
        codes = Counter(r.get("status") or "?" for r in items if r["ok"] == "0")
        stats.append(RouteStats(
            config=config, target_qps=target_qps, route=route, requests=len(items),
            failures=sum(r["ok"] == "0" for r in items), achieved_qps=len(items) / span, mean_ms=float(ms.mean()),
            p50_ms=float(p50), p95_ms=float(p95), p99_ms=float(p99), p999_ms=float(p999), max_ms=float(ms.max()),
            failures_by_status=", ".join(f"{code}: {n}" for code, n in codes.most_common()),
        ))
    return stats


def sent(samples: list[Path]) -> int:
    """Every request Locust sent, warmup included (what the run's CPU is divided by)."""
    return sum(sum(1 for _ in path.open()) - 1 for path in samples)
