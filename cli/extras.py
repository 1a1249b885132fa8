"""Commands that need the `train` extra (torch, scikit-learn) say so in one line when it is missing.

The serving install (`bash scripts/bootstrap.sh`) has no torch; without this check, `session-intent
train` would end in a traceback (`No module named 'torch'`).
"""

from __future__ import annotations

import importlib

import typer

TRAIN_SETUP = "bash scripts/bootstrap.sh train,dev"
# Subcommand → the modules it imports from the train extra.
NEEDS_TRAIN_EXTRA: dict[str, tuple[str, ...]] = {
    "train": ("torch", "sklearn"),
    "export": ("torch", "onnx"),
    "evaluate": ("torch", "sklearn"),
    "cart-rule-report": ("torch", "sklearn"),
}


def missing_modules(command: str | None) -> list[str]:
    """The train-extra modules `command` needs that cannot be imported here."""
    missing = []
    for module in NEEDS_TRAIN_EXTRA.get(command or "", ()):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return missing


def require_train_extra(command: str | None) -> None:
    """Exit 2 with one line naming the set-up command when `command` needs a module that is missing."""
    missing = missing_modules(command)
    if not missing:
        return
    typer.echo(f"session-intent {command} needs the training set-up ({', '.join(missing)} not installed): "
               f"run `{TRAIN_SETUP}`", err=True)
    raise typer.Exit(2)
