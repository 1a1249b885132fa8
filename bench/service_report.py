"""docs/benchmarks/service.{csv,md,png} from a `BenchResult`: the targets, every step's table, ratios to the floor."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from bench.service_locust import EVENTS_ROUTE, RouteStats
from bench.service_run import BenchResult, PoissonRun, Saturation
from model.export.machine import machine_line

# The published serving figures (docs/architecture.md §10): another shop, stack and machine, printed beside ours.
PUBLISHED_MEAN_MS = 58.0
PUBLISHED_QPS = 620
PUBLISHED_HARDWARE = "NVIDIA V100"


@dataclass(frozen=True)
class Target:
    name: str
    measured: float | None
    goal: str
    met: bool | None  # None: not measured in this run
    shown: str = ""


def write_report(result: BenchResult, out_dir: Path, command: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "service.csv", out_dir / "service.md", out_dir / "service.png"]
    write_csv(result, paths[0])
    paths[1].write_text(markdown(result, command))
    write_plot(result, paths[2])
    return paths


def _sat(result: BenchResult, config: str) -> Saturation | None:
    return next((s for s in result.saturation if s.config == config), None)


def _events(result: BenchResult, config: str, rate: int) -> RouteStats | None:
    return next((r for r in result.routes if r.config == config and r.target_qps == rate and r.route == EVENTS_ROUTE),
                None)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(result: BenchResult) -> list[Target]:
    """The issue's targets, each from this run's figures; None where a config was not part of the run."""
    bare, service = _sat(result, "bare"), _sat(result, "service")
    rate = lambda s: s.wrk.rate if s else None  # noqa: E731
    out = [
        _at_most("server CPU per click vs bare floor (closed loop)",
                 _ratio(service.server_cpu_ms if service else None, bare.server_cpu_ms if bare else None), 2.5),
        _at_most(f"server CPU per click vs bare floor (Poisson, {result.plan.target_rate} req/s)",
                 _ratio(*(_poisson_cpu(result, c) for c in ("service", "bare"))), 2.5),
        _at_least("saturation vs bare floor (goal 0.5 ×)", _ratio(rate(service), rate(bare)), 0.4),
        _at_least("saturation vs naive", _ratio(rate(service), rate(_sat(result, "naive"))), 5.0),
        _at_least("saturation vs max_batch_size=1", _ratio(rate(service), rate(_sat(result, "service-batch1"))), 2.0),
        _at_least("--workers 2 vs one worker (2 cores shared with wrk and Redis)",
                  _ratio(rate(_sat(result, "service-workers2")), rate(service)), 1.3),
        _at_most("Redis round trips per click", service.redis_calls_per_click if service else None, 1.1, "{:.2f}"),
    ]
    target = result.plan.target_rate
    floor = _events(result, "bare", target)
    for config in ("service", "service-published"):
        events = _events(result, config, target)
        label = f"{config} @ {target} req/s Poisson, {result.plan.target_s:.0f} s"
        p99_floor = f" (bare floor: {floor.p99_ms:.1f})" if floor else ""
        p999_floor = f" (bare floor: {floor.p999_ms:.1f})" if floor else ""
        out += [
            _at_most(f"{label}: p99 ms", events.p99_ms if events else None, 25.0, "{:.1f}" + p99_floor),
            _at_most(f"{label}: p99.9 ms", events.p999_ms if events else None, 50.0, "{:.1f}" + p999_floor),
            _at_most(f"{label}: errors", float(events.failures) if events else None, 0.0, "{:.0f}"),
        ]
    ceiling = result.harness.achieved_qps if result.harness else None
    out.append(_at_least("harness: Locust's ceiling vs the service's saturation", _ratio(ceiling, rate(service)), 3.0))
    return out


def _poisson_cpu(result: BenchResult, config: str) -> float | None:
    run = next((p for p in result.poisson if p.config == config and p.target_qps == result.plan.target_rate), None)
    return run.server_cpu_ms if run else None


def _at_most(name: str, value: float | None, bound: float, fmt: str = "{:.2f} ×") -> Target:
    return Target(name, value, f"≤ {bound:g}", None if value is None else value <= bound,
                  "–" if value is None else fmt.format(value))


def _at_least(name: str, value: float | None, bound: float, fmt: str = "{:.2f} ×") -> Target:
    return Target(name, value, f"≥ {bound:g} ×", None if value is None else value >= bound,
                  "–" if value is None else fmt.format(value))


def markdown(result: BenchResult, command: str) -> str:
    plan = result.plan
    before = " / ".join(f"{x:.2f}" for x in result.load_before)
    after = " / ".join(f"{x:.2f}" for x in result.load_after)
    lines = [
        "# Service benchmark: the click path against the HTTP floor",
        "",
        f"Written by `{command}` at {result.started}, in {result.seconds / 60:.1f} min. Regenerate with the same "
        "command; never edit by hand.",
        "",
        f"**Machine:** {machine_line()}. **Shared:** every server, the one redis-server, wrk and Locust run on these "
        f"{os.cpu_count()} cores, beside other people's work (load average 1/5/15 min: {before} before the run, "
        f"{after} after). Latencies are noisy; the ratios below compare configurations measured side by side in "
        "this one run, against the bare floor measured in it.",
        "",
        f"**Published anchor** (another shop, stack and machine): {PUBLISHED_MEAN_MS:.0f} ms average at "
        f"{PUBLISHED_QPS} QPS on an {PUBLISHED_HARDWARE}.",
        "",
        *_engines(result),
        "",
        "## Targets",
        "",
        "| target | this run | goal | met |",
        "|---|---|---|---|",
        *(f"| {t.name} | {t.shown} | {t.goal} | {_met(t.met)} |" for t in targets(result)),
        "",
        f"## Saturation, closed loop (wrk, {64} connections, {plan.saturation_s:.0f} s each)",
        "",
        "Each request is a distinct click (random session of 20,000, unique event_id): no answer comes from a "
        "cache. CPU is per answered request over the whole run; the server's includes its workers. \"Server cores "
        "used\" is CPU per click × rate: how much of the shared machine the server actually got. Redis round "
        "trips count commands clients sent, a Lua script once. Batch and GC columns are blank for `--workers` "
        "(one registry per worker).",
        "",
        *_saturation_table(result),
        "",
        *_harness(result),
        "",
        f"## Poisson arrivals (Locust: storefront, coupon engine and ops users, {plan.locust_processes} processes)",
        "",
        f"POST events only; the first {plan.warmup_s:g} s of each run are dropped. Each offered rate ran "
        f"{plan.sweep_s:.0f} s, the target rate {plan.target_s:.0f} s. Percentiles are exact, over every request as "
        "Locust timed it (its own scheduling delay included).",
        "",
        *_poisson_table(result),
        "",
        *_stages(result),
        "",
        *_tail(result),
        "",
        "## Where the service's CPU goes (py-spy, under the closed loop)",
        "",
        *_profile(result),
        "",
        "## How it was measured",
        "",
        "- `bare`: the same FastAPI app shape and schemas answering constants (loadtest/bare_app.py): the HTTP floor. "
        "`service*`: `session-intent serve` (one knob changed per variant, see bench/servers.py). `naive`: torch "
        "eager on a batch of 1 per request and 8 separate Redis calls per click (loadtest/naive_app.py).",
        "- One real redis-server on a unix socket for all of them, flushed before every step; its CPU is shown "
        "apart from the server's.",
        "- wrk (loadtest/wrk_events.lua) is the light closed-loop client; Locust (loadtest/locustfile.py, "
        "FastHttpUser) is the mission's mixed load with Poisson arrivals: each user draws exponential gaps at "
        f"{plan.user_rate:g} req/s, users = rate / {plan.user_rate:g}.",
        *(f"- Note: {note}" for note in result.notes),
        "",
    ]
    return "\n".join(lines)


def _met(met: bool | None) -> str:
    return "not run" if met is None else ("yes" if met else "**no**")


def _engines(result: BenchResult) -> list[str]:
    lines = ["**What each service config ran** (from its /readyz):", ""]
    lines += [f"- `{name}`: {engine}" for name, engine in result.engines.items() if engine]
    if result.published_source:
        lines.append(f"- published-size model: {result.published_source}")
    return lines


def _num(value: float | None, fmt: str = "{:.1f}") -> str:
    return "–" if value is None else fmt.format(value)


def _saturation_table(result: BenchResult) -> list[str]:
    bare = _sat(result, "bare")
    head = ["config", "req/s", "× bare", "p50 ms", "p99 ms", "p99.9 ms", "non-2xx / socket errors",
            "server CPU ms/click", "× bare", "server cores used", "Redis CPU ms/click", "Redis round trips/click",
            "mean batch", "gen-2 GC pauses (mean ms)", "wrk CPU share"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in result.saturation:
        gen2 = s.gc.get("count_gen2")
        mean_pause = 1000 * s.gc.get("sum_gen2", 0.0) / gen2 if gen2 else 0.0
        gc_cell = "–" if gen2 is None else f"{gen2:.0f} ({mean_pause:.1f})"
        out.append("| " + " | ".join([
            s.config, f"{s.wrk.rate:.0f}", _num(_ratio(s.wrk.rate, bare.wrk.rate if bare else None), "{:.2f}"),
            f"{s.wrk.p50_ms:.1f}", f"{s.wrk.p99_ms:.1f}", f"{s.wrk.p999_ms:.1f}",
            f"{s.wrk.non_2xx} / {s.wrk.socket_errors}", f"{s.server_cpu_ms:.3f}",
            _num(_ratio(s.server_cpu_ms, bare.server_cpu_ms if bare else None), "{:.2f}"),
            f"{s.server_cpu_ms * s.wrk.rate / 1000:.2f}", f"{s.redis_cpu_ms:.3f}",
            "–" if s.config == "bare" else f"{s.redis_calls_per_click:.2f}", _num(s.mean_batch), gc_cell,
            f"{s.wrk_cpu_share:.2f}",
        ]) + " |")
    return out


def _harness(result: BenchResult) -> list[str]:
    if result.harness is None:
        return ["## The harness", "", "Not measured: bare was not part of this run."]
    service = _sat(result, "service")
    ceiling = result.harness.achieved_qps
    lines = ["## The harness", "",
             f"Locust closed loop (64 users, {result.plan.locust_processes} processes, no think time) against the "
             f"bare floor: **{ceiling:.0f} req/s**, Locust using {result.harness_cpu_share:.2f} CPU cores "
             f"(p50 {result.harness.p50_ms:.1f} ms)."]
    if service is not None:
        ratio = ceiling / service.wrk.rate
        verdict = ("so Locust can offer more than the service can take, and its Poisson figures measure the service"
                   if ratio >= 3 else
                   "below the 3 × needed: **the harness was the limit**, so Locust's figures near and above the "
                   "service's saturation measure Locust as much as the service; the closed-loop step (wrk) is the "
                   "saturation figure to trust")
        lines.append(f"That is {ratio:.2f} × the service's saturation ({service.wrk.rate:.0f} req/s under wrk): "
                     f"{verdict}.")
    return lines


def _poisson_table(result: BenchResult) -> list[str]:
    runs = {(p.config, p.target_qps): p for p in result.poisson}
    head = ["config", "offered req/s", "achieved req/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors (by status)",
            "server CPU ms/req", "Locust CPU share"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = sorted((r for r in result.routes if r.route == EVENTS_ROUTE), key=lambda r: (r.target_qps, r.config))
    for r in rows:
        run: PoissonRun | None = runs.get((r.config, r.target_qps))
        out.append("| " + " | ".join([
            r.config, str(r.target_qps), f"{r.achieved_qps:.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}",
            f"{r.p999_ms:.2f}", f"{r.max_ms:.1f}",
            f"{r.failures} / {r.requests}" + (f" ({r.failures_by_status})" if r.failures_by_status else ""),
            _num(run.server_cpu_ms if run else None, "{:.3f}"), _num(run.locust_cpu_share if run else None, "{:.2f}"),
        ]) + " |")
    return out


def _stages(result: BenchResult) -> list[str]:
    """Where a click's latency goes inside the server, from its own stage histograms, under Poisson arrivals."""
    runs = [p for p in result.poisson if p.stage_ms]
    if not runs:
        return []
    out = ["## Where a click's time goes inside the service (Poisson runs)", "",
           "Mean ms per click of each stage, from the service's `si_stage_seconds` over the run: the Redis call "
           "(append and read the window), the wait in the batcher's queue (batching delay and the hand-off to the "
           "engine thread), one engine batch (encoding and the model), and the whole click inside the handler. "
           "What the client sees beyond `total` is HTTP, the event loop and the machine's scheduling.", "",
           "| config | offered req/s | redis | queue | infer (per batch) | total |", "|---|---|---|---|---|---|"]
    for p in sorted(runs, key=lambda p: (p.target_qps, p.config)):
        cells = [_num(p.stage_ms.get(k), "{:.2f}") for k in ("redis", "queue", "infer", "total")]
        out.append(f"| {p.config} | {p.target_qps} | " + " | ".join(cells) + " |")
    return out


