"""The load test stays bounded and on loopback, and the `bench service` harness writes its report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.deploy_support import ROOT


def locust(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Locust in its own process: importing it here would gevent-patch the whole test session."""
    argv = [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"), "--headless",
            "--only-summary", "--si-sessions", "50", *args]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, env=clean_env())


def clean_env() -> dict[str, str]:
    """This environment without SI_* (no SI_LOADTEST_ALLOW_HOST sneaking in), with the repo importable."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SI_")}, "PYTHONPATH": str(ROOT)}


def test_locust_refuses_a_host_that_is_not_loopback() -> None:
    result = locust("--host", "http://192.0.2.10:8000", "-u", "1", "-r", "1", "--run-time", "5s")
    assert result.returncode != 0
    assert "only loopback hosts" in result.stdout + result.stderr


def _wait_for_port(port: int, server: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """Locust must not start before uvicorn listens: early requests would count as refused."""
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, "the bare app exited before it listened"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"the bare app did not listen on {port} within {timeout_s} s")


def test_locust_stops_at_the_request_bound_against_the_bare_app(tmp_path: Path) -> None:
    from bench.procs.redis_server import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "loadtest.bare_app:app", "--host", "127.0.0.1",
                               "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=clean_env())
    try:
        _wait_for_port(port, server)
        samples = tmp_path / "samples.csv"
        started = time.monotonic()
        result = locust("--host", f"http://127.0.0.1:{port}", "-u", "4", "-r", "4", "--run-time", "60s",
                        "--si-user-rate", "20", "--si-max-requests", "40", "--si-latency-file", str(samples))
        elapsed = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=10)
    rows = samples.read_text().splitlines()[1:]
    assert elapsed < 30, f"the request bound did not stop the 60 s run ({elapsed:.0f} s)"
    assert 40 <= len(rows) <= 48, f"{len(rows)} requests for a bound of 40 (4 users may each finish one)"
    assert all(row.split(",")[3] == "1" for row in rows), result.stdout + result.stderr
    assert any("/events" in row for row in rows)


def test_bench_summary_drops_the_warmup_and_reports_exact_percentiles(tmp_path: Path) -> None:
    from bench.load.locust import ALL_ROUTES, summarise

    samples = tmp_path / "samples.csv"
    ms = [float(i) for i in range(1, 101)]
    rows = ["ts,name,ms,ok", "100.0,POST e,999.0,1"]  # inside the warmup: must not count
    rows += [f"{102.0 + i * 0.1:.1f},POST e,{v},{int(i % 10 != 0)}" for i, v in enumerate(ms)]
    samples.write_text("\n".join(rows) + "\n")
    stats = {s.route: s for s in summarise(samples, "bare", 10, warmup_s=2.0)}
    post = stats["POST e"]
    assert post.requests == 100 and post.failures == 10 and stats[ALL_ROUTES].requests == 100
    assert post.max_ms == 100.0 and post.p50_ms == pytest.approx(50.5) and post.p99_ms == pytest.approx(99.01)
    assert post.achieved_qps == pytest.approx(100 / 9.9)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (.ci/run installs it)")
def test_bench_service_smoke_run_writes_the_report(tmp_path: Path) -> None:
    """The harness end to end in about 30 s: bare and service, every step at its shortest, the report written."""
    argv = [sys.executable, "-c", "from cli.main import app; app()", "bench", "service", "--configs", "bare,service",
            "--saturation-s", "2", "--saturation-rounds", "2", "--rates", "20", "--sweep-s", "5", "--target-rate", "20",
            "--target-s", "5", "--target-rounds", "2", "--locust-processes", "1", "--profile-s", "0",
            "--out-dir", str(tmp_path)]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=180, env=clean_env())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = (tmp_path / "service.md").read_text()
    assert "## Targets" in report and "## The harness" in report and "ISA:" in report
    rows = list(csv_rows(tmp_path / "service.csv"))
    saturation = {r["config"]: r for r in rows if r["step"] == "saturation"}
    assert set(saturation) == {"bare", "service"} and all(int(r["requests"]) > 0 for r in saturation.values())
    # One script call per click, plus the write-behind's score flushes, some on a timer: over a 2 s run on a busy
    # box (few clicks) those add up to ~0.1 per click. The 1.1 target is the full run's (docs/benchmarks/service.md);
    # tests/test_api.py holds <= 1.1 for concurrent clicks. Two calls per click would fail here.
    assert float(saturation["service"]["redis_round_trips_per_click"]) <= 1.25
    rounds = [(r["step"], r["config"]) for r in rows if r["step"].startswith("saturation_round")]
    assert sorted(rounds) == [(f"saturation_round{i}", c) for i in (1, 2) for c in ("bare", "service")]
    assert "### Round by round (2 rounds" in report and "| 2 | 1 | service |" in report  # round 2 starts with service
    poisson = [r for r in rows if r["step"] == "poisson" and r["route"].startswith("POST")]
    assert {r["config"] for r in poisson} == {"bare", "service"}
    light = {r["config"]: r for r in rows if r["step"] == "poisson_light"}
    assert set(light) == {"bare", "service"} and all(int(r["requests"]) > 0 for r in light.values())
    assert all(r["failures"] == "0" for r in light.values()), light
    assert "light client (wrk)" in report
    light_rounds = sorted((r["step"], r["config"]) for r in rows if r["step"].startswith("poisson_light_round"))
    assert light_rounds == [(f"poisson_light_round{i}", c) for i in (1, 2) for c in ("bare", "service")]
    assert "(median of 2 rounds)" in report and "p99 ms by round" in report
    assert (tmp_path / "service.png").stat().st_size > 10_000


def csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_each_config_reports_its_median_round_with_the_first_rounds_round_trips() -> None:
    from bench.load.wrk import WrkResult
    from bench.service.run import Saturation, median_rounds

    def run(config: str, r: int, cpu_ms: float) -> Saturation:
        wrk = WrkResult(1000, 1.0, 0, 0, 1.0, 2.0, 3.0, 4.0, 1.0, 0.1)
        return Saturation(config, wrk, cpu_ms, 0.1, 1.03 if r == 0 else 0.0, 0.1, None, {}, round=r)

    runs = [run("bare", 0, 0.30), run("service", 0, 0.80), run("bare", 1, 0.31), run("service", 1, 0.59),
            run("bare", 2, 0.29), run("service", 2, 0.61)]
    medians = median_rounds(runs, ["bare", "service"])
    assert [(m.config, m.round, m.server_cpu_ms) for m in medians] == [("bare", 0, 0.30), ("service", 2, 0.61)]
    assert medians[1].redis_calls_per_click == 1.03  # counted once, in round 1, under MONITOR


def test_the_report_names_the_statuses_outside_2xx() -> None:
    from dataclasses import replace

    from bench.load.wrk import WrkResult
    from bench.service.report_sections import outside_2xx
    from bench.service.run import BenchPlan, BenchResult, LightPoisson, Saturation

    clean = WrkResult(1000, 1.0, 0, 0, 1.0, 2.0, 3.0, 4.0, 1.0, 0.1)
    result = BenchResult(BenchPlan(configs=("service",)), "now", (0.0, 0.0, 0.0))
    result.saturation_rounds = [Saturation("service", clean, 0.5, 0.1, 1.0, 0.1, None, {}, round=0),
                                Saturation("service", replace(clean, non_2xx=7, statuses={504: 5, 503: 2}), 0.5, 0.1,
                                           1.0, 0.1, None, {}, round=1)]
    result.light_rounds = [LightPoisson("service", 620, 250, replace(clean, non_2xx=1, statuses={422: 1}), 0.5, 0.01)]
    assert outside_2xx(result) == ["- Answers outside 2xx, closed loop, service (run 2): 2 × 503, 5 × 504",
                                   "- Answers outside 2xx, light client, service (run 1): 1 × 422"]
