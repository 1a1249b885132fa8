"""docs/benchmarks/service.{csv,md,png} from a `BenchResult`: the targets, every step's table, ratios to the floor."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from bench.load.locust import EVENTS_ROUTE
from bench.report.plots import save_figure, subplots
from bench.service.report_sections import (
    events,
    light_table,
    num,
    outside_2xx,
    sat,
    saturation_rounds,
    stages,
    tail,
)
from bench.service.run import ROUND_TRIP_S, BenchResult, LightPoisson, PoissonRun
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


def _light(result: BenchResult, config: str) -> LightPoisson | None:
    return next((run for run in result.light if run.config == config), None)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(result: BenchResult) -> list[Target]:
    """The issue's targets, each from this run's figures; None where a config was not part of the run."""
    bare, service = sat(result, "bare"), sat(result, "service")
    rate = lambda s: s.wrk.ok_rate if s else None  # noqa: E731
    out = [
        _at_most("server CPU per click vs bare floor (closed loop)",
                 _ratio(service.server_cpu_ms if service else None, bare.server_cpu_ms if bare else None), 2.5),
        _at_most(f"server CPU per click vs bare floor (Poisson, {result.plan.target_rate} req/s)",
                 _ratio(*(_poisson_cpu(result, c) for c in ("service", "bare"))), 2.5),
        _at_least("saturation vs bare floor", _ratio(rate(service), rate(bare)), 0.4),
        _at_least("saturation vs naive", _ratio(rate(service), rate(sat(result, "naive"))), 5.0),
        _at_least("saturation vs max_batch_size=1", _ratio(rate(service), rate(sat(result, "service-batch1"))), 2.0),
        _at_least("--workers 2 vs one worker (2 cores shared with wrk and Redis)",
                  _ratio(rate(sat(result, "service-workers2")), rate(service)), 1.3),
        _at_most("Redis round trips per click", service.redis_calls_per_click if service else None, 1.1, "{:.2f}"),
    ]
    target, seconds = result.plan.target_rate, result.plan.target_s
    light_floor, locust_floor = _light(result, "bare"), events(result, "bare", target)
    for config in ("service", "service-published"):
        light = _light(result, config)
        out += _latency_targets(
            f"{config} @ {target} req/s Poisson-like, light client (wrk), {seconds:.0f} s"
            + (f" (median of {result.plan.light_rounds} rounds)" if result.plan.light_rounds > 1 else ""),
            (light.wrk.p99_ms, light.wrk.p999_ms, light.wrk.non_2xx + light.wrk.socket_errors) if light else None,
            (light_floor.wrk.p99_ms, light_floor.wrk.p999_ms) if light_floor else None,
        )
    for config in ("service", "service-published"):
        locust = events(result, config, target)
        out += _latency_targets(
            f"{config} @ {target} req/s Poisson, Locust, {seconds:.0f} s",
            (locust.p99_ms, locust.p999_ms, locust.failures) if locust else None,
            (locust_floor.p99_ms, locust_floor.p999_ms) if locust_floor else None,
        )
    ceiling = result.harness.achieved_qps if result.harness else None
    out.append(_at_least("harness: Locust's ceiling vs the service's saturation", _ratio(ceiling, rate(service)), 3.0))
    return out


def _latency_targets(label: str, measured: tuple[float, float, int] | None,
                     floor: tuple[float, float] | None) -> list[Target]:
    """p99 ≤ 25 ms, p99.9 ≤ 50 ms and no errors at the target rate; `floor`: the bare floor's p99, p99.9."""
    p99_floor = f" (bare floor: {floor[0]:.1f})" if floor else ""
    p999_floor = f" (bare floor: {floor[1]:.1f})" if floor else ""
    return [
        _at_most(f"{label}: p99 ms", measured[0] if measured else None, 25.0, "{:.1f}" + p99_floor),
        _at_most(f"{label}: p99.9 ms", measured[1] if measured else None, 50.0, "{:.1f}" + p999_floor),
        _at_most(f"{label}: errors", float(measured[2]) if measured else None, 0.0, "{:.0f}"),
    ]


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
        f"## Saturation, closed loop (wrk, one thread, {64} connections, {plan.saturation_s:.0f} s each, "
        f"{plan.saturation_rounds} round{'s' if plan.saturation_rounds > 1 else ''})",
        "",
        "Each request is a distinct click (random session of 20,000, unique event_id): no answer comes from a "
        "cache. Rates and costs count 2xx answers only (a 503 is not served work). CPU is per answered request "
        "over the whole run; the server's includes its workers. \"Server cores "
        "used\" is CPU per click × rate: how much of the shared machine the server actually got. Redis round "
        "trips count the commands clients sent (MONITOR, less a script's own calls: a Lua script counts once), in "
        f"a {ROUND_TRIP_S:g} s closed-loop run of their own, since MONITOR costs Redis CPU. With `--workers` the "
        "batch and GC columns cover every worker (one /metrics across workers). With several rounds each row is "
        "the config's median round by server CPU per click, and the round trips are the first round's.",
        "",
        *_saturation_table(result),
        "",
        *saturation_rounds(result),
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
        *light_table(result),
        "",
        *stages(result),
        "",
        *tail(result),
        "",
        "## Where the service's CPU goes (py-spy, under the closed loop)",
        "",
        *_profile(result),
        "",
        "## How it was measured",
        "",
        "- `bare`: the same FastAPI app shape and schemas answering constants (loadtest/bare_app.py): the HTTP floor. "
        "`service*`: `session-intent serve` (one knob changed per variant, see bench/procs/servers.py). `naive`: torch "
        "eager on a batch of 1 per request and 8 separate Redis calls per click (loadtest/naive_app.py).",
        "- One real redis-server on a unix socket for all of them, flushed before every step; its CPU is shown "
        "apart from the server's.",
        "- wrk (loadtest/wrk_events.lua, one thread) is the light client: closed loop for saturation, and with an "
        "exponential think time per connection for the Poisson-like step; Locust (loadtest/locustfile.py, "
        "FastHttpUser) is the mission's mixed load with Poisson arrivals: each user draws exponential gaps at "
        f"{plan.user_rate:g} req/s, users = rate / {plan.user_rate:g}.",
        *(f"- Note: {note}" for note in result.notes),
        *outside_2xx(result),
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


