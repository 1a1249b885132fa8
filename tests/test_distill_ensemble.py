"""Distilling a seed ensemble into one net: the teacher's logit is the mean of its members' logits, the loop and the
`train` command take several teachers, and the card records every member."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from model.card import ModelCard
from model.data.dataset import Dataset, Split
from model.training.checkpoint import predict_proba
from model.training.config import TrainConfig
from model.training.distill import ensemble_soft_targets, teacher_soft_targets
from model.training.loop import train_model
from model.training.nets import IntentNet, NetConfig, build_net
from tests.test_train import TINY, WINDOW, cli, dataset, synth_csv

__all__ = ["dataset", "synth_csv"]  # test_train's fixtures, used here by name

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def constant_teacher(add_cart: float, make_order: float) -> IntentNet:
    """A net whose logits are (add_cart, make_order) whatever the window."""
    net = build_net(TINY).eval()
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor([add_cart, make_order]))
    return net


def test_the_ensemble_teaches_the_mean_of_its_members_logits(dataset: Dataset) -> None:
    X = dataset.part(Split.VAL).X[:50]
    members = [constant_teacher(3.0, -3.0), constant_teacher(1.0, 1.0)]
    soft = ensemble_soft_targets(members, X)
    expected = 1.0 / (1.0 + np.exp(-np.array([2.0, -1.0])))  # the mean logits (2, −1); mean probabilities differ
    np.testing.assert_allclose(soft, np.tile(expected, (50, 1)), atol=1e-6)
    at_t2 = ensemble_soft_targets(members, X, temperature=2.0)
    np.testing.assert_allclose(at_t2[0], 1.0 / (1.0 + np.exp(-np.array([1.0, -0.5]))), atol=1e-6)


def test_one_member_teaches_exactly_what_it_teaches_alone(dataset: Dataset) -> None:
    X = dataset.part(Split.VAL).X[:40]
    torch.manual_seed(2)
    net = build_net(TINY).eval()
    np.testing.assert_array_equal(ensemble_soft_targets([net], X), teacher_soft_targets(net, X))


def test_the_ensemble_refuses_no_members_and_a_member_with_another_window(dataset: Dataset) -> None:
    X = dataset.part(Split.VAL).X[:10]
    with pytest.raises(ValueError, match="at least one member"):
        ensemble_soft_targets([], X)
    other = build_net(NetConfig.for_arch("lstm_gru_small", window=WINDOW + 1, lstm_units=12, gru_units=8))
    with pytest.raises(ValueError, match="teacher was trained on windows of N=7"):
        ensemble_soft_targets([constant_teacher(0.0, 0.0), other], X)


def test_the_loop_distils_an_ensemble_into_one_student(dataset: Dataset) -> None:
    """alpha=0: the student fits only the teachers; their mean add_cart logit (+2) is p ≈ 0.88 everywhere."""
    cfg = TrainConfig(epochs=4, batch_size=128, seed=3, lr=1e-2, calibrate=False)
    members = [constant_teacher(3.0, -3.0), constant_teacher(1.0, -3.0)]
    student, history = train_model(dataset, TINY, cfg, teacher=members, alpha=0.0, show_progress=False)
    p = predict_proba(student, dataset.part(Split.VAL).X)[:, 0].mean()
    assert history["distilled"]
    assert 0.8 < p < 0.95
    assert student.n_parameters() == members[0].n_parameters()  # one net of the student's size, not K


def test_the_train_command_distils_a_seed_ensemble_and_records_its_members(tmp_path: Path, synth_csv: Path) -> None:
    base = ["train", "--data", str(synth_csv), "--epochs", "1", "--window", "8", "--no-calibrate"]
    for seed in (1, 2):
        done = CliRunner().invoke(cli(), [*base, "-o", str(tmp_path / f"seed{seed}"), "--seed", str(seed)])
        assert done.exit_code == 0, done.output
    teachers = ["--teacher", str(tmp_path / "seed1"), "--teacher", str(tmp_path / "seed2")]
    result = CliRunner().invoke(cli(), [*base, "-o", str(tmp_path / "student"), *teachers, "--alpha", "0.3"])
    assert result.exit_code == 0, result.output
    card = ModelCard.load(tmp_path / "student")
    record = card.extra["teacher"]
    assert record["combine"] == "mean of the members' logits" and card.hparams["alpha"] == 0.3
    assert [(m["name"], m["seed"]) for m in record["members"]] == [("seed1", 1), ("seed2", 2)]
    missing = CliRunner().invoke(cli(), [*base, "-o", str(tmp_path / "x"), *teachers, "--teacher", str(tmp_path)])
    assert missing.exit_code == 2 and f"--teacher {tmp_path}" in missing.output
