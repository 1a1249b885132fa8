"""Hot reload under load: `session-intent bench reload` (issue 22's acceptance).

Starts `session-intent serve` on a model repository in a temp folder (the model copied as versions 1 and 2)
against a private redis-server, turns a shadow candidate on, and offers Poisson clicks (bench/load/open_loop.py)
for `duration_s`; at `reload_at` fractions of the run it reloads the other version through the admin route.
Then, with no load, it reloads `rss_reloads` more times and reads the service's RSS before and after.

The generator runs in a process of its own with its GC off (bench/load/own_process.py), apart from the admin
client, the RSS reads and a /metrics sampler (bench/rollout/server_samples.py); each click records how late the
generator sent it, so bench/rollout/reload_diagnosis.py can put each non-2xx answer down to a stall of the
generator or of the service.

Targets: 0 non-2xx; the p99 of the clicks sent during each swap (from the admin call to its answer, plus
`SWAP_MARGIN_S`) ≤ 2 × the steady p99 (clicks outside every swap, after the first `WARMUP_S`); RSS after
the reloads within 10 % of the RSS before them.
"""

from __future__ import annotations

import dataclasses
import gc
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bench.load.clicks import Click, LoadRecord
from bench.load.open_loop import OpenLoopPlan
from bench.load.own_process import GeneratorStats, run_in_own_process, run_inline
from bench.procs.redis_server import RedisServer, free_port
from bench.procs.servers import running_server, server_spec
from bench.rollout.server_samples import SAMPLE_S, ServerSample, ServerSampler
from bench.service.session_rss import rss_mb
from model.artifacts import DEFAULT_MODEL_DIR
from service.rollout_metrics import summarise

SWAP_MARGIN_S = 0.25
WARMUP_S = 3.0
MODEL_NAME = "bench"


@dataclass(frozen=True)
class ReloadPlan:
    model_dir: Path = DEFAULT_MODEL_DIR
    rate: float = 620.0
    duration_s: float = 60.0
    sessions: int = 2000
    reload_at: tuple[float, ...] = (0.25, 0.5, 0.75)
    shadow_share: float = 0.1
    rss_reloads: int = 20
    precision: str = "int8"
    own_process: bool = True  # the generator in a process of its own, GC off (False: on a thread here, as before)
    sample_s: float = SAMPLE_S  # how often /metrics is scraped during the load


@dataclass
class Swap:
    version: str
    start_s: float  # since the load started
    end_s: float
    status: int


@dataclass
class ReloadResult:
    plan: ReloadPlan
    load: LoadRecord
    swaps: list[Swap]
    rss_before_mb: float
    rss_after_mb: float
    rss_reload_statuses: dict[int, int]
    shadow: dict[str, object] = field(default_factory=dict)
    generator: GeneratorStats = field(default_factory=lambda: GeneratorStats(own_process=True, gc_off=True))
    server: list[ServerSample] = field(default_factory=list)

    def in_swap(self, click: Click) -> int | None:
        """The swap whose window (admin call to its answer + SWAP_MARGIN_S) the click was in flight during, if any.

        In flight, not sent: a click sent just before the admin call but answered while the reload held the
        machine is the reload's, and counting it as steady would hide what the swap cost."""
        answered = click.t + max(click.latency_s, 0.0)
        for i, swap in enumerate(self.swaps):
            if click.t < swap.end_s + SWAP_MARGIN_S and answered >= swap.start_s:
                return i
        return None

    def steady_ms(self) -> np.ndarray:
        return np.array([c.latency_s * 1000 for c in self.load.clicks
                         if c.status == 200 and c.t >= WARMUP_S and self.in_swap(c) is None])

    def swap_ms(self, index: int) -> np.ndarray:
        return np.array([c.latency_s * 1000 for c in self.load.clicks
                         if c.status == 200 and self.in_swap(c) == index])

    def non_2xx(self, window: int | str | None = "all") -> int:
        """Non-2xx answers: all, those in flight during swap `window`, or (None) those outside every swap."""
        return sum(1 for c in self.load.clicks
                   if not 200 <= c.status < 300 and (window == "all" or self.in_swap(c) == window))


