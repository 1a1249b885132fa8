"""docs/benchmarks/reload.{md,csv,png} from `session-intent bench reload`; never edited by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.report.files import provenance_lines, write_rows_csv
from bench.report.plots import save_figure, subplots
from bench.rollout.reload import SWAP_MARGIN_S, WARMUP_S, ReloadResult
from bench.rollout.reload_diagnosis import diagnosis_lines, lateness_ms


def _p(values: np.ndarray, q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values.size else float("nan")


def reload_rows(r: ReloadResult) -> list[dict[str, object]]:
    steady = r.steady_ms()
    rows: list[dict[str, object]] = [{
        "window": "steady", "version": "", "start_s": WARMUP_S, "seconds": "", "admin_status": "",
        "clicks_200": steady.size, "non_2xx": r.non_2xx(None), "p50_ms": _p(steady, 50), "p99_ms": _p(steady, 99),
        "p99_over_steady": 1.0,
    }]
    steady_p99 = _p(steady, 99)
    for i, swap in enumerate(r.swaps):
        during = r.swap_ms(i)
        rows.append({
            "window": f"swap {i + 1}", "version": swap.version, "start_s": round(swap.start_s, 2),
            "seconds": round(swap.end_s - swap.start_s + SWAP_MARGIN_S, 2), "admin_status": swap.status,
            "clicks_200": during.size, "non_2xx": r.non_2xx(i), "p50_ms": _p(during, 50), "p99_ms": _p(during, 99),
            "p99_over_steady": round(_p(during, 99) / steady_p99, 2) if steady.size else "nan",
        })
    return rows


def write_reload_report(r: ReloadResult, out_dir: Path, command: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = reload_rows(r)
    csv_path = write_rows_csv(out_dir / "reload.csv", rows)
    png = _plot(r, out_dir / "reload.png")
    statuses = r.load.statuses()
    offered = len(r.load.clicks) / r.plan.duration_s
    worst = max((row["p99_over_steady"] for row in rows[1:] if isinstance(row["p99_over_steady"], float)),
                default=float("nan"))
    rss_change = (r.rss_after_mb - r.rss_before_mb) / r.rss_before_mb
    shadow = r.shadow
    lines = [
        "# Hot reload under load", "",
        *provenance_lines(command, sharing="the service, its Redis, the load generator and other sessions' "
                          "work all ran on it, so the absolute latencies are this machine's, not the service's."),
        f"`session-intent serve` on a model repository (the model as versions 1 and 2), a shadow candidate on "
        f"{r.plan.shadow_share:.0%} of the batches, {r.plan.rate:g} Poisson clicks/s offered for "
        f"{r.plan.duration_s:g} s ({offered:.0f}/s drawn), {len(r.swaps)} reloads through `POST /v1/admin/model` "
        f"during the load; then {r.plan.rss_reloads} reloads without load, RSS read before and after.", "",
        "| target | measured | met |", "|---|---|---|",
        f"| 0 non-2xx answers | {r.non_2xx()} (statuses {statuses}) | {'yes' if r.non_2xx() == 0 else 'NO'} |",
        f"| p99 during each swap ≤ 2 × steady p99 | worst swap {worst} × (steady p99 {rows[0]['p99_ms']} ms) | "
        f"{'yes' if worst <= 2 else 'NO'} |",
        f"| RSS after {r.plan.rss_reloads} reloads within 10 % of before | {r.rss_before_mb:.1f} → "
        f"{r.rss_after_mb:.1f} MB ({rss_change:+.1%}; admin answers {r.rss_reload_statuses}) | "
        f"{'yes' if abs(rss_change) <= 0.10 else 'NO'} |", "",
        "| window | version | start s | seconds | admin | 200s | non-2xx | p50 ms | p99 ms | p99 / steady |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(f"| {w['window']} | {w['version']} | {w['start_s']} | {w['seconds']} | {w['admin_status']} | "
          f"{w['clicks_200']} | {w['non_2xx']} | {w['p50_ms']} | {w['p99_ms']} | {w['p99_over_steady']} |"
          for w in rows), "",
        f"A swap's window runs from the admin call to its answer plus {SWAP_MARGIN_S} s, and a click is the swap's "
        f"when it was in flight at any moment of it (sent before the call and answered during it included); steady "
        f"is every other click after the first {WARMUP_S:g} s. Latency runs from each click's intended send time "
        "(open loop).", "",
    ]
    if shadow:
        lines += [f"Shadow candidate {shadow.get('candidate')}: {shadow.get('windows')} windows compared, batches "
                  f"{shadow.get('batches')}, intent agreement {shadow.get('intent_agreement')}, risk correlation "
                  f"{shadow.get('risk_correlation')} (the same weights as the serving model: the int8 batch "
                  "company differs, little else).", ""]
    lines += diagnosis_lines(r)
    md = out_dir / "reload.md"
    md.write_text("\n".join(lines))
    return [md, csv_path, png]


def _plot(r: ReloadResult, path: Path) -> Path:
    ok = [c for c in r.load.clicks if c.status == 200]
    refused = [c for c in r.load.clicks if not 200 <= c.status < 300 and c.status > 0]
    fig, (ax, under) = subplots(2, 1, figsize=(10, 6.5), sharex=True, height_ratios=(3, 2))
    ax.scatter([c.t for c in ok], [c.latency_s * 1000 for c in ok], s=1, alpha=0.3, label="click latency (200)")
    if refused:
        ax.scatter([c.t for c in refused], [max(c.latency_s * 1000, 0.1) for c in refused], s=6, color="black",
                   marker="x", label="non-2xx")
    for axis in (ax, under):
        for i, swap in enumerate(r.swaps):
            axis.axvspan(swap.start_s, swap.end_s + SWAP_MARGIN_S, color="tab:red", alpha=0.2,
                         label="reload (admin call + margin)" if i == 0 and axis is ax else None)
    ax.set_yscale("log")
    ax.set_ylabel("latency ms (log)")
    ax.set_title(f"{r.plan.rate:g} clicks/s Poisson, {len(r.swaps)} hot reloads, shadow on")
    ax.legend(loc="upper right")
    sent = [c for c in r.load.clicks if c.status != -1]
    under.plot([c.t for c in sent], lateness_ms(sent), lw=0.6, color="tab:green", label="generator send lateness")
    if r.server:
        origin = r.load.started
        under.plot([s.at - origin for s in r.server], [s.scrape_s * 1000 for s in r.server], lw=0.6,
                   color="tab:purple", label="service /metrics scrape")
        under.plot([s.at - origin for s in r.server], [s.in_flight for s in r.server], lw=0.6, color="tab:orange",
                   label="service in flight (count)")
    under.set_xlabel("seconds since the load started")
    under.set_ylabel("ms (or count)")
    under.legend(loc="upper right", fontsize="small")
    save_figure(fig, path, dpi=110)
    return path
