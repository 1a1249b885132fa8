"""docs/benchmarks/failover.{md,csv,png} from `session-intent bench failover`; never edited by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.reliability.ack_audit import CONTEXT_TERMS
from bench.reliability.failover import FailoverResult
from bench.report.files import provenance_lines, write_rows_csv
from bench.report.plots import save_figure, subplots

BUCKET_S = 0.5


def failover_row(r: FailoverResult) -> dict[str, object]:
    span = r.unavailable_span_s()
    first_ok = r.first_ok_after_kill_s()
    victim = r.statuses(True, r.killed_at)
    reads, scripts = r.per_click_before_kill()
    others = r.statuses(False, r.killed_at)
    return {
        "rate": r.plan.load.rate, "sessions": r.plan.load.sessions, "duration_s": r.plan.load.duration_s,
        "node_timeout_ms": r.node_timeout_ms, "killed_master_sessions": len(r.victim_sessions),
        "killed_master_statuses": " ".join(f"{s}:{n}" for s, n in victim.items()),
        "other_statuses": " ".join(f"{s}:{n}" for s, n in others.items()),
        "other_200_share": round(r.others_ok_share(), 4),
        "failures_from_s": round(span[0], 2) if span else "none",
        "failures_until_s": round(span[1], 2) if span else "none",
        "first_200_after_kill_s": round(first_ok, 2) if first_ok is not None else "never",
        "p99_503_ms": round(r.p99_ms(True, 503), 1),
        "readyz_non_200_probes": sum(p.ready_status != 200 for p in r.probes), "probes": len(r.probes),
        "server_errors_500": sum(n for s, n in {**victim, **others}.items() if s >= 500 and s not in (503, 504)),
        "ids": r.plan.load.ids, "acknowledged": r.audit.acknowledged, "acknowledged_lost": r.audit.lost,
        "context_lost": r.audit.context_lost, "tracebacks": r.tracebacks,
        "master_reads_per_click": round(reads, 3), "master_evalshas_per_click": round(scripts, 3),
    }


def write_failover_report(result: FailoverResult, out_dir: Path, command: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    row = failover_row(result)
    csv_path = write_rows_csv(out_dir / "failover.csv", [row])
    png_path = out_dir / "failover.png"
    _plot(result, png_path)
    lines = [
        "# Redis Cluster failover under load: SIGKILL one of 3 masters", "",
        *provenance_lines(command, "6 redis-servers, the service and the load generator share them."),
        "A real local cluster of 3 masters with 1 replica each, run with the failover directives of "
        "`deploy/k8s/redis-cluster.yaml` (`cluster-node-timeout`, `cluster-require-full-coverage no`, no "
        "persistence: tests/cluster_procs.py reads them from the manifest). The service (SI_REDIS_CLUSTER=true) "
        "takes Poisson clicks; the master serving the first session's slot gets SIGKILL and stays down, so its "
        "replica is promoted. Times count from the kill. *Killed master sessions*: sessions whose slot it served. "
        "*Acknowledged lost*: clicks answered 200 that the cluster no longer counts (replication is asynchronous, "
        "so a write acknowledged by the master just before the kill can be missing on the promoted replica). "
        + CONTEXT_TERMS + " *Master reads / EVALSHAs per click*: from the load's start to the kill, the masters' "
        "own `total_reads_processed` (INFO stats) and EVALSHA calls (INFO commandstats) over the clicks answered 200 "
        "in that time; a read is one round trip of one connection, however many pipelined commands it carried. "
        "Both include the score write-back; the reads also the readiness probes' and the replicas' "
        "acknowledgements.", "",
        "| " + " | ".join(row) + " |", "|" + "---|" * len(row), "| " + " | ".join(str(v) for v in row.values()) + " |",
        "", f"![answers per second]({png_path.name})", "",
    ]
    lines += _first_traceback(result.service_log)
    md_path = out_dir / "failover.md"
    md_path.write_text("\n".join(lines))
    return [md_path, csv_path, png_path]


def _plot(r: FailoverResult, path: Path) -> None:
    fig, axes = subplots(2, 1, figsize=(9, 5), sharex=True)
    edges = np.arange(0, r.plan.load.duration_s + BUCKET_S, BUCKET_S)
    for ax, victim, title in ((axes[0], True, "sessions of the killed master"), (axes[1], False, "other sessions")):
        for status, color in ((200, "tab:green"), (503, "tab:orange"), (504, "tab:purple")):
            sent = [c.t for c in r.clicks(victim) if c.status == status]
            counts, _ = np.histogram(sent, bins=edges)
            ax.step(edges[:-1], counts / BUCKET_S, where="post", color=color, label=f"{status}/s")
        ax.axvline(r.killed_at, color="tab:red", label="master killed")
        ax.set_title(title)
        ax.set_ylabel("clicks/s")
        ax.legend(loc="upper right", fontsize=8)
    axes[1].set_xlabel("seconds since the load started")
    save_figure(fig, path)


def _first_traceback(service_log: str, max_lines: int = 40) -> list[str]:
    """The service log's first traceback (with the line before it, and up to `max_lines` after its start), so a
    report that counts tracebacks also shows one."""
    lines = service_log.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Traceback")), None)
    if start is None:
        return []
    return ["## The first traceback in the service's log", "", "```",
            *lines[max(start - 1, 0):start + max_lines], "```", ""]
