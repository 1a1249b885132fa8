"""Sections of docs/benchmarks/service.md that read the servers' own side: the light-client Poisson table,
where a click's time goes inside the service, and the GC evidence; plus the lookups the report shares."""

from __future__ import annotations

from bench.load.locust import EVENTS_ROUTE, RouteStats
from bench.service.run import BenchResult, Saturation


def sat(result: BenchResult, config: str) -> Saturation | None:
    return next((s for s in result.saturation if s.config == config), None)


def events(result: BenchResult, config: str, rate: int) -> RouteStats | None:
    return next((r for r in result.routes if r.config == config and r.target_qps == rate and r.route == EVENTS_ROUTE),
                None)


def num(value: float | None, fmt: str = "{:.1f}") -> str:
    return "–" if value is None else fmt.format(value)


def light_table(result: BenchResult) -> list[str]:
    """The target rate from wrk with an exponential think time per connection: the server's tail, not Locust's."""
    if not result.light:
        return []
    plan = result.plan
    rounds = plan.light_rounds
    split = (f", in {rounds} interleaved rounds of {plan.target_s / rounds:.0f} s; each row is the config's "
             "median-p99 round" if rounds > 1 else "")
    out = [f"## Poisson-like arrivals from a light client (wrk, one thread, {plan.target_rate} req/s, "
           f"{plan.target_s:.0f} s{split})", "",
           f"Each of C connections waits an exponential think time (mean {plan.think_ms:.0f} ms) before every click, "
           f"with C = rate × (think + 3 ms): a superposition of C renewal processes, Poisson-like while the "
           "latency is small against the think time. wrk's latencies are exact (microseconds) and cover every "
           "request of the run; wrk spends a few percent of a core, so the tail here is the server's.", "",
           "| config | connections | achieved req/s | p50 ms | p99 ms | p99.9 ms | max ms | non-2xx / socket errors | "
           "server CPU ms/req | wrk CPU share | p99 ms by round (in the order run) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in result.light:
        w = run.wrk
        by_round = ", ".join(f"{r.wrk.p99_ms:.1f}" for r in result.light_rounds if r.config == run.config)
        out.append(f"| {run.config} | {run.connections} | {w.rate:.0f} | {w.p50_ms:.2f} | {w.p99_ms:.2f} | "
                   f"{w.p999_ms:.2f} | {w.max_ms:.1f} | {w.non_2xx} / {w.socket_errors} | {run.server_cpu_ms:.3f} | "
                   f"{run.wrk_cpu_share:.3f} | {by_round or '–'} |")
    return out


def stages(result: BenchResult) -> list[str]:
    """Where a click's latency goes inside the server, from its own stage histograms, under Poisson arrivals."""
    runs = [(p.config, p.target_qps, "Locust", p.stage_ms) for p in result.poisson if p.stage_ms]
    runs += [(p.config, p.target_qps, "wrk", p.stage_ms) for p in result.light if p.stage_ms]
    if not runs:
        return []
    out = ["## Where a click's time goes inside the service (Poisson runs)", "",
           "Mean ms per click of each stage, from the service's `si_stage_seconds` over the run: the Redis call "
           "(append and read the window), the wait in the batcher's queue (batching delay and the hand-off to the "
           "engine thread), one engine batch (encoding and the model), and the whole click inside the handler. "
           "What the client sees beyond `total` is HTTP, the event loop and the machine's scheduling.", "",
           "| config | offered req/s | client | redis | queue | infer (per batch) | total |",
           "|---|---|---|---|---|---|---|"]
    for config, rate, client, stage_ms in sorted(runs, key=lambda r: (r[1], r[0], r[2])):
        cells = [num(stage_ms.get(k), "{:.2f}") for k in ("redis", "queue", "infer", "total")]
        out.append(f"| {config} | {rate} | {client} | " + " | ".join(cells) + " |")
    return out


def tail(result: BenchResult) -> list[str]:
    """The GC evidence: the same service with its GC settings and with CPython's defaults, side by side."""
    tuned, default = sat(result, "service"), sat(result, "service-gc-default")
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
        lines.append(f"| {s.config} | {n2:.0f} | {mean} | {n_young:.0f} ({young:.0f}) | {s.wrk.ok_rate:.0f} |")
    target = result.plan.target_rate
    a, b = events(result, "service", target), events(result, "service-gc-default", target)
    if a and b:
        lines += ["", f"Under Poisson arrivals at {target} req/s: p99.9 {a.p999_ms:.1f} ms with the service's GC "
                      f"settings, {b.p999_ms:.1f} ms with CPython's defaults "
                      f"(p99 {a.p99_ms:.1f} vs {b.p99_ms:.1f} ms)."]
    return lines


def saturation_rounds(result: BenchResult) -> list[str]:
    """Every closed-loop round: the spread behind the medians above, and the machine's speed at each run."""
    runs = result.saturation_rounds
    if len({s.round for s in runs}) < 2:
        return []
    bare = {s.round: s for s in runs if s.config == "bare"}
    out = [f"### Round by round ({result.plan.saturation_rounds} rounds, configs interleaved, order rotated)", "",
           "The table above shows each config's median round by server CPU per click. \"× bare\" here divides by "
           "the bare floor of the same round. \"Probe\" is the CPU ms of one fixed piece of Python work timed just "
           "before the run (bench/procs/machine_speed.py): on this shared virtual machine a CPU second is not a "
           "fixed amount of work, so where the probe and every config's CPU per click rise together, the machine "
           "slowed, not the code. \"Steal\" is the hypervisor's share of the machine's CPU time over the run. "
           "\"Preempted\" is the server's involuntary context switches per click: each one sends it back to caches "
           "that other work has used, so more of them cost more CPU per click.", "",
           "| round | order | config | 2xx req/s | server CPU ms/click | × bare (same round) | Redis CPU ms/click | "
           "probe ms | steal | preempted per click | load (1 min) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in sorted(runs, key=lambda s: (s.round, s.position)):
        floor = bare.get(s.round)
        ratio = s.server_cpu_ms / floor.server_cpu_ms if floor and floor.server_cpu_ms else None
        out.append(f"| {s.round + 1} | {s.position + 1} | {s.config} | {s.wrk.ok_rate:.0f} | {s.server_cpu_ms:.3f} | "
                   f"{num(ratio, '{:.2f}')} | {s.redis_cpu_ms:.3f} | {s.probe_ms:.1f} | {s.steal_share:.1%} | "
                   f"{s.preempted:.3f} | {s.load_1m:.1f} |")
    out += ["", "| config | server CPU ms/click, min – max over rounds | × bare (same round), min – max |",
            "|---|---|---|"]
    for name in dict.fromkeys(s.config for s in runs):
        mine = [s for s in runs if s.config == name]
        cpu = [s.server_cpu_ms for s in mine]
        ratios = [s.server_cpu_ms / bare[s.round].server_cpu_ms for s in mine
                  if s.round in bare and bare[s.round].server_cpu_ms]
        spread = f"{min(ratios):.2f} – {max(ratios):.2f}" if ratios else "–"
        out.append(f"| {name} | {min(cpu):.3f} – {max(cpu):.3f} | {spread} |")
    return out


def outside_2xx(result: BenchResult) -> list[str]:
    """Which statuses the wrk runs got outside 2xx (wrk's own count says only how many answered >= 400)."""
    runs = [("closed loop", s.config, s.round, s.wrk) for s in result.saturation_rounds]
    runs += [("light client", p.config, i, p.wrk) for i, p in enumerate(result.light_rounds)]
    return [f"- Answers outside 2xx, {step}, {config} (run {i + 1}): "
            + ", ".join(f"{n} × {status}" for status, n in sorted(wrk.statuses.items()))
            for step, config, i, wrk in runs if wrk.statuses]  # fmt: skip
