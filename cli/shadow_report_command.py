"""`session-intent shadow-report --url http://replica:8000`: the shadow candidate against the serving model, from
a replica's /metrics (docs/service.md "Shadow").

Per candidate: batches scored, dropped (the shadow was busy) and failed; windows compared; intent agreement;
the Pearson correlation of the two models' abandonment risks (from the running moments); the candidate's
latency per batch (p50/p99, bucket upper bounds); the histogram of candidate − serving risk.
"""

from __future__ import annotations

import json
import urllib.request
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
    from service.rollout_metrics import summarise

    summary = summarise(text)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    if not summary:
        console.print("no shadow candidate has scored on this replica (si_shadow_* series absent)")
        return
    for row in summary:
        console.print(_table(row))


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
