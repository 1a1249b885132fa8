"""docs/benchmarks/service.{csv,md,png} from a `BenchResult`: tables, ratios vs the bare floor, the anchors."""

from __future__ import annotations

import csv
from dataclasses import asdict, fields
from pathlib import Path

from bench.service_run import ALL_ROUTES, BenchResult, RouteStats, RunCosts
from model.artifacts import REPO_ROOT
from model.card import ModelCard
from model.export.machine import machine_line

EVENTS_ROUTE = "POST /v1/sessions/{id}/events"
# The published serving figures (docs/architecture.md §10): another shop, stack and machine, printed beside ours.
PUBLISHED_MEAN_MS = 58.0
PUBLISHED_QPS = 620
PUBLISHED_HARDWARE = "NVIDIA V100"
PUBLISHED_INFER_GPU_MS = 73.0
PUBLISHED_INFER_CPU_MS = 262.0


def write_report(result: BenchResult, out_dir: Path, command: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "service.csv", out_dir / "service.md", out_dir / "service.png"]
    write_csv(result, paths[0])
    paths[1].write_text(markdown(result, command))
    write_plot(result, paths[2])
    return paths


def write_csv(result: BenchResult, path: Path) -> None:
    costs = {(c.config, c.target_qps): c for c in result.costs}
    cost_fields = [f.name for f in fields(RunCosts) if f.name not in ("config", "target_qps")]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([f.name for f in fields(RouteStats)] + cost_fields)
        for row in result.routes:
            cost = asdict(costs[(row.config, row.target_qps)])
            writer.writerow([_cell(v) for v in asdict(row).values()] + [_cell(cost[name]) for name in cost_fields])


def _cell(value: object) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _route_rows(result: BenchResult, route: str) -> list[RouteStats]:
    return [r for r in result.routes if r.route == route]


def markdown(result: BenchResult, command: str) -> str:
    plan = result.plan
    load = " / ".join(f"{x:.2f}" for x in result.load_average)
    lines = [
        "# Service benchmark: HTTP floor vs full service vs naive baseline",
        "",
        f"Written by `{command}` at {result.started}. Regenerate with the same command; never edit by hand.",
        "",
        f"**Machine:** {machine_line()}. The servers, Redis and the Locust load generator all share these cores "
        f"(load average when the run started: {load}; niceness {result.niceness}), so every figure here is a lower "
        "bound on what a replica does on its own cores.",
        "",
        f"**Published anchor** (another shop, stack and machine): {PUBLISHED_MEAN_MS:.0f} ms average end to end at "
        f"{PUBLISHED_QPS} QPS on an {PUBLISHED_HARDWARE}; unoptimised inference {PUBLISHED_INFER_GPU_MS:.0f} ms on "
        f"GPU and {PUBLISHED_INFER_CPU_MS:.0f} ms on CPU.",
        "",
        _model_line(result.plan.model_dir, result.service_engine),
        "",
        _ours_line(result),
        "",
        "## POST /v1/sessions/{id}/events: the storefront's click",
        "",
        *_latency_table(_route_rows(result, EVENTS_ROUTE)),
        "",
        "## Ratios vs the bare floor (same target rate, POST events)",
        "",
        *_ratio_table(result),
        "",
        "## Cost per request",
        "",
        "CPU seconds over the whole run divided by the requests sent. Locust CPU share is its CPU time over the "
        "wall time: near 1.0 the load generator, not the server, set the pace. The load average, taken after "
        "each run, shows how busy the shared machine was.",
        "",
        *_cost_table(result.costs),
        "",
        "## Every route",
        "",
        *_latency_table([r for r in result.routes if r.route != EVENTS_ROUTE], with_route=True),
        "",
        "## How it was measured",
        "",
        f"- Each run: headless Locust, {plan.duration_s:.0f} s, `FastHttpUser`s pacing themselves at "
        f"{plan.user_rate:g} requests/s each (users = target / {plan.user_rate:g}); the first {plan.warmup_s:g} s "
        "are dropped. Percentiles are exact, from every request's latency as Locust timed it.",
        "- Users: storefront (weight 10) replays synthetic sessions (`model.data.synth`) click by click, 1 % retried "
        "with the same `event_id`; coupon engine (weight 1) reads one recent session's risk or the at-risk list.",
        "- `bare`: the same FastAPI routes and schemas answering constants (loadtest/bare_app.py). `service`: "
        "`session-intent serve` with its defaults (one uvicorn worker, micro-batching, one Lua call per click). "
        "`naive`: torch eager on a batch of 1 per request and 8 separate Redis calls per click "
        "(loadtest/naive_app.py). All on 127.0.0.1, one real redis-server for the two that need it, flushed "
        "before every run.",
        "- Arrival is paced per user, not open-loop: when a server saturates, its users wait for answers and the "
        "achieved QPS falls below the target. Read latency at a rate only where achieved ≈ target.",
        "",
    ]
    return "\n".join(lines)