def _tail(result: BenchResult) -> list[str]:
    """The GC evidence: the same service with its GC settings and with CPython's defaults, side by side."""
    tuned, default = _sat(result, "service"), _sat(result, "service-gc-default")
    if tuned is None or default is None:
        return ["## The tail and the garbage collector", "", "Not measured: needs `service` and `service-gc-default`."]
    lines = ["## The tail and the garbage collector", "",
             "A full (generation-2) collection walks every live object; right after startup that is every object "
             "of FastAPI, pydantic, numpy and ONNX Runtime, and the event loop stands still while it runs. The "
             "service calls `gc.freeze()` after warmup (`SI_GC_FREEZE`), so a full collection walks only what "
             "requests allocate, and raises the young generation's threshold from 700 to 10,000 "
             "(`SI_GC_GEN0_THRESHOLD`): at 700 a young collection runs about every other click. `service-gc-default` "
             "is the same service with CPython's defaults. Same load, side by side (si_gc_pause_seconds, under the "
             "closed loop):", "",
             "| config | gen-2 collections | mean gen-2 pause ms | gen-0/1 collections (total ms) | req/s |",
             "|---|---|---|---|---|"]
    for s in (tuned, default):
        n2 = s.gc.get("count_gen2", 0.0)
        young = 1000 * (s.gc.get("sum_gen0", 0.0) + s.gc.get("sum_gen1", 0.0))
        n_young = s.gc.get("count_gen0", 0.0) + s.gc.get("count_gen1", 0.0)
        mean = f"{1000 * s.gc.get('sum_gen2', 0.0) / n2:.1f}" if n2 else "–"
        lines.append(f"| {s.config} | {n2:.0f} | {mean} | {n_young:.0f} ({young:.0f}) | {s.wrk.rate:.0f} |")
    target = result.plan.target_rate
    a, b = _events(result, "service", target), _events(result, "service-gc-default", target)
    if a and b:
        lines += ["", f"Under Poisson arrivals at {target} req/s: p99.9 {a.p999_ms:.1f} ms with the service's GC "
                      f"settings, {b.p999_ms:.1f} ms with CPython's defaults "
                      f"(p99 {a.p99_ms:.1f} vs {b.p99_ms:.1f} ms)."]
    return lines


