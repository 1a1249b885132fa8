"""`session-intent train`: common event CSV → trained model directory (model.pt + card.json).

Wired into the console script by `cli/main.py` through `register(app)`. torch and sklearn are
imported inside the command, so that `serve` runs in an image without them.
"""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.table import Table

from cli.common import fail
from model.artifacts import REPO_ROOT
from model.features import FeatureConfig
from model.policy import DEFAULT_BUDGET, DEFAULT_PURCHASE_BUDGET
from model.training.config import DEFAULT_PATIENCE, TrainConfig

# The options' defaults are the configs' own (one definition); both modules are torch-free.
_TRAIN = TrainConfig()
_FEATURES = FeatureConfig()


def register(app: typer.Typer) -> None:
    """Add the `train` command to the console script."""
    app.command("train")(train)


def train(
    data: Annotated[Path, typer.Option("--data", help="Event CSV in the common form session_id,ts,action,from_ad.")],
    output: Annotated[Path, typer.Option("-o", "--output", file_okay=False, help="Model directory to write.")],
    arch: Annotated[str, typer.Option("--arch", help="lstm_gru | lstm_gru_small | lstm | gru | lstm_attn.")] = (
        "lstm_gru_small"
    ),
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Most epochs; early stopping may end sooner.")] = (
        _TRAIN.epochs
    ),
    seed: Annotated[int, typer.Option("--seed", help="Seed of weights and batch order.")] = _TRAIN.seed,
    window: Annotated[int, typer.Option("--window", min=1, help="Window length N.")] = _FEATURES.window,
    timezone: Annotated[str, typer.Option("--timezone", help="Shop time zone of the calendar flags.")] = (
        _FEATURES.timezone
    ),
    split: Annotated[str, typer.Option("--split", help="session (hash, stratified) | time (later days test).")] = (
        "session"
    ),
    teacher: Annotated[
        list[Path] | None,
        typer.Option("--teacher", file_okay=False,
                     help="Model directory to distil from; repeat it to distil an ensemble (the mean of its logits)."),
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", min=0.0, max=1.0, help="Weight of the true labels.")] = 0.5,
    temperature: Annotated[float, typer.Option("--temperature", min=0.01, help="Distillation temperature.")] = (
        _TRAIN.temperature
    ),
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = _TRAIN.batch_size,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Adam learning rate.")] = _TRAIN.lr,
    patience: Annotated[int, typer.Option("--patience", min=0, help="Flat validation epochs before stopping.")] = (
        DEFAULT_PATIENCE
    ),
    min_delta: Annotated[
        float,
        typer.Option("--min-delta", min=0.0, help="Validation make_order PR-AUC gain that counts as progress."),
    ] = _TRAIN.min_delta,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", min=0.0, help="Wall-clock budget for the training loop.")
    ] = _TRAIN.max_minutes,
    threads: Annotated[
        int, typer.Option("--threads", min=0, help="torch threads; 0: torch's default (1 is fastest on a busy box).")
    ] = _TRAIN.threads,
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", file_okay=False, help="Memory-mapped cache of the encoded events."),
    ] = None,
    prefixes_per_epoch: Annotated[
        int | None,
        typer.Option(
            "--prefixes-per-epoch",
            min=1,
            help="Train on this many prefixes per epoch, drawn afresh each epoch; validation stays complete.",
        ),
    ] = None,
    data_licence: Annotated[str, typer.Option("--data-licence", help="Licence terms of the data, for the card.")] = (
        "unknown"
    ),
    alert_budget: Annotated[
        float, typer.Option("--alert-budget", min=0.0, max=1.0, help="Alert at most this share of sessions.")
    ] = DEFAULT_BUDGET,
    alert_precision: Annotated[
        float | None,
        typer.Option("--alert-precision", min=0.0, max=1.0, help="Alert precision target (replaces the budget)."),
    ] = None,
    purchase_budget: Annotated[
        float,
        typer.Option("--purchase-budget", min=0.0, max=1.0, help="Answer `purchase` on at most this share of clicks."),
    ] = DEFAULT_PURCHASE_BUDGET,
    purchase_precision: Annotated[
        float | None,
        typer.Option("--purchase-precision", min=0.0, max=1.0,
                     help="Answer `purchase` at this make_order precision of clicks (replaces --purchase-budget)."),
    ] = None,
    context: Annotated[
        str,
        typer.Option(
            "--context", help="Context beside the window: none | session | history | session+history | name,name."
        ),
    ] = "none",
    context_dropout: Annotated[
        float,
        typer.Option(
            "--context-dropout", min=0.0, max=1.0,
            help="Share of training sessions trained with their context as for clicks without ids (context nets).",
        ),
    ] = _TRAIN.context_dropout,
    calibrate: Annotated[
        bool, typer.Option("--calibrate/--no-calibrate", help="Platt-scale each label on validation, folded in.")
    ] = _TRAIN.calibrate,
    calibration_fit: Annotated[
        str,
        typer.Option("--calibration-fit",
                     help="Windows the calibration is fitted on: auto (per label, by out-of-fold ECE) | "
                          "validation | train+validation."),
    ] = _TRAIN.calibration_fit,
    calibration_score: Annotated[
        str,
        typer.Option("--calibration-score",
                     help="Whose sessions score auto's out-of-fold ECE: validation | pooled (training sample + "
                          "validation; in-sample training windows flatter the net's own logits: docs/training.md) | "
                          "crossfit (pooled, with training logits from 4 fold nets that never saw them; 4 more "
                          "trainings)."),
    ] = _TRAIN.calibration_score,
    wide: Annotated[
        bool, typer.Option("--wide", help="Add a linear path from the scaled context to the logits (context nets).")
    ] = False,
    weight_decay: Annotated[float, typer.Option("--weight-decay", min=0.0, help="Adam weight decay.")] = (
        _TRAIN.weight_decay
    ),
) -> None:
    """Train a model on an event CSV, tune its thresholds on validation, and write a model directory."""
    from model.card import ModelCard
    from model.context import context_card, context_names
    from model.data.dataset import BadEventFile, Split, load_dataset, slot_coverage
    from model.training.checkpoint import predict_proba, save_model
    from model.training.loop import TrainingDataError, train_model
    from model.training.nets import ARCHS, NetConfig
    from model.training.thresholds import (
        abandonment_inputs,
        tune_thresholds,
        validation_metrics,
        validation_policy,
        validation_purchase_policy,
    )

    console = Console()
    try:
        names = context_names(context)
    except ValueError as exc:
        fail(console, f"--context: {exc}")
    if arch not in ARCHS:
        fail(console, f"unknown --arch {arch!r}; expected one of: {', '.join(ARCHS)}")
    if split not in ("session", "time"):
        fail(console, f"--split must be 'session' or 'time', got {split!r}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        fail(console, f"unknown --timezone {timezone!r}; use an IANA name such as UTC or Asia/Shanghai")
    features = FeatureConfig(timezone=timezone, window=window)
    teacher_nets, teacher_record = _load_teachers(console, teacher or [], window)
    if threads > 0:  # also for the validation pass after training (see TrainConfig.threads)
        import torch

        torch.set_num_threads(threads)
    began = time.perf_counter()
    try:
        with console.status(f"reading and encoding {data}"):
            dataset = load_dataset(data, features, split, cache_dir)
    except BadEventFile as exc:
        fail(console, str(exc))
    net_cfg = NetConfig.for_arch(arch, window=window, context=names, wide=wide and bool(names))
    try:
        train_cfg = TrainConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, min_delta=min_delta, seed=seed,
            threads=threads, max_minutes=max_minutes, temperature=temperature, prefixes_per_epoch=prefixes_per_epoch,
            context_dropout=context_dropout, calibrate=calibrate, calibration_fit=calibration_fit,
            calibration_score=calibration_score,
            weight_decay=weight_decay,
        )  # fmt: skip
    except ValueError as exc:
        fail(console, str(exc))
    try:
        net, history = train_model(dataset, net_cfg, train_cfg, teacher=teacher_nets, alpha=alpha)
    except TrainingDataError as exc:
        fail(console, f"cannot train on {data}: {exc}")

    val = dataset.part(Split.VAL)
    p_val = predict_proba(net, val.view, val.context_view(names))  # type: ignore[arg-type]  # batch by batch
    cart, y_abandon = abandonment_inputs(dataset, val)
    thresholds = tune_thresholds(p_val, val.Y, cart, y_abandon)
    kind, target = ("budget", alert_budget) if alert_precision is None else ("precision", alert_precision)
    policy = validation_policy(dataset, val, p_val, kind, target)
    purchase_kind, purchase_target = (
        ("budget", purchase_budget) if purchase_precision is None else ("precision", purchase_precision)
    )
    purchase_policy = validation_purchase_policy(p_val, val.Y, purchase_kind, purchase_target)
    train_sessions = dataset.sessions.select(dataset.split == Split.TRAIN)
    card = ModelCard(
        name=output.name,
        arch=arch,
        hparams={"net": net_cfg.to_dict(), "train": train_cfg.to_dict(), "alpha": alpha if teacher_nets else None},
        features=features,
        thresholds=thresholds,
        policy=policy,
        purchase_policy=purchase_policy,
        metrics={"validation": validation_metrics(p_val, val.Y, cart, y_abandon, thresholds)},
        data={
            "name": dataset.name,
            "sha256": dataset.sha256,
            "n_sessions": len(dataset.sessions),
            "n_windows": len(dataset.windows),
            "licence": data_licence,
            "split": split,
        },
        slot_coverage=slot_coverage(train_sessions),
        context=context_card(names),
        seed=seed,
        git_commit=git_commit(),
        extra={
            "train_seconds": round(time.perf_counter() - began, 2),
            "n_parameters": net.n_parameters(),
            "history": _json_safe(history),
            "teacher": teacher_record,
        },
    )
    save_model(output, net, card)
    console.print(_summary(card, history, output))


