"""The supervisor of `serve --workers N` (cli/serve_workers.py): uvicorn's Multiprocess, with two changes.

- A worker found dead is reported at ERROR, with its exit code or signal, before uvicorn starts its
  replacement (or just after, when it died while uvicorn's own pass was pinging the others), and its live
  gauges leave /metrics (prometheus_client's `mark_process_dead`).
- SIGHUP reloads the model in every worker instead of restarting them: uvicorn's own SIGHUP replaces each
  worker by a new process, which drops its warm engine and batcher and, behind a busy socket, in-flight
  clicks. Here the parent forwards the signal to each worker, whose app follows the repository's pointers
  in place (service/app.py `_reload_on_sighup`), as `kill -HUP` does to a single-process serve.

A worker takes SIGHUP only once its lifespan has installed the handler (before that the signal's default
action would kill it), which is when it reports itself started. So the signal goes to the started workers
at once, and to a starting one as soon as it has started: it may have read the pointers before they moved.
A replacement started after the signal reads them fresh and needs none.
"""

from __future__ import annotations

import logging
import os
import signal
from socket import socket

from prometheus_client import multiprocess
from uvicorn.config import Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process

log = logging.getLogger("session_intent.workers")

READY_PROBE_S = 1.0  # how long one health ping waits for a worker's answer


def describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class WorkerSupervisor(Multiprocess):
    """uvicorn's supervisor: deaths reported, SIGHUP forwarded to each worker (a reload, not a restart)."""

    def __init__(self, config: Config, sockets: list[socket]) -> None:
        super().__init__(config, sockets)
        self.owed_hup: list[Process] = []  # workers a SIGHUP has not reached yet
        self.reported: set[int | None] = set()  # pids of the workers whose death was logged

    def handle_hup(self) -> None:
        log.info("SIGHUP: every worker reloads what the model repository's pointers name")
        self.owed_hup = list(self.processes)
        self.forward_hup()

    def forward_hup(self) -> None:
        """SIGHUP to each worker still owed one that has started; the rest wait for the next pass."""
        waiting = []
        for process in self.owed_hup:
            if process not in self.processes or not process.process.is_alive():
                continue  # gone: its replacement reads the pointers when it starts
            if process.is_ready(timeout=READY_PROBE_S):
                assert process.pid is not None
                os.kill(process.pid, signal.SIGHUP)
            else:
                waiting.append(process)
        self.owed_hup = waiting

    def keep_subprocess_alive(self) -> None:
        if not self.should_exit.is_set():
            for process in self.processes:
                if not process.process.is_alive():
                    self._report_death(process)
            self.forward_hup()
        before = list(self.processes)
        super().keep_subprocess_alive()
        # A worker that dies while uvicorn's pass pings the others is replaced by that pass before the loop above
        # sees it (or one that hung was killed there): report it now, so no death goes unreported.
        for process in before:
            if process not in self.processes and process.pid not in self.reported:
                self._report_death(process)

    def _report_death(self, process: Process) -> None:
        self.reported.add(process.pid)
        multiprocess.mark_process_dead(process.pid)
        log.error("worker [%s] died (%s); a new one takes its place", process.pid,
                  describe_exit(process.process.exitcode))