def _profile(result: BenchResult) -> list[str]:
    if not result.profile:
        return ["Not profiled in this run."]
    out = ["Share of all on-CPU samples of the service process (main thread and engine thread), by the innermost "
           "stage of each stack (bench/service_profile.py).", "", "| stage | share |", "|---|---|"]
    out += [f"| {stage} | {share:.1%} |" for stage, share in result.profile.items()]
    return out


def write_csv(result: BenchResult, path: Path) -> None:
    head = ["step", "config", "target_qps", "route", "requests", "failures", "achieved_qps", "mean_ms", "p50_ms",
            "p99_ms", "p999_ms", "max_ms", "server_cpu_ms_per_req", "redis_cpu_ms_per_req",
            "redis_round_trips_per_click", "mean_batch", "generator_cpu_share"]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(head)
        for s in result.saturation:
            errors = s.wrk.non_2xx + s.wrk.socket_errors
            writer.writerow(["saturation", s.config, 0, EVENTS_ROUTE, s.wrk.requests, errors, _f(s.wrk.rate),
                             _f(s.wrk.mean_ms), _f(s.wrk.p50_ms), _f(s.wrk.p99_ms), _f(s.wrk.p999_ms),
                             _f(s.wrk.max_ms), _f(s.server_cpu_ms), _f(s.redis_cpu_ms), _f(s.redis_calls_per_click),
                             _f(s.mean_batch), _f(s.wrk_cpu_share)])
        if result.harness is not None:
            h = result.harness
            writer.writerow(["harness", "bare", 0, h.route, h.requests, h.failures, _f(h.achieved_qps), _f(h.mean_ms),
                             _f(h.p50_ms), _f(h.p99_ms), _f(h.p999_ms), _f(h.max_ms), "", "", "", "",
                             _f(result.harness_cpu_share)])
        runs = {(p.config, p.target_qps): p for p in result.poisson}
        for r in result.routes:
            run = runs.get((r.config, r.target_qps))
            writer.writerow(["poisson", r.config, r.target_qps, r.route, r.requests, r.failures, _f(r.achieved_qps),
                             _f(r.mean_ms), _f(r.p50_ms), _f(r.p99_ms), _f(r.p999_ms), _f(r.max_ms),
                             _f(run.server_cpu_ms if run else None), "", "", "",
                             _f(run.locust_cpu_share if run else None)])


