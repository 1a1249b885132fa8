"""CPU per click, A/B: named configurations of the service, measured in interleaved rounds on one machine.

A configuration is a source tree (this checkout, or another one such as `git archive <commit>`) and SI_*
(or any) environment overrides, served by this venv through `session-intent serve` at its defaults (logs at
INFO, access log off). Rounds interleave the configurations and rotate their order (AB, BA, …), so a
neighbour's load on a shared machine falls on all of them alike. Each run of a configuration:

1. a fresh redis-server on a unix socket (the embedded default's transport) and a fresh server;
2. an unmeasured closed-loop warm-up (wrk), so the Redis pool and every lazy path are in place;
3. the measured window: closed-loop wrk; server user + system CPU (with its workers) and Redis CPU, each per
   answered click; Redis keys and memory at its end;
4. the Redis round trips per click in a short window of their own (MONITOR costs Redis CPU: never in 3);
5. optionally, Poisson-like arrivals at a fixed rate (wrk with exponential think times) for the tail;
6. optionally (`profile_s`), a py-spy profile of the server under the same closed loop, after the measured
   window (py-spy takes CPU of its own): the share of samples by stage of the click path (bench/service/profile.py).

Every configuration gets an OTLP/HTTP sink in this process as OTEL_EXPORTER_OTLP_ENDPOINT, so `SI_TRACING=otlp`
measures the export's encoding and POSTs, not retries against nothing. `session-intent bench cpu-ab` is the
entry point; bench/service/cpu_ab_report.py writes the report.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import redis

from bench.load.click_pools import SESSIONS
from bench.load.wrk import WRK_SCRIPT, WrkResult, run_wrk
from bench.procs.cpu import cpu_seconds
from bench.procs.redis_server import RedisServer, free_port
from bench.procs.round_trips import RoundTripCounter
from bench.procs.servers import LOOPBACK, RunningServer, ServerSpec, http_text, running_server
from bench.service import profile as service_profile
from bench.service.otlp_sink import OtlpSink
from model.artifacts import REPO_ROOT
from model.export.machine import cpu_description
from service.store.keys import KeyScheme

log = logging.getLogger(__name__)

IDS_SCRIPT = REPO_ROOT / "loadtest" / "wrk_events_ids.lua"
SERVE_ENTRY = "import typer; from cli.serve_command import serve; typer.run(serve)"
USER_KEYS = KeyScheme().user("0").replace("{u:0}", "{u:*}")  # this tree's scheme: a base tree's may differ
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
# A spec's parts are split at the commas that start another part (@ or an upper-case NAME=), so a value may hold
# commas, even `a=1,b=2`.
_PART_START = re.compile(r",(?=@|\+published(?:,|$)|[A-Z_][A-Z0-9_]*=)")
# The part naming the published-size stand-in that `bench service` serves (bench/service/models.py), built once per
# run in its scratch directory, so a report that compares it can be regenerated from a clone.
PUBLISHED = "+published"


@dataclass(frozen=True)
class AbConfig:
    """One side of the comparison: the source tree served and the environment it gets on top of the run's."""

    name: str
    root: Path = REPO_ROOT
    env: dict[str, str] = field(default_factory=dict)
    published: bool = False  # serves the published-size stand-in (PUBLISHED), unless env sets SI_MODEL_DIR

    @property
    def tree(self) -> str:
        return "this tree" if self.root == REPO_ROOT else str(self.root)


def parse_config(text: str) -> AbConfig:
    """`NAME=PART,PART…`, each PART `@DIR` (the source tree; default this one), `+published` (the published-size
    stand-in instead of the tree's model) or `KEY=VALUE` (an upper-case environment variable); `NAME` alone: this
    tree as it is.

    e.g. `base=@/tmp/base`, `on=SI_TRACING=otlp`, `full-ids=SI_CONTEXT_STATE=full,SI_LOG_LEVEL=warning`,
    `pub-w2=+published,SI_WORKERS=2`.
    """
    name, _, spec = text.partition("=")
    if not NAME.match(name):
        raise ValueError(f"config {text!r}: a name is 1-40 of [A-Za-z0-9_.-], first a letter or digit, then '='")
    root, env, published = REPO_ROOT, {}, False
    for part in filter(None, _PART_START.split(spec)):
        if part == PUBLISHED:
            published = True
            continue
        if part.startswith("@"):
            root = Path(part[1:]).expanduser().resolve()
            if not (root / "cli" / "serve_command.py").is_file():
                raise ValueError(f"config {name!r}: {root} has no cli/serve_command.py (not a session-intent tree)")
            continue
        key, eq, value = part.partition("=")
        if not eq or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            raise ValueError(f"config {name!r}: {part!r} is neither @DIR, {PUBLISHED} nor KEY=VALUE")
        env[key] = value
    return AbConfig(name, root, env, published)


