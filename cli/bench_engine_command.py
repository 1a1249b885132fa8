"""`session-intent bench engine`: torch eager vs ORT fp32 vs ORT int8; writes docs/benchmarks/engine.{md,csv,png}."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
DEFAULT_DATA = Path("data/taobao.csv")


def register_bench(bench_app: typer.Typer) -> None:
    """Add `engine` to the `bench` group."""
    bench_app.command("engine")(bench_engine)


def bench_engine(
    ctx: typer.Context,
    models: Annotated[
        list[str] | None,
        typer.Option("--models", help="Model directories or arch names (random weights unless a trained model of "
                                      "that arch is under --models-root). Repeat the flag. Default: lstm_gru and "
                                      "lstm_gru_small."),
    ] = None,
    models_root: Annotated[Path, typer.Option("--models-root", file_okay=False, help="Where trained models live.")] = (
        Path("models")
    ),
    data: Annotated[
        Path | None,
        typer.Option("--data", dir_okay=False, help=f"Event CSV for validation windows; default {DEFAULT_DATA} if "
                                                    "present, else synthetic windows."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Where engine.{md,csv,png} go.")] = Path(
        "docs/benchmarks"
    ),
    runs: Annotated[int, typer.Option("--runs", min=1, help="Timed runs per cell (after warmup).")] = 200,
    cell_budget: Annotated[
        float, typer.Option("--cell-budget", min=0.1, help="Seconds per cell before the run count is cut.")
    ] = 15.0,
    min_runs: Annotated[int, typer.Option("--min-runs", min=1, help="Never fewer timed runs than this.")] = 60,
    batches: Annotated[list[int] | None, typer.Option("--batch", help="Batch sizes (repeat).")] = None,
    threads: Annotated[list[int] | None, typer.Option("--threads", help="Intra-op thread counts (repeat).")] = None,
    max_windows: Annotated[int, typer.Option("--max-windows", min=100, help="Validation windows scored.")] = 20_000,
) -> None:
    """Time the engines at batch 1..512 and 1-2 threads, study int8 recipes, and write the report."""
    from bench.engine.report import write_report
    from bench.engine.run import BATCH_SIZES, DEFAULT_MODELS, THREADS, run_engine_bench
    from bench.report.command import regenerate_command
    from model.export.timing import TimingPlan

    if data is None and DEFAULT_DATA.is_file():
        data = DEFAULT_DATA
    if data is None:
        console.print("[yellow]no --data and no data/taobao.csv: AUC figures use synthetic windows[/]")
    plan = TimingPlan(target_runs=runs, min_runs=min(min_runs, runs), cell_budget_s=cell_budget)
    command = regenerate_command(ctx)
    with tempfile.TemporaryDirectory(prefix="si-bench-engine-") as work, console.status("benchmarking") as status:
        bench = run_engine_bench(
            models or list(DEFAULT_MODELS), models_root, data, Path(work), plan,
            batches=tuple(batches or BATCH_SIZES), threads=tuple(threads or THREADS), max_windows=max_windows,
            progress=lambda message: status.update(message),
        )  # fmt: skip
    for path in write_report(bench, out, command):
        console.print(f"wrote {path}")
    console.print(f"done in {bench.seconds:.0f} s")
