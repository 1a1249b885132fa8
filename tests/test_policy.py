"""The alert policy (model/policy.py): picked for a budget or a precision target, stored in the card, and
`session-intent policy` on an existing model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from model.card import ModelCard, Thresholds
from model.policy import AlertPolicy, budget_threshold, pick_policy, policy_outcomes, session_alert_scores
from model.risk import decision_thresholds
from tests.service_support import tiny_model_dir


def test_a_budget_alerts_at_most_its_share_and_as_many_as_it_may() -> None:
    rng = np.random.default_rng(0)
    score = np.where(rng.random(5000) < 0.3, -np.inf, rng.random(5000))  # 30 %: the cart never opened
    positive = rng.random(5000) < score.clip(0, 1)
    for budget in (0.05, 0.10, 0.20):
        policy = pick_policy("budget", budget, score, positive)
        assert budget - 0.001 <= policy.alert_share <= budget
    assert budget_threshold(score, 0.9) == score[np.isfinite(score)].min()  # more than every open cart


def test_a_precision_target_is_met_with_the_most_recall() -> None:
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, -np.inf])
    positive = np.array([True, True, False, True, False, False])
    policy = pick_policy("precision", 0.75, score, positive)
    assert policy.threshold == 0.6 and policy.precision == 0.75 and policy.recall == 1.0
    assert policy_outcomes(0.6, score, positive)["n_alerted"] == 4
    with pytest.raises(ValueError, match="unknown policy kind"):
        pick_policy("f1", 0.5, score, positive)


def test_a_session_scores_its_highest_risk_with_an_open_cart() -> None:
    ids, score = session_alert_scores([0.99, 0.4, 0.6, 0.95], [False, True, True, False], [7, 7, 7, 9])
    assert ids.tolist() == [7, 9] and score.tolist() == [0.6, -np.inf]


def test_the_card_keeps_the_policy_and_its_threshold_becomes_tau_risk(tmp_path: Path) -> None:
    card = ModelCard.load(tiny_model_dir(tmp_path.parent))
    assert decision_thresholds(card) == card.thresholds
    card.thresholds = Thresholds(order=0.6, risk=0.39)
    card.policy = AlertPolicy("budget", 0.1, 0.91, 0.099, 0.95, 0.34, 1366)
    card.save(tmp_path)
    loaded = ModelCard.load(tmp_path)
    assert loaded.policy == card.policy
    assert decision_thresholds(loaded) == Thresholds(order=0.6, risk=0.91)


def test_the_policy_command_picks_on_validation_and_writes_the_card(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir(tmp_path.parent), model)
    runner = CliRunner()
    assert runner.invoke(app, ["synth", "--sessions", "1500", "-o", str(tmp_path / "log.csv")]).exit_code == 0
    done = runner.invoke(app, ["policy", "--model", str(model), "--data", str(tmp_path / "log.csv"), "--budget", "0.2",
                               "--split", "session"])
    assert done.exit_code == 0, done.output
    policy = ModelCard.load(model).policy
    assert policy is not None and policy.kind == "budget" and policy.target == 0.2
    assert 0 < policy.alert_share <= 0.2 and policy.n_sessions > 100  # ties of a tiny model can make it fewer
