"""`session-intent evaluate` end to end on a tiny synthetic log and a tiny real trained model."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cli.evaluate_command import register
from model.card import ModelCard
from model.data.dataset import Split, load_dataset, read_events_csv, split_by_session, split_by_time
from model.data.synth import generate_sessions, write_csv
from model.evaluation.bootstrap import METRICS
from model.evaluation.evaluate import EvalOptions, evaluate_model
from model.evaluation.folds import fold_split, run_folds, session_folds
from model.evaluation.sweep import run_sweep
from model.features import FeatureConfig
from model.training.checkpoint import predict_proba, save_model
from model.training.config import TrainConfig
from model.training.loop import train_model
from model.training.nets import LABELS, NetConfig
from model.training.thresholds import abandonment_inputs, tune_thresholds

WINDOW = 5
N_BOOT = 40


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(events CSV, model directory): 300 synthetic sessions and a tiny LSTM+GRU trained on them for 1 epoch."""
    root = tmp_path_factory.mktemp("shop")
    csv_path = root / "synth.csv"
    write_csv(generate_sessions(300, seed=5), csv_path)
    features = FeatureConfig(window=WINDOW)
    dataset = load_dataset(csv_path, features)
    net_cfg = NetConfig.for_arch("lstm_gru_small", window=WINDOW, lstm_units=8, gru_units=8)
    train_cfg = TrainConfig(epochs=1, seed=0)
    net, _ = train_model(dataset, net_cfg, train_cfg, show_progress=False)
    val = dataset.part(Split.VAL)
    cart, y_abandon = abandonment_inputs(dataset, val)
    card = ModelCard(
        name="tiny",
        arch="lstm_gru_small",
        hparams={"net": net_cfg.to_dict(), "train": train_cfg.to_dict()},
        features=features,
        thresholds=tune_thresholds(predict_proba(net, val.X), val.Y, cart, y_abandon),
        data={"name": dataset.name, "sha256": dataset.sha256, "split": "session"},
    )
    save_model(root / "tiny", net, card)
    return csv_path, root / "tiny"


def _assert_estimate(entry: dict, where: str) -> None:
    assert set(entry) >= {"value", "ci_low", "ci_high"}, where
    if entry["value"] is None:
        assert entry.get("reason"), f"{where}: a null metric needs a reason"
    elif entry["ci_low"] is not None:
        assert entry["ci_low"] <= entry["ci_high"], where


@pytest.mark.slow
def test_end_to_end_writes_report_metrics_and_plots(shop: tuple[Path, Path], tmp_path: Path) -> None:
    csv_path, model_dir = shop
    out = tmp_path / "report"
    options = EvalOptions(n_boot=N_BOOT, compare=[model_dir])  # the same model again, as a second network
    evaluate_model(model_dir, csv_path, out, baselines=True, options=options)
    metrics = json.loads((out / "metrics.json").read_text())

    compared = f"tiny@{model_dir}"
    assert set(metrics["models"]) == {"tiny", compared, "majority", "logreg", "random_forest", "hist_gbm"}
    kinds = {"tiny": "trained", compared: "compared"}
    for name, entry in metrics["models"].items():
        assert entry["kind"] == kinds.get(name, "baseline")
        for label in LABELS:
            for metric in METRICS:
                _assert_estimate(entry["labels"][label][metric], f"{name}/{label}/{metric}")
    majority = metrics["models"]["majority"]["labels"]["make_order"]
    assert majority["accuracy"]["value"] == majority["all_zeros_accuracy"]["value"]
    assert majority["roc_auc"]["value"] == 0.5
    assert metrics["bootstrap"]["unit"] == "session"
    scored = metrics["abandonment"]["coupon_policy"]  # the windows and sessions actually scored
    assert scored["windows"]["n"] == metrics["dataset"]["splits"]["test"]["windows"]
    assert scored["sessions"]["n"] == metrics["dataset"]["splits"]["test"]["sessions"]
    assert metrics["dataset"]["same_file_as_training"] is True
    assert metrics["headline"]["best_baseline"] in {"majority", "logreg", "random_forest", "hist_gbm"}
    assert [h["model"] for h in metrics["headline_compared"]] == [compared]
    assert metrics["headline_compared"][0]["difference"] == metrics["headline"]["difference"]
    assert {p["top_pct"] for p in metrics["abandonment"]["coupon_policy"]["sessions"]["top_k"]} == {1, 2, 5, 10}
    assert set(metrics["segments"]) == {"from_ad", "weekend", "high_season"}

    report = (out / "report.md").read_text()
    assert "## Headline (test)" in report and "all-zeros" in report and "97.2 %" in report
    for png in ("roc_make_order.png", "pr_make_order.png", "calibration_add_cart.png", "abandonment_daily.png"):
        assert (out / png).stat().st_size > 1000
        assert png in report


