"""Post-hoc calibration (model/training/calibration.py): the fold equals the calibration applied outside the
network, rankings do not move, a miscalibrated validation set comes out better calibrated, and `train_model`
applies it by default and records it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from model.context import CONTEXT_NAMES
from model.data.dataset import Dataset, Split, load_dataset
from model.data.synth import generate_sessions, write_csv
from model.evaluation.bootstrap import expected_calibration_error
from model.features import VECTOR_DIM, FeatureConfig
from model.training.calibration import (
    LabelCalibration,
    apply_calibration,
    calibration_record,
    fit_calibration,
    fit_label,
    fold_calibration,
    remove_calibration,
)
from model.training.calibration_choice import CALIBRATION_SOURCES, choose_calibration, fit_source, out_of_fold_ece
from model.training.checkpoint import predict_logits
from model.training.config import TrainConfig
from model.training.loop import train_model
from model.training.nets import NetConfig, build_net

WINDOW = 5
TINY = NetConfig.for_arch("lstm_gru_small", window=WINDOW, lstm_units=8, gru_units=8)
TINY_CONTEXT = replace(TINY, context=CONTEXT_NAMES)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _inputs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    windows = np.zeros((n, WINDOW, VECTOR_DIM), dtype=np.float32)
    windows[:, :, 0] = rng.uniform(1, 300, size=(n, WINDOW))  # a dwell in one action slot: real events
    windows[:, :, 13] = rng.integers(0, 2, size=(n, WINDOW))
    context = rng.uniform(0, 20, size=(n, len(CONTEXT_NAMES))).astype(np.float32)
    return windows, context


@pytest.mark.parametrize(
    "cfg", [TINY, TINY_CONTEXT, replace(TINY_CONTEXT, wide=True)], ids=["plain", "context", "wide"]
)
def test_the_fold_gives_the_calibration_applied_outside(cfg: NetConfig) -> None:
    torch.manual_seed(0)
    net = build_net(cfg).eval()
    windows, context = _inputs(64)
    ctx = context if cfg.context_dim else None
    before = predict_logits(net, windows, ctx)
    calibration = (LabelCalibration(1.7, -0.3, True), LabelCalibration(0.6, 0.4, True))
    fold_calibration(net, calibration)
    after = predict_logits(net, windows, ctx)
    np.testing.assert_allclose(after, apply_calibration(before, calibration), rtol=1e-5, atol=1e-5)
    assert not np.allclose(after, before)


def _miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) logits three times too confident and shifted, and (n, 2) labels drawn from the true logits."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(-1.5, 1.0, size=(n, 2))
    y = (rng.random((n, 2)) < 1 / (1 + np.exp(-truth))).astype(np.float32)
    return (3.0 * truth + 1.0).astype(np.float32), y


def test_the_cards_record_undoes_the_calibration() -> None:
    """remove_calibration reads the card's a, b and gives back the network's own logits (the check scripts' input)."""
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(200, 2))
    y = (rng.random((200, 2)) < 0.3).astype(np.int64)
    calibration = (LabelCalibration(1.3, 0.4, applied=True), LabelCalibration(0.8, -0.2, applied=True))
    record = calibration_record(calibration, logits, y)
    np.testing.assert_allclose(remove_calibration(apply_calibration(logits, calibration), record), logits, atol=1e-5)


def test_platt_scaling_lowers_the_validation_ece_and_keeps_the_ranking() -> None:
    logits, y = _miscalibrated(4000, seed=1)
    calibration = fit_calibration(logits, y)
    after = apply_calibration(logits, calibration)
    for j in range(2):
        assert calibration[j].applied and calibration[j].a == pytest.approx(1 / 3, rel=0.15)
        ece_before = expected_calibration_error(y[:, j], 1 / (1 + np.exp(-logits[:, j])))
        ece_after = expected_calibration_error(y[:, j], 1 / (1 + np.exp(-after[:, j])))
        assert ece_after < 0.5 * ece_before, (ece_before, ece_after)
        assert roc_auc_score(y[:, j], after[:, j]) == pytest.approx(roc_auc_score(y[:, j], logits[:, j]), abs=1e-12)


