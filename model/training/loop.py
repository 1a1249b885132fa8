"""Training (docs/architecture.md §6): Adam, per-label BCE, gradient clipping, an LR schedule, early stopping on
validation make_order PR-AUC, fixed seeds and deterministic ops; optional distillation from a teacher.

`train_model` trains on a Dataset's TRAIN part and early-stops on its VAL part; `fit` is the loop
itself on any two WindowSets.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.metrics import average_precision_score
from torch.nn import functional as F

from model.data.dataset import Dataset, Split, WindowSet
from model.training.batches import epoch_batches
from model.training.calibration import calibrate
from model.training.calibration_choice import MAX_TRAIN_WINDOWS, choose_calibration
from model.training.checkpoint import predict_logits
from model.training.config import CROSSFIT, VALIDATION, TrainConfig
from model.training.crossfit import out_of_fold_logits
from model.training.distill import distillation_loss, ensemble_soft_targets
from model.training.id_dropout import drop_context_ids
from model.training.nets import IntentNet, NetConfig, build_net

log = logging.getLogger(__name__)

_TIE = 1e-6  # PR-AUCs closer than this count as equal; the lower validation loss then wins


class TrainingDataError(ValueError):
    """The data cannot train a model (e.g. no validation windows); the message says why."""


@contextmanager
def deterministic_torch(seed: int, threads: int = 0) -> Iterator[None]:
    """Seed every RNG and force deterministic kernels; restores the global torch settings after."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    old_threads = torch.get_num_threads()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(old_threads)


def train_model(
    dataset: Dataset,
    net_cfg: NetConfig,
    train_cfg: TrainConfig,
    teacher: IntentNet | Sequence[IntentNet] | None = None,
    alpha: float = 0.5,
    show_progress: bool = True,
) -> tuple[IntentNet, dict[str, Any]]:
    """Train a fresh `net_cfg` network on the TRAIN part, early-stopping on VAL; the best epoch's weights.

    With a teacher, the loss is alpha · BCE(true labels) + (1 − alpha) · BCE(teacher's soft labels); several
    teachers (seeds) teach as one ensemble, the mean of their logits.
    A context net trains a `context_dropout` share of its sessions on their id-less context; with `calibrate`,
    the trained net's logits are Platt-scaled on VAL (folded into its weights, recorded in the history).
    """
    window = dataset.windows.window
    if net_cfg.window != window:
        raise TrainingDataError(f"NetConfig.window={net_cfg.window} but the dataset's windows have N={window}")
    train, val = dataset.part(Split.TRAIN), dataset.part(Split.VAL)
    teachers = [teacher] if isinstance(teacher, IntentNet) else list(teacher or [])
    trained_on, dropped = train, 0
    if net_cfg.context_dim:
        trained_on, dropped = drop_context_ids(train, dataset.sessions, train_cfg.context_dropout, train_cfg.seed)
    # The teachers score what the student is shown: a session trained without its ids is taught the teachers'
    # scores for it without ids, not scores the student cannot see the grounds for.
    soft = _soft_targets(teachers, trained_on, train_cfg.temperature) if teachers else None
    with deterministic_torch(train_cfg.seed, train_cfg.threads):
        net = build_net(net_cfg)
        history = fit(net, trained_on, val, train_cfg, soft=soft, alpha=alpha, show_progress=show_progress)
    # The dropped sessions' id-less rows (0.19 GiB at 20M events) are not needed past the loop.
    del trained_on, soft
    history["context_dropout"] = {"share": train_cfg.context_dropout if net_cfg.context_dim else 0.0,
                                  "sessions": dropped}  # fmt: skip
    oof = None
    if train_cfg.calibrate and train_cfg.calibration_score == CROSSFIT:
        label_only = replace(train_cfg, calibrate=False)
        oof = out_of_fold_logits(
            dataset, lambda d: train_model(d, net_cfg, label_only, show_progress=False), train_cfg.seed
        )
    history["calibration"] = _calibrate(net, train, val, train_cfg, oof) if train_cfg.calibrate else None
    return net.eval(), history


