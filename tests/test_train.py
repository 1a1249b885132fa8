"""Training on real (synthetic) windows with tiny nets: overfitting, early stopping, determinism,
distillation, threshold tuning, and the `train` command end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from sklearn.metrics import average_precision_score, f1_score
from torch.nn import functional as F
from typer.testing import CliRunner

from cli.train_command import register
from model.card import ModelCard
from model.data.dataset import Dataset, Split, WindowSet, abandonment_targets, cart_so_far, load_dataset
from model.data.synth import generate_sessions, write_csv
from model.features import ACTIONS, ADD_CART, ORDER, FeatureConfig
from model.risk import abandonment_risk, decision_thresholds
from model.training.batches import epoch_batches
from model.training.checkpoint import load_model, predict_logits, predict_proba
from model.training.config import TrainConfig
from model.training.loop import fit, train_model
from model.training.nets import NetConfig, build_net
from model.training.thresholds import abandonment_inputs, tune_thresholds

WINDOW = 6
TINY = NetConfig.for_arch("lstm_gru_small", window=WINDOW, lstm_units=12, gru_units=8)
QUICK = TrainConfig(epochs=3, batch_size=128, seed=3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def synth_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "shop.csv"
    write_csv(generate_sessions(400, seed=11), path)
    return path


@pytest.fixture(scope="module")
def dataset(synth_csv: Path) -> Dataset:
    return load_dataset(synth_csv, FeatureConfig(window=WINDOW))


def bce(net: torch.nn.Module, part: WindowSet) -> float:
    logits = torch.from_numpy(predict_logits(net, part.X))  # type: ignore[arg-type]
    return F.binary_cross_entropy_with_logits(logits, torch.from_numpy(part.Y)).item()


def distinct_windows(part: WindowSet, n: int, seed: int = 0) -> WindowSet:
    """n windows with pairwise different X (identical windows could carry conflicting labels)."""
    _, first = np.unique(part.X.reshape(len(part), -1), axis=0, return_index=True)
    chosen = np.random.default_rng(seed).choice(first, size=n, replace=False)
    mask = np.zeros(len(part), dtype=bool)
    mask[chosen] = True
    return part.take(mask)


def test_tiny_model_overfits_64_windows(dataset: Dataset) -> None:
    few = distinct_windows(dataset.part(Split.TRAIN), 64)
    assert few.Y[:, 0].any() and few.Y[:, 1].any()
    torch.manual_seed(0)
    net = build_net(replace(TINY, dropout=0.0))
    before = bce(net, few)
    cfg = TrainConfig(epochs=300, batch_size=64, lr=1e-2, patience=None, schedule="none", grad_clip=0.0)
    history = fit(net, few, few, cfg, show_progress=False)
    after = bce(net, few)
    assert after <= 0.1 * before, (before, after, history["train_loss"][-5:])


def test_training_is_deterministic_with_a_seed(dataset: Dataset) -> None:
    net_a, hist_a = train_model(dataset, TINY, QUICK, show_progress=False)
    net_b, hist_b = train_model(dataset, TINY, QUICK, show_progress=False)
    assert hist_a["train_loss"] == hist_b["train_loss"]
    assert hist_a["val_pr_auc"] == hist_b["val_pr_auc"]
    for (name, a), b in zip(net_a.state_dict().items(), net_b.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    _, hist_c = train_model(dataset, TINY, replace(QUICK, seed=4), show_progress=False)
    assert hist_c["train_loss"] != hist_a["train_loss"]
    assert not torch.are_deterministic_algorithms_enabled()  # the global setting is restored


def test_min_delta_stops_when_gains_are_small_and_still_keeps_the_best_epoch(dataset: Dataset) -> None:
    """A gain no epoch can bring (PR-AUC moves by < 1): the first epoch sets the reference, then `patience` + 1
    epochs without enough gain stop the run, while the best epoch's weights are still the ones kept."""
    torch.manual_seed(0)
    net = build_net(TINY)
    cfg = TrainConfig(epochs=40, batch_size=256, patience=2, min_delta=1.0, seed=0)
    val = dataset.part(Split.VAL)
    history = fit(net, dataset.part(Split.TRAIN), val, cfg, show_progress=False)
    assert history["stopped"] == "patience" and len(history["train_loss"]) == 1 + cfg.patience + 1
    assert history["best_val_pr_auc"] == max(history["val_pr_auc"])
    restored = average_precision_score(val.Y[:, 1], predict_logits(net, val.X)[:, 1])
    assert restored == pytest.approx(history["best_val_pr_auc"], abs=1e-6)


