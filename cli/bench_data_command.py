"""`session-intent bench data`: events/s and peak memory of the data pipeline."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def register_bench(bench_app: typer.Typer) -> None:
    @bench_app.command("data")
    def bench_data(
        events: Annotated[int, typer.Option("--events", min=1000, help="About this many events.")] = 1_000_000,
        window: Annotated[int, typer.Option("--window", min=1, help="Window length N.")] = 10,
        out: Annotated[Path, typer.Option("--out", help="Where the report goes.")] = Path("docs/benchmarks"),
    ) -> None:
        """Time CSV → windows/targets/splits on synthetic events; writes docs/benchmarks/data.{md,csv,png}."""
        from bench.data import make_events_csv, run_pipeline_subprocess, write_report

        with tempfile.TemporaryDirectory() as tmp:
            csv_path = Path(tmp) / "events.csv"
            with console.status(f"generating ~{events:,} synthetic events"):
                n = make_events_csv(csv_path, events)
            with console.status(f"running the pipeline on {n:,} events"):
                result = run_pipeline_subprocess(csv_path, window)
        for path in write_report(result, out, window):
            console.print(f"wrote {path}")
        console.print((out / "data.md").read_text())
