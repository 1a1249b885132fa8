"""Training with ids dropped (model/training/id_dropout.py): the chosen sessions get exactly the context serving
computes for clicks without ids, the others keep theirs, the choice is seeded, and the card records it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from model.context import CONTEXT_NAMES, context_without_ids
from model.context_tracker import ContextTracker
from model.data.dataset import Dataset, Split, load_dataset
from model.data.synth import generate_sessions, write_csv
from model.features import FeatureConfig
from model.training.id_dropout import drop_context_ids
from model.training.loop import TrainConfig, train_model
from model.training.nets import NetConfig

WINDOW = 5


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    path = tmp_path_factory.mktemp("ids") / "shop.csv"
    write_csv(generate_sessions(300, seed=9), path)
    return load_dataset(Path(path), FeatureConfig(window=WINDOW))


def test_serving_without_ids_computes_the_id_less_context(dataset: Dataset) -> None:
    """ContextTracker (what Redis keeps) fed the clicks with no ids gives context_without_ids, row for row."""
    events = dataset.sessions.events
    tracker = ContextTracker()
    session = events.session_of_event()
    served = np.stack([tracker.click(int(session[i]), None, int(events.actions[i]), float(events.ts[i]))
                       for i in range(len(events))])  # fmt: skip
    np.testing.assert_array_equal(served, context_without_ids(events))


def test_dropped_sessions_get_the_id_less_context_and_the_rest_keep_theirs(dataset: Dataset) -> None:
    train = dataset.part(Split.TRAIN)
    assert train.context is not None
    original = train.context.copy()
    dropped, n = drop_context_ids(train, dataset.sessions, 0.3, seed=1)
    assert dropped.context is not None
    members = np.unique(train.session)
    assert 0.15 * members.size < n < 0.45 * members.size
    idless = context_without_ids(dataset.sessions.events)
    changed_rows = np.flatnonzero((dropped.context != original).any(axis=1))
    chosen = np.unique(dataset.sessions.events.session_of_event()[changed_rows])
    assert set(chosen) <= set(members)
    in_chosen = np.isin(dataset.sessions.events.session_of_event(), chosen)
    np.testing.assert_array_equal(dropped.context[in_chosen], idless[in_chosen])
    np.testing.assert_array_equal(dropped.context[~in_chosen], original[~in_chosen])
    np.testing.assert_array_equal(train.context, original)  # validation and test share it: left alone
    again, _ = drop_context_ids(train, dataset.sessions, 0.3, seed=1)
    np.testing.assert_array_equal(again.context, dropped.context)
    other, _ = drop_context_ids(train, dataset.sessions, 0.3, seed=2)
    assert not np.array_equal(other.context, dropped.context)
    assert drop_context_ids(train, dataset.sessions, 0.0, seed=1)[1] == 0


def test_training_drops_ids_only_for_context_nets_and_records_it(dataset: Dataset) -> None:
    cfg = TrainConfig(epochs=1, seed=0, calibrate=False)
    net_cfg = NetConfig.for_arch("lstm_gru_small", window=WINDOW, lstm_units=8, gru_units=8)
    _, history = train_model(dataset, replace(net_cfg, context=CONTEXT_NAMES), cfg, show_progress=False)
    n_train = int((dataset.split == Split.TRAIN).sum())
    assert history["context_dropout"]["share"] == 0.2
    assert 0.1 * n_train < history["context_dropout"]["sessions"] < 0.3 * n_train
    _, plain = train_model(dataset, net_cfg, cfg, show_progress=False)
    assert plain["context_dropout"] == {"share": 0.0, "sessions": 0}
    with pytest.raises(ValueError, match="context_dropout"):
        TrainConfig(context_dropout=1.5)
