"""`session-intent shadow-report --url http://replica:8000`: the shadow candidate against the serving model, from
a replica's /metrics (docs/service.md "Shadow").

Per candidate: batches scored, dropped (the shadow was busy) and failed; windows compared; intent agreement;
the Pearson correlation of the two models' abandonment risks (from the running moments); the candidate's
latency per batch (p50/p99, bucket upper bounds); the histogram of candidate − serving risk.
"""

from __future__ import annotations

import json
import urllib.request
from collections import defaultdict
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def register(app: typer.Typer) -> None:
    app.command("shadow-report")(shadow_report)


def shadow_report(
    url: Annotated[str, typer.Option("--url", help="A replica's base URL; its /metrics is read.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of tables.")] = False,
    timeout_s: Annotated[float, typer.Option("--timeout", min=0.1, help="HTTP timeout in seconds.")] = 10.0,
) -> None:
    """Summarise the shadow candidate's comparison with the serving model on one replica."""
    with urllib.request.urlopen(f"{url.rstrip('/')}/metrics", timeout=timeout_s) as answer:
        text = answer.read().decode()
    summary = summarise(text)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    if not summary:
        console.print("no shadow candidate has scored on this replica (si_shadow_* series absent)")
        return
    for row in summary:
        console.print(_table(row))


def summarise(metrics_text: str) -> list[dict[str, Any]]:
    """One summary per candidate found in a Prometheus exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    from service.rollout_metrics import pearson

    found: dict[str, dict[str, Any]] = defaultdict(lambda: {
        "batches": {}, "agree": {}, "moments": {}, "latency_buckets": [], "risk_diff_buckets": [],
    })
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            candidate = s.labels.get("candidate")
            if candidate is None:
                continue
            row = found[candidate]
            if s.name == "si_shadow_batches_total":
                row["batches"][s.labels["outcome"]] = int(s.value)
            elif s.name == "si_shadow_windows_total":
                row["windows"] = int(s.value)
            elif s.name == "si_shadow_intent_total":
                row["agree"][s.labels["agree"]] = int(s.value)
            elif s.name == "si_shadow_risk_moments_total":
                row["moments"][s.labels["moment"]] = s.value
            elif s.name == "si_shadow_latency_seconds_bucket":
                row["latency_buckets"].append((float(s.labels["le"]), s.value))
            elif s.name == "si_shadow_risk_diff_bucket":
                row["risk_diff_buckets"].append((float(s.labels["le"]), s.value))
    out = []
    for candidate, row in sorted(found.items()):
        agree, disagree = row["agree"].get("true", 0), row["agree"].get("false", 0)
        out.append({
            "candidate": candidate, "windows": row.get("windows", 0), "batches": row["batches"],
            "intent_agreement": agree / (agree + disagree) if agree + disagree else None,
            "risk_correlation": pearson(row["moments"]) if row["moments"] else None,
            "latency_p50_s": _quantile(row["latency_buckets"], 0.5),
            "latency_p99_s": _quantile(row["latency_buckets"], 0.99),
            "risk_diff_histogram": _per_bucket(row["risk_diff_buckets"]),
        })
    return out


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the bucket holding quantile q of a cumulative histogram."""
    ordered = sorted(buckets)
    total = ordered[-1][1] if ordered else 0
    if total == 0:
        return None
    return next(le for le, count in ordered if count >= q * total)


def _per_bucket(buckets: list[tuple[float, float]]) -> list[dict[str, float]]:
    """Cumulative counts → count per (lower, upper] bucket."""
    ordered, previous, out = sorted(buckets), 0.0, []
    for le, count in ordered:
        out.append({"le": le, "count": count - previous})
        previous = count
    return out


def _table(row: dict[str, Any]) -> Table:
    table = Table(title=f"shadow candidate {row['candidate']}: {row['windows']} windows compared")
    table.add_column("measure")
    table.add_column("value", justify="right")
    batches = row["batches"]
    table.add_row("batches scored / dropped / failed",
                  f"{batches.get('scored', 0)} / {batches.get('dropped', 0)} / {batches.get('failed', 0)}")
    for name, key, fmt in (("intent agreement", "intent_agreement", "{:.1%}"),
                           ("risk correlation (Pearson)", "risk_correlation", "{:.4f}"),
                           ("candidate latency p50 (≤)", "latency_p50_s", "{:.4f} s"),
                           ("candidate latency p99 (≤)", "latency_p99_s", "{:.4f} s")):
        value = row[key]
        table.add_row(name, "n/a" if value is None else fmt.format(value))
    for bucket in row["risk_diff_histogram"]:
        if bucket["count"]:
            table.add_row(f"risk diff ≤ {bucket['le']:+g}", f"{int(bucket['count'])}")
    return table
