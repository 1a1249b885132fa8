"""`session-intent cart-rule-report`: the abandonment risk under the cart rule before and after issue 11.

Writes cart_rule.md and cart_rule.json (model/evaluation/cart_rule.py). torch is imported inside the command.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

MARKDOWN, JSON = "cart_rule.md", "cart_rule.json"


def register(app: typer.Typer) -> None:
    """Add the `cart-rule-report` command to the console script."""
    app.command("cart-rule-report")(cart_rule_report)


def cart_rule_report(
    model: Annotated[Path, typer.Option("--model", file_okay=False, help="Model directory (model.pt + card.json).")],
    data: Annotated[Path, typer.Option("--data", dir_okay=False, help="Event CSV the model was trained on.")],
    tau_before: Annotated[float, typer.Option("--tau-before", help="τ_risk of the card before the retrain.")],
    output: Annotated[Path, typer.Option("-o", "--output", file_okay=False, help="Directory to write into.")],
) -> None:
    """Time to detection, buyers' risk and the coupon table under the cart rule before and after issue 11."""
    from model.evaluation.cart_rule import compare_cart_rules
    from model.evaluation.report.cart_rule import cart_rule_markdown

    command = shlex.join(["session-intent", *sys.argv[1:]])
    result = compare_cart_rules(model, data, tau_before)
    output.mkdir(parents=True, exist_ok=True)
    (output / JSON).write_text(json.dumps({"command": command, **result}, indent=2) + "\n")
    (output / MARKDOWN).write_text(cart_rule_markdown(result, command))
    typer.echo(f"wrote {output / MARKDOWN} and {output / JSON}")