@dataclass(frozen=True)
class AbPlan:
    configs: tuple[AbConfig, ...]
    rounds: int = 3
    seconds: float = 20.0  # the measured closed-loop window of each run
    warmup_s: float = 3.0
    connections: int = 64  # bench service's saturation step
    round_trip_s: float = 2.0  # 0: not counted
    poisson_s: float = 0.0  # 0: no Poisson-like run
    rate: int = 620
    think_ms: float = 400.0
    ids: bool = False  # clicks carry user_id, item_id and category_id (loadtest/wrk_events_ids.lua)
    sessions: int = SESSIONS  # the clicks' session pool (bench service's); with ids, click_pools.shoppers
    model_dir: Path | None = None  # None: each tree's own models/default
    published_dir: Path | None = None  # the stand-in the +published configs serve; run_ab builds it
    profile_s: float = 0.0  # 0: no py-spy profile

    @property
    def script(self) -> Path:
        return IDS_SCRIPT if self.ids else WRK_SCRIPT

    def wrk(self, url: str, seconds: float, log: Path, connections: int | None = None,
            think_ms: float | None = None) -> WrkResult:
        """One wrk run of this plan's clicks (its script and pools); the closed loop's connections by default."""
        return run_wrk(url, seconds, connections or self.connections, 1, log, think_ms=think_ms, script=self.script,
                       sessions=self.sessions)

    def order(self, round_index: int) -> tuple[AbConfig, ...]:
        """Round r starts at config r mod n: AB, BA, AB, … so no configuration always runs first."""
        k = round_index % len(self.configs)
        return self.configs[k:] + self.configs[:k]


@dataclass(frozen=True)
class AbRun:
    """One run of one configuration; costs are per answered (2xx) click."""

    config: str
    round: int
    position: int  # its place in the round's order
    clicks: int
    non_2xx: int
    clicks_per_s: float
    server_cpu_ms: float
    redis_cpu_ms: float
    closed_p99_ms: float
    redis_keys: int
    redis_mb: float
    shoppers: int  # shoppers' history hashes (the full context state's per-user keys)
    round_trips: float | None = None
    commands: dict[str, float] = field(default_factory=dict)  # per answered click, by command name
    poisson_rate: float | None = None
    poisson_p99_ms: float | None = None
    poisson_p999_ms: float | None = None
    profile: dict[str, float] = field(default_factory=dict)  # stage -> share of py-spy samples
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)  # window -> answers outside 2xx by status


@dataclass
class AbResult:
    plan: AbPlan
    started: str
    machine: dict[str, str]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seconds: float = 0.0
    runs: list[AbRun] = field(default_factory=list)
    models: dict[str, str] = field(default_factory=dict)  # config -> what /readyz names
    otlp_posts: int = 0
    notes: list[str] = field(default_factory=list)
    kept_logs: Path | None = None  # where the server logs of runs with answers outside 2xx are kept
    published_source: str | None = None  # where the +published stand-in's weights came from


def run_ab(plan: AbPlan, on_step: Callable[[str], None] | None = None) -> AbResult:
    """Every round, every configuration in that round's order; bounded by the plan's durations."""
    step = on_step or (lambda message: log.info("%s", message))
    started = time.monotonic()
    result = AbResult(plan, time.strftime("%Y-%m-%d %H:%M:%S %Z"), cpu_description(), os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="si-cpu-ab-") as tmp, OtlpSink() as sink:
        if any(config.published for config in plan.configs):
            from bench.service.models import published_model

            step("building the published-size stand-in")
            published_dir, result.published_source = published_model(REPO_ROOT / "models", Path(tmp) / "published")
            plan = replace(plan, published_dir=published_dir)
        for r in range(plan.rounds):
            for position, config in enumerate(plan.order(r)):
                step(f"round {r + 1}/{plan.rounds}: {config.name}")
                result.runs.append(_measure(config, r, position, plan, Path(tmp), sink.endpoint, result))
        result.otlp_posts = sink.posts
    result.load_after = os.getloadavg()
    result.seconds = time.monotonic() - started
    return result