def _model_line(model_dir: Path, service_engine: str) -> str:
    """Which model the service and naive served: the card's name and architecture, and the files present."""
    card = ModelCard.load(model_dir)
    onnx = sorted(p.name for p in model_dir.glob("*.onnx"))
    trained_on = card.data.get("name", "unknown data")
    return (f"**Model:** `{card.name}` ({card.arch}, window {card.window}, trained on {trained_on}) from "
            f"`{_shown(model_dir)}`; ONNX files: {', '.join(onnx) or 'none'}. The service ran "
            f"{service_engine or '(not run)'}; naive runs `model.pt` in torch eager.")


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _ours_line(result: BenchResult) -> str:
    rows = [r for r in _route_rows(result, EVENTS_ROUTE) if r.config == "service"]
    if not rows:
        return "**Ours:** the full service was not part of this run."
    top = max(rows, key=lambda r: r.target_qps)
    return (f"**Ours, full service at {top.target_qps} QPS target:** {top.achieved_qps:.0f} QPS achieved, "
            f"{top.mean_ms:.1f} ms mean, p99 {top.p99_ms:.1f} ms, {top.failures} failures (POST events, server time "
            "plus loopback HTTP, measured by the client).")


def _latency_table(rows: list[RouteStats], with_route: bool = False) -> list[str]:
    head = ["config", "target QPS", "achieved QPS", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms", "failures"]
    if with_route:
        head.insert(2, "route")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r.target_qps, r.config, r.route)):
        cells = [r.config, str(r.target_qps), f"{r.achieved_qps:.0f}", f"{r.mean_ms:.2f}", f"{r.p50_ms:.2f}",
                 f"{r.p95_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.max_ms:.1f}", f"{r.failures} / {r.requests}"]
        if with_route:
            cells.insert(2, "all" if r.route == ALL_ROUTES else r.route)
        out.append("| " + " | ".join(cells) + " |")
    return out


def _ratio_table(result: BenchResult) -> list[str]:
    rows = _route_rows(result, EVENTS_ROUTE)
    floor = {r.target_qps: r for r in rows if r.config == "bare"}
    out = ["| config | target QPS | mean × | p50 × | p99 × | achieved QPS × |", "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r.target_qps, r.config)):
        base = floor.get(r.target_qps)
        if base is None or r.config == "bare":
            continue
        out.append(f"| {r.config} | {r.target_qps} | {r.mean_ms / base.mean_ms:.1f} | {r.p50_ms / base.p50_ms:.1f} "
                   f"| {r.p99_ms / base.p99_ms:.1f} | {r.achieved_qps / base.achieved_qps:.2f} |")
    if len(out) == 2:
        out.append("| (nothing to compare: this run lacks bare or the others) | | | | | |")
    return out


def _cost_table(costs: list[RunCosts]) -> list[str]:
    head = ["config", "target QPS", "server CPU ms/req", "Redis CPU ms/req", "mean batch", "shed", "timeouts",
            "Locust CPU share", "load avg (1 min)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in sorted(costs, key=lambda c: (c.target_qps, c.config)):
        out.append(f"| {c.config} | {c.target_qps} | {c.server_cpu_ms_per_req:.2f} | {c.redis_cpu_ms_per_req:.3f} "
                   f"| {_num(c.mean_batch_size)} | {_num(c.shed, 0)} | {_num(c.timeouts, 0)} "
                   f"| {c.locust_cpu_share:.2f} | {c.load_1m:.2f} |")
    return out


def write_plot(result: BenchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _route_rows(result, EVENTS_ROUTE)
    totals = _route_rows(result, ALL_ROUTES)
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.5))
    panels = (
        ("POST events: mean latency (ms)", rows, lambda r: r.mean_ms),
        ("POST events: p50 latency (ms)", rows, lambda r: r.p50_ms),
        ("POST events: p99 latency (ms)", rows, lambda r: r.p99_ms),
        ("all requests: achieved QPS", totals, lambda r: r.achieved_qps),
    )
    for ax, (title, source, value) in zip(axes, panels, strict=True):
        for config in result.plan.configs:
            mine = sorted((r for r in source if r.config == config), key=lambda r: r.target_qps)
            ax.plot([r.target_qps for r in mine], [value(r) for r in mine], marker="o", label=config)
        ax.set_title(title)
        ax.set_xlabel("target QPS")
        ax.grid(alpha=0.3)
    for ax in axes[:3]:
        ax.set_yscale("log")
    axes[0].axhline(PUBLISHED_MEAN_MS, color="grey", linestyle="--",
                    label=f"published mean, {PUBLISHED_QPS} QPS, {PUBLISHED_HARDWARE}")
    axes[2].axhline(PUBLISHED_MEAN_MS, color="grey", linestyle="--", label="p99 budget (docs/architecture.md §1)")
    targets = sorted({r.target_qps for r in totals})
    axes[3].plot(targets, targets, color="grey", linestyle=":", label="target")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(f"session-intent service benchmark: {machine_line()}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
