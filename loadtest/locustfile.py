"""Locust load of the scoring service: the storefront's clicks and the coupon engine's reads
(docs/architecture.md §1, §10).

    locust -f loadtest/locustfile.py --headless --host http://127.0.0.1:8000 -u 50 -r 50 --run-time 1m

Users:
- `StorefrontUser` (weight 10) walks synthetic sessions from `model.data.synth` (published class shares, action
  mix and dwell times) and POSTs one event per click, with `event_id`, `ts` and `from_ad`. A small share of
  clicks is re-sent with the same `event_id`, as a storefront retries after a timeout.
- `CouponEngineUser` (weight 1) reads one recent session's risk, or the ranked at-risk list.
- `OpsUser` (exactly one per process) scrapes /metrics and polls /readyz once a second, as Prometheus
  and the orchestrator do.

Each user runs `--si-user-rate` requests per second with exponential gaps (`--si-arrivals poisson`, the
default; `constant` for fixed gaps), so the arrivals of all users together are a Poisson process of
users × user rate until the server saturates; the achieved rate is what Locust reports. A user rate
of 0 is closed loop: each user sends its next request as soon as the last is answered. Run it over
several processes with `--processes N`: each writes its own latency file (`<file>.<pid>`).

Bounds, always on: the host must be loopback (or the one name in SI_LOADTEST_ALLOW_HOST, e.g. the
compose network's `service`); a run stops after `--si-max-requests` requests or `--si-max-seconds`
seconds, whichever comes first, whatever `--run-time` says.
"""

from __future__ import annotations

import collections
import csv
import ipaddress
import logging
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import gevent
from locust import FastHttpUser, constant_throughput, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from model.data.synth import generate_sessions
from model.features import ACTIONS

log = logging.getLogger("loadtest")

EVENTS_ROUTE = "POST /v1/sessions/{id}/events"
RISK_ROUTE = "GET /v1/sessions/{id}/risk"
AT_RISK_ROUTE = "GET /v1/at-risk"


@dataclass(frozen=True)
class SessionScript:
    """One synthetic session's clicks: action names, seconds since its first click, whether it landed from an ad."""

    actions: tuple[str, ...]
    offsets_s: tuple[int, ...]
    from_ad: bool


# Filled once per process by the init listener; shared by all users of the process.
SCRIPTS: list[SessionScript] = []
# Sessions the storefront users clicked recently: what the coupon engine asks about.
RECENT_SESSIONS: collections.deque[str] = collections.deque(maxlen=2000)


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("session-intent")
    group.add_argument("--si-user-rate", type=float, default=1.0, help="Requests per second per user; 0: closed loop.")
    group.add_argument("--si-arrivals", choices=("poisson", "constant"), default="poisson",
                       help="Gaps between one user's requests: exponential (Poisson arrivals) or fixed.")
    group.add_argument("--si-max-requests", type=int, default=100_000, help="Hard stop after this many requests.")
    group.add_argument("--si-max-seconds", type=float, default=600.0, help="Hard stop after this many seconds.")
    group.add_argument("--si-sessions", type=int, default=2000, help="Synthetic sessions to replay.")
    group.add_argument("--si-seed", type=int, default=7, help="Seed of the synthetic sessions and the pacing.")
    group.add_argument("--si-retry-share", type=float, default=0.01, help="Share of clicks re-sent as retries.")
    group.add_argument("--si-min-risk", type=float, default=0.5, help="min_risk of the at-risk query.")
    group.add_argument("--si-latency-file", default="", help="Write every request's latency to this CSV.")
    group.add_argument("--si-write-key", default="", env_var="SI_LOADTEST_WRITE_KEY",
                       help="X-API-Key with events:write.")
    group.add_argument("--si-read-key", default="", env_var="SI_LOADTEST_READ_KEY", help="X-API-Key with risk:read.")


def host_allowed(url: str, allowed_name: str | None) -> bool:
    """True for a URL whose host resolves only to loopback addresses, or is exactly `allowed_name`."""
    host = urlparse(url).hostname
    if not host:
        return False
    if allowed_name and host == allowed_name:
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def load_scripts(n_sessions: int, seed: int) -> list[SessionScript]:
    synth = generate_sessions(n_sessions, seed=seed)
    ends = [*synth.starts[1:].tolist(), len(synth.actions)]
    scripts = []
    for start, end in zip(synth.starts.tolist(), ends, strict=True):
        ts = synth.ts[start:end]
        scripts.append(SessionScript(
            actions=tuple(ACTIONS[a] for a in synth.actions[start:end].tolist()),
            offsets_s=tuple(int(t) for t in (ts - ts[0]).tolist()),
            from_ad=bool(synth.from_ad[start]),
        ))
    return scripts


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:  # an Environment built in code, not by the locust command
        return
    host = environment.host or ""
    if not host_allowed(host, os.environ.get("SI_LOADTEST_ALLOW_HOST")):
        raise SystemExit(f"refusing to load {host!r}: only loopback hosts (or SI_LOADTEST_ALLOW_HOST) are allowed")
    random.seed(options.si_seed)
    SCRIPTS[:] = load_scripts(options.si_sessions, options.si_seed)
    RunBounds(environment, options.si_max_requests, options.si_max_seconds, options.si_latency_file)
    log.info("replaying %d synthetic sessions against %s", len(SCRIPTS), host)