def test_min_delta_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="min_delta"):
        TrainConfig(min_delta=-0.1)


def test_early_stopping_keeps_the_best_epoch(dataset: Dataset) -> None:
    """Validation labels shuffled: PR-AUC is noise, so training stops `patience` epochs after the best."""
    val = dataset.part(Split.VAL)
    noisy = replace(val, Y=np.random.default_rng(0).permutation(val.Y))
    torch.manual_seed(0)
    net = build_net(TINY)
    cfg = TrainConfig(epochs=40, batch_size=256, patience=1, seed=0)
    history = fit(net, dataset.part(Split.TRAIN), noisy, cfg, show_progress=False)
    n_epochs = len(history["train_loss"])
    assert history["stopped"] == "patience" and n_epochs < cfg.epochs
    assert n_epochs == history["best_epoch"] + cfg.patience + 1  # type: ignore[operator]
    assert history["best_val_pr_auc"] == max(history["val_pr_auc"])
    restored = average_precision_score(noisy.Y[:, 1], predict_logits(net, noisy.X)[:, 1])
    assert restored == pytest.approx(history["best_val_pr_auc"], abs=1e-6)


def test_time_budget_cuts_training_short(dataset: Dataset) -> None:
    _, history = train_model(dataset, TINY, replace(QUICK, epochs=50, max_minutes=0.0), show_progress=False)
    assert history["stopped"] == "time budget"
    assert len(history["train_loss"]) == 1