def make_repository(model_dir: Path, root: Path) -> Path:
    """root/bench/1 and root/bench/2: the same model as two versions (a reload still loads, checks and warms)."""
    for version in ("1", "2"):
        shutil.copytree(model_dir, root / MODEL_NAME / version, ignore=shutil.ignore_patterns("*.pt"))
    return root


def run_reload(plan: ReloadPlan) -> ReloadResult:
    """One bounded run; every process it starts is stopped before it returns."""
    with tempfile.TemporaryDirectory(prefix="si-reload-") as scratch:
        work = Path(scratch)
        repository = make_repository(plan.model_dir.resolve(), work / "models")
        redis_server = RedisServer(work / "redis").start()
        try:
            spec = server_spec("service", redis_server.url, plan.model_dir.resolve())
            env = {"SI_MODEL_REPOSITORY": str(repository), "SI_PRECISION": plan.precision,
                   "SI_PROVIDERS": "CPUExecutionProvider", "SI_REQUEST_DEADLINE_MS": "5000"}
            with running_server(dataclasses.replace(spec, env={**spec.env, **env}), free_port(), work) as service, \
                    httpx.Client(base_url=service.url, timeout=60) as admin:
                shadow = admin.put("/v1/admin/shadow", json={"version": "1", "share": plan.shadow_share})
                shadow.raise_for_status()
                load, swaps, generator, server = _load_with_reloads(service.url, admin, plan)
                time.sleep(1.0)
                before = rss_mb(service.proc.pid)
                statuses: dict[int, int] = {}
                for i in range(plan.rss_reloads):
                    code = admin.post("/v1/admin/model", json={"version": "1" if i % 2 == 0 else "2"}).status_code
                    statuses[code] = statuses.get(code, 0) + 1
                time.sleep(1.0)
                after = rss_mb(service.proc.pid)
                report = summarise(admin.get("/metrics").text)
        finally:
            redis_server.stop()
    return ReloadResult(plan, load, swaps, before, after, statuses, report[0] if report else {}, generator, server)


def _load_with_reloads(url: str, admin: httpx.Client, plan: ReloadPlan
                       ) -> tuple[LoadRecord, list[Swap], GeneratorStats, list[ServerSample]]:
    started = threading.Event()
    origin: list[float] = []
    calls: list[tuple[str, float, float, int]] = []  # version, time.monotonic() of the call and of its answer

    def on_start() -> None:
        origin.append(time.monotonic())
        started.set()

    def reloads() -> None:
        started.wait()
        for i, fraction in enumerate(plan.reload_at):
            if not origin:
                return
            time.sleep(max(0.0, origin[0] + fraction * plan.duration_s - time.monotonic()))
            version = "1" if i % 2 == 0 else "2"
            begin = time.monotonic()
            status = admin.post("/v1/admin/model", json={"version": version}).status_code
            calls.append((version, begin, time.monotonic(), status))

    reloader = threading.Thread(target=reloads, name="reloads")
    load_plan = OpenLoopPlan(rate=plan.rate, duration_s=plan.duration_s, sessions=plan.sessions, connections=256,
                             session_prefix="reload", keep_pool=True)
    generate = run_in_own_process if plan.own_process else run_inline
    # This process's own collections would stall the admin calls and the sampler's clock, not the service.
    # Inline keeps the GC as it was, to reproduce the bench as it ran before.
    if plan.own_process:
        gc.collect()
        gc.freeze()
    try:
        with ServerSampler(url, plan.sample_s) as sampler:
            reloader.start()
            try:
                load, stats = generate(url, load_plan, on_start)
            finally:
                started.set()
                reloader.join()
    finally:
        gc.unfreeze()
    # Swap times on the load's own clock (time.monotonic() of its first due arrival: one clock across processes).
    swaps = [Swap(v, begin - load.started, end - load.started, status) for v, begin, end, status in calls]
    return load, swaps, stats, sampler.samples
