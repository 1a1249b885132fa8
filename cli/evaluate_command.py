"""`session-intent evaluate`: a model directory + an event CSV → report.md, metrics.json and plots.

Wired into the console script by `cli/main.py` through `register(app)`. torch and sklearn are
imported inside the command, so that `serve` runs in an image without them.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli.common import ModelOption, fail, require_model_dir
from model.artifacts import is_model_dir


def register(app: typer.Typer) -> None:
    """Add the `evaluate` command to the console script."""
    app.command("evaluate")(evaluate)


def evaluate(
    model: ModelOption,
    data: Annotated[Path, typer.Option("--data", dir_okay=False, help="Event CSV: session_id,ts,action,from_ad.")],
    output: Annotated[Path, typer.Option("-o", "--output", file_okay=False, help="Report directory to write.")],
    baselines: Annotated[bool, typer.Option("--baselines", help="Also fit majority, LR, RF and HistGBM.")] = False,
    folds: Annotated[
        int | None, typer.Option("--folds", min=3, help="Stratified group K-fold over sessions (retrains).")
    ] = None,
    sweep: Annotated[bool, typer.Option("--sweep", help="Window sweep N = 4..30 (trains 7 small models).")] = False,
    compare: Annotated[
        list[Path] | None, typer.Option("--compare", file_okay=False, help="Another model directory; repeatable.")
    ] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="session | time; default: the split the model was trained on.")
    ] = None,
    update_card: Annotated[
        bool, typer.Option("--update-card", help="Store the model's test metrics with CIs in its card.json.")
    ] = False,
    n_boot: Annotated[int, typer.Option("--n-boot", min=0, help="Bootstrap resamples of sessions (0: no CIs).")] = 1000,
    train_minutes: Annotated[
        float, typer.Option("--train-minutes", min=0.1, help="Training budget per model in --folds / --sweep.")
    ] = 2.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap, folds and retraining.")] = 0,
) -> None:
    """Evaluate a model on the test sessions it never saw; write report.md, metrics.json and PNG plots."""
    from model.card import FingerprintMismatch
    from model.data.dataset import BadEventFile
    from model.evaluation.evaluate import EvalOptions, evaluate_model
    from model.training.loop import TrainingDataError

    console = Console()
    if split not in (None, "session", "time"):
        fail(console, f"--split must be 'session' or 'time', got {split!r}")
    require_model_dir(console, model)
    for other in compare or []:
        if not is_model_dir(other):
            fail(console, f"--compare {other} is not a model directory (no card.json)")
    options = EvalOptions(
        compare=list(compare or []),
        split_mode=split,
        n_boot=n_boot,
        seed=seed,
        train_minutes=train_minutes,
        sweep=sweep,
        command=_command_line(
            model, data, output, baselines, folds, sweep, compare, split, n_boot, train_minutes, seed
        ),
    )
    try:
        with console.status(f"evaluating {model} on {data}"):
            metrics = evaluate_model(model, data, output, baselines=baselines, folds=folds, options=options)
    except (BadEventFile, FingerprintMismatch, TrainingDataError, FileNotFoundError) as exc:
        fail(console, f"cannot evaluate: {exc}")
    except ValueError as exc:  # e.g. the card's time zone is unknown here, or a window mismatch
        fail(console, f"cannot evaluate {model} on {data}: {exc}")
    console.print(_summary(metrics))
    if update_card:
        from model.evaluation.evaluate import store_test_metrics

        console.print(f"stored the test metrics in {store_test_metrics(model, metrics)}")
    console.print(f"wrote {output / 'report.md'}, {output / 'metrics.json'} and plots in {metrics['seconds']:.0f} s")


def _command_line(
    model: Path,
    data: Path,
    output: Path,
    baselines: bool,
    folds: int | None,
    sweep: bool,
    compare: list[Path] | None,
    split: str | None,
    n_boot: int,
    train_minutes: float,
    seed: int,
) -> str:
    """The command that regenerates this report, printed in it; options at their defaults are left out."""
    args = ["session-intent", "evaluate", "--model", str(model), "--data", str(data), "-o", str(output)]
    args += ["--baselines"] * baselines + ["--sweep"] * sweep
    for other in compare or []:
        args += ["--compare", str(other)]
    optional = {
        "--folds": folds,
        "--split": split,
        "--n-boot": n_boot if n_boot != 1000 else None,
        "--train-minutes": train_minutes if (folds or sweep) and train_minutes != 2.0 else None,
        "--seed": seed or None,
    }
    args += [item for key, value in optional.items() if value is not None for item in (key, str(value))]
    return shlex.join(args)


def _fmt(d: dict[str, Any], percent: bool = False) -> str:
    if d.get("value") is None:
        return "–"
    return f"{d['value'] * 100:.2f} %" if percent else f"{d['value']:.3f}"


def _summary(metrics: dict[str, Any]) -> Table:
    table = Table(
        title=f"test: {metrics['dataset']['name']} ({metrics['dataset']['splits']['test']['sessions']:,} sessions)"
    )
    for column in ("model", "label", "ROC-AUC", "PR-AUC", "F1", "accuracy", "all-zeros"):
        table.add_column(column, justify="left" if column in ("model", "label") else "right")
    for name, entry in metrics["models"].items():
        for label in metrics["labels"]:
            r = entry["labels"][label]
            table.add_row(
                name,
                label,
                _fmt(r["roc_auc"]),
                _fmt(r["pr_auc"]),
                _fmt(r["f1"]),
                _fmt(r["accuracy"], True),
                _fmt(r["all_zeros_accuracy"], True),
            )
    return table