def _calibrate(
    net: IntentNet, train: WindowSet, val: WindowSet, cfg: TrainConfig, oof: tuple[Any, ...] | None = None
) -> dict[str, Any]:
    """Fit the per-label Platt scaling on the windows `cfg.calibration_fit` names (chosen on validation) and fold it
    into `net`; the record for the card. train: the TRAIN part with its ids, as validation is scored (the set the
    loop trained on, before context dropout: sampled from, never copied whole). oof: `out_of_fold_logits`'s
    (logits, labels, sessions, best epochs) of the training windows, which then replace `net`'s own."""
    names = net.config.context
    logits = predict_logits(net, val.view, val.context_view(names))  # type: ignore[arg-type]
    train_logits, y_train = np.zeros((0, 2), dtype=np.float32), np.zeros((0, 2), dtype=np.float32)
    train_sessions = np.zeros(0, dtype=np.int64)
    if oof is not None:
        train_logits, y_train, train_sessions, _ = oof
    elif cfg.calibration_fit != VALIDATION:
        if len(train) > MAX_TRAIN_WINDOWS:
            train = train.take(np.sort(np.random.default_rng(cfg.seed).choice(len(train), MAX_TRAIN_WINDOWS, False)))
        train_logits = predict_logits(net, train.view, train.contexts(slice(None), names))  # type: ignore[arg-type]
        y_train, train_sessions = train.Y, train.session
    calibration, choice = choose_calibration(
        logits, val.Y, val.session, train_logits, y_train, cfg.calibration_fit, cfg.seed, cfg.calibration_score,
        train_sessions,
    )  # fmt: skip
    if oof is not None:
        choice = {**choice, "out_of_fold_nets": {"folds": len(oof[3]), "best_epochs": oof[3]}}
    return calibrate(net, logits, val.Y, calibration, choice)


def _soft_targets(teachers: list[IntentNet], train: WindowSet, temperature: float, chunk: int = 65536) -> np.ndarray:
    """(n, 2) the (ensemble) teacher's probabilities, gathered and scored one chunk of windows at a time."""
    parts = [ensemble_soft_targets(teachers, train.windows(slice(i, i + chunk)), temperature,
                                   [train.contexts(slice(i, i + chunk), t.config.context) for t in teachers])
             for i in range(0, len(train), chunk)]  # fmt: skip
    return np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.float32)


