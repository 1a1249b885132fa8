"""docs/benchmarks/overload.{md,csv,png} from `session-intent bench overload`; never edited by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.overload import PHASES, OverloadResult
from bench.report_files import provenance_lines, write_rows_csv


def overload_rows(r: OverloadResult) -> list[dict[str, object]]:
    rows = []
    for phase in PHASES:
        record = r.phases[phase]
        rows.append({
            "phase": phase, "target_rate": round(r.rates[phase]), "offered_rate": round(r.offered_rate(phase)),
            "statuses": " ".join(f"{s}:{n}" for s, n in record.statuses().items()),
            "accepted_per_s": round(record.latency_ms(200).size / r.plan.phase_s),
            "p50_200_ms": round(float(np.percentile(record.latency_ms(200), 50)), 1)
            if record.latency_ms(200).size else "nan",
            "p99_200_ms": round(r.p99_ms(phase, 200), 1), "p99_503_ms": round(r.p99_ms(phase, 503), 1),
            "p99_504_ms": round(r.p99_ms(phase, 504), 1), "max_rss_mb": round(r.max_sample(phase, "rss_mb"), 1),
            "max_queue_depth": r.max_sample(phase, "queue_depth"),
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
    lines = [
        "# Overload: Poisson load at 2 × the measured saturation rate", "",
        *provenance_lines(command, "the service, redis-server and the load generator share them, so the saturation "
                          "rate is this machine's, not a replica's on its own cores."),
        f"**Saturation:** {r.saturation_rate:.0f} clicks/s answered 200 by a closed loop of {r.plan.concurrency} "
        f"workers over {r.plan.saturation_s:g} s. Then three Poisson phases of {r.plan.phase_s:g} s back to back; "
        "*offered* is what the client managed to send (status -1: not sent, its in-flight bound of "
        f"{r.plan.max_in_flight} was full).", "",
        "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0]),
        *("| " + " | ".join(str(v) for v in row.values()) + " |" for row in rows), "",
        f"- Accepted p99 under overload / at nominal: **{ratio:.2f} ×** (target ≤ 2).",
        f"- First second of the recovery phase: {sum(s == 200 for s in recovery_first_s)} of "
        f"{len(recovery_first_s)} clicks answered 200.",
        f"- Tracebacks in the service log: {r.tracebacks}.", "",
        f"![overload]({png_path.name})", "",
    ]
    md_path = out_dir / "overload.md"
    md_path.write_text("\n".join(lines))
    return [md_path, csv_path, png_path]


def _plot(r: OverloadResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
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
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
