"""`session-intent policy`: pick the alert policy of an existing model on its validation sessions, and with
`--purchase-budget`/`--purchase-precision` its purchase policy on its validation clicks, into its card.

The split is recomputed from the data as training computed it, so the threshold is picked on sessions the
model never trained on and never on test. torch is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cli.common import ModelOption, fail, require_model_dir
from model.policy import DEFAULT_BUDGET


def register(app: typer.Typer) -> None:
    """Add the `policy` command to the console script."""
    app.command("policy")(policy)


def policy(
    model: ModelOption,
    data: Annotated[Path, typer.Option("--data", dir_okay=False, help="Event CSV the model was trained on.")],
    budget: Annotated[
        float, typer.Option("--budget", min=0.0, max=1.0, help="Alert at most this share of sessions.")
    ] = DEFAULT_BUDGET,
    precision: Annotated[
        float | None, typer.Option("--precision", min=0.0, max=1.0, help="Precision target (replaces --budget).")
    ] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="session | time; default: the split the model was trained on.")
    ] = None,
    purchase_budget: Annotated[
        float | None,
        typer.Option("--purchase-budget", min=0.0, max=1.0,
                     help="Also pick the purchase policy: answer `purchase` on at most this share of clicks."),
    ] = None,
    purchase_precision: Annotated[
        float | None,
        typer.Option("--purchase-precision", min=0.0, max=1.0,
                     help="Also pick the purchase policy for this make_order precision (replaces --purchase-budget)."),
    ] = None,
) -> None:
    """Pick the alert threshold for a budget or a precision target on validation sessions; store it in card.json."""
    from model.card import ModelCard
    from model.data.dataset import BadEventFile, Split, load_dataset
    from model.evaluation.evaluate import _trained_split
    from model.training.checkpoint import load_model, predict_proba
    from model.training.thresholds import validation_policy, validation_purchase_policy

    console = Console()
    require_model_dir(console, model)
    card = ModelCard.load(model)
    split_mode = split or _trained_split(card) or "session"
    try:
        dataset = load_dataset(data, card.features, split_mode=split_mode)
    except BadEventFile as exc:
        fail(console, str(exc))
    val = dataset.part(Split.VAL)
    if len(val) == 0:
        fail(console, f"{data} gives no validation sessions under the {split_mode!r} split")
    net, _ = load_model(model)
    # a context net scores its validation windows with their context, as training picked its policies
    context = val.contexts(slice(None), card.context_names) if card.context_names else None
    p_val = predict_proba(net, val.view, context)  # type: ignore[arg-type]
    kind, target = ("budget", budget) if precision is None else ("precision", precision)
    try:
        picked = validation_policy(dataset, val, p_val, kind, target)
    except ValueError as exc:
        fail(console, str(exc))
    card.policy = picked
    if purchase_budget is not None or purchase_precision is not None:
        purchase_kind = "budget" if purchase_precision is None else "precision"
        purchase_target = purchase_precision if purchase_precision is not None else purchase_budget
        assert purchase_target is not None  # one of the two was given
        try:
            card.purchase_policy = validation_purchase_policy(p_val, val.Y, purchase_kind, purchase_target)
        except ValueError as exc:
            fail(console, str(exc))
        console.print(f"{model}: purchase policy {card.purchase_policy.label}, threshold "
                      f"{card.purchase_policy.threshold:.6f} on {card.purchase_policy.n_sessions:,} validation clicks")
    card.save(model)
    console.print(
        f"{model}: policy {picked.label}, threshold {picked.threshold:.6f}; on {picked.n_sessions:,} validation "
        f"sessions alert share {picked.alert_share:.4f}, precision {_fmt(picked.precision)}, recall "
        f"{_fmt(picked.recall)}"
    )


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"
