"""`evaluate` on a context model reports the test metrics with the ids removed beside the normal ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.card import ModelCard
from model.context import CONTEXT_NAMES, context_card
from model.data.dataset import Split, load_dataset
from model.data.synth import generate_sessions, write_csv
from model.evaluation.evaluate import EvalOptions, evaluate_model
from model.features import FeatureConfig
from model.training.checkpoint import predict_proba, save_model
from model.training.config import TrainConfig
from model.training.loop import train_model
from model.training.nets import NetConfig
from model.training.thresholds import abandonment_inputs, tune_thresholds

WINDOW = 5


@pytest.mark.usefixtures("one_torch_thread")
def test_evaluate_scores_the_test_log_without_ids_beside_the_normal_scores(tmp_path: Path) -> None:
    csv_path = tmp_path / "synth.csv"
    write_csv(generate_sessions(300, seed=5), csv_path)
    features = FeatureConfig(window=WINDOW)
    dataset = load_dataset(csv_path, features)
    net_cfg = NetConfig.for_arch("lstm_gru_small", window=WINDOW, lstm_units=8, gru_units=8, context=CONTEXT_NAMES)
    train_cfg = TrainConfig(epochs=2, seed=0)
    net, _ = train_model(dataset, net_cfg, train_cfg, show_progress=False)
    val = dataset.part(Split.VAL)
    cart, y_abandon = abandonment_inputs(dataset, val)
    p_val = predict_proba(net, val.X, val.contexts(slice(None), CONTEXT_NAMES))
    card = ModelCard(
        name="ctx", arch="lstm_gru_small", hparams={"net": net_cfg.to_dict(), "train": train_cfg.to_dict()},
        features=features, thresholds=tune_thresholds(p_val, val.Y, cart, y_abandon),
        data={"name": dataset.name, "sha256": dataset.sha256, "split": "session"}, context=context_card(CONTEXT_NAMES),
    )  # fmt: skip
    save_model(tmp_path / "ctx", net, card)
    metrics = evaluate_model(tmp_path / "ctx", csv_path, tmp_path / "out", options=EvalOptions(n_boot=20))
    idless = metrics["without_ids"]
    normal = metrics["models"]["ctx"]["labels"]
    for label in ("add_cart", "make_order"):
        for metric in ("roc_auc", "pr_auc", "ece"):
            assert idless["labels"][label][metric]["value"] is not None
        # the synthetic shoppers' history and items carry signal: dropping them changes the scores
        assert idless["labels"][label]["roc_auc"]["value"] != normal[label]["roc_auc"]["value"]
    shares = idless["intents"]["without_ids"]["first_clicks"]
    assert sum(shares.values()) == pytest.approx(1.0)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Clicks without ids (test)" in report


@pytest.mark.usefixtures("one_torch_thread")
def test_a_model_without_context_has_no_id_less_section(tmp_path: Path) -> None:
    from model.evaluation.report.idless import idless_section

    assert idless_section({"without_ids": None, "models": {}}) == ""