def _f(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def write_plot(result: BenchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 5))
    rows = [r for r in result.routes if r.route == EVENTS_ROUTE]
    styles = {"p50_ms": ":", "p99_ms": "--", "p999_ms": "-"}
    for i, config in enumerate(sorted({r.config for r in rows})):
        mine = sorted((r for r in rows if r.config == config), key=lambda r: r.target_qps)
        for attr, style in styles.items():
            left.plot([r.target_qps for r in mine], [getattr(r, attr) for r in mine], linestyle=style, marker="o",
                      color=f"C{i}", label=f"{config} {attr.removesuffix('_ms').replace('p999', 'p99.9')}")
    left.axhline(25, color="grey", linestyle="--", linewidth=0.8, label="p99 target 25 ms")
    left.axhline(50, color="grey", linestyle="-", linewidth=0.8, label="p99.9 target 50 ms")
    left.set(title="POST events under Poisson arrivals (Locust)", xlabel="offered req/s", ylabel="latency ms",
             yscale="log")
    left.grid(alpha=0.3)
    left.legend(fontsize=7, ncol=2)
    names = [s.config for s in result.saturation]
    right.barh(names, [s.wrk.rate for s in result.saturation], color="C0")
    for y, s in enumerate(result.saturation):
        right.text(s.wrk.rate, y, f"  {s.wrk.rate:.0f} req/s, {s.server_cpu_ms:.2f} ms CPU/click", va="center",
                   fontsize=8)
    right.set(title="saturation, closed loop (wrk, 64 connections)", xlabel="req/s")
    right.invert_yaxis()
    right.set_xlim(0, max((s.wrk.rate for s in result.saturation), default=1) * 1.6)
    fig.suptitle(f"session-intent service benchmark: {machine_line()} (shared machine)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