def _saturation_table(result: BenchResult) -> list[str]:
    bare = sat(result, "bare")
    head = ["config", "2xx req/s", "× bare", "p50 ms", "p99 ms", "p99.9 ms", "non-2xx / socket errors",
            "server CPU ms/click", "× bare", "server cores used", "Redis CPU ms/click", "Redis round trips/click",
            "mean batch", "gen-2 GC pauses (mean ms)", "wrk CPU share"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in result.saturation:
        gen2 = s.gc.get("count_gen2")
        mean_pause = 1000 * s.gc.get("sum_gen2", 0.0) / gen2 if gen2 else 0.0
        gc_cell = "–" if gen2 is None else f"{gen2:.0f} ({mean_pause:.1f})"
        out.append("| " + " | ".join([
            s.config, f"{s.wrk.ok_rate:.0f}",
            num(_ratio(s.wrk.ok_rate, bare.wrk.ok_rate if bare else None), "{:.2f}"),
            f"{s.wrk.p50_ms:.1f}", f"{s.wrk.p99_ms:.1f}", f"{s.wrk.p999_ms:.1f}",
            f"{s.wrk.non_2xx} / {s.wrk.socket_errors}", f"{s.server_cpu_ms:.3f}",
            num(_ratio(s.server_cpu_ms, bare.server_cpu_ms if bare else None), "{:.2f}"),
            f"{s.server_cpu_ms * s.wrk.ok_rate / 1000:.2f}", f"{s.redis_cpu_ms:.3f}",
            "–" if s.config == "bare" else f"{s.redis_calls_per_click:.2f}", num(s.mean_batch), gc_cell,
            f"{s.wrk_cpu_share:.2f}",
        ]) + " |")
    return out


def _harness(result: BenchResult) -> list[str]:
    if result.harness is None:
        return ["## The harness", "", "Not measured: bare was not part of this run."]
    service = sat(result, "service")
    ceiling = result.harness.achieved_qps
    lines = ["## The harness", "",
             f"Locust closed loop (64 users, {result.plan.locust_processes} processes, no think time) against the "
             f"bare floor: **{ceiling:.0f} req/s**, Locust using {result.harness_cpu_share:.2f} CPU cores "
             f"(p50 {result.harness.p50_ms:.1f} ms)."]
    if service is not None:
        ratio = ceiling / service.wrk.ok_rate
        verdict = ("so Locust can offer more than the service can take, and its Poisson figures measure the service"
                   if ratio >= 3 else
                   "below the 3 × needed: **the harness was the limit**, so Locust's figures near and above the "
                   "service's saturation measure Locust as much as the service; the closed-loop step (wrk) is the "
                   "saturation figure to trust")
        lines.append(f"That is {ratio:.2f} × the service's saturation ({service.wrk.ok_rate:.0f} req/s under wrk): "
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
            num(run.server_cpu_ms if run else None, "{:.3f}"), num(run.locust_cpu_share if run else None, "{:.2f}"),
        ]) + " |")
    return out


