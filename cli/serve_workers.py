"""`session-intent serve --workers N`: N uvicorn worker processes on one socket, sharing one Redis.

Each worker builds its own app (engine, batcher, Redis client) from SI_* variables, so the parent
hands its settings down as environment. In the embedded default the parent starts the one embedded
redis-server (service/store/embedded.py) and gives every worker its URL; auth keeps the embedded
default's meaning (off unless asked for), since a worker sees a Redis URL and would otherwise turn it on.

The supervisor (cli/worker_supervisor.py) is uvicorn's, which restarts a worker that dies; this one also
reports it, at ERROR, with its exit code or signal, whatever the log level, and drops its live gauges from
/metrics. A SIGHUP to the parent reloads the model in every worker, in place (uvicorn's own restarts them).
Sizing workers and pods: docs/scaling.md.

Metrics: every worker writes its series to prometheus_client's multiprocess files in one directory
(`PROMETHEUS_MULTIPROC_DIR`: a fresh temporary one unless given), so any worker's /metrics answers for all.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.settings import Settings

log = logging.getLogger("session_intent.workers")

APP_FACTORY = "service.app:create_app"


def settings_env(given: Mapping[str, Any]) -> dict[str, str]:
    """SI_* variables for the options given on the command line (None: not given, the worker reads its own)."""
    env: dict[str, str] = {}
    for name, value in given.items():
        if value is None:
            continue
        env[f"SI_{name.upper()}"] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return env


@contextmanager
def shared_redis(settings: Settings) -> Iterator[dict[str, str]]:
    """Environment that points every worker at one Redis: the parent's embedded one in the default."""
    if not settings.embedded_redis:
        yield {}
        return
    from service.store.embedded import EmbeddedRedis

    redis = EmbeddedRedis(maxmemory_mb=settings.embedded_redis_maxmemory_mb).start()
    try:
        yield {"SI_REDIS_URL": redis.url, "SI_AUTH_ENABLED": "true" if settings.auth_active else "false"}
    finally:
        redis.stop()


def run_workers(workers: int, host: str, port: int, log_config: dict[str, Any], log_level: str,
                env: Mapping[str, str]) -> None:
    """Bind once, run `workers` processes of the app factory until SIGINT/SIGTERM; report deaths, forward SIGHUP."""
    import uvicorn

    from cli.worker_supervisor import WorkerSupervisor

    os.environ.update(env)  # spawned workers inherit it and build their Settings from it
    config = uvicorn.Config(APP_FACTORY, factory=True, host=host, port=port, workers=workers, log_config=log_config,
                            log_level=log_level, access_log=False, lifespan="on")
    sock = config.bind_socket()
    log.warning("serving on http://%s:%d with %d workers (one engine and batcher each)", host, port, workers)
    try:
        with metrics_dir():
            WorkerSupervisor(config, sockets=[sock]).run()
    finally:
        sock.close()


@contextmanager
def metrics_dir() -> Iterator[Path]:
    """PROMETHEUS_MULTIPROC_DIR for the workers: the given one emptied of old files, else a fresh one removed after."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        for old in Path(given).glob("*.db"):  # series of an earlier run would be summed into this one's
            old.unlink()
        yield Path(given)
        return
    made = Path(tempfile.mkdtemp(prefix="si-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(made)
    try:
        yield made
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(made, ignore_errors=True)
