"""The servers of the service benchmark, each a real uvicorn process on a loopback port.

- `bare`: loadtest/bare_app.py, the HTTP floor (same framework and schemas, no work);
- `service`: the full service through its real entry point, `session-intent serve`, with its defaults
  (int8, the small committed model, micro-batching, one worker);
- `service-published`: the same with the published-size model (bench/service/models.py);
- `service-fp32`, `service-batch1` (max_batch_size=1), `service-workers2` (`--workers 2`),
  `service-gc-default` (CPython's GC defaults: no `gc.freeze()`, gen-0 threshold 700): one knob each;
- `naive`: loadtest/naive_app.py, torch eager per request and several Redis round trips per click.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.procs.cpu import cpu_seconds
from model.artifacts import REPO_ROOT

log = logging.getLogger(__name__)

# Service variants: the SI_* settings that differ from the defaults.
SERVICE_VARIANTS: dict[str, dict[str, str]] = {
    "service": {},
    "service-published": {},  # its model directory is the difference
    "service-fp32": {"SI_PRECISION": "fp32"},
    "service-batch1": {"SI_MAX_BATCH_SIZE": "1"},
    "service-workers2": {"SI_WORKERS": "2"},
    # The tail's evidence: CPython's GC defaults (no gc.freeze(), a young collection every 700 allocations).
    "service-gc-default": {"SI_GC_FREEZE": "false", "SI_GC_GEN0_THRESHOLD": "700"},
}
CONFIGS: tuple[str, ...] = ("bare", *SERVICE_VARIANTS, "naive")
LOOPBACK = "127.0.0.1"
_UVICORN_FLAGS = ("--host", LOOPBACK, "--no-access-log", "--log-level", "warning")


@dataclass(frozen=True)
class ServerSpec:
    """How to start one configuration: argv (with `{port}` filled in later) and extra environment."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def server_spec(name: str, redis_url: str, model_dir: Path, published_dir: Path | None = None) -> ServerSpec:
    """The spec of one of CONFIGS; every config binds to loopback only."""
    python = sys.executable
    if name == "bare":
        return ServerSpec(name, (python, "-m", "uvicorn", "loadtest.bare_app:app", "--port", "{port}", *_UVICORN_FLAGS))
    if name == "naive":
        return ServerSpec(
            name, (python, "-m", "uvicorn", "loadtest.naive_app:app", "--port", "{port}", *_UVICORN_FLAGS),
            {"SI_NAIVE_REDIS_URL": redis_url, "SI_MODEL_DIR": str(model_dir)},
        )
    if name in SERVICE_VARIANTS:
        if name == "service-published":
            if published_dir is None:
                raise ValueError("service-published needs the published-size model's directory")
            model_dir = published_dir
        # `session-intent serve`'s own function, without needing the console script installed on PATH.
        entry = "import typer; from cli.serve_command import serve; typer.run(serve)"
        return ServerSpec(
            name, (python, "-c", entry, "--host", LOOPBACK, "--port", "{port}", "--log-level", "warning"),
            {"SI_REDIS_URL": redis_url, "SI_MODEL_DIR": str(model_dir), "SI_AUTH_ENABLED": "false",
             **SERVICE_VARIANTS[name]},
        )
    raise ValueError(f"unknown config {name!r}; expected one of {', '.join(CONFIGS)}")


def http_status(url: str, timeout_s: float = 2.0) -> int | None:
    """Status of a GET, None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


def http_text(url: str, timeout_s: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return str(response.read().decode())


@dataclass
class RunningServer:
    spec: ServerSpec
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process and its live children (the workers of `--workers`)."""
        return cpu_seconds(self.proc.pid, children=True)

    def python_pid(self) -> int:
        """The process that serves requests: the server itself, or the first worker of `--workers`."""
        workers = [c for c in psutil.Process(self.proc.pid).children() if "spawn_main" in " ".join(c.cmdline())]
        return workers[0].pid if workers else self.proc.pid


@contextmanager
def running_server(
    spec: ServerSpec, port: int, log_dir: Path, ready_timeout_s: float = 120.0
) -> Iterator[RunningServer]:
    """Start `spec` on `port`, wait for /readyz 200, yield it, and stop it (SIGTERM, then SIGKILL)."""
    argv = [arg.replace("{port}", str(port)) for arg in spec.argv]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **spec.env}
    log_path = log_dir / f"{spec.name}.log"
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    server = RunningServer(spec, port, proc, log_path)
    try:
        wait_ready(server, ready_timeout_s)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(server: RunningServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.spec.name} exited with {server.proc.returncode}; see {server.log_path}:\n"
                               + server.log_path.read_text()[-2000:])
        if http_status(f"{server.url}/readyz") == 200:
            log.info("%s ready on %s", server.spec.name, server.url)
            return
        time.sleep(0.25)
    raise TimeoutError(f"{server.spec.name} not ready within {timeout_s:.0f}s; see {server.log_path}")
