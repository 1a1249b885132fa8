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
from model.context import CONTEXT_NAMES
from model.policy import WINDOWS, AlertPolicy, budget_threshold, pick_policy, policy_outcomes, session_alert_scores
from model.risk import decision_thresholds, intent_name
from model.training.thresholds import validation_purchase_policy
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


@pytest.mark.parametrize("context", [(), CONTEXT_NAMES], ids=["window", "context"])
def test_the_policy_command_picks_on_validation_and_writes_the_card(tmp_path: Path, context: tuple[str, ...]) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir(tmp_path.parent, context), model)
    runner = CliRunner()
    assert runner.invoke(app, ["synth", "--sessions", "1500", "-o", str(tmp_path / "log.csv")]).exit_code == 0
    done = runner.invoke(app, ["policy", "--model", str(model), "--data", str(tmp_path / "log.csv"), "--budget", "0.2",
                               "--split", "session"])
    assert done.exit_code == 0, done.output
    policy = ModelCard.load(model).policy
    assert policy is not None and policy.kind == "budget" and policy.target == 0.2
    assert 0 < policy.alert_share <= 0.2 and policy.n_sessions > 100  # ties of a tiny model can make it fewer


def test_the_purchase_policy_counts_clicks_and_meets_its_precision_on_validation() -> None:
    rng = np.random.default_rng(1)
    p_order = rng.random(4000) * 0.4
    y = np.zeros((4000, 2), dtype=np.float32)
    y[:, 1] = rng.random(4000) < p_order  # calibrated: a click's order rate is its p_make_order
    policy = validation_purchase_policy(np.c_[np.zeros(4000), p_order], y, "precision", 0.3)
    assert policy.unit == WINDOWS and policy.n_sessions == 4000
    assert policy.precision is not None and policy.precision >= 0.3
    assert 0.1 < policy.threshold < 0.4  # well above the 0.2 mean, where an F1 cut sits
    budget = validation_purchase_policy(np.c_[np.zeros(4000), p_order], y, "budget", 0.05)
    assert budget.kind == "budget" and 0.049 <= budget.alert_share <= 0.05


def test_the_purchase_policy_replaces_tau_order_and_old_cards_keep_theirs(tmp_path: Path) -> None:
    card = ModelCard.load(tiny_model_dir(tmp_path.parent))
    raw = card.to_dict()
    raw.pop("purchase_policy")  # a card written before the purchase policy
    old = ModelCard.from_dict(raw)
    assert old.purchase_policy is None and decision_thresholds(old).order == old.thresholds.order
    card.thresholds = Thresholds(order=0.108, risk=0.39)
    card.purchase_policy = AlertPolicy("precision", 0.25, 0.21, 0.04, 0.26, 0.11, 13715, unit=WINDOWS)
    card.save(tmp_path)
    loaded = ModelCard.load(tmp_path)
    assert loaded.purchase_policy == card.purchase_policy
    assert decision_thresholds(loaded) == Thresholds(order=0.21, risk=0.39)
    assert intent_name(0.115, 0.1, decision_thresholds(loaded)) == "browse"  # F1's τ_order said purchase
    assert intent_name(0.115, 0.1, loaded.thresholds) == "purchase"


def test_the_policy_command_picks_a_purchase_policy_on_validation_clicks(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir(tmp_path.parent), model)
    runner = CliRunner()
    assert runner.invoke(app, ["synth", "--sessions", "1500", "-o", str(tmp_path / "log.csv")]).exit_code == 0
    args = ["policy", "--model", str(model), "--data", str(tmp_path / "log.csv"), "--split", "session"]
    assert runner.invoke(app, args).exit_code == 0
    assert ModelCard.load(model).purchase_policy is None  # only when asked
    done = runner.invoke(app, [*args, "--purchase-budget", "0.05"])
    assert done.exit_code == 0, done.output
    card = ModelCard.load(model)
    assert card.purchase_policy is not None and card.purchase_policy.unit == WINDOWS
    assert card.purchase_policy.alert_share <= 0.05
    assert decision_thresholds(card).order == card.purchase_policy.threshold