def test_no_epoch_starts_after_the_budget_ran_out(dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget runs out during epoch 1's validation pass (a fake clock jumps there): epoch 2 never starts."""
    from model.training import loop

    now = [0.0]
    real_validate = loop._validate

    def slow_validate(net: object, val: WindowSet) -> tuple[float, float, float]:
        now[0] += 3600.0
        return real_validate(net, val)  # type: ignore[arg-type]

    monkeypatch.setattr(loop.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(loop, "_validate", slow_validate)
    _, history = train_model(dataset, TINY, replace(QUICK, epochs=5, max_minutes=1.0), show_progress=False)
    assert history["stopped"] == "time budget"
    assert len(history["train_loss"]) == 1


def test_distillation_learns_the_teachers_soft_labels(dataset: Dataset) -> None:
    """alpha=0: the student fits only the teacher, whose biased head says p_add_cart ≈ 0.95 everywhere."""
    torch.manual_seed(1)
    teacher = build_net(TINY).eval()
    with torch.no_grad():
        teacher.head.weight.zero_()
        teacher.head.bias.copy_(torch.tensor([3.0, -3.0]))
    cfg = replace(QUICK, epochs=4, lr=1e-2, calibrate=False)  # what the loop learned, before validation rescales it
    student, history = train_model(dataset, TINY, cfg, teacher=teacher, alpha=0.0, show_progress=False)
    plain, _ = train_model(dataset, TINY, cfg, show_progress=False)
    val_x = dataset.part(Split.VAL).X
    assert history["distilled"] and history["alpha"] == 0.0
    assert predict_proba(student, val_x)[:, 0].mean() > 0.8
    assert predict_proba(plain, val_x)[:, 0].mean() < 0.5


def test_distillation_refuses_a_teacher_with_another_window(dataset: Dataset) -> None:
    teacher = build_net(replace(TINY, window=WINDOW + 2))
    with pytest.raises(ValueError, match="teacher was trained on windows of N=8"):
        train_model(dataset, TINY, QUICK, teacher=teacher, show_progress=False)


def test_thresholds_maximise_f1_on_validation() -> None:
    rng = np.random.default_rng(0)
    n = 200
    y = (rng.random((n, 2)) < 0.2).astype(np.float32)
    p = np.clip(0.5 * y + 0.6 * rng.random((n, 2)), 0, 1).astype(np.float32)
    cart = rng.random(n) < 0.3
    y_abandon = ((cart | (y[:, 0] > 0)) & (y[:, 1] == 0)).astype(np.float32)
    tau = tune_thresholds(p, y, cart, y_abandon)

    def brute_force(truth: np.ndarray, score: np.ndarray) -> float:
        return max(f1_score(truth, score >= t) for t in np.unique(score))

    assert f1_score(y[:, 1], p[:, 1] >= tau.order) == pytest.approx(brute_force(y[:, 1], p[:, 1]))
    risk = abandonment_risk(p[:, 0], p[:, 1], cart)
    assert f1_score(y_abandon, risk >= tau.risk) == pytest.approx(brute_force(y_abandon, risk))


def test_abandonment_inputs_index_the_windows_event(dataset: Dataset) -> None:
    val = dataset.part(Split.VAL)
    cart, y_abandon = abandonment_inputs(dataset, val)
    assert cart.shape == y_abandon.shape == (len(val),)
    # Where the whole prefix fits in the window, the window itself shows whether the cart is open: its
    # newest add_cart or order is an add_cart (model/risk.py: add_cart opens, order closes).
    whole = val.position < WINDOW
    moves = val.X[whole][:, :, [ADD_CART, ORDER]] > 0  # (n, N, 2)
    any_move = moves.any(axis=2)  # (n, N)
    newest = WINDOW - 1 - np.argmax(any_move[:, ::-1], axis=1)  # (n,) last window row with a move
    in_window = any_move.any(axis=1) & moves[np.arange(len(newest)), newest, 0]
    np.testing.assert_array_equal(cart[whole], in_window)
    # An order follows and no add_cart does ⇒ the cart ends closed; open now and no order after ⇒ abandoned.
    assert not (y_abandon.astype(bool) & (val.Y[:, 1] > 0) & (val.Y[:, 0] == 0)).any()
    np.testing.assert_array_equal(y_abandon[cart & (val.Y[:, 1] == 0)], 1.0)
    # Computed on the part's own sessions, as on the whole log (the earlier way, 6.6 × the scratch at a 15 % part).
    rows = dataset.sessions.events.starts[val.session] + val.position
    np.testing.assert_array_equal(cart, cart_so_far(dataset.sessions)[rows])
    np.testing.assert_array_equal(y_abandon, abandonment_targets(dataset.sessions)[rows])
    shuffled = val.take(np.random.default_rng(0).permutation(len(val)))  # any order of windows
    np.testing.assert_array_equal(abandonment_inputs(dataset, shuffled)[0], cart_so_far(dataset.sessions)[
        dataset.sessions.events.starts[shuffled.session] + shuffled.position])


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    app.callback()(lambda: None)  # keep `train` a subcommand, as in cli/main.py
    return app


def test_train_command_writes_a_loadable_model_dir(tmp_path: Path, synth_csv: Path) -> None:
    out = tmp_path / "models" / "shop"
    args = ["train", "--data", str(synth_csv), "-o", str(out), "--arch", "lstm_gru_small", "--epochs", "2",
            "--seed", "5", "--window", "8", "--timezone", "Europe/Madrid", "--data-licence", "CC0"]  # fmt: skip
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    assert "make_order" in result.output
    net, card = load_model(out)
    raw = json.loads((out / "card.json").read_text())
    assert raw["arch"] == card.arch == "lstm_gru_small"
    assert card.features == FeatureConfig(timezone="Europe/Madrid", window=8)
    assert card.hparams["net"] == net.config.to_dict() and card.hparams["train"]["seed"] == 5
    assert card.seed == 5 and card.git_commit
    assert card.data["licence"] == "CC0" and len(card.data["sha256"]) == 64
    assert set(card.slot_coverage) == set(ACTIONS) and sum(card.slot_coverage.values()) > 0
    assert 0.0 <= card.thresholds.order <= 1.0 and 0.0 <= card.thresholds.risk <= 1.0
    purchase = card.purchase_policy  # the default: a 5 % budget of validation clicks, its threshold is τ_order
    assert purchase is not None and (purchase.kind, purchase.target, purchase.unit) == ("budget", 0.05, "windows")
    assert purchase.n_sessions == card.metrics["validation"]["make_order"]["n"] and purchase.alert_share <= 0.05
    assert decision_thresholds(card).order == purchase.threshold
    assert set(card.metrics["validation"]) == {"add_cart", "make_order", "abandonment_risk"}
    assert card.extra["train_seconds"] > 0
    data = load_dataset(synth_csv, card.features)
    assert predict_proba(net, data.part(Split.TEST).X).shape == (len(data.part(Split.TEST)), 2)


def test_train_command_distils_from_a_teacher_dir(tmp_path: Path, synth_csv: Path) -> None:
    base = ["train", "--data", str(synth_csv), "--epochs", "1", "--window", "8"]
    assert CliRunner().invoke(cli(), [*base, "-o", str(tmp_path / "big"), "--arch", "gru"]).exit_code == 0
    result = CliRunner().invoke(cli(), [*base, "-o", str(tmp_path / "small"), "--teacher", str(tmp_path / "big")])
    assert result.exit_code == 0, result.output
    card = ModelCard.load(tmp_path / "small")
    assert card.extra["teacher"]["arch"] == "gru" and card.hparams["alpha"] == 0.5
    mismatch = CliRunner().invoke(
        cli(), [*base[:-1], "6", "-o", str(tmp_path / "x"), "--teacher", str(tmp_path / "big")]
    )
    assert mismatch.exit_code == 2 and "--window 8" in mismatch.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("user,time,event\n1,2,view\n", "lacks"),
        ("session_id,ts,action,from_ad\ns1,100,teleport,0\n", "unknown action"),
        ("session_id,ts,action,from_ad\ns1,100,home,0\ns1,101,home,0\n", "no session has"),
    ],
)
def test_train_command_explains_a_file_it_cannot_use(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = CliRunner().invoke(cli(), ["train", "--data", str(path), "-o", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "m").exists()


def test_train_command_refuses_an_unknown_timezone(tmp_path: Path, synth_csv: Path) -> None:
    args = ["train", "--data", str(synth_csv), "-o", str(tmp_path / "m"), "--timezone", "Mars/Olympus"]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 2 and "unknown --timezone" in result.output


def test_prefixes_per_epoch_samples_training_but_validates_on_every_prefix(dataset: Dataset) -> None:
    cfg = replace(QUICK, prefixes_per_epoch=300, epochs=2, patience=None)
    _, history = train_model(dataset, TINY, cfg, show_progress=False)
    assert history["n_val"] == len(dataset.part(Split.VAL))
    assert history["prefixes_per_epoch"] == 300
    with pytest.raises(ValueError, match="prefixes_per_epoch"):
        TrainConfig(prefixes_per_epoch=0)


def test_batches_gather_the_windows_of_their_prefixes(dataset: Dataset) -> None:
    train = dataset.part(Split.TRAIN)
    generator = torch.Generator().manual_seed(3)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(3)).tolist()
    batches = list(epoch_batches(train, 100, generator))
    assert sum(len(b[1]) for b in batches) == len(train)
    first = np.asarray(order[:100])
    np.testing.assert_array_equal(batches[0][0].numpy(), train.X[first])
    np.testing.assert_array_equal(batches[0][1].numpy(), train.Y[first])


def test_batches_leave_the_global_rng_alone(dataset: Dataset) -> None:
    """Dropout draws from torch's global RNG: the loader must not, or runs would differ from the old loop."""
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    list(epoch_batches(dataset.part(Split.TRAIN), 512, torch.Generator().manual_seed(1)))
    assert torch.equal(torch.rand(3), expected)