def _profile(result: BenchResult) -> list[str]:
    if not result.profile:
        return ["Not profiled in this run."]
    out = ["Share of all on-CPU samples of the service process (main thread and engine thread), by the innermost "
           "stage of each stack (bench/service/profile.py).", "", "| stage | share |", "|---|---|"]
    out += [f"| {stage} | {share:.1%} |" for stage, share in result.profile.items()]
    return out


def write_csv(result: BenchResult, path: Path) -> None:
    head = ["step", "config", "target_qps", "route", "requests", "failures", "achieved_qps", "mean_ms", "p50_ms",
            "p99_ms", "p999_ms", "max_ms", "server_cpu_ms_per_req", "redis_cpu_ms_per_req",
            "redis_round_trips_per_click", "mean_batch", "generator_cpu_share"]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(head)
        # The medians as `saturation` (as a one-round run wrote them), then every round on its own row.
        medians = [("saturation", s) for s in result.saturation]
        rounds = [(f"saturation_round{s.round + 1}", s) for s in result.saturation_rounds]
        for step, s in medians + (rounds if len(result.saturation_rounds) > len(result.saturation) else []):
            errors = s.wrk.non_2xx + s.wrk.socket_errors
            writer.writerow([step, s.config, 0, EVENTS_ROUTE, s.wrk.requests, errors, _f(s.wrk.ok_rate),
                             _f(s.wrk.mean_ms), _f(s.wrk.p50_ms), _f(s.wrk.p99_ms), _f(s.wrk.p999_ms),
                             _f(s.wrk.max_ms), _f(s.server_cpu_ms), _f(s.redis_cpu_ms), _f(s.redis_calls_per_click),
                             _f(s.mean_batch), _f(s.wrk_cpu_share)])
        if result.harness is not None:
            h = result.harness
            writer.writerow(["harness", "bare", 0, h.route, h.requests, h.failures, _f(h.achieved_qps), _f(h.mean_ms),
                             _f(h.p50_ms), _f(h.p99_ms), _f(h.p999_ms), _f(h.max_ms), "", "", "", "",
                             _f(result.harness_cpu_share)])
        light_rows = [("poisson_light", run) for run in result.light]
        if len(result.light_rounds) > len(result.light):
            light_rows += [(f"poisson_light_round{run.round + 1}", run) for run in result.light_rounds]
        for step, light in light_rows:
            w = light.wrk
            writer.writerow([step, light.config, light.target_qps, EVENTS_ROUTE, w.requests,
                             w.non_2xx + w.socket_errors, _f(w.rate), _f(w.mean_ms), _f(w.p50_ms), _f(w.p99_ms),
                             _f(w.p999_ms), _f(w.max_ms), _f(light.server_cpu_ms), "", "", "",
                             _f(light.wrk_cpu_share)])
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
    fig, (left, right) = subplots(1, 2, figsize=(15, 5))
    rows = [r for r in result.routes if r.route == EVENTS_ROUTE]
    styles = {"p50_ms": ":", "p99_ms": "--", "p999_ms": "-"}
    for i, config in enumerate(sorted({r.config for r in rows})):
        mine = sorted((r for r in rows if r.config == config), key=lambda r: r.target_qps)
        for attr, style in styles.items():
            left.plot([r.target_qps for r in mine], [getattr(r, attr) for r in mine], linestyle=style, marker="o",
                      color=f"C{i}", label=f"{config} {attr.removesuffix('_ms').replace('p999', 'p99.9')}")
    for light in result.light:
        left.scatter([light.wrk.rate] * 2, [light.wrk.p99_ms, light.wrk.p999_ms], marker="x", s=40,
                     label=f"{light.config} p99, p99.9 (wrk)")
    left.axhline(25, color="grey", linestyle="--", linewidth=0.8, label="p99 target 25 ms")
    left.axhline(50, color="grey", linestyle="-", linewidth=0.8, label="p99.9 target 50 ms")
    left.set(title="POST events under Poisson arrivals (Locust lines, light client ×)", xlabel="offered req/s",
             ylabel="latency ms", yscale="log")
    left.grid(alpha=0.3)
    left.legend(fontsize=7, ncol=2)
    names = [s.config for s in result.saturation]
    right.barh(names, [s.wrk.ok_rate for s in result.saturation], color="C0")
    for y, s in enumerate(result.saturation):
        right.text(s.wrk.ok_rate, y, f"  {s.wrk.ok_rate:.0f} req/s, {s.server_cpu_ms:.2f} ms CPU/click",
                   va="center", fontsize=8)
    right.set(title="saturation, closed loop (wrk, 64 connections)", xlabel="req/s")
    right.invert_yaxis()
    right.set_xlim(0, max((s.wrk.ok_rate for s in result.saturation), default=1) * 1.6)
    fig.suptitle(f"session-intent service benchmark: {machine_line()} (shared machine)", fontsize=9)
    save_figure(fig, path)
