"""`session-intent evaluate`: score a trained model (and optionally the classic baselines) on the test
sessions that training never saw, and write `metrics.json`, `report.md` and PNG plots.

The split is recomputed from the data exactly as training computed it (a hash of the session id,
stratified by class; or by time), so the evaluated windows belong to sessions the model never saw.
Thresholds are tuned on validation windows and applied to test windows, for every model alike.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model.card import ModelCard, check_fingerprint
from model.context import check_context
from model.data.dataset import BadEventFile, Dataset, Split, WindowSet, load_dataset, slot_coverage
from model.evaluation.abandonment import RiskWindows, evaluate_abandonment, risk_auc
from model.evaluation.baselines import Predictions, run_baselines
from model.evaluation.bootstrap import CI_LEVEL, N_BOOT, bootstrap_estimates, paired_difference
from model.evaluation.idless import idless_metrics
from model.evaluation.policy_table import policy_table, purchase_table
from model.features import SLOTS, FeatureConfig
from model.risk import decision_thresholds
from model.training.checkpoint import load_model, predict_proba
from model.training.nets import LABELS
from model.training.thresholds import best_f1_threshold

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SEGMENT_FLAGS: tuple[str, ...] = ("from_ad", "weekend", "high_season")
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"


@dataclass
class EvalOptions:
    """What `evaluate` does beyond the trained model's own metrics."""

    baselines: bool = False
    folds: int | None = None  # stratified group K-fold over sessions; retrains the arch per fold
    sweep: bool = False  # window sweep N ∈ SWEEP_WINDOWS; trains the small model per N
    compare: list[Path] = field(default_factory=list)  # other model directories scored on the same split
    split_mode: str | None = None  # None: the split the card says training used, else "session"
    n_boot: int = N_BOOT
    seed: int = 0
    train_minutes: float = 2.0  # per-model training budget for folds and sweep
    command: str = ""  # how the report was produced, printed in it


def _trained_split(card: ModelCard) -> str | None:
    """The split mode the card says training used, if it says."""
    for source in (card.data, card.extra):
        mode = source.get("split_mode") or source.get("split")
        if mode in ("session", "time"):
            return str(mode)
    return None


def _check_unseen(card: ModelCard, dataset: Dataset, split_mode: str, model_dir: Path) -> None:
    """Refuse a split that differs from training's on the training file: its test part holds trained-on sessions."""
    trained = _trained_split(card)
    if card.data.get("sha256") == dataset.sha256 and trained is not None and trained != split_mode:
        raise ValueError(
            f"{model_dir} was trained on this file with the {trained!r} split; its {split_mode!r} test part "
            f"would hold sessions the model trained on. Evaluate with --split {trained}, or retrain with --split "
            f"{split_mode}."
        )


def _load_split_data(data_path: Path, features: FeatureConfig, split_mode: str) -> Dataset:
    dataset = load_dataset(data_path, features, split_mode=split_mode)
    counts = np.bincount(dataset.split.astype(np.int64), minlength=3)
    if counts[Split.TEST] == 0 or counts[Split.VAL] == 0:
        raise BadEventFile(
            f"{data_path}: {len(dataset.sessions)} usable sessions give {counts[Split.VAL]} validation and "
            f"{counts[Split.TEST]} test sessions; evaluation needs both (use a longer log)"
        )
    return dataset


def _model_predictions(
    model_dir: Path, kind: str, data_path: Path, split_mode: str, cache: dict[tuple[Any, ...], Dataset]
) -> tuple[Predictions, ModelCard, Dataset]:
    net, card = load_model(model_dir)
    check_fingerprint(card.fingerprint, str(model_dir))
    names = check_context(card.context, str(model_dir))
    key = tuple(sorted(card.features.to_dict().items()))
    if key not in cache:  # one windowing per feature config; splits depend on session ids only
        cache[key] = _load_split_data(data_path, card.features, split_mode)
    dataset = cache[key]
    _check_unseen(card, dataset, split_mode, model_dir)
    val, test = dataset.part(Split.VAL), dataset.part(Split.TEST)
    # .view: windows gathered batch by batch, never the whole (n, N, 16) array
    p_val = predict_proba(net, val.view, val.contexts(slice(None), names))  # type: ignore[arg-type]
    p_test = predict_proba(net, test.view, test.contexts(slice(None), names))  # type: ignore[arg-type]
    preds = Predictions(card.name, kind, card.arch, p_val, p_test)
    return preds, card, dataset


