"""cli/common.py: the model-side commands refuse with one line and exit 2, through the real console script."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["policy", "--model", "{empty}", "--data", "{empty}/clicks.csv"], "is not a model directory (no card.json)"),
        (["evaluate", "--model", "{empty}", "--data", "{empty}/clicks.csv", "-o", "{empty}/out"],
         "is not a model directory (no card.json)"),
        (["uplift", "-o", "{empty}/out"], "give exactly one source: --redis-url or --input"),
    ],
)  # fmt: skip
def test_a_refusal_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    done = CliRunner().invoke(app, [arg.replace("{empty}", str(tmp_path)) for arg in args])
    assert done.exit_code == 2, (done.output, done.exception)
    assert done.output.startswith("error: ") and message in done.output
    assert len(done.output.strip().splitlines()) == 1  # soft-wrapped: one line however long the path
