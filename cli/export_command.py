"""`session-intent export models/<name>`: model.pt → model.onnx (fp32), model.int8.onnx, model.fp16.onnx.

Wired into the console script by `cli/main.py` through `register(app)`. torch, onnx and sklearn are
imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from model.export.gates import AUC_DROP_BUDGET, MIN_SPEEDUP, SPEED_BATCHES

console = Console()


def register(app: typer.Typer) -> None:
    """Add the `export` command to the console script."""
    app.command("export")(export)


def export(
    model_dir: Annotated[
        Path, typer.Argument(file_okay=False, exists=True, help="Model directory (model.pt + card.json).")
    ],
    data: Annotated[
        Path | None,
        typer.Option("--data", dir_okay=False, help="Event CSV (the training data): its validation split checks int8."),
    ] = None,
    max_windows: Annotated[
        int, typer.Option("--max-windows", min=100, help="Most validation windows scored (an even sample).")
    ] = 50_000,
    min_int8_speedup: Annotated[
        float, typer.Option("--min-int8-speedup", min=0.0, help="Keep int8 only if this much faster than fp32 on "
                            f"this CPU (batch {' and '.join(map(str, SPEED_BATCHES))}, 1 thread); 0: keep the first "
                            f"recipe within the AUC budget ({AUC_DROP_BUDGET:g} per label).")
    ] = MIN_SPEEDUP,
) -> None:
    """Export a trained model to ONNX; int8 is kept only within the AUC budget per label and if at least
    --min-int8-speedup × as fast as fp32."""
    from model.card import FingerprintMismatch, ModelCard
    from model.data.dataset import BadEventFile
    from model.export.exporter import ExportParityError, export_model, validation_from_csv

    try:
        card = ModelCard.load(model_dir)
    except FileNotFoundError as exc:
        _fail(str(exc))
    val = None
    if data is not None:
        try:
            with console.status(f"reading the validation split of {data}"):
                val = validation_from_csv(card, data, max_windows)
        except (BadEventFile, ValueError) as exc:
            _fail(f"cannot use {data}: {exc}")
    else:
        console.print("[yellow]no --data: the int8 AUC check runs on synthetic windows (model.data.synth), "
                      "which says nothing about accuracy on real sessions[/]")  # fmt: skip
    try:
        with console.status(f"exporting {model_dir}"):
            report = export_model(model_dir, val, min_int8_speedup)
    except ExportParityError as exc:
        _fail(f"export refused: {exc}")
    except FingerprintMismatch as exc:
        _fail(str(exc))
    console.print(_summary(report.to_dict()))
    int8 = report.int8
    if not int8["written"]:
        console.print(f"[yellow]no model.int8.onnx: {int8['reason']}; the service will run fp32[/]")


def _summary(report: dict[str, Any]) -> Table:
    table = Table(title=f"export of {report['model_dir']} (validation: {report['validation']['name']}, "
                        f"{report['validation']['source']}, {report['validation']['n_windows']} windows)")  # fmt: skip
    for column in ("file", "check", "result", "size"):
        table.add_column(column, justify="right" if column == "size" else "left")
    fp32, int8, fp16 = report["fp32"], report["int8"], report["fp16"]
    table.add_row("model.onnx", "max |Δ| vs torch", f"{fp32['parity_max_abs']:.2e} (≤ {fp32['tolerance']:g})",
                  _size(fp32))  # fmt: skip
    for attempt in int8["tried"]:
        if "skipped" in attempt:
            table.add_row(f"int8 {attempt['recipe']}", "not applicable", attempt["skipped"], "")
            continue
        drops = ", ".join(f"{k} {v:+.4f}" if v is not None else f"{k} n/a" for k, v in attempt["auc_drop"].items())
        verdict = "[green]within budget[/]" if attempt["passed"] else "[red]over budget[/]"
        if attempt.get("speedup"):
            verdict += f", {attempt['speedup']['geomean']:.2f} × fp32"
        if attempt["recipe"] == int8.get("recipe"):
            verdict += " [green]kept[/]"
        table.add_row(f"int8 {attempt['recipe']}", "AUC drop, max |Δ|",
                      f"{drops}; {attempt['max_abs_diff']:.4f} {verdict}",
                      _size(int8) if attempt["recipe"] == int8.get("recipe") else "")
    fp16_result = f"{fp16['max_abs_vs_fp32_cpu']:.2e}" + ("" if fp16["written"] else " [red]not written[/]")
    table.add_row("model.fp16.onnx", "max |Δ| vs fp32 (CPU)", fp16_result, _size(fp16))
    return table


def _size(part: dict[str, Any]) -> str:
    return f"{part['bytes'] / 1024:.0f} KiB" if "bytes" in part else ""


def _fail(message: str) -> NoReturn:
    console.print(f"[red]{message}[/]")
    raise typer.Exit(code=1)
