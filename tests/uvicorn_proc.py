"""A real uvicorn for tests: in a thread of the test process (fast; the test can reach the app's
state) or as a `session-intent serve` subprocess (its own RSS, its own exit code)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import typer
import uvicorn
from fastapi import FastAPI

from tests.redis_procs import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]


class UvicornThread:
    """`uvicorn.Server` on a free loopback port, serving in a daemon thread with its own event loop."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, lifespan="on", log_level="warning",
                                loop="asyncio", access_log=False)
        self.server = uvicorn.Server(config)
        self.exit_code: int | str | None = None
        self.thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)

    def _run(self) -> None:
        try:
            self.server.run()
        except SystemExit as exc:  # uvicorn exits 3 when the lifespan startup fails
            self.exit_code = exc.code

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> UvicornThread:
        """Returns once the server listens (lifespan startup done); RuntimeError if startup failed."""
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"uvicorn exited during startup with {self.exit_code} (see the log)")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn did not start within {timeout_s}s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def __enter__(self) -> UvicornThread:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def serve_cli_app() -> typer.Typer:
    """A typer app with the `serve` command exactly as the console script registers it."""
    from cli import serve_command

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Subcommand mode, as in cli.main."""

    serve_command.register(app)
    return app


def serve_cli_main() -> None:
    serve_cli_app()()


class ServeProcess:
    """`session-intent serve` in a subprocess with the given SI_* environment; output goes to `log_path`."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        self.args = args  # serve's options beyond the SI_* environment, e.g. --access-log
        self.env = {**os.environ, **env, "SI_HOST": "127.0.0.1", "SI_PORT": str(self.port)}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def output(self) -> str:
        return self.log_path.read_text() if self.log_path.is_file() else ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout_s: float = 60.0) -> ServeProcess:
        """Returns once /readyz is 200; RuntimeError (with the process output) if it exits first."""
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from tests.uvicorn_proc import serve_cli_main; serve_cli_main()", "serve",
                 *self.args],
                cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"serve did not become ready within {timeout_s}s")

    def stop(self) -> str:
        """Terminate (SIGTERM: uvicorn's graceful shutdown) and return the process output."""
        if self.proc is None:
            return ""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        return self.output()