def test_evaluated_sessions_were_never_trained_on(shop: tuple[Path, Path]) -> None:
    csv_path, _ = shop
    sessions = read_events_csv(csv_path)
    for split in (split_by_session(sessions), split_by_time(sessions)):
        ids = {part: set(sessions.ids[split == part]) for part in Split}
        assert not ids[Split.TRAIN] & ids[Split.TEST]
        assert not ids[Split.TRAIN] & ids[Split.VAL]
        assert not ids[Split.VAL] & ids[Split.TEST]
        assert all(ids[part] for part in Split)
    timed = split_by_time(sessions)
    starts = sessions.events.ts[sessions.events.starts]
    assert starts[timed == Split.TRAIN].max() <= starts[timed == Split.TEST].min()
    for mode in ("session", "time"):  # and at window level, as evaluate takes them
        dataset = load_dataset(csv_path, FeatureConfig(window=WINDOW), split_mode=mode)
        train, test = dataset.part(Split.TRAIN), dataset.part(Split.TEST)
        assert not set(dataset.sessions.ids[train.session]) & set(dataset.sessions.ids[test.session])


@pytest.mark.slow
def test_folds_keep_each_session_on_one_side(shop: tuple[Path, Path]) -> None:
    csv_path, model_dir = shop
    dataset = load_dataset(csv_path, FeatureConfig(window=WINDOW))
    fold = session_folds(dataset, 4, seed=0)
    assert (fold >= 0).all() and np.bincount(fold).min() > 0
    for i in range(4):
        split = fold_split(fold, i, 4)
        part_of_window = split[dataset.windows.session]
        for part in Split:  # every window of a session lands where its session does
            sessions = np.unique(dataset.windows.session[part_of_window == part])
            assert (split[sessions] == part).all()
    result = run_folds(dataset, model_dir, 3, baselines=False, train_minutes=0.2, seed=0)
    assert sum(result["sessions_per_fold"]) == len(dataset.sessions)
    summary = result["models"]["lstm_gru_small"]["summary"]
    assert summary["add_cart"]["roc_auc"]["n_folds"] == 3


@pytest.mark.slow
def test_sweep_point_scores_all_and_cart_abandon_sessions(shop: tuple[Path, Path]) -> None:
    csv_path, _ = shop
    result = run_sweep(
        csv_path, FeatureConfig(), "session", train_minutes=0.2, seed=0, windows=(4,), n_boot=20, max_epochs=1
    )
    point = result["points"][0]
    assert point["window"] == 4 and point["published_all_sessions_pct"] == 94.64
    assert point["cart_abandon_sessions"]["n_windows"] > 0
    assert 0 <= point["all_sessions"]["accuracy"]["value"] <= 1
    assert point["all_sessions"]["make_order"]["pr_auc"]["value"] is not None
    # cart-abandonment sessions never order: that AUC is undefined, and says so
    assert point["cart_abandon_sessions"]["make_order"]["roc_auc"]["reason"] == "no positive windows in this set"


