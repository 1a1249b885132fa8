"""The service benchmark (docs/architecture.md §10): every server side by side in one run, as ratios to the bare floor.

All configurations (bench/procs/servers.py) run at once on loopback ports against one real redis-server on a
unix socket (the embedded default's transport), flushed before every step. The steps, in order:

1. saturation, closed loop: `wrk` posts clicks over 64 connections to each config in turn
   (bench/load/wrk.py): rate, latency, server and Redis CPU per click; then, in the first round, a short run
   under MONITOR for the Redis round trips per click (bench/procs/round_trips.py). `saturation_rounds` rounds
   interleave the configs and rotate their order (as `bench cpu-ab` does), and each config's figures are its
   median round's: one run per config swung by a third between two runs of one tree, Redis's CPU per click
   alike, as when a CPU second of this shared machine does less work (bench/procs/machine_speed.py,
   docs/benchmarks/click-cpu.md);
2. the harness's ceiling: Locust closed loop against the bare floor (what Locust can offer at all);
3. Poisson arrivals: the mission's mixed Locust load at fixed offered rates (bench/load/locust.py);
4. Poisson-like arrivals from a light client at the target rate: wrk with an exponential think time per
   connection, so that the tail measured is the server's and not a Python generator's; with `light_rounds` > 1
   the target time is split into rounds that interleave the configs (order rotated) and each config's
   median-p99 round is reported, so that a slow stretch of the machine falls on one round of every config
   instead of on one config's whole window;
5. a py-spy profile of the service under the closed loop (bench/service/profile.py).

`session-intent bench service` is the entry point; bench/service/report.py writes the report.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil
import redis
from prometheus_client.parser import text_string_to_metric_families

from bench.load import locust as service_locust
from bench.load.locust import ALL_ROUTES, EVENTS_ROUTE, RouteStats
from bench.load.wrk import WrkResult, run_wrk
from bench.procs.cpu import cpu_seconds
from bench.procs.machine_speed import Ticks, preemptions, probe_ms
from bench.procs.redis_server import RedisServer, free_port
from bench.procs.round_trips import RoundTripCounter
from bench.procs.servers import RunningServer, http_text, running_server, server_spec
from bench.service import profile as service_profile
from model.artifacts import DEFAULT_MODEL_DIR, REPO_ROOT

log = logging.getLogger(__name__)

SATURATION_CONNECTIONS = 64
ROUND_TRIP_S = 2.0  # the closed loop's extra run under MONITOR
HARNESS_USERS = 64


@dataclass(frozen=True)
class BenchPlan:
    configs: tuple[str, ...]
    saturation_s: float = 10.0
    saturation_rounds: int = 3  # closed-loop rounds, configs interleaved; each config's median round is reported
    rates: tuple[int, ...] = (300, 620, 1000)  # Poisson offered rates of the sweep
    sweep_s: float = 20.0
    target_rate: int = 620
    target_s: float = 60.0  # the target rate runs this long
    poisson_configs: tuple[str, ...] = ("bare", "service", "service-published", "service-gc-default")
    user_rate: float = 5.0  # requests/s of one Locust user: users = rate / user_rate
    locust_processes: int = 2
    warmup_s: float = 3.0  # samples in the first seconds of each Locust run are dropped
    light_configs: tuple[str, ...] = ("bare", "service", "service-published")
    think_ms: float = 400.0  # mean think time per wrk connection in the light-client Poisson step
    light_rounds: int = 1  # the light-client step's target_s split into this many interleaved rounds
    profile_s: float = 8.0
    model_dir: Path = DEFAULT_MODEL_DIR
    models_root: Path = REPO_ROOT / "models"


@dataclass(frozen=True)
class Saturation:
    """One config under the closed loop: wrk's view, and what the run cost on the server side."""

    config: str
    wrk: WrkResult
    server_cpu_ms: float  # per request
    redis_cpu_ms: float  # per request
    redis_calls_per_click: float  # commands clients sent (a script counts once), bench/procs/round_trips.py
    wrk_cpu_share: float  # wrk's CPU seconds over wall seconds
    mean_batch: float | None
    gc: dict[str, float]  # si_gc_pause_seconds sum/count by generation, when the server has it
    round: int = 0
    position: int = 0  # its place in the round's order
    probe_ms: float = 0.0  # bench/procs/machine_speed.py probe just before the run: more ms, a slower CPU then
    steal_share: float = 0.0  # the hypervisor's steal over the measured window, machine-wide
    preempted: float = 0.0  # the server's involuntary context switches per answered click
    load_1m: float = 0.0  # the machine's 1-minute load average when the run began


