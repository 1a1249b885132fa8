"""`session-intent card-reference`: store a model's training distribution in its card, for the drift gauges.

The training sessions of `--data` (the same curation and split as `train`) give the action mix, the
from_ad share and the dwell histogram; the model's own int8 scores on their windows give the score
histograms (model/drift.py). Only binned counts enter card.json, never an event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

BATCH = 4096


def register(app: typer.Typer) -> None:
    app.command("card-reference")(card_reference)


def card_reference(
    model: Annotated[Path, typer.Option(help="Model directory whose card.json gets the reference.")],
    data: Annotated[Path, typer.Option(help="The event file the model was trained on (CSV or Parquet).")],
    split: Annotated[str, typer.Option(help="session | time: the split train used.")] = "session",
) -> None:
    """Bin the training data's inputs and the model's scores into card.json's `reference` (drift gauges)."""
    import numpy as np

    from model.card import ModelCard
    from model.data.dataset import Split, cart_so_far, load_dataset
    from model.drift import build_reference
    from model.risk import abandonment_risk
    from service.engine.onnx_engine import load_engine

    console = Console(stderr=True)
    card = ModelCard.load(model)
    dataset = load_dataset(data, card.features, split_mode=split)
    train = dataset.part(Split.TRAIN)
    engine = load_engine(model, precision="int8", providers=("CPUExecutionProvider",))
    names = card.context_names  # a context model scores with the windows' real context, as training saw it
    probs = np.concatenate([engine.run(train.windows(slice(i, i + BATCH)), train.contexts(slice(i, i + BATCH), names)
                                       if names else None) for i in range(0, len(train), BATCH)])  # fmt: skip
    events = dataset.sessions.events
    risk = abandonment_risk(probs[:, 0], probs[:, 1], cart_so_far(dataset.sessions)[train.rows])
    in_train = dataset.split[events.session_of_event()] == Split.TRAIN
    train_sessions = dataset.sessions.select(dataset.split == Split.TRAIN).events
    card.reference = build_reference(
        events.actions[in_train], train_sessions.ts, events.from_ad[in_train], train_sessions.starts,
        {"p_make_order": probs[:, 1], "abandonment_risk": risk},
        source=f"{dataset.name} (sha256 {dataset.sha256[:16]}), {split} split, train part: {len(train)} windows",
    )
    card.save(model)
    console.print(f"stored the reference of {len(train)} training windows in {model / 'card.json'}")