def _measure(config: AbConfig, r: int, position: int, plan: AbPlan, work: Path, otlp: str,
             result: AbResult) -> AbRun:
    redis_dir = work / f"redis-{config.name}-{r}"
    store = RedisServer(redis_dir, extra_args=("--unixsocket", str(redis_dir / "redis.sock"),
                                               "--unixsocketperm", "700")).start()
    assert store.proc is not None
    client = redis.Redis(unix_socket_path=str(store.socket_path))
    try:
        with _served(config, r, plan, store.unix_url, work, otlp) as server:
            result.models.setdefault(config.name, _model_of(server))
            wrk_log = work / f"wrk-{config.name}.log"
            warmup = plan.wrk(server.url, plan.warmup_s, wrk_log)
            cpu0, redis0 = server.cpu_seconds(), cpu_seconds(store.proc.pid)
            closed = plan.wrk(server.url, plan.seconds, wrk_log)
            cpu, redis_cpu = server.cpu_seconds() - cpu0, cpu_seconds(store.proc.pid) - redis0
            answered = _answered(closed, config, server, result)
            memory = client.info("memory")
            run = AbRun(config=config.name, round=r, position=position, clicks=answered, non_2xx=closed.non_2xx,
                        clicks_per_s=answered / closed.seconds, server_cpu_ms=1000 * cpu / answered,
                        redis_cpu_ms=1000 * redis_cpu / answered, closed_p99_ms=closed.p99_ms,
                        redis_keys=int(client.dbsize()), redis_mb=int(memory["used_memory"]) / 2**20,
                        shoppers=_count_keys(client, USER_KEYS),
                        statuses=_outside_2xx(("warm-up", warmup), ("measured", closed)))
            run = _with_round_trips(run, server, client, plan, wrk_log)
            run = _with_poisson(run, server, plan, wrk_log)
            run = _with_profile(run, server, plan, work, result)
            if run.statuses:  # the service logs no line per refused click (access log off): its counters say why
                (work / f"{server.log_path.stem}.metrics").write_text(http_text(f"{server.url}/metrics"))
        _note_outside_2xx(run, server.log_path, result)
        return run
    finally:
        client.close()
        store.stop()


@contextmanager
def _served(config: AbConfig, r: int, plan: AbPlan, redis_url: str, work: Path, otlp: str
            ) -> Iterator[RunningServer]:
    """`serve` of the config's tree: PYTHONSAFEPATH keeps this checkout (the working directory) off sys.path.
    Its log is the run's own (`<config>-r<round>.log`), so a run with answers outside 2xx can keep it."""
    if config.published and plan.published_dir is None:
        raise RuntimeError(f"{config.name}: serves {PUBLISHED}, but the run built no stand-in (run_ab builds it)")
    model_dir = (plan.published_dir if config.published else plan.model_dir) or config.root / "models" / "default"
    env = {"PYTHONPATH": str(config.root), "PYTHONSAFEPATH": "1", "SI_REDIS_URL": redis_url,
           "SI_AUTH_ENABLED": "false", "SI_MODEL_DIR": str(model_dir), "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
           **config.env}
    argv = (sys.executable, "-c", SERVE_ENTRY, "--host", LOOPBACK, "--port", "{port}")
    spec = ServerSpec(f"{config.name}-r{r + 1}", argv, env)
    with running_server(spec, free_port(), work) as server:
        yield server


def _answered(closed: WrkResult, config: AbConfig, server: RunningServer, result: AbResult) -> int:
    answered = closed.requests - closed.non_2xx
    if answered <= 0:
        raise RuntimeError(f"{config.name}: no click answered 2xx in the measured window ({closed.requests} sent, "
                           f"{_status_text(closed.statuses)}); see {_keep_log(server.log_path, result)}")
    return answered