@dataclass(frozen=True)
class PoissonRun:
    config: str
    target_qps: int
    server_cpu_ms: float
    locust_cpu_share: float  # Locust's CPU seconds over wall seconds, all its processes
    errors: int
    stage_ms: dict[str, float] = field(default_factory=dict)  # mean ms of each si_stage_seconds stage, server side


@dataclass(frozen=True)
class LightPoisson:
    """The target rate from wrk with exponential think times: wrk's exact latencies and the server's side."""

    config: str
    target_qps: int
    connections: int
    wrk: WrkResult
    server_cpu_ms: float
    wrk_cpu_share: float
    stage_ms: dict[str, float] = field(default_factory=dict)
    round: int = 0


@dataclass
class BenchResult:
    plan: BenchPlan
    started: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seconds: float = 0.0
    engines: dict[str, str] = field(default_factory=dict)  # config -> "model on provider"
    published_source: str = ""
    saturation: list[Saturation] = field(default_factory=list)  # each config's median round
    saturation_rounds: list[Saturation] = field(default_factory=list)  # every round, in the order run
    harness: RouteStats | None = None
    harness_cpu_share: float = 0.0
    routes: list[RouteStats] = field(default_factory=list)
    poisson: list[PoissonRun] = field(default_factory=list)
    light: list[LightPoisson] = field(default_factory=list)  # each config's median-p99 round
    light_rounds: list[LightPoisson] = field(default_factory=list)  # every round, in the order run
    profile: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def run_bench(plan: BenchPlan, on_step: Callable[[str], None] | None = None) -> BenchResult:
    """Start redis and the servers, then run the steps; bounded by the plan's durations."""
    started_at = time.monotonic()
    result = BenchResult(plan, time.strftime("%Y-%m-%d %H:%M:%S %Z"), psutil.getloadavg())
    step = on_step or (lambda message: log.info("%s", message))
    with tempfile.TemporaryDirectory(prefix="si-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        published = None
        if "service-published" in plan.configs:
            step("preparing the published-size model")
            from bench.service.models import published_model

            published, result.published_source = published_model(plan.models_root, work / "models")
        redis_dir = work / "redis"
        redis_server = RedisServer(redis_dir, extra_args=("--unixsocket", str(redis_dir / "redis.sock"),
                                                          "--unixsocketperm", "700")).start()
        stack.callback(redis_server.stop)
        assert redis_server.proc is not None
        redis_pid = redis_server.proc.pid
        client = redis.Redis(unix_socket_path=str(redis_server.socket_path))
        stack.callback(client.close)
        step(f"starting {', '.join(plan.configs)}")
        servers = {name: stack.enter_context(running_server(
            server_spec(name, redis_server.unix_url, plan.model_dir, published), free_port(), work))
            for name in plan.configs}
        result.engines = {name: _engine_of(server) for name, server in servers.items()}
        names = list(servers)
        for r in range(plan.saturation_rounds):
            k = r % len(names)  # round r starts at config r: no config always runs first
            for position, name in enumerate(names[k:] + names[:k]):
                step(f"saturation (wrk, closed loop), round {r + 1}/{plan.saturation_rounds}: {name}")
                client.flushall()
                result.saturation_rounds.append(_saturate(servers[name], plan, redis_pid, client, work, r, position))
        result.saturation = median_rounds(result.saturation_rounds, names)
        if "bare" in servers:
            step("harness ceiling (Locust, closed loop): bare")
            _harness_ceiling(servers["bare"], plan, work, result)
        for rate in sorted({*plan.rates, plan.target_rate}):
            for name in (n for n in plan.poisson_configs if n in servers):
                if rate != plan.target_rate and name not in ("bare", "service"):
                    continue  # the sweep covers bare and the default service; the target rate covers all
                step(f"Poisson {rate} req/s: {name}")
                client.flushall()
                _poisson(servers[name], rate, plan, work, result)
        light = [n for n in plan.light_configs if n in servers]
        for r in range(plan.light_rounds):
            k = r % len(light) if light else 0
            for name in light[k:] + light[:k]:
                step(f"Poisson-like {plan.target_rate} req/s, light client (wrk, exponential think time), "
                     f"round {r + 1}/{plan.light_rounds}: {name}")
                client.flushall()
                result.light_rounds.append(_light_poisson(servers[name], plan, work, r))
        result.light = [sorted(mine, key=lambda run: run.wrk.p99_ms)[len(mine) // 2]
                        for mine in ([run for run in result.light_rounds if run.config == n] for n in light) if mine]
        if "service" in servers and plan.profile_s > 0:
            step("profile (py-spy) of the service under the closed loop")
            _profile(servers["service"], plan, work, result)
    result.load_after = psutil.getloadavg()
    result.seconds = time.monotonic() - started_at
    return result


def median_rounds(runs: list[Saturation], names: list[str]) -> list[Saturation]:
    """Each config's round of median server CPU per click (the upper middle of an even count), round trips from
    the round that counted them."""
    out = []
    for name in names:
        mine = sorted((s for s in runs if s.config == name), key=lambda s: s.server_cpu_ms)
        if not mine:
            continue
        counted = next((s.redis_calls_per_click for s in runs if s.config == name and s.round == 0), 0.0)
        out.append(replace(mine[len(mine) // 2], redis_calls_per_click=counted))
    return out


def _saturate(server: RunningServer, plan: BenchPlan, redis_pid: int, client: redis.Redis,
              work: Path, round_index: int = 0, position: int = 0) -> Saturation:
    # One unmeasured second first: the server's Redis pool grows to the load's concurrency (a HELLO per new
    # connection) and every lazy path runs once, so the figures below are the steady state's.
    run_wrk(server.url, 1, SATURATION_CONNECTIONS, 1, work / "wrk.log")
    speed, load_1m = probe_ms(), psutil.getloadavg()[0]
    ticks0, switches0 = Ticks.read(), preemptions(server.python_pid())
    counters0, cpu0, redis0 = _counters(server), server.cpu_seconds(), cpu_seconds(redis_pid)
    wall0 = time.monotonic()
    wrk = run_wrk(server.url, plan.saturation_s, SATURATION_CONNECTIONS, 1, work / "wrk.log")
    wall = time.monotonic() - wall0
    counters1, cpu1, redis1 = _counters(server), server.cpu_seconds(), cpu_seconds(redis_pid)
    ticks1, switches1 = Ticks.read(), preemptions(server.python_pid())
    answered = max(wrk.requests - wrk.non_2xx, 1)  # a 503 is not a served click: costs are per 2xx answer
    per_req = 1000.0 / answered
    delta = {key: counters1.get(key, 0.0) - counters0.get(key, 0.0) for key in counters1}
    batches = delta.get("si_batch_size_count", 0.0)
    return Saturation(
        config=server.spec.name, wrk=wrk, server_cpu_ms=(cpu1 - cpu0) * per_req,
        redis_cpu_ms=(redis1 - redis0) * per_req,
        redis_calls_per_click=_round_trips_per_click(server, client, work) if round_index == 0 else 0.0,
        wrk_cpu_share=wrk.wrk_cpu_s / wall, mean_batch=delta["si_batch_size_sum"] / batches if batches else None,
        gc={k.removeprefix("si_gc_pause_seconds_"): v for k, v in delta.items() if k.startswith("si_gc_pause")},
        round=round_index, position=position, probe_ms=speed, steal_share=ticks0.steal_share(ticks1),
        preempted=(switches1 - switches0) / answered, load_1m=load_1m,
    )


def _harness_ceiling(bare: RunningServer, plan: BenchPlan, work: Path, result: BenchResult) -> None:
    samples = work / "harness.csv"
    run = service_locust.run_locust(bare.url, 0, plan.sweep_s, samples, work / "locust.log", user_rate=0,
                                    processes=plan.locust_processes, users=HARNESS_USERS)
    stats = service_locust.summarise(run.samples, "bare", 0, plan.warmup_s)
    result.harness = next(s for s in stats if s.route == ALL_ROUTES)
    result.harness_cpu_share = run.cpu_s / run.wall_s


def _poisson(server: RunningServer, rate: int, plan: BenchPlan, work: Path, result: BenchResult) -> None:
    duration = plan.target_s if rate == plan.target_rate else plan.sweep_s
    samples = work / f"{server.spec.name}-{rate}.csv"
    cpu0, counters0 = server.cpu_seconds(), _counters(server)
    run = service_locust.run_locust(server.url, rate, duration, samples, work / "locust.log",
                                    user_rate=plan.user_rate, processes=plan.locust_processes)
    cpu, counters1 = server.cpu_seconds() - cpu0, _counters(server)
    stage_ms = _stage_ms(counters0, counters1)
    stats = service_locust.summarise(run.samples, server.spec.name, rate, plan.warmup_s)
    result.routes.extend(stats)
    events = next((s for s in stats if s.route == EVENTS_ROUTE), None)
    result.poisson.append(PoissonRun(
        config=server.spec.name, target_qps=rate, server_cpu_ms=cpu * 1000 / max(service_locust.sent(run.samples), 1),
        locust_cpu_share=run.cpu_s / run.wall_s, errors=events.failures if events else 0, stage_ms=stage_ms,
    ))


def _light_poisson(server: RunningServer, plan: BenchPlan, work: Path, round_index: int = 0) -> LightPoisson:
    """C connections each thinking Exp(think_ms) before a click: C = rate × (think + ~3 ms of answer)."""
    connections = math.ceil(plan.target_rate * (plan.think_ms + 3.0) / 1000)
    cpu0, counters0 = server.cpu_seconds(), _counters(server)
    wall0 = time.monotonic()
    wrk = run_wrk(server.url, plan.target_s / plan.light_rounds, connections, 1, work / "wrk.log",
                  think_ms=plan.think_ms)
    wall = time.monotonic() - wall0
    cpu, counters1 = server.cpu_seconds() - cpu0, _counters(server)
    return LightPoisson(config=server.spec.name, target_qps=plan.target_rate, connections=connections, wrk=wrk,
                        server_cpu_ms=cpu * 1000 / max(wrk.requests, 1), wrk_cpu_share=wrk.wrk_cpu_s / wall,
                        stage_ms=_stage_ms(counters0, counters1), round=round_index)


def _stage_ms(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Mean ms per observation of each si_stage_seconds stage between two scrapes."""
    out = {}
    for stage in ("redis", "queue", "infer", "total"):
        n = after.get(f"stage_count_{stage}", 0.0) - before.get(f"stage_count_{stage}", 0.0)
        if n:
            out[stage] = 1000 * (after[f"stage_sum_{stage}"] - before.get(f"stage_sum_{stage}", 0.0)) / n
    return out


def _profile(server: RunningServer, plan: BenchPlan, work: Path, result: BenchResult) -> None:
    import threading

    raw = work / "profile.txt"
    load = threading.Thread(target=run_wrk, args=(server.url, plan.profile_s + 4, SATURATION_CONNECTIONS, 1,
                                                  work / "wrk.log"), daemon=True)
    load.start()
    time.sleep(2)  # past the connection ramp
    try:
        service_profile.record(server.python_pid(), plan.profile_s, raw)
        result.profile = service_profile.stage_shares(raw)
    except Exception as exc:  # a profile is an extra: report why it is missing, keep the run
        result.notes.append(f"no profile: {exc}")
    load.join()


def _engine_of(server: RunningServer) -> str:
    if not server.spec.name.startswith("service"):
        return ""
    ready = json.loads(http_text(f"{server.url}/readyz"))
    return f"{ready.get('model')} on {ready.get('provider')}"


def _counters(server: RunningServer) -> dict[str, float]:
    """Batch-size and GC-pause sums and counts from a service's /metrics (empty for bare and naive).

    With `--workers` too: one scrape answers for every worker (prometheus_client's multiprocess mode sums
    their histograms; tests/test_workers_reload.py reads a 2-worker run's).
    """
    if not server.spec.name.startswith("service"):
        return {}
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(http_text(f"{server.url}/metrics")):
        for sample in family.samples:
            if sample.name in ("si_batch_size_sum", "si_batch_size_count"):
                values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
            elif sample.name in ("si_gc_pause_seconds_sum", "si_gc_pause_seconds_count"):
                key = f"{sample.name}_gen{sample.labels.get('generation', '')}"
                values[key] = values.get(key, 0.0) + float(sample.value)
            elif sample.name in ("si_stage_seconds_sum", "si_stage_seconds_count"):
                kind = sample.name.rsplit("_", 1)[1]
                values[f"stage_{kind}_{sample.labels.get('stage', '')}"] = float(sample.value)
            elif sample.name in ("si_click_seconds_sum", "si_click_seconds_count"):  # the click end to end
                values[f"stage_{sample.name.rsplit('_', 1)[1]}_total"] = float(sample.value)
    return values


def _round_trips_per_click(server: RunningServer, client: redis.Redis, work: Path) -> float:
    """Commands the server sent to Redis per 2xx click, counted from the clients' side in a run of its own.

    Its own run because MONITOR costs Redis CPU, which the measured run above must not pay; the same
    closed loop, so batches (and the write-behind flushes per click) are the same size.
    """
    with RoundTripCounter(client) as trips:
        wrk = run_wrk(server.url, ROUND_TRIP_S, SATURATION_CONNECTIONS, 1, work / "wrk.log")
        sent = trips.take()
    return sum(sent.values()) / max(wrk.requests - wrk.non_2xx, 1)


__all__ = ["ALL_ROUTES", "EVENTS_ROUTE", "BenchPlan", "BenchResult", "LightPoisson", "PoissonRun", "RouteStats",
           "Saturation", "run_bench"]