def fit(
    net: IntentNet,
    train: WindowSet,
    val: WindowSet,
    cfg: TrainConfig,
    soft: np.ndarray | None = None,
    alpha: float = 0.5,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train `net` in place on `train`, keep the weights of the best `val` epoch; return the history.

    soft: (len(train), 2) teacher probabilities for distillation, or None.
    """
    if len(train) == 0 or len(val) == 0:
        raise TrainingDataError(
            f"need training and validation windows, got {len(train)} and {len(val)}: the file has too few sessions"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    soft_np = np.asarray(soft, dtype=np.float32) if soft is not None else None
    pos_weight = torch.tensor(cfg.pos_weight, dtype=torch.float32) if cfg.pos_weight else None
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = _make_scheduler(optimizer, cfg)
    generator = torch.Generator().manual_seed(cfg.seed)
    val_has_orders = bool(val.Y[:, 1].any())
    if not val_has_orders:
        log.warning("no make_order positives in validation: early stopping on validation loss instead of PR-AUC")

    history: dict[str, Any] = {
        "train_loss": [], "val_loss": [], "val_pr_auc": [], "val_pr_auc_add_cart": [], "lr": [], "epoch_seconds": [],
        "train_windows_per_s": [], "prefixes_per_epoch": cfg.prefixes_per_epoch,
        "monitor": "val make_order PR-AUC" if val_has_orders else "val loss",
        "n_train": len(train), "n_val": len(val), "distilled": soft is not None,
        "alpha": alpha if soft is not None else 1.0,
    }  # fmt: skip
    best: tuple[float, float] = (-np.inf, np.inf)  # (PR-AUC, val loss)
    best_state: dict[str, torch.Tensor] = {}
    began = time.perf_counter()
    deadline = began + cfg.max_minutes * 60 if cfg.max_minutes is not None else np.inf
    stopped, stale = "epochs", 0
    gain_ref = -np.inf  # the monitored value at the last epoch that reset the patience count
    batches = epoch_batches(train, cfg.batch_size, generator, cfg.prefixes_per_epoch, soft_np, net.config.context)
    n_batches = len(batches)
    with _progress(show_progress) as progress:
        for epoch in range(1, cfg.epochs + 1):
            epoch_began = time.perf_counter()
            task = progress.add_task(f"epoch {epoch}/{cfg.epochs}", total=n_batches, loss=float("nan"))
            net.train()
            total, seen = 0.0, 0
            for batch in batches:
                x, y, ctx = batch[0], batch[1], batch[2]  # (B, N, 16), (B, 2), (B, k)
                logits = net(x, ctx if ctx.shape[1] else None)  # (B, 2)
                if soft_np is None:
                    loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight)
                else:
                    loss = distillation_loss(logits, y, batch[3], alpha, cfg.temperature, pos_weight)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                optimizer.step()
                total += loss.item() * len(y)
                seen += len(y)
                progress.update(task, advance=1, loss=total / seen)
                if time.perf_counter() > deadline:
                    stopped = "time budget"
                    break
            progress.remove_task(task)
            train_seconds = time.perf_counter() - epoch_began

            val_loss, pr_cart, pr_order = _validate(net, val)
            history["train_loss"].append(total / seen)
            history["val_loss"].append(val_loss)
            history["val_pr_auc"].append(pr_order)
            history["val_pr_auc_add_cart"].append(pr_cart)
            history["lr"].append(optimizer.param_groups[0]["lr"])
            history["epoch_seconds"].append(time.perf_counter() - epoch_began)
            history["train_windows_per_s"].append(seen / max(train_seconds, 1e-9))
            log.info(
                "epoch %d: train loss %.4f, val loss %.4f, val PR-AUC make_order %.4f add_cart %.4f, %.1f s",
                epoch, total / seen, val_loss, pr_order, pr_cart, history["epoch_seconds"][-1],
            )  # fmt: skip

            score = (pr_order if val_has_orders else 0.0, val_loss)
            monitored = score[0] if val_has_orders else -val_loss
            improved = score[0] > best[0] + _TIE or (abs(score[0] - best[0]) <= _TIE and score[1] < best[1])
            if improved:
                best = score
                history["best_epoch"] = epoch
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            if improved and monitored > gain_ref + cfg.min_delta - _TIE:
                gain_ref, stale = monitored, 0
            else:
                stale += 1
            _step_scheduler(scheduler, monitored)
            # Checked again after the validation pass: on a big log that pass alone can outlast the budget,
            # and an epoch started past the deadline would run one batch and then a whole validation pass.
            if stopped == "time budget" or time.perf_counter() > deadline:
                stopped = "time budget"
                break
            if cfg.patience is not None and stale > cfg.patience:
                stopped = "patience"
                break

    net.load_state_dict(best_state)
    net.eval()
    history["best_val_pr_auc"] = history["val_pr_auc"][history["best_epoch"] - 1]
    history["stopped"] = stopped
    history["seconds"] = time.perf_counter() - began
    log.info(
        "stopped (%s) after %d epochs in %.1f s; best epoch %d, val make_order PR-AUC %.4f",
        stopped, len(history["train_loss"]), history["seconds"], history["best_epoch"], history["best_val_pr_auc"],
    )  # fmt: skip
    return history


def _validate(net: IntentNet, val: WindowSet) -> tuple[float, float, float]:
    """Unweighted BCE on `val`, and PR-AUC per label (nan for a label without positives)."""
    context = val.context_view(net.config.context)
    logits = predict_logits(net, val.view, context)  # type: ignore[arg-type]  # both gathered batch by batch
    loss = F.binary_cross_entropy_with_logits(torch.from_numpy(logits), torch.from_numpy(val.Y)).item()
    pr = [
        float(average_precision_score(val.Y[:, j], logits[:, j])) if val.Y[:, j].any() else float("nan")
        for j in range(2)
    ]
    return loss, pr[0], pr[1]


def _make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=cfg.lr_patience)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1))
    return None


def _step_scheduler(scheduler: Any, monitored: float) -> None:
    """Step once per epoch; the plateau schedule watches the early-stopping metric (higher is better)."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitored)
    elif scheduler is not None:
        scheduler.step()


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress]:
    """A per-epoch rich progress bar (transient; hidden when disabled or not on a terminal)."""
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(), transient=True, disable=not enabled,
    )  # fmt: skip
    with progress:
        yield progress