def label_metrics(preds: Predictions, val: WindowSet, test: WindowSet, n_boot: int, seed: int) -> dict[str, Any]:
    """Per label: the F1 threshold tuned on validation, and every metric on test with its CI."""
    out: dict[str, Any] = {}
    for j, label in enumerate(LABELS):
        threshold, val_f1 = best_f1_threshold(val.Y[:, j], preds.val[:, j], f"{preds.name}/{label}")
        estimates = bootstrap_estimates(
            test.Y[:, j], preds.test[:, j], test.session, threshold, n_boot=n_boot, seed=seed
        )
        out[label] = {
            "threshold": threshold,
            "val_f1": None if np.isnan(val_f1) else val_f1,
            "base_rate": float(test.Y[:, j].mean()),
            **{name: est.to_dict() for name, est in estimates.items()},
        }
    # Keras-style binary accuracy over both outputs, as the published tables report it.
    both = bootstrap_estimates(
        test.Y.T.reshape(-1),
        preds.test.T.reshape(-1),
        np.tile(test.session, 2),
        metrics=("accuracy", "all_zeros_accuracy"),
        n_boot=n_boot,
        seed=seed,
    )
    out["both_labels"] = {name: est.to_dict() for name, est in both.items()}
    return out


def segment_metrics(preds: Predictions, test: WindowSet, n_boot: int, seed: int) -> dict[str, Any]:
    """AUC per label within each value of the flags from_ad, weekend, high_season (the window's newest row)."""
    out: dict[str, Any] = {}
    for flag in SEGMENT_FLAGS:
        value = test.newest()[:, SLOTS.index(flag)] > 0.5
        out[flag] = {}
        for state, mask in (("1", value), ("0", ~value)):
            row: dict[str, Any] = {"n_windows": int(mask.sum()), "n_sessions": int(np.unique(test.session[mask]).size)}
            for j, label in enumerate(LABELS):
                est = bootstrap_estimates(
                    test.Y[mask, j],
                    preds.test[mask, j],
                    test.session[mask],
                    metrics=("roc_auc",),
                    n_boot=n_boot,
                    seed=seed,
                )["roc_auc"]
                row[label] = {
                    "roc_auc": est.to_dict(),
                    "base_rate": float(test.Y[mask, j].mean()) if mask.any() else None,
                }
            out[flag][state] = row
    return out


def _dataset_section(dataset: Dataset, data_path: Path, split_mode: str, card: ModelCard) -> dict[str, Any]:
    per_split = {}
    for part in Split:
        members = dataset.split == part
        windows = dataset.part(part)
        per_split[part.name.lower()] = {
            "sessions": int(members.sum()),
            "windows": len(windows),
            "base_rates": {
                label: float(windows.Y[:, j].mean()) if len(windows) else None for j, label in enumerate(LABELS)
            },
        }
    return {
        "name": dataset.name,
        "path": str(data_path),
        "sha256": dataset.sha256,
        "n_sessions": len(dataset.sessions),
        "n_events": len(dataset.sessions.events),
        "split_mode": split_mode,
        "splits": per_split,
        "slot_coverage": slot_coverage(dataset.sessions),
        "same_file_as_training": card.data.get("sha256") == dataset.sha256 if card.data.get("sha256") else None,
    }


def _best_baseline(models: dict[str, Any], label: str, metric: str) -> str | None:
    scored = [
        (entry["labels"][label][metric]["value"], name)
        for name, entry in models.items()
        if entry["kind"] == "baseline" and entry["labels"][label][metric]["value"] is not None
    ]
    return max(scored)[1] if scored else None


def headline_comparison(
    models: dict[str, Any], preds: dict[str, Predictions], trained: str, test: WindowSet, n_boot: int, seed: int
) -> dict[str, Any] | None:
    """Trained model vs the best baseline on test make_order PR-AUC, with a paired bootstrap CI.

    The best baseline is picked by its test point estimate, which favours the baseline: the claim
    'the network beats the best baseline' can only get harder this way, never easier.
    """
    label, metric = "make_order", "pr_auc"
    best = _best_baseline(models, label, metric)
    if best is None:
        return None
    j = LABELS.index(label)
    diff = paired_difference(
        metric, test.Y[:, j], preds[trained].test[:, j], preds[best].test[:, j], test.session, n_boot=n_boot, seed=seed
    )
    return {
        "label": label,
        "metric": metric,
        "model": trained,
        "best_baseline": best,
        "model_value": models[trained]["labels"][label][metric]["value"],
        "baseline_value": models[best]["labels"][label][metric]["value"],
        "difference": diff.to_dict(),
    }


