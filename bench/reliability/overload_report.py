"""docs/benchmarks/overload.{md,csv,png} from `session-intent bench overload`; never edited by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.reliability.overload import PHASES, OverloadResult
from bench.report.files import provenance_lines, write_rows_csv
from bench.report.plots import save_figure, subplots
from service.settings import Settings


def overload_rows(r: OverloadResult) -> list[dict[str, object]]:
    rows = []
    for phase in PHASES:
        record, cpu = r.phases[phase], r.cpu[phase]
        accepted = record.latency_ms(200)
        rows.append({
            "phase": phase, "target_rate": round(r.rates[phase]), "offered_rate": round(r.offered_rate(phase)),
            "statuses": " ".join(f"{s}:{n}" for s, n in record.statuses().items()),
            "accepted_per_s": round(accepted.size / r.plan.phase_s),
            "p50_200_ms": round(float(np.percentile(accepted, 50)), 1) if accepted.size else "nan",
            "p99_200_ms": round(r.p99_ms(phase, 200), 1), "p99_503_ms": round(r.p99_ms(phase, 503), 1),
            "p99_504_ms": round(r.p99_ms(phase, 504), 1), "max_rss_mb": round(r.max_sample(phase, "rss_mb"), 1),
            "max_queue_depth": r.max_sample(phase, "queue_depth"),
            "service_cores": round(cpu.service_s / cpu.wall_s, 2),
            "service_us_per_click": round(r.phase_cpu_us(phase)),
            "redis_cores": round(cpu.redis_s / cpu.wall_s, 2),
            "generator_cores": round(cpu.generator_s / cpu.wall_s, 2),
            "generator_us_per_click": round(1e6 * cpu.generator_s / max(len(record.clicks), 1)),
        })
    return rows


def write_overload_report(r: OverloadResult, out_dir: Path, command: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = overload_rows(r)
    csv_path = write_rows_csv(out_dir / "overload.csv", rows)
    png_path = out_dir / "overload.png"
    _plot(r, png_path)
    ratio = r.p99_ms("overload", 200) / r.p99_ms("nominal", 200)
    recovery_first_s = [c.status for c in r.phases["recovery"].clicks if c.t < 1.0]
    sat, plan = r.saturation, r.plan
    retry_after = sum(c.retry_after is not None for c in r.phases["overload"].clicks if c.status == 503)
    refused = sum(c.status == 503 for c in r.phases["overload"].clicks)
    lines = [
        f"# Overload: Poisson load at {plan.overload_factor:g} × the measured saturation rate", "",
        *provenance_lines(command, "the service, redis-server and the load generator share them, so the saturation "
                          "rate is this machine's, not a replica's on its own cores."),
        f"**Saturation S:** {sat.rate:.0f} clicks/s answered 200 by `wrk` (closed loop, {plan.concurrency} "
        f"connections, {plan.saturation_s:g} s; {sat.non_2xx} of {sat.requests} answers not 200; wrk's own CPU "
        f"{sat.cpu.generator_s / sat.cpu.wall_s:.2f} cores; the service's {sat.cpu.service_s / sat.cpu.wall_s:.2f}). "
        f"Then three Poisson phases of {plan.phase_s:g} s back to back, from `bench/load/open_loop.py` "
        f"({plan.connections} keep-alive connections; latency from each click's intended send time; status -1: not "
        f"sent, more than {plan.max_pending} clicks waited for a connection). Admission: {_admission(r)}.", "",
        "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0]),
        *("| " + " | ".join(str(v) for v in row.values()) + " |" for row in rows), "",
        f"- Accepted p99 under overload / at nominal: **{ratio:.2f} ×** (target ≤ 2).",
        f"- Refusals under overload: {refused}, {retry_after} with `Retry-After`; their p99 "
        f"**{r.p99_ms('overload', 503):.1f} ms**.",
        f"- First second of the recovery phase: {sum(s == 200 for s in recovery_first_s)} of "
        f"{len(recovery_first_s)} clicks answered 200.",
        f"- Tracebacks in the service log: {r.tracebacks}.",
        *_cost_lines(r), "",
        f"![overload]({png_path.name})", "",
    ]
    md_path = out_dir / "overload.md"
    md_path.write_text("\n".join(lines))
    return [md_path, csv_path, png_path]


def _admission(r: OverloadResult) -> str:
    """The admission settings of the service under test: the defaults, unless the run overrode them."""
    fields = Settings.model_fields
    values = {f"SI_{name.upper()}": f"{fields[name].default:g}" for name in ("admission_target_ms", "max_in_flight")}
    values.update(dict(r.plan.service_env))
    return ", ".join(f"`{name}={value}`" for name, value in values.items())


def _cost_lines(r: OverloadResult) -> list[str]:
    """What an accepted and a refused click cost the service, and what that leaves for accepted work at f × S."""
    c_accept = r.accept_cpu_us()
    lines = [f"- Service CPU per click answered 200 at saturation (c_accept): **{c_accept:.0f} µs**."]
    if r.shed_cost is None:
        return lines
    c_reject, f = r.shed_cost.us_per_request, r.plan.overload_factor
    # CPU at f × S with a accepted: a·c_accept + (f·S − a)·c_reject, held to S·c_accept (saturation's) gives
    # a / S = (c_accept − f·c_reject) / (c_accept − c_reject).
    share = (c_accept - f * c_reject) / (c_accept - c_reject)
    lines.append(
        f"- Service CPU per refused request (c_reject, measured alone: `SI_MAX_IN_FLIGHT=1`, wrk "
        f"{r.plan.shed_cost_s:g} s, {r.shed_cost.refused} of {r.shed_cost.requests} refused): **{c_reject:.0f} µs**, "
        f"{c_reject / c_accept:.2f} × c_accept. With the service's CPU what it was at saturation, offered {f:g} × S "
        f"leaves room to accept at most **{share:.0%} of S**: (c_accept − {f:g}·c_reject) / (c_accept − c_reject)."
    )
    return lines


def _plot(r: OverloadResult, path: Path) -> None:
    fig, (top, bottom) = subplots(2, 1, figsize=(9, 5.5), sharex=True)
    for i, phase in enumerate(PHASES):
        offset = i * r.plan.phase_s
        edges = np.arange(0, r.plan.phase_s + 1, 1.0)
        clicks = r.phases[phase].clicks
        for status, color in ((200, "tab:green"), (503, "tab:orange"), (504, "tab:purple"), (-1, "tab:gray")):
            counts, _ = np.histogram([c.t for c in clicks if c.status == status], bins=edges)
            top.step(offset + edges[:-1], counts, where="post", color=color, label=f"{status}/s" if i == 0 else None)
        p99 = [np.percentile(ms, 99) if (ms := [c.latency_s * 1000 for c in clicks
                                                if c.status == 200 and s <= c.t < s + 1]) else np.nan
               for s in edges[:-1]]
        bottom.step(offset + edges[:-1], p99, where="post", color="tab:green", label="p99 of 200s" if i == 0 else None)
        for ax in (top, bottom):
            ax.axvline(offset, color="black", lw=0.5)
        top.text(offset + 0.3, 0, phase, fontsize=8, va="bottom")
    top.set_ylabel("clicks/s")
    top.legend(loc="upper right", fontsize=8)
    bottom.set_ylabel("ms")
    bottom.set_xlabel("seconds since the nominal phase started")
    bottom.legend(loc="upper right", fontsize=8)
    save_figure(fig, path)