def _load_teachers(console: Console, paths: list[Path], window: int) -> tuple[list[Any], dict[str, Any] | None]:
    """The teachers' nets and the card's record of them: one teacher as {path, name, arch}; an ensemble as
    {combine, members: [{path, name, arch, seed}, ...]}."""
    from model.training.checkpoint import load_model

    nets, members = [], []
    for path in paths:
        try:
            net, card = load_model(path)
        except (FileNotFoundError, ValueError) as exc:
            fail(console, f"--teacher {path}: {exc}")
        if card.features.window != window:
            fail(console, f"--teacher {path} was trained with --window {card.features.window}; pass the same")
        nets.append(net)
        members.append({"path": str(path), "name": card.name, "arch": card.arch, "seed": card.seed})
    if not members:
        return nets, None
    if len(members) == 1:
        return nets, {k: members[0][k] for k in ("path", "name", "arch")}
    return nets, {"combine": "mean of the members' logits", "members": members}


def git_commit() -> str:
    """Short commit hash of the code that trained the model; "unknown" outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def _json_safe(value: Any) -> Any:
    """nan → None and floats to 6 digits, recursively: card.json stays strict JSON, and readable."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _summary(card: Any, history: dict[str, Any], output: Path) -> Table:
    table = Table(title=f"{card.arch} → {output}  ({card.extra['n_parameters']:,} parameters)")
    for column in ("validation", "n", "positives", "ROC-AUC", "PR-AUC", "F1 @ τ", "τ"):
        table.add_column(column, justify="left" if column == "validation" else "right")
    for label, m in card.metrics["validation"].items():
        table.add_row(
            label,
            f"{m['n']:,}",
            f"{m['positives']:,}",
            _fmt(m["roc_auc"]),
            _fmt(m["pr_auc"]),
            _fmt(m["f1"]),
            _fmt(m["threshold"]),
        )
    n_epochs = len(history["train_loss"])
    table.caption = (
        f"{n_epochs} epochs ({history['stopped']}), best epoch {history['best_epoch']}, "
        f"training loop {history['seconds']:.1f} s, total {card.extra['train_seconds']:.1f} s; "
        f"{card.data['n_sessions']:,} sessions, {card.data['n_windows']:,} windows"
    )
    return table