def evaluate_model(
    model_dir: Path,
    data_path: Path,
    out_dir: Path,
    baselines: bool = False,
    folds: int | None = None,
    options: EvalOptions | None = None,
) -> dict[str, Any]:
    """Evaluate `model_dir` on the test sessions of `data_path`; write metrics.json, report.md, plots."""
    opts = options or EvalOptions()
    opts = dataclasses.replace(opts, baselines=baselines or opts.baselines, folds=folds or opts.folds)
    began = time.perf_counter()
    model_dir, data_path, out_dir = Path(model_dir), Path(data_path), Path(out_dir)
    if not data_path.is_file():
        raise BadEventFile(f"{data_path}: no such file")
    card = ModelCard.load(model_dir)
    split_mode = opts.split_mode or _trained_split(card) or "session"
    cache: dict[tuple[Any, ...], Dataset] = {}
    trained, card, dataset = _model_predictions(model_dir, "trained", data_path, split_mode, cache)
    preds: dict[str, Predictions] = {trained.name: trained}
    for other in opts.compare:
        compared, _, _ = _model_predictions(other, "compared", data_path, split_mode, cache)
        compared.name = compared.name if compared.name not in preds else f"{compared.name}@{other}"
        preds[compared.name] = compared
    train, val, test = (dataset.part(p) for p in (Split.TRAIN, Split.VAL, Split.TEST))
    if opts.baselines:
        # the baselines see the context the evaluated model sees, so the comparison stays fair
        for name, baseline in run_baselines(train, val, test, seed=opts.seed, context=card.context_names).items():
            baseline.name = name if name not in preds else f"baseline_{name}"
            preds[baseline.name] = baseline

    models: dict[str, Any] = {}
    for name, p in preds.items():
        log.info("metrics for %s", name)
        models[name] = {
            "kind": p.kind,
            "arch": p.arch,
            "fit_seconds": p.fit_seconds,
            "notes": p.notes,
            "labels": label_metrics(p, val, test, opts.n_boot, opts.seed),
        }
        models[name]["abandonment_roc_auc"] = risk_auc_for(dataset, test, p, opts)

    abandonment, risk_windows = evaluate_abandonment(
        dataset, test, trained.test, card.thresholds.risk, card.features.timezone, opts.n_boot, opts.seed
    )
    metrics: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "command": opts.command or shlex.join(sys.argv),
        "model": {
            "dir": str(model_dir),
            "name": card.name,
            "arch": card.arch,
            "window": card.window,
            "card_thresholds": {"order": card.thresholds.order, "risk": card.thresholds.risk},
            "served_thresholds": dataclasses.asdict(decision_thresholds(card)),
            "hparams": card.hparams,
            "seed": card.seed,
            "git_commit": card.git_commit,
        },
        "dataset": _dataset_section(dataset, data_path, split_mode, card),
        "bootstrap": {
            "unit": "session",
            "n_boot": opts.n_boot,
            "ci_level": CI_LEVEL,
            "seed": opts.seed,
            "method": "percentile",
        },
        "labels": list(LABELS),
        "models": models,
        "headline": headline_comparison(models, preds, trained.name, test, opts.n_boot, opts.seed),
        "headline_compared": [
            headline_comparison(models, preds, name, test, opts.n_boot, opts.seed)
            for name, p in preds.items()
            if p.kind == "compared"
        ],
        "abandonment": abandonment,
        "alert_policy": policy_table(dataset, val, trained.val, risk_windows, card.policy),
        "purchase_policy": purchase_table(val, trained.val, test, trained.test, card.purchase_policy),
        "segments": segment_metrics(trained, test, opts.n_boot, opts.seed),
        "without_ids": idless_metrics(model_dir, card, dataset, test, trained.test, opts.n_boot, opts.seed),
        "folds": None,
        "sweep": None,
    }
    if opts.folds:
        from model.evaluation.folds import run_folds

        metrics["folds"] = run_folds(dataset, model_dir, opts.folds, opts.baselines, opts.train_minutes, opts.seed)
    if opts.sweep:
        from model.evaluation.sweep import run_sweep

        metrics["sweep"] = run_sweep(data_path, card.features, split_mode, opts.train_minutes, opts.seed)
    metrics["seconds"] = time.perf_counter() - began
    write_outputs(metrics, preds, test, risk_windows, out_dir)
    return metrics


def risk_auc_for(dataset: Dataset, test: WindowSet, preds: Predictions, opts: EvalOptions) -> dict[str, Any]:
    """ROC-AUC of this model's abandonment risk against the abandonment target."""
    return risk_auc(RiskWindows.build(dataset, test, preds.test), opts.n_boot, opts.seed)["roc_auc"].to_dict()


def write_outputs(
    metrics: dict[str, Any], preds: dict[str, Predictions], test: WindowSet, risk_windows: RiskWindows, out_dir: Path
) -> None:
    """metrics.json, the PNG plots and report.md into `out_dir`."""
    from model.evaluation.plots import write_plots
    from model.evaluation.report.ablation import splice_report
    from model.evaluation.report.markdown import render_report

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    plots = write_plots(metrics, preds, test, risk_windows, out_dir)
    (out_dir / REPORT_FILE).write_text(render_report(metrics, plots))
    splice_report(out_dir / REPORT_FILE)  # keeps the context ablation's section (ablation.csv) in a regenerated report
    log.info("wrote %s, %s and %d plots to %s", METRICS_FILE, REPORT_FILE, len(plots), out_dir)


def store_test_metrics(model_dir: Path, metrics: dict[str, Any]) -> Path:
    """Copy the evaluated model's test metrics (with their CIs) into its card, beside the validation ones."""
    card = ModelCard.load(model_dir)
    trained = next(iter(metrics["models"]))  # the evaluated model comes first, then compared ones and baselines
    card.metrics["test"] = {
        "labels": metrics["models"][trained],
        "abandonment": metrics.get("abandonment"),
        "without_ids": metrics.get("without_ids"),
        "dataset": metrics.get("dataset"),
        "bootstrap": metrics.get("bootstrap"),
        "command": metrics.get("command"),
    }
    return card.save(Path(model_dir))