def test_a_label_the_logits_do_not_rank_is_left_alone() -> None:
    logits, y = _miscalibrated(2000, seed=2)
    assert not fit_label(-logits[:, 0], y[:, 0]).applied  # reversed: a would be negative, not monotone up
    one_class = fit_label(logits[:, 1], np.zeros(2000))
    assert not one_class.applied and (one_class.a, one_class.b) == (1.0, 0.0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    path = tmp_path_factory.mktemp("calib") / "shop.csv"
    write_csv(generate_sessions(300, seed=7), path)
    return load_dataset(Path(path), FeatureConfig(window=WINDOW))


def test_training_calibrates_on_validation_by_default(dataset: Dataset) -> None:
    cfg = TrainConfig(epochs=2, seed=0, calibration_fit="validation")
    plain, plain_history = train_model(dataset, TINY_CONTEXT, replace(cfg, calibrate=False), show_progress=False)
    net, history = train_model(dataset, TINY_CONTEXT, cfg, show_progress=False)
    assert plain_history["calibration"] is None
    record = history["calibration"]
    assert record["fitted_on"] == "validation" and record["add_cart"]["source"] == "validation"
    val = dataset.part(Split.VAL)
    ctx = val.contexts(slice(None), CONTEXT_NAMES)
    calibration = tuple(LabelCalibration(record[k]["a"], record[k]["b"]) for k in ("add_cart", "make_order"))
    expected = apply_calibration(predict_logits(plain, val.X, ctx), calibration)
    np.testing.assert_allclose(predict_logits(net, val.X, ctx), expected, rtol=1e-4, atol=1e-4)
    for label in ("add_cart", "make_order"):
        if record[label]["applied"]:
            assert record[label]["val_ece_after"] <= record[label]["val_ece_before"] + 1e-9, record[label]


def test_the_validation_fit_is_the_earlier_calibration() -> None:
    logits, y = _miscalibrated(3000, seed=4)
    chosen, record = choose_calibration(logits, y, np.arange(3000) // 10, np.zeros((0, 2)), np.zeros((0, 2)),
                                        fit="validation")  # fmt: skip
    assert chosen == fit_calibration(logits, y)
    assert [record["labels"][j]["source"] for j in range(2)] == ["validation", "validation"]


def test_auto_keeps_the_source_with_the_lowest_out_of_fold_validation_ece() -> None:
    """Each label keeps the source whose out-of-fold validation ECE is lowest, refitted on all its windows."""
    train, y_train = _miscalibrated(20000, seed=5)
    val, y_val = _miscalibrated(400, seed=6)
    sessions = np.arange(400) // 8
    chosen, record = choose_calibration(val, y_val, sessions, train, y_train)
    for j in range(2):
        scores = record["labels"][j]["oof_ece"]
        assert set(scores) == set(CALIBRATION_SOURCES)
        source = record["labels"][j]["source"]
        assert source == min(scores, key=scores.__getitem__) != "none", scores  # 3x too confident: fit it
        assert chosen[j] == fit_source(source, val[:, j], y_val[:, j], train[:, j], y_train[:, j])
    both = fit_source("train+validation", val[:, 0], y_val[:, 0], train[:, 0], y_train[:, 0])
    assert both.a == pytest.approx(1 / 3, rel=0.1)  # the fit on all 20,400 windows
    # Out of fold means the held fold is not in its own fit: in-sample, the validation fit would score lower.
    in_sample = fit_label(val[:, 0], y_val[:, 0])
    z = in_sample.a * val[:, 0] + in_sample.b
    assert expected_calibration_error(y_val[:, 0], 1 / (1 + np.exp(-z))) < out_of_fold_ece(
        "validation", val[:, 0], y_val[:, 0], sessions, train[:, 0], y_train[:, 0]
    )


def test_pooled_sessions_do_not_follow_one_small_samples_base_rate() -> None:
    """Validation's 600 windows sit +0.8 logits above the 20,000 training windows (a small sample's base rate):
    scored on validation alone, its own fit wins; scored on the pooled sessions, a fit that follows the pooled
    rate wins."""
    rng = np.random.default_rng(7)
    train = rng.normal(-1.2, 1.0, size=(20000, 2))
    y_train = (rng.random((20000, 2)) < 1 / (1 + np.exp(-train))).astype(np.float32)
    val = rng.normal(-1.2, 1.0, size=(600, 2))
    y_val = (rng.random((600, 2)) < 1 / (1 + np.exp(-(val + 0.8)))).astype(np.float32)
    sessions, train_sessions = np.arange(600) // 6, 1000 + np.arange(20000) // 6
    _, by_val = choose_calibration(val, y_val, sessions, train, y_train, score="validation")
    _, pooled = choose_calibration(val, y_val, sessions, train, y_train, score="pooled", train_sessions=train_sessions)
    assert pooled["score"] == "pooled" and by_val["score"] == "validation"
    for j in range(2):
        assert by_val["labels"][j]["source"] == "validation", by_val["labels"][j]
        assert pooled["labels"][j]["source"] != "validation", pooled["labels"][j]
    with pytest.raises(ValueError, match="sessions"):
        choose_calibration(val, y_val, sessions, train, y_train, score="pooled")


def test_training_chooses_the_calibration_on_validation_and_records_it(dataset: Dataset) -> None:
    _, history = train_model(dataset, TINY_CONTEXT, TrainConfig(epochs=1, seed=0), show_progress=False)
    record = history["calibration"]
    assert record["choice"]["fit"] == "auto" and record["choice"]["train_windows"] > 0
    assert record["choice"]["score"] == "validation"  # the default: validation's own sessions (docs/training.md)
    for label in ("add_cart", "make_order"):
        assert record[label]["source"] in CALIBRATION_SOURCES
        assert set(record[label]["oof_ece"]) == set(CALIBRATION_SOURCES)
    with pytest.raises(ValueError, match="calibration_fit"):
        TrainConfig(calibration_fit="test")
    with pytest.raises(ValueError, match="calibration_score"):
        TrainConfig(calibration_score="test")


def test_the_training_fit_scores_the_training_windows_with_their_ids(dataset: Dataset) -> None:
    """The calibration samples the TRAIN part the loop trained on, scored with its ids (not context dropout's
    id-less rows), and gives what the whole part, built afresh, gives."""
    cfg = TrainConfig(epochs=1, seed=0, calibration_fit="train+validation")
    _, history = train_model(dataset, TINY_CONTEXT, cfg, show_progress=False)
    raw, _ = train_model(dataset, TINY_CONTEXT, replace(cfg, calibrate=False), show_progress=False)
    train, val = dataset.part(Split.TRAIN), dataset.part(Split.VAL)
    logits = predict_logits(raw, val.X, val.contexts(slice(None), CONTEXT_NAMES))
    train_logits = predict_logits(raw, train.X, train.contexts(slice(None), CONTEXT_NAMES))
    calibration, choice = choose_calibration(logits, val.Y, val.session, train_logits, train.Y, cfg.calibration_fit,
                                             cfg.seed, cfg.calibration_score, train.session)  # fmt: skip
    for j, (label, fitted) in enumerate(zip(("add_cart", "make_order"), calibration, strict=True)):
        record = history["calibration"][label]
        # the out-of-fold ECE and a refused fit's reason (its a) read the training logits even when no fit applies
        assert record["oof_ece"] == choice["labels"][j]["oof_ece"]
        assert (record["a"], record["b"], record["reason"]) == (fitted.a, fitted.b, fitted.reason)
