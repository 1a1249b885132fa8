"""The report of `session-intent bench cpu-ab`: docs/benchmarks/<name>.md, .csv (one row per run) and .png.

The comparison is the ratio of each configuration's median CPU per click to the first configuration's. Its
interval comes from the rounds, which pair the configurations (they ran back to back): the lowest and highest
per-round ratio, and, from 3 rounds up, a 95 % bootstrap interval that resamples whole rounds.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.report.files import provenance_lines, write_rows_csv
from bench.report.plots import save_figure, subplots
from bench.service.cpu_ab import AbConfig, AbResult, AbRun

BOOTSTRAP_RESAMPLES = 4000
BOOTSTRAP_MIN_ROUNDS = 3


@dataclass(frozen=True)
class CpuComparison:
    """One configuration's server CPU per click against the first configuration's."""

    config: AbConfig
    values: list[float]  # ms per click, round by round
    median: float
    ratio: float  # median / the first configuration's median
    paired: list[float]  # this round's value / the first configuration's in the same round
    bootstrap: tuple[float, float] | None  # 95 % interval of the ratio of medians, resampling rounds


def runs_of(result: AbResult, name: str) -> list[AbRun]:
    return sorted((run for run in result.runs if run.config == name), key=lambda run: run.round)


def compare_cpu(result: AbResult, seed: int = 0) -> list[CpuComparison]:
    first = [run.server_cpu_ms for run in runs_of(result, result.plan.configs[0].name)]
    out = []
    for config in result.plan.configs:
        values = [run.server_cpu_ms for run in runs_of(result, config.name)]
        out.append(CpuComparison(
            config=config, values=values, median=statistics.median(values),
            ratio=statistics.median(values) / statistics.median(first),
            paired=[value / base for value, base in zip(values, first, strict=True)],
            bootstrap=_bootstrap(values, first, seed) if len(values) >= BOOTSTRAP_MIN_ROUNDS else None,
        ))
    return out


def _bootstrap(values: list[float], first: list[float], seed: int) -> tuple[float, float]:
    """Rounds drawn with replacement, the same draws for both sides (a round's neighbours' load is shared)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(values), np.asarray(first)
    draws = rng.integers(0, len(a), size=(BOOTSTRAP_RESAMPLES, len(a)))
    ratios = np.median(a[draws], axis=1) / np.median(b[draws], axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def write_report(result: AbResult, out_dir: Path, name: str, command: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, csv, png = (out_dir / f"{name}.{ext}" for ext in ("md", "csv", "png"))
    md.write_text(markdown(result, name, command, png.name))
    write_rows_csv(csv, [_csv_row(result, run) for run in result.runs])
    write_plot(result, png)
    return [md, csv, png]


def markdown(result: AbResult, name: str, command: str, png_name: str) -> str:
    plan = result.plan
    machine = result.machine
    before, after = (" / ".join(f"{v:.2f}" for v in load) for load in (result.load_before, result.load_after))
    lines = [
        f"# Server CPU per click, side by side: {name}", "",
        *provenance_lines(command),
        f"**CPU:** {machine['cpu']}, {machine['cores']} logical cores, ISA: {machine['isa']}. **Load average** "
        f"before: {before}; after: {after} (shared with other work unless said otherwise).", "",
        f"{plan.rounds} interleaved round(s), the order rotated each round; each run a fresh redis-server (unix "
        f"socket) and `session-intent serve` at its defaults (logs at INFO, access log off), "
        f"{plan.warmup_s:g} s of unmeasured warm-up, then {plan.seconds:g} s of closed-loop wrk over "
        f"{plan.connections} connections: the server's user + system CPU (workers included) per answered click. "
        f"Clicks spread over {plan.sessions:,} sessions and {'carry' if plan.ids else 'carry no'} "
        f"user_id/item_id/category_id (`{plan.script.relative_to(plan.script.parents[1])}`"
        f"{f', {max(1, plan.sessions // 10):,} shoppers' if plan.ids else ''}). "
        f"Written in {result.seconds / 60:.1f} min.", "",
        "## Configurations", "",
        "| config | source tree | environment overrides | model (/readyz) |", "|---|---|---|---|",
        *(f"| {c.name} | {c.tree} | {_env_text(c)} | {result.models.get(c.name, '–')} |" for c in plan.configs), "",
        *([f"`+published`: the published-size stand-in of `bench service` (bench/service/models.py), built for "
           f"this run: {result.published_source}.", ""] if result.published_source else []),
        f"![CPU per click by round]({png_name})", "",
        *_cpu_table(result), "",
        *_redis_table(result), "",
        *_poisson_table(result),
        *_profile_table(result),
    ]
    if result.otlp_posts:
        lines += [f"OTLP exports received by the benchmark's sink: {result.otlp_posts}.", ""]
    if result.notes:
        lines += ["## Notes", "", *(f"- {note}" for note in result.notes), ""]
    return "\n".join(lines).rstrip() + "\n"


def _cpu_table(result: AbResult) -> list[str]:
    first = result.plan.configs[0].name
    lines = ["## Server CPU per answered click", "",
             f"| config | ms per click, round by round | median | vs {first} (medians) | per-round ratio, min–max "
             f"| bootstrap 95 % (rounds) |", "|---|---|---|---|---|---|"]
    for c in compare_cpu(result):
        boot = f"{c.bootstrap[0]:.3f}–{c.bootstrap[1]:.3f}" if c.bootstrap else "– (under 3 rounds)"
        lines.append(f"| {c.config.name} | {', '.join(f'{v:.3f}' for v in c.values)} | {c.median:.3f} | "
                     f"{c.ratio:.3f} ({100 * (c.ratio - 1):+.1f} %) | {min(c.paired):.3f}–{max(c.paired):.3f} | "
                     f"{boot} |")
    return lines


def _redis_table(result: AbResult) -> list[str]:
    trips_note = (f"Round trips: commands clients sent per answered click (a script counts once), under MONITOR in a "
             f"{result.plan.round_trip_s:g} s window of their own after the measured one; " if result.plan.round_trip_s
             else "Round trips: not counted (`--round-trip-s 0`); ")
    lines = ["## Redis, throughput and state (medians over rounds)", "",
             f"{trips_note}keys and memory at the end of the measured window.", "",
             "| config | Redis CPU ms per click | round trips per click | commands per click | Redis keys "
             "| shopper histories | Redis MB | clicks/s | closed-loop p99 ms | non-2xx |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for config in result.plan.configs:
        runs = runs_of(result, config.name)
        trips = [r.round_trips for r in runs if r.round_trips is not None]
        commands = ", ".join(f"{name} {n:.3f}" for name, n in runs[0].commands.items()) or "–"
        lines.append(
            f"| {config.name} | {_median(r.redis_cpu_ms for r in runs):.3f} | "
            f"{f'{statistics.median(trips):.3f}' if trips else '–'} | {commands} | "
            f"{_median(r.redis_keys for r in runs):,.0f} | {_median(r.shoppers for r in runs):,.0f} | "
            f"{_median(r.redis_mb for r in runs):.1f} | "
            f"{_median(r.clicks_per_s for r in runs):.0f} | {_median(r.closed_p99_ms for r in runs):.1f} | "
            f"{sum(r.non_2xx for r in runs)} |")
    return lines


def _poisson_table(result: AbResult) -> list[str]:
    plan = result.plan
    if plan.poisson_s <= 0:
        return []
    lines = ["## Poisson-like arrivals", "",
             f"{plan.rate} clicks/s offered for {plan.poisson_s:g} s per run: wrk connections each waiting an "
             f"exponential think time (mean {plan.think_ms:g} ms) before a click.", "",
             "| config | achieved clicks/s (median) | p99 ms, round by round | p99 median | p99.9 median |",
             "|---|---|---|---|---|"]
    for config in plan.configs:
        runs = runs_of(result, config.name)
        p99 = [r.poisson_p99_ms or 0.0 for r in runs]
        lines.append(f"| {config.name} | {_median(r.poisson_rate or 0.0 for r in runs):.0f} | "
                     f"{', '.join(f'{v:.1f}' for v in p99)} | {statistics.median(p99):.1f} | "
                     f"{_median(r.poisson_p999_ms or 0.0 for r in runs):.1f} |")
    return [*lines, ""]


def _profile_table(result: AbResult) -> list[str]:
    """Share of py-spy samples by stage, median over rounds; a stage's ms per click is that share of the
    config's median CPU per click (py-spy samples a thread that waits to run as well: shares, not times)."""
    plan = result.plan
    if plan.profile_s <= 0:
        return []
    names = [c.name for c in plan.configs]
    shares = {name: [run.profile for run in runs_of(result, name) if run.profile] for name in names}
    stages = sorted({stage for runs in shares.values() for run in runs for stage in run},
                    key=lambda stage: -max((_median(run.get(stage, 0.0) for run in runs) if runs else 0.0)
                                           for runs in shares.values()))
    cpu = {c.config.name: c.median for c in compare_cpu(result)}
    lines = ["## Where the CPU goes: py-spy share of samples by stage", "",
             f"`py-spy record --rate 200 --threads --nonblocking` for {plan.profile_s:g} s of the same closed loop, "
             "after the measured window; each sample counts toward the innermost frame that belongs to a stage "
             "(bench/service/profile.py). Median share over rounds, then that share of the config's median CPU "
             "per click in µs.", "",
             "| stage | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for stage in stages:
        cells = []
        for name in names:
            runs = shares[name]
            share = _median(run.get(stage, 0.0) for run in runs) if runs else 0.0
            cells.append(f"{100 * share:.1f} % ({1000 * share * cpu[name]:.0f} µs)" if runs else "–")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def _env_text(config: AbConfig) -> str:
    parts = (["`+published`"] if config.published else []) + [f"`{k}={v}`" for k, v in config.env.items()]
    return ", ".join(parts) or "–"


def _csv_row(result: AbResult, run: AbRun) -> dict[str, object]:
    config = next(c for c in result.plan.configs if c.name == run.config)
    return {
        "config": run.config, "round": run.round + 1, "position": run.position + 1, "tree": config.tree,
        "env": json.dumps(config.env, sort_keys=True), "ids": result.plan.ids, "clicks": run.clicks,
        "non_2xx": run.non_2xx, "statuses": json.dumps(run.statuses, sort_keys=True),
        "clicks_per_s": f"{run.clicks_per_s:.1f}", "server_cpu_ms": f"{run.server_cpu_ms:.4f}",
        "redis_cpu_ms": f"{run.redis_cpu_ms:.4f}", "closed_p99_ms": f"{run.closed_p99_ms:.2f}",
        "round_trips_per_click": "" if run.round_trips is None else f"{run.round_trips:.4f}",
        "commands_per_click": json.dumps({k: round(v, 4) for k, v in run.commands.items()}),
        "redis_keys": run.redis_keys, "shoppers": run.shoppers, "redis_mb": f"{run.redis_mb:.2f}",
        "poisson_rate": "" if run.poisson_rate is None else f"{run.poisson_rate:.1f}",
        "poisson_p99_ms": "" if run.poisson_p99_ms is None else f"{run.poisson_p99_ms:.2f}",
        "poisson_p999_ms": "" if run.poisson_p999_ms is None else f"{run.poisson_p999_ms:.2f}",
        "profile": json.dumps({k: round(v, 4) for k, v in run.profile.items()}),
        "cpu": result.machine["cpu"], "isa": result.machine["isa"],
    }


def write_plot(result: AbResult, path: Path) -> None:
    comparisons = compare_cpu(result)
    fig, (left, right) = subplots(1, 2, figsize=(12, 1.6 + 0.6 * len(comparisons)))
    for y, c in enumerate(comparisons):
        left.scatter(c.values, [y] * len(c.values), color=f"C{y}", alpha=0.7)
        left.plot([c.median] * 2, [y - 0.3, y + 0.3], color=f"C{y}", linewidth=2)
        low, high = c.bootstrap or (min(c.paired), max(c.paired))
        right.errorbar([c.ratio], [y], xerr=[[c.ratio - min(low, c.ratio)], [max(high, c.ratio) - c.ratio]],
                       fmt="o", color=f"C{y}", capsize=4)
    names = [c.config.name for c in comparisons]
    left.set(title="server CPU ms per answered click (dots: rounds, bar: median)", yticks=range(len(names)),
             yticklabels=names)
    right.axvline(1.0, color="grey", linewidth=0.8)
    right.set(title=f"median ratio to {names[0]} (bootstrap 95 % or per-round min–max)", yticks=range(len(names)),
              yticklabels=names)
    for axis in (left, right):
        axis.invert_yaxis()
        axis.grid(alpha=0.3)
    fig.suptitle(f"{result.machine['cpu']}, {result.machine['cores']} logical cores", fontsize=9)
    save_figure(fig, path)
