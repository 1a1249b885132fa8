"""Server CPU per click, side by side: a baseline source tree, this tree with tracing off, and with tracing on.

    .venv/bin/python -m bench.service.click_cpu --base /tmp/base --seconds 20 --rounds 2

`--base`: another checkout of the repository (e.g. `git archive <commit> | tar -x -C /tmp/base`), served
by this venv. Each run: a fresh redis-server, `session-intent serve` at its defaults (logs at INFO,
access log off), a 3 s wrk warm-up, then `--seconds` of closed-loop wrk clicks (loadtest/wrk_events.lua);
the server's user + system CPU over that run divided by its answered clicks. Rounds interleave the
configurations, so a neighbour's load on a shared machine falls on all of them. Tracing on exports every
span over OTLP/HTTP to a sink in this process (the export's encoding and POSTs are the server's cost,
the sink's are not). Writes docs/benchmarks/tracing.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.load.wrk import run_wrk
from bench.procs.cpu import cpu_seconds
from bench.procs.redis_server import RedisServer, free_port
from model.artifacts import REPO_ROOT

SERVE = "import typer; from cli.serve_command import serve; typer.run(serve)"
CONNECTIONS = 8


@dataclass
class Config:
    name: str
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    cpu_ms: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that accepts and drops every export."""

    spans_posts = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        _Sink.spans_posts += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise TimeoutError("the server was not ready in time")


def measure(config: Config, seconds: float, work: Path) -> None:
    slug = "".join(c if c.isalnum() else "-" for c in config.name)
    redis = RedisServer(work / f"redis-{slug}-{len(config.cpu_ms)}").start()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(config.root), "SI_REDIS_URL": redis.url, "SI_AUTH_ENABLED": "false",
           "SI_MODEL_DIR": str(config.root / "models" / "default"), **config.env}
    argv = [sys.executable, "-c", SERVE, "--host", "127.0.0.1", "--port", str(port)]
    with (work / f"{slug}.log").open("ab") as log:
        proc = subprocess.Popen(argv, cwd=config.root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        run_wrk(url, 3, CONNECTIONS, 1, work / "wrk.log")
        before = cpu_seconds(proc.pid)
        result = run_wrk(url, seconds, CONNECTIONS, 1, work / "wrk.log")
        used = cpu_seconds(proc.pid) - before
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        redis.stop()
    answered = result.requests - result.non_2xx
    config.cpu_ms.append(1000 * used / max(answered, 1))
    config.rates.append(answered / result.seconds)
    config.p99_ms.append(result.p99_ms)


def report(configs: list[Config], seconds: float, base: Path) -> str:
    first = min(configs[0].cpu_ms)
    lines = [
        "# Server CPU per click: tracing off and on", "",
        f"`.venv/bin/python -m bench.service.click_cpu --base {base} --seconds {seconds:g} --rounds "
        f"{len(configs[0].cpu_ms)}`: closed-loop wrk ({CONNECTIONS} connections) on `serve` at its defaults "
        "(logs at INFO, access log off), the server's user + system CPU per answered click. Rounds interleave "
        "the configurations; the best round of each is compared (the least disturbed by the shared machine).", "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, shared with other work; "
        f"Python {platform.python_version()}.", "",
        "| config | CPU ms per click, each round | best | vs the first row | clicks/s (best round) | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for config in configs:
        best = min(config.cpu_ms)
        i = config.cpu_ms.index(best)
        rounds = ", ".join(f"{v:.3f}" for v in config.cpu_ms)
        lines.append(f"| {config.name} | {rounds} | {best:.3f} | {100 * (best / first - 1):+.1f} % | "
                     f"{config.rates[i]:.0f} | {config.p99_ms[i]:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="the baseline source tree")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks" / "tracing.md")
    args = parser.parse_args()
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{sink.server_address[1]}"
    configs = [
        Config(f"baseline ({args.base.name})", args.base),
        Config("this tree, tracing off", REPO_ROOT),
        Config("this tree, tracing on (OTLP/HTTP)", REPO_ROOT,
               {"SI_TRACING": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}),
    ]
    with tempfile.TemporaryDirectory(prefix="click-cpu-") as tmp:
        for _ in range(args.rounds):
            for config in configs:
                measure(config, args.seconds, Path(tmp))
    sink.shutdown()
    text = report(configs, args.seconds, args.base) + f"\nOTLP exports received by the sink: {_Sink.spans_posts}.\n"
    args.out.write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
