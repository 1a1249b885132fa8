"""docs/benchmarks/chaos.{md,csv,png} from `session-intent bench chaos` runs; never edited by hand."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.reliability.ack_audit import CONTEXT_TERMS
from bench.reliability.chaos import ChaosResult, Throughput
from bench.report.files import provenance_lines, write_rows_csv
from bench.report.plots import save_figure, subplots

BUCKET_S = 0.5


def chaos_rows(results: Sequence[ChaosResult]) -> list[dict[str, object]]:
    rows = []
    for r in results:
        statuses = r.load.statuses()
        first_ok = r.first_ok_after_restart_s()
        ready = r.ready_again_s()
        rows.append({
            "appendfsync": r.plan.appendfsync, "rate": r.plan.load.rate, "sessions": r.plan.load.sessions,
            "duration_s": r.plan.load.duration_s, "outage_s": round(r.restarted_at - r.killed_at, 2),
            "sent": len(r.load.clicks), "status_200": statuses.get(200, 0), "status_503": statuses.get(503, 0),
            "other_statuses": " ".join(f"{s}:{n}" for s, n in statuses.items() if s not in (200, 503)) or "none",
            "server_errors_500": r.server_errors(), "503_without_retry_after": r.unavailable_without_retry_after(),
            "p99_503_ms": round(r.outage_p99_ms(), 1), "readyz_red_in_outage": r.ready_red_during_outage(),
            "readyz_probe_timeouts": r.probe_timeouts(),
            "first_200_after_restart_s": round(first_ok, 3) if first_ok is not None else "never",
            "readyz_green_after_restart_s": round(ready, 3) if ready is not None else "never",
            "rss_mb_before": round(r.rss_mb(0, r.killed_at), 1), "rss_mb_outage": round(r.rss_mb(*r.outage()), 1),
            "rss_mb_after": round(r.rss_mb(r.restarted_at, float("inf")), 1),
            "ids": r.plan.load.ids, "acknowledged": r.audit.acknowledged, "acknowledged_lost": r.audit.lost,
            "context_lost": r.audit.context_lost, "tracebacks": r.tracebacks,
        })
    return rows


def _table(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return out


def write_chaos_report(results: Sequence[ChaosResult], throughput: Sequence[Throughput], out_dir: Path,
                       command: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = chaos_rows(results)
    csv_path = write_rows_csv(out_dir / "chaos.csv", rows)
    png_path = out_dir / "chaos.png"
    _plot(results, png_path)
    lines = [
        "# Redis crash under load: SIGKILL and restart on the same data dir", "",
        *provenance_lines(command, "the service, redis-server and the load generator share them."),
        "Each run: Poisson clicks, each with its own event_id, sent once; redis-server (AOF on) gets SIGKILL, then "
        "starts again on its directory and port. Recovery times count from the restart (spawn, AOF replay "
        "included). *Acknowledged lost*: clicks answered 200 that Redis no longer counts. " + CONTEXT_TERMS + " "
        "SIGKILL kills the process, not the kernel: what redis-server had written to its AOF survives in the page "
        "cache either way, so `everysec` can only lose its last second on a kernel crash or power loss, which this "
        "run does not simulate.", "",
        *_table(rows, ["appendfsync", "rate", "outage_s", "sent", "status_200", "status_503", "other_statuses",
                       "server_errors_500", "503_without_retry_after", "p99_503_ms", "readyz_red_in_outage",
                       "readyz_probe_timeouts", "first_200_after_restart_s", "readyz_green_after_restart_s"]), "",
        *_table(rows, ["appendfsync", "ids", "rss_mb_before", "rss_mb_outage", "rss_mb_after", "acknowledged",
                       "acknowledged_lost", "context_lost", "tracebacks"]), "",
    ]
    if throughput:
        lines += ["## Throughput cost of `appendfsync always`", "",
                  "Closed loop (`wrk`: each connection sends its next click when the last one answered), the two "
                  "policies interleaved round by round on fresh servers, so machine drift hits both alike.", "",
                  "| appendfsync | round | clicks/s (200) | p99 ms |", "|---|---|---|---|"]
        lines += [f"| {t.appendfsync} | {t.round} | {t.clicks_per_s:.0f} | {t.p99_ms:.1f} |" for t in throughput]
        means = {p: float(np.mean([t.clicks_per_s for t in throughput if t.appendfsync == p]))
                 for p in ("always", "everysec")}
        if means["everysec"] > 0:
            lines += ["", f"Mean: always {means['always']:.0f} clicks/s, everysec {means['everysec']:.0f} clicks/s: "
                          f"always runs at {means['always'] / means['everysec']:.2f} × everysec on this machine."]
    lines += ["", f"![status timeline]({png_path.name})", ""]
    md_path = out_dir / "chaos.md"
    md_path.write_text("\n".join(lines))
    return [md_path, csv_path, png_path]


def _plot(results: Sequence[ChaosResult], path: Path) -> None:
    fig, axes = subplots(len(results), 1, figsize=(9, 2.6 * len(results)), squeeze=False)
    for ax, r in zip(axes[:, 0], results, strict=True):
        edges = np.arange(0, r.plan.load.duration_s + BUCKET_S, BUCKET_S)
        for status, color in ((200, "tab:green"), (503, "tab:orange")):
            sent = [c.t for c in r.load.clicks if c.status == status]
            counts, _ = np.histogram(sent, bins=edges)
            ax.step(edges[:-1], counts / BUCKET_S, where="post", color=color, label=f"{status}/s")
        ax.axvspan(r.killed_at, r.restarted_at, color="tab:red", alpha=0.15, label="redis down")
        ax.set_title(f"appendfsync {r.plan.appendfsync}: answers per second by status")
        ax.set_ylabel("clicks/s")
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("seconds since the load started")
    save_figure(fig, path)
