"""`session-intent bench data`: time and peak memory of `prepare` and the training data, over log sizes."""

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
        ctx: typer.Context,
        events: Annotated[
            list[int], typer.Option("--events", min=1000, help="About this many events; repeat for a sweep.")
        ] = [1_000_000],  # noqa: B006 (typer reads the default; it is never mutated)
        window: Annotated[int, typer.Option("--window", min=1, help="Window length N.")] = 10,
        out: Annotated[Path, typer.Option("--out", help="Where the report goes.")] = Path("docs/benchmarks"),
        tmp_dir: Annotated[
            Path | None, typer.Option("--tmp-dir", file_okay=False, help="Scratch space (GBs at 100M events).")
        ] = None,
    ) -> None:
        """Time prepare + training data on synthetic events; writes docs/benchmarks/data.{md,csv,png}.

        Each size's row is added to the report as soon as it is measured, so a sweep cut short keeps
        the sizes it finished.
        """
        from bench.data.run import run_size, write_report
        from bench.report.command import regenerate_command

        command = regenerate_command(ctx)
        rows = []
        with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
            for n in sorted(events):
                with console.status(f"{n:,} events: generating, preparing, building the training data"):
                    rows.append(run_size(n, window, Path(tmp)))
                console.print(rows[-1])
                write_report(rows, out, window, command)
        console.print((out / "data.md").read_text())
