"""What the model-side commands share: the --model option, its check, and the one-line refusal (exit 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from model.artifacts import is_model_dir

ModelOption = Annotated[
    Path, typer.Option("--model", file_okay=False, help="Model directory (model.pt + card.json).")
]


def fail(console: Console, message: str) -> NoReturn:
    """One red line, exit code 2: a command's refusal is never a traceback."""
    console.print(f"[red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code=2)


def require_model_dir(console: Console, model: Path) -> None:
    if not is_model_dir(model):
        fail(console, f"{model} is not a model directory (no card.json); train one with `session-intent train`")