def _outside_2xx(*windows: tuple[str, WrkResult]) -> dict[str, dict[int, int]]:
    """{window: {status: answers}} of the windows that had answers outside 2xx."""
    return {name: dict(sorted(wrk.statuses.items())) for name, wrk in windows if wrk.statuses}


def _status_text(statuses: dict[int, int]) -> str:
    return ", ".join(f"{n} × {status}" for status, n in sorted(statuses.items())) or "no status outside 2xx"


def _keep_log(server_log: Path, result: AbResult) -> Path:
    """A copy of the server's log (and its /metrics at the run's end, `<log>.metrics`, where taken) outside the
    run's temporary folder, which goes when the bench ends."""
    if result.kept_logs is None:
        result.kept_logs = Path(tempfile.mkdtemp(prefix="si-cpu-ab-logs-"))
    kept = result.kept_logs / server_log.name
    shutil.copyfile(server_log, kept)
    scraped = server_log.with_suffix(".metrics")
    if scraped.is_file():
        shutil.copyfile(scraped, kept.with_suffix(".metrics"))
    return kept


def _note_outside_2xx(run: AbRun, server_log: Path, result: AbResult) -> None:
    """A run with answers outside 2xx keeps its server's log and says which statuses, in which window."""
    if not run.statuses:
        return
    windows = "; ".join(f"{window}: {_status_text(by)}" for window, by in run.statuses.items())
    result.notes.append(f"{run.config}, round {run.round + 1}: answers outside 2xx ({windows}); the server's log: "
                        f"{_keep_log(server_log, result)}")


def _with_round_trips(run: AbRun, server: RunningServer, client: redis.Redis, plan: AbPlan, wrk_log: Path) -> AbRun:
    """Commands the server sent per answered click, counted in a window of their own after the CPU window."""
    if plan.round_trip_s <= 0:
        return run
    with RoundTripCounter(client) as trips:
        wrk = plan.wrk(server.url, plan.round_trip_s, wrk_log)
        sent = trips.take()
    answered = max(wrk.requests - wrk.non_2xx, 1)
    return replace(run, round_trips=sum(sent.values()) / answered,
                   commands={name: n / answered for name, n in sorted(sent.items())},
                   statuses={**run.statuses, **_outside_2xx(("round trips", wrk))})


def _with_poisson(run: AbRun, server: RunningServer, plan: AbPlan, wrk_log: Path) -> AbRun:
    """C connections each thinking Exp(think_ms) before a click: C = rate × (think + ~3 ms of answer)."""
    if plan.poisson_s <= 0:
        return run
    connections = math.ceil(plan.rate * (plan.think_ms + 3.0) / 1000)
    wrk = plan.wrk(server.url, plan.poisson_s, wrk_log, connections=connections, think_ms=plan.think_ms)
    return replace(run, poisson_rate=wrk.ok_rate, poisson_p99_ms=wrk.p99_ms, poisson_p999_ms=wrk.p999_ms,
                   statuses={**run.statuses, **_outside_2xx(("poisson", wrk))})


def _with_profile(run: AbRun, server: RunningServer, plan: AbPlan, work: Path, result: AbResult) -> AbRun:
    """py-spy over `profile_s` of closed-loop load, started once the connections are up."""
    if plan.profile_s <= 0:
        return run
    import threading

    raw = work / f"profile-{run.config}-{run.round}.txt"
    load = threading.Thread(target=plan.wrk, args=(server.url, plan.profile_s + 4, work / "wrk-profile.log"),
                            daemon=True)
    load.start()
    time.sleep(2)  # past the connection ramp
    try:
        service_profile.record(server.python_pid(), plan.profile_s, raw)
        run = replace(run, profile=service_profile.stage_shares(raw))
    except Exception as exc:  # a profile is an extra: say why it is missing, keep the run
        result.notes.append(f"{run.config}, round {run.round + 1}: no profile: {exc}")
    load.join()
    return run


def _count_keys(client: redis.Redis, pattern: str) -> int:
    return sum(1 for _ in client.scan_iter(match=pattern, count=1000))


def _model_of(server: RunningServer) -> str:
    ready = json.loads(http_text(f"{server.url}/readyz"))
    return f"{ready.get('model')} on {ready.get('provider')}"
