"""`session-intent synth`: write the calibrated synthetic clickstream (model/data/synth.py) as CSV."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from model.data.synth import CalibrationRow, calibration_table, generate_sessions, write_csv


def register(app: typer.Typer) -> None:
    """Add the `synth` command to the console script."""
    app.command("synth")(synth)


def synth(
    sessions: Annotated[int, typer.Option("--sessions", min=1, help="Number of sessions to generate.")] = 20000,
    seed: Annotated[int, typer.Option("--seed", help="Seed; the same seed gives byte-identical output.")] = 1,
    output: Annotated[
        Path, typer.Option("-o", "--output", dir_okay=False, help="CSV to write (parent dirs are created).")
    ] = Path("data/synth.csv"),
) -> None:
    """Generate a seeded synthetic clickstream calibrated to the published statistics."""
    console = Console()
    began = time.perf_counter()
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    )  # fmt: skip
    with progress:
        gen_task = progress.add_task(f"generating {sessions} sessions", total=None)
        log = generate_sessions(sessions, seed)
        progress.update(gen_task, total=1, completed=1)
        write_task = progress.add_task(f"writing {output}", total=len(log.actions))
        write_csv(log, output, on_progress=lambda n: progress.advance(write_task, n))
    elapsed = time.perf_counter() - began
    rows = calibration_table(log)
    console.print(_render(rows, title=f"calibration: seed {seed}, {sessions} sessions"))
    console.print(f"wrote {len(log.actions)} events in {sessions} sessions to {output} in {elapsed:.2f} s")
    off = [r.metric for r in rows if not r.ok]
    if off:
        # Small runs cannot hit the tolerances (sampling noise); say so without failing the command.
        console.print(f"[yellow]outside tolerance (expected for small --sessions):[/] {', '.join(off)}")


def _render(rows: list[CalibrationRow], title: str) -> Table:
    table = Table(title=title)
    for column in ("metric", "target", "produced", "tolerance", ""):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for row in rows:
        unit = "events" if "length" in row.metric else "share"
        mark = "[green]ok[/]" if row.ok else "[red]off[/]"
        values = (_fmt(row.target, unit), _fmt(row.produced, unit), "±" + _fmt(row.tolerance, unit))
        table.add_row(row.metric, *values, mark)
    return table


def _fmt(value: float, unit: str) -> str:
    return f"{value:.2f}" if unit == "events" else f"{100 * value:.2f} %"