def test_another_shop_with_few_actions_no_from_ad_and_no_orders(shop: tuple[Path, Path], tmp_path: Path) -> None:
    _, model_dir = shop
    rng = np.random.default_rng(0)
    rows = ["session_id,ts,action"]  # no from_ad column at all
    for s in range(160):
        n = int(rng.integers(3, 12))
        actions = rng.choice(["view_product", "add_cart"], size=n, p=[0.85, 0.15])
        rows += [f"other-{s},{1_700_000_000 + s * 5000 + 30 * i},{a}" for i, a in enumerate(actions)]
    csv_path = tmp_path / "other_shop.csv"
    csv_path.write_text("\n".join(rows) + "\n")

    stale = tmp_path / "out" / "window_sweep.png"  # from an earlier run with --sweep
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    metrics = evaluate_model(model_dir, csv_path, tmp_path / "out", options=EvalOptions(n_boot=N_BOOT))
    assert not stale.exists()
    order = metrics["models"]["tiny"]["labels"]["make_order"]
    assert order["roc_auc"]["value"] is None and "no positive" in order["roc_auc"]["reason"]
    assert order["all_zeros_accuracy"]["value"] == 1.0
    assert metrics["models"]["tiny"]["labels"]["add_cart"]["roc_auc"]["value"] is not None
    assert metrics["dataset"]["same_file_as_training"] is False
    assert (tmp_path / "out" / "report.md").is_file()


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # a second command keeps `evaluate` a subcommand, as in the real app
    return app


def test_cli_refuses_files_it_cannot_use(shop: tuple[Path, Path], tmp_path: Path) -> None:
    csv_path, model_dir = shop
    runner = CliRunner()
    bad = tmp_path / "bad.csv"
    bad.write_text("user,time,what\n1,2,3\n")
    cases = [
        (["--model", str(model_dir), "--data", str(bad)], "lacks"),
        (["--model", str(model_dir), "--data", str(tmp_path / "missing.csv")], "no such file"),
        (["--model", str(tmp_path), "--data", str(csv_path)], "not a model directory"),
    ]
    for args, message in cases:
        result = runner.invoke(_cli(), ["evaluate", *args, "-o", str(tmp_path / "out")])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.split())


def test_cli_evaluates(shop: tuple[Path, Path], tmp_path: Path) -> None:
    csv_path, model_dir = shop
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        _cli(), ["evaluate", "--model", str(model_dir), "--data", str(csv_path), "-o", str(out), "--n-boot", "20"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["command"].startswith("session-intent evaluate --model")
    assert metrics["folds"] is None and metrics["sweep"] is None
    window = dataclasses.replace(FeatureConfig(), window=WINDOW)
    assert metrics["model"]["window"] == window.window


def test_update_card_stores_test_metrics_with_cis(shop: tuple[Path, Path], tmp_path: Path) -> None:
    csv_path, model_dir = shop
    model_copy = tmp_path / "model"
    shutil.copytree(model_dir, model_copy)
    args = ["evaluate", "--model", str(model_copy), "--data", str(csv_path), "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(_cli(), [*args, "--n-boot", "20", "--update-card"])
    assert result.exit_code == 0, result.output
    card = json.loads((model_copy / "card.json").read_text())
    pr_auc = card["metrics"]["test"]["labels"]["labels"]["make_order"]["pr_auc"]
    assert pr_auc["ci_low"] <= pr_auc["value"] <= pr_auc["ci_high"]
    assert card["metrics"]["test"]["dataset"]["sha256"]


def test_refuses_a_split_that_would_score_trained_sessions(shop: tuple[Path, Path], tmp_path: Path) -> None:
    csv_path, model_dir = shop
    with pytest.raises(ValueError, match="trained on this file with the 'session' split"):
        evaluate_model(model_dir, csv_path, tmp_path / "out", options=EvalOptions(split_mode="time", n_boot=0))
