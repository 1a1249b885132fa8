"""What the wrk-driven bench commands share: where reports go, and the checks that they can run at all."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from model.artifacts import REPO_ROOT

DEFAULT_OUT_DIR = REPO_ROOT / "docs" / "benchmarks"
OutDir = Annotated[Path, typer.Option(help="Where the report's .md, .csv and .png go.")]


def need_checkout_and_wrk(command: str) -> None:
    """Exit 2 with one line unless loadtest/ is beside the package (a source checkout) and wrk is installed."""
    import shutil

    if not (REPO_ROOT / "loadtest").is_dir():
        typer.secho(f"{command} runs from a source checkout: loadtest/ not found beside the package", fg="red",
                    err=True)
        raise typer.Exit(2)
    if shutil.which("wrk") is None:
        typer.secho(f"{command}: wrk is not installed (apt-get install -y wrk)", fg="red", err=True)
        raise typer.Exit(2)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
