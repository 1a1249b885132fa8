"""The context ablation (issue 20): which context groups (model/context.py) help, for the network and the
classic baselines given the same features, on the session split and the time split.

For each split and each context set (none / session / session+history by default) it trains the network
(saved as a model directory, so any run can be evaluated again), fits the baselines on the same windows and
the same context, and scores every model on the test sessions with session-bootstrap CIs. The best baseline
per row is picked by its test make_order PR-AUC (which favours the baseline), and the network is compared
with it by a paired bootstrap. `model/evaluation/report/ablation.py` writes the markdown and CSV.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model.card import ModelCard
from model.context import CONTEXT_SETS, context_card
from model.data.dataset import Dataset, Split, load_dataset
from model.evaluation.abandonment import RiskWindows
from model.evaluation.baselines import Predictions, run_baselines
from model.evaluation.bootstrap import N_BOOT, bootstrap_estimates, paired_difference
from model.features import FeatureConfig
from model.training.checkpoint import predict_proba, save_model
from model.training.config import TrainConfig
from model.training.loop import train_model
from model.training.nets import NetConfig
from model.training.thresholds import abandonment_inputs, tune_thresholds, validation_metrics

log = logging.getLogger(__name__)

DEFAULT_SETS: tuple[str, ...] = ("none", "session", "session+history")
DEFAULT_BASELINES: tuple[str, ...] = ("logreg", "random_forest", "hist_gbm")


@dataclass
class AblationOptions:
    arch: str = "lstm_gru_small"
    splits: tuple[str, ...] = ("session", "time")
    sets: tuple[str, ...] = DEFAULT_SETS
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    features: FeatureConfig = field(default_factory=FeatureConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    n_boot: int = N_BOOT
    seed: int = 0
    command: str = ""


def _estimates(y: np.ndarray, p: np.ndarray, session: np.ndarray, opts: AblationOptions) -> dict[str, Any]:
    return {
        name: est.to_dict()
        for name, est in bootstrap_estimates(
            y, p, session, metrics=("roc_auc", "pr_auc", "ece"), n_boot=opts.n_boot, seed=opts.seed
        ).items()
    }


def score_model(preds: Predictions, dataset: Dataset, opts: AblationOptions) -> dict[str, Any]:
    """Test metrics of one model: per label ROC-AUC, PR-AUC, ECE; abandonment risk ROC-AUC; all with CIs."""
    test = dataset.part(Split.TEST)
    risk = RiskWindows.build(dataset, test, preds.test)
    out = {label: _estimates(test.Y[:, j], preds.test[:, j], test.session, opts)
           for j, label in enumerate(("add_cart", "make_order"))}  # fmt: skip
    out["risk"] = bootstrap_estimates(
        risk.target, risk.risk, risk.session, metrics=("roc_auc",), n_boot=opts.n_boot, seed=opts.seed
    )["roc_auc"].to_dict()
    return out


def _train_net(
    dataset: Dataset, split: str, names: tuple[str, ...], model_dir: Path, opts: AblationOptions
) -> Predictions:
    """Train the network with context `names`, save it (card included), and predict val and test."""
    net_cfg = NetConfig.for_arch(opts.arch, window=opts.features.window, context=names)
    began = time.perf_counter()
    net, history = train_model(dataset, net_cfg, opts.train, show_progress=False)
    val, test = dataset.part(Split.VAL), dataset.part(Split.TEST)
    p_val = predict_proba(net, val.view, val.contexts(slice(None), names))  # type: ignore[arg-type]
    p_test = predict_proba(net, test.view, test.contexts(slice(None), names))  # type: ignore[arg-type]
    cart, y_abandon = abandonment_inputs(dataset, val)
    thresholds = tune_thresholds(p_val, val.Y, cart, y_abandon)
    card = ModelCard(
        name=model_dir.name, arch=opts.arch,
        hparams={"net": net_cfg.to_dict(), "train": opts.train.to_dict(), "alpha": None},
        features=opts.features, thresholds=thresholds,
        metrics={"validation": validation_metrics(p_val, val.Y, cart, y_abandon, thresholds)},
        data={"name": dataset.name, "sha256": dataset.sha256, "n_sessions": len(dataset.sessions),
              "n_windows": len(dataset.windows), "split": split},
        seed=opts.train.seed, context=context_card(names),
        extra={"train_seconds": round(time.perf_counter() - began, 2), "n_parameters": net.n_parameters(),
               "best_epoch": history["best_epoch"], "stopped": history["stopped"]},
    )  # fmt: skip
    save_model(model_dir, net, card)
    preds = Predictions(opts.arch, "trained", opts.arch, p_val, p_test, time.perf_counter() - began)
    preds.notes.append(f"validation make_order PR-AUC {history['best_val_pr_auc']:.4f}")
    return preds


def _val_pr_auc(preds: Predictions, dataset: Dataset) -> float | None:
    y = dataset.part(Split.VAL).Y[:, 1]
    est = bootstrap_estimates(y, preds.val[:, 1], np.zeros(len(y)), metrics=("pr_auc",), n_boot=0)["pr_auc"]
    return est.value


def ablate_split(
    data: Path, split: str, models_dir: Path, opts: AblationOptions
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows (one per context set × model) and the split's facts (windows, base rates, the cart flag alone)."""
    dataset = load_dataset(data, opts.features, split_mode=split)
    test = dataset.part(Split.TEST)
    cart, target = abandonment_inputs(dataset, test)
    cart_alone = bootstrap_estimates(target, cart.astype(np.float64), test.session, metrics=("roc_auc",),
                                     n_boot=opts.n_boot, seed=opts.seed)["roc_auc"]  # fmt: skip
    facts = {
        "split": split, "sessions": {p.name.lower(): int((dataset.split == p).sum()) for p in Split},
        "windows": {p.name.lower(): len(dataset.part(p)) for p in Split},
        "make_order_base_rate": float(test.Y[:, 1].mean()), "cart_flag_risk_roc_auc": cart_alone.to_dict(),
    }  # fmt: skip
    rows: list[dict[str, Any]] = []
    for set_name in opts.sets:
        names = CONTEXT_SETS[set_name]
        log.info("ablation: %s split, context %s (%d features)", split, set_name, len(names))
        train, val = dataset.part(Split.TRAIN), dataset.part(Split.VAL)
        net = _train_net(dataset, split, names, models_dir / f"{split}_{set_name.replace('+', '_')}", opts)
        models = {"network": net, **run_baselines(train, val, test, opts.baselines, opts.seed, context=names)}
        scored = {name: score_model(p, dataset, opts) for name, p in models.items()}
        best = max(opts.baselines, key=lambda b: scored[b]["make_order"]["pr_auc"]["value"] or -1.0)
        diff = paired_difference("pr_auc", test.Y[:, 1], net.test[:, 1], models[best].test[:, 1], test.session,
                                 n_boot=opts.n_boot, seed=opts.seed)  # fmt: skip
        net_risk = RiskWindows.build(dataset, test, net.test).risk
        risk_gain = paired_difference("roc_auc", target, net_risk, cart.astype(np.float64), test.session,
                                      n_boot=opts.n_boot, seed=opts.seed)  # fmt: skip
        for name, p in models.items():
            rows.append({
                "split": split, "context": set_name, "n_context": len(names), "model": name,
                "kind": "network" if name == "network" else "baseline", "best_baseline": name == best,
                "val_make_order_pr_auc": _val_pr_auc(p, dataset), "fit_seconds": p.fit_seconds, **scored[name],
                "vs_best_baseline_pr_auc": diff.to_dict() if name == "network" else None,
                "risk_minus_cart_flag_roc_auc": risk_gain.to_dict() if name == "network" else None,
                "best_baseline_name": best,
            })  # fmt: skip
    return rows, facts


def run_ablation(data: Path, models_dir: Path, opts: AblationOptions) -> dict[str, Any]:
    """Every split of `opts`; the rows and facts the report renders."""
    began = time.perf_counter()
    rows: list[dict[str, Any]] = []
    facts: list[dict[str, Any]] = []
    for split in opts.splits:
        split_rows, split_facts = ablate_split(Path(data), split, Path(models_dir), opts)
        rows += split_rows
        facts.append(split_facts)
    sets = {s: list(CONTEXT_SETS[s]) for s in opts.sets}
    return {"rows": rows, "splits": facts, "seconds": time.perf_counter() - began, "command": opts.command,
            "arch": opts.arch, "n_boot": opts.n_boot, "sets": sets, "train": opts.train.to_dict()}  # fmt: skip