class RunBounds:
    """Stops the run after `max_requests` requests or `max_seconds` seconds; records latencies if asked."""

    def __init__(self, environment: Environment, max_requests: int, max_seconds: float, latency_file: str) -> None:
        self.environment = environment
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.latency_file = latency_file
        self.requests = 0
        self.samples: list[tuple[float, str, float, bool, int]] = []  # (epoch s, request name, ms, ok, status)
        environment.events.test_start.add_listener(self.on_test_start)
        environment.events.request.add_listener(self.on_request)
        environment.events.quitting.add_listener(self.on_quitting)

    def stop(self, why: str) -> None:
        log.warning("%s: stopping", why)
        if self.environment.runner is not None:
            gevent.spawn(self.environment.runner.quit)  # not from inside the request's own greenlet

    def on_test_start(self, **_: Any) -> None:
        gevent.spawn_later(self.max_seconds, self.stop, f"--si-max-seconds {self.max_seconds:.0f} reached")

    def on_request(self, name: str, response_time: float, exception: Exception | None, response: Any = None,
                   **_: Any) -> None:
        if self.latency_file:
            status = int(getattr(response, "status_code", 0) or 0)  # 0: no HTTP answer (connection error)
            self.samples.append((time.time(), name, float(response_time), exception is None, status))
        self.requests += 1
        if self.requests == self.max_requests:
            self.stop(f"--si-max-requests {self.max_requests} reached")

    def on_quitting(self, **_: Any) -> None:
        if not self.latency_file or isinstance(self.environment.runner, MasterRunner):
            return  # the master of --processes sends nothing: its workers write their own files
        path = self.latency_file
        if isinstance(self.environment.runner, WorkerRunner):
            path = f"{path}.{os.getpid()}"
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["ts", "name", "ms", "ok", "status"])
            writer.writerows((f"{t:.6f}", n, f"{ms:.4f}", int(ok), code) for t, n, ms, ok, code in self.samples)


def paced(user: FastHttpUser) -> float:
    """Seconds to wait so that this user runs `--si-user-rate` tasks per second (0: no wait at all).

    Poisson: the user keeps its own schedule of exponential gaps, so a slow answer delays one request,
    not every later one; a schedule more than a second behind (a saturated server) is not caught up.
    """
    options = user.environment.parsed_options
    rate = options.si_user_rate
    if rate <= 0:
        return 0.0
    if options.si_arrivals == "constant":
        return float(constant_throughput(rate)(user))
    now = time.monotonic()
    due = max(getattr(user, "next_due", now) + random.expovariate(rate), now - 1.0)
    user.next_due = due  # type: ignore[attr-defined]
    return max(0.0, due - now)


class StorefrontUser(FastHttpUser):
    """One browser tab after another: clicks through a synthetic session, then starts the next one."""

    weight = 10
    wait_time = paced

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.headers = {"X-API-Key": options.si_write_key} if options.si_write_key else {}
        self.retry_share = options.si_retry_share
        self.last_click: tuple[str, dict[str, Any]] | None = None
        self.new_session()

    def new_session(self) -> None:
        self.script = random.choice(SCRIPTS)
        self.session_id = f"lt-{uuid.uuid4().hex[:16]}"
        self.position = 0
        # Anchor the synthetic clock so the session's last click is "now": every ts is in the past and
        # the gaps between them are the synthetic dwell times the model was trained on.
        self.epoch0 = time.time() - self.script.offsets_s[-1]

    @task
    def click(self) -> None:
        if self.last_click is not None and random.random() < self.retry_share:
            session_id, body = self.last_click  # a storefront retry: same event_id, first answer expected
        else:
            if self.position >= len(self.script.actions):
                self.new_session()
            i = self.position
            body = {
                "event_id": f"{self.session_id}-{i}",
                "ts": round(self.epoch0 + self.script.offsets_s[i], 3),
                "action": self.script.actions[i],
                "from_ad": self.script.from_ad,
            }
            session_id = self.session_id
            self.position += 1
            self.last_click = (session_id, body)
        self.client.post(f"/v1/sessions/{session_id}/events", json=body, headers=self.headers, name=EVENTS_ROUTE)
        RECENT_SESSIONS.append(session_id)


class CouponEngineUser(FastHttpUser):
    """Polls the risk of sessions the storefront just clicked, and the ranked at-risk list."""

    weight = 1
    wait_time = paced

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.headers = {"X-API-Key": options.si_read_key} if options.si_read_key else {}
        self.min_risk = options.si_min_risk

    @task(3)
    def session_risk(self) -> None:
        if not RECENT_SESSIONS:
            return
        session_id = random.choice(RECENT_SESSIONS)
        with self.client.get(f"/v1/sessions/{session_id}/risk", headers=self.headers, name=RISK_ROUTE,
                             catch_response=True) as response:
            if response.status_code == 404:  # scored by another process, or expired: a valid answer
                response.success()

    @task(1)
    def at_risk(self) -> None:
        self.client.get(f"/v1/at-risk?min_risk={self.min_risk}&limit=50", headers=self.headers, name=AT_RISK_ROUTE)


class OpsUser(FastHttpUser):
    """The operator's side: a Prometheus scrape and a readiness probe, once a second each, one per process."""

    fixed_count = 1
    wait_time = constant_throughput(1.0)

    @task
    def scrape(self) -> None:
        self.client.get("/metrics", name="GET /metrics")

    @task
    def probe(self) -> None:
        self.client.get("/readyz", name="GET /readyz")
