"""`session-intent ablation`: which context groups (model/context.py) help, per split, network vs baselines.

Wired into the console script by `cli/main.py` through `register(app)`. torch and sklearn are imported
inside the command, so that `serve` runs in an image without them.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cli.common import fail
from model.features import FeatureConfig
from model.training.config import TrainConfig

# The options' defaults are the configs' own (one definition); both modules are torch-free.
_TRAIN = TrainConfig()
_FEATURES = FeatureConfig()


def register(app: typer.Typer) -> None:
    """Add the `ablation` command to the console script."""
    app.command("ablation")(ablation)


def ablation(
    data: Annotated[Path, typer.Option("--data", dir_okay=False, help="Common event CSV with user/item/category ids.")],
    output: Annotated[Path, typer.Option("-o", "--output", file_okay=False, help="Folder for ablation.md/.csv.")],
    models_dir: Annotated[
        Path, typer.Option("--models-dir", file_okay=False, help="Where the trained networks go (one per row).")
    ],
    arch: Annotated[str, typer.Option("--arch", help="The network's architecture.")] = "lstm_gru_small",
    splits: Annotated[str, typer.Option("--splits", help="Comma-separated: session, time.")] = "session,time",
    sets: Annotated[
        str, typer.Option("--sets", help="Comma-separated context sets: none, session, history, session+history.")
    ] = "none,session,session+history",
    baselines: Annotated[str, typer.Option("--baselines", help="Comma-separated baselines.")] = (
        "logreg,random_forest,hist_gbm"
    ),
    timezone: Annotated[str, typer.Option("--timezone", help="Shop time zone of the calendar flags.")] = (
        _FEATURES.timezone
    ),
    window: Annotated[int, typer.Option("--window", min=1, help="Window length N.")] = _FEATURES.window,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = _TRAIN.epochs,
    threads: Annotated[int, typer.Option("--threads", min=0, help="torch threads (0: torch's default).")] = (
        _TRAIN.threads
    ),
    n_boot: Annotated[int, typer.Option("--n-boot", min=0, help="Bootstrap resamples of sessions.")] = 1000,
    seed: Annotated[int, typer.Option("--seed")] = _TRAIN.seed,
    context_dropout: Annotated[
        float,
        typer.Option("--context-dropout", min=0.0, max=1.0,
                     help="Share of training sessions trained id-less, as `train --context-dropout`."),
    ] = _TRAIN.context_dropout,
    calibration_score: Annotated[
        str,
        typer.Option("--calibration-score",
                     help="Whose sessions choose each network's calibration, as `train --calibration-score`: "
                          "validation | pooled | crossfit (4 more trainings per network)."),
    ] = _TRAIN.calibration_score,
) -> None:
    """Train the network and fit the baselines per split × context set; write ablation.md and ablation.csv."""
    from model.context import CONTEXT_SETS
    from model.data.dataset import BadEventFile
    from model.evaluation.ablation import AblationOptions, run_ablation
    from model.evaluation.baselines import BASELINES
    from model.evaluation.report.ablation import write_ablation
    from model.training.nets import ARCHS

    console = Console()
    split_list, set_list, base_list = (
        tuple(x.strip() for x in v.split(",") if x.strip()) for v in (splits, sets, baselines)
    )
    if arch not in ARCHS:
        fail(console, f"unknown --arch {arch!r}; expected one of: {', '.join(ARCHS)}")
    for given, known, flag in ((split_list, ("session", "time"), "--splits"), (set_list, tuple(CONTEXT_SETS), "--sets"),
                               (base_list, BASELINES[1:], "--baselines")):  # fmt: skip
        if not given or set(given) - set(known):
            fail(console, f"{flag}: expected a comma-separated subset of {', '.join(known)}")
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    args = ["session-intent", "ablation", "--data", str(data), "-o", str(output), "--models-dir", str(models_dir),
            "--arch", arch, "--splits", splits, "--sets", sets, "--baselines", baselines, "--timezone", timezone,
            "--window", str(window), "--epochs", str(epochs), "--threads", str(threads), "--n-boot", str(n_boot),
            "--seed", str(seed), "--context-dropout", str(context_dropout),
            "--calibration-score", calibration_score]  # fmt: skip
    try:
        train = TrainConfig(epochs=epochs, seed=seed, threads=threads, context_dropout=context_dropout,
                            calibration_score=calibration_score)  # fmt: skip
    except ValueError as exc:
        fail(console, str(exc))
    options = AblationOptions(
        arch=arch, splits=split_list, sets=set_list, baselines=base_list,
        features=FeatureConfig(timezone=timezone, window=window),
        train=train, n_boot=n_boot, seed=seed,
        command=shlex.join(args),
    )  # fmt: skip
    try:
        result = run_ablation(data, models_dir, options)
    except (BadEventFile, ValueError) as exc:
        fail(console, f"cannot run the ablation: {exc}")
    md, csv = write_ablation(result, output)
    console.print(f"wrote {md} and {csv} in {result['seconds']:.0f} s; the networks are in {models_dir}")


