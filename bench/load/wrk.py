"""The closed-loop saturation step of the service benchmark: `wrk` posting clicks over a fixed set of connections.

wrk (C, event-driven) costs a fraction of the server's CPU per request, so the rate it reaches is the
server's, not the generator's. loadtest/wrk_events.lua makes every request a distinct click (random
session, unique event_id) and prints one `SI_WRK {json}` line that this module parses, with the answers outside
2xx counted by status.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.load.click_pools import SESSIONS, wrk_env
from bench.procs.cpu import waited_children_cpu_seconds
from model.artifacts import REPO_ROOT

WRK_SCRIPT = REPO_ROOT / "loadtest" / "wrk_events.lua"


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: counts, client-side latency in ms, and wrk's own CPU seconds."""

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    wrk_cpu_s: float
    statuses: dict[int, int] = field(default_factory=dict)  # answers outside 2xx, by status

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok_rate(self) -> float:
        """Answers with a 2xx per second: a refused (503) request is not served throughput."""
        return (self.requests - self.non_2xx) / self.seconds if self.seconds else 0.0


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def run_wrk(url: str, duration_s: float, connections: int, threads: int, log_path: Path,
            think_ms: float | None = None, script: Path = WRK_SCRIPT, sessions: int = SESSIONS) -> WrkResult:
    """One bounded wrk run against POST /v1/sessions/{id}/events.

    think_ms: each connection waits an exponential think time of this mean before every click (Poisson-like
    arrivals, see loadtest/wrk_events.lua); None: closed loop, the next click as soon as the last answered.
    script: the click generator (loadtest/wrk_events_ids.lua: clicks with user, item and category ids); it draws
    from click_pools.py's pools over `sessions` sessions, handed over as SI_WRK_* variables, which replace any
    the caller's environment holds (a benchmark's clicks are its plan's, never a leftover variable's).
    """
    binary = wrk_binary()
    if binary is None:
        raise RuntimeError("wrk is not installed (Debian/Ubuntu: apt-get install -y wrk)")
    argv = [binary, f"-t{threads}", f"-c{connections}", f"-d{duration_s:.0f}s", "--timeout", "5s",
            "-s", str(script), url]
    before = waited_children_cpu_seconds()
    env = {**{k: v for k, v in os.environ.items() if k != "SI_WRK_THINK_MS"}, **wrk_env(sessions)}
    if think_ms:
        env["SI_WRK_THINK_MS"] = f"{think_ms:g}"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 30, check=False, env=env)
    cpu = waited_children_cpu_seconds() - before
    with log_path.open("a") as log:
        log.write(done.stdout + done.stderr)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("SI_WRK ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix("SI_WRK "))
    return WrkResult(
        requests=int(raw["requests"]), seconds=raw["duration_us"] / 1e6, non_2xx=int(raw["non_2xx"]),
        socket_errors=sum(int(raw[k]) for k in ("connect", "read", "write", "timeout")),
        p50_ms=raw["p50_us"] / 1000, p99_ms=raw["p99_us"] / 1000, p999_ms=raw["p999_us"] / 1000,
        max_ms=raw["max_us"] / 1000, mean_ms=raw["mean_us"] / 1000, wrk_cpu_s=cpu,
        statuses={int(status): int(n) for status, n in raw.get("statuses", {}).items()},
    )
