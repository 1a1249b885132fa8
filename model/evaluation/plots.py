"""PNG plots of the evaluation report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from model.data.dataset import WindowSet
from model.evaluation.abandonment import RiskWindows
from model.evaluation.baselines import Predictions
from model.evaluation.bootstrap import ECE_BINS
from model.training.nets import LABELS

Plot = tuple[str, str]  # (caption, file name)
# Every file name this module writes: an earlier run's plot that this run does not make is removed, so a
# report folder never shows a stale plot beside fresh numbers.
PLOT_PATTERNS: tuple[str, ...] = (
    "roc_*.png", "pr_*.png", "calibration_*.png", "abandonment_daily.png", "time_to_detection.png",
    "risk_distribution.png", "window_sweep.png",
)  # fmt: skip


def _save(fig: Any, out_dir: Path, name: str, ax: Any = None) -> str:
    """Write the figure (with the axes' legend, if given) and close it; returns the file name."""
    if ax is not None:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=110)
    plt.close(fig)
    return name


def _curves(kind: str, preds: dict[str, Predictions], test: WindowSet, out_dir: Path) -> list[Plot]:
    plots = []
    for j, label in enumerate(LABELS):
        y = test.Y[:, j]
        if not 0 < y.sum() < y.size:
            continue  # a curve needs both classes
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        for name, p in preds.items():
            if kind == "roc":
                fpr, tpr, _ = roc_curve(y, p.test[:, j])
                ax.plot(fpr, tpr, label=name)
            elif np.ptp(p.test[:, j]) > 0:  # a constant score's PR "curve" is a misleading straight line
                precision, recall, _ = precision_recall_curve(y, p.test[:, j])
                ax.plot(recall, precision, label=name)
        if kind == "roc":
            ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
            ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC, {label} (test)")
        else:
            ax.axhline(y.mean(), color="grey", lw=0.8, ls="--", label=f"base rate {y.mean():.3f}")
            ax.set(xlabel="recall", ylabel="precision", title=f"precision-recall, {label} (test)")
        plots.append((f"{kind.upper()} curves, {label}", _save(fig, out_dir, f"{kind}_{label}.png", ax)))
    return plots


def _calibration(preds: dict[str, Predictions], test: WindowSet, out_dir: Path) -> list[Plot]:
    plots = []
    for j, label in enumerate(LABELS):
        y = test.Y[:, j]
        if y.size == 0:
            continue
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        for name, p in preds.items():
            frac_pos, mean_pred = calibration_curve(y, p.test[:, j], n_bins=ECE_BINS, strategy="uniform")
            ax.plot(mean_pred, frac_pos, marker="o", ms=3, label=name)
        ax.set(xlabel="mean predicted probability", ylabel="observed frequency", title=f"reliability, {label} (test)")
        plots.append((f"reliability diagram, {label}", _save(fig, out_dir, f"calibration_{label}.png", ax)))
    return plots


def _abandonment(metrics: dict[str, Any], rw: RiskWindows, out_dir: Path) -> list[Plot]:
    plots = []
    days = metrics["abandonment"]["aggregate_rate"]["per_day"]
    if days:
        fig, ax = plt.subplots(figsize=(7, 4))
        x = np.arange(len(days))
        ax.plot(x, [100 * d["actual"] for d in days], marker="o", label="actual (abandonment target)")
        ax.plot(x, [100 * d["predicted"] for d in days], marker="s", label="predicted (mean risk)")
        step = max(1, len(days) // 20)  # at most ~20 date labels
        ax.set_xticks(x[::step], [d["day"][5:] for d in days][::step], rotation=45, fontsize=8)
        ax.set(ylabel="% of test prefixes", title="aggregate abandonment rate per day (test)")
        plots.append(("aggregate abandonment rate per day", _save(fig, out_dir, "abandonment_daily.png", ax)))
    hist = metrics["abandonment"]["time_to_detection"]["histogram"]
    if hist:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.bar([int(k) for k in hist], list(hist.values()))
        tau = metrics["abandonment"]["time_to_detection"]["tau_risk"]
        ax.set(
            xlabel="clicks before the session's end",
            ylabel="abandoning test sessions",
            title=f"first click with risk ≥ τ_risk = {tau:.3f}",
        )
        plots.append(("time to detection", _save(fig, out_dir, "time_to_detection.png")))
    if rw.risk.size and 0 < rw.target.sum() < rw.target.size:
        fig, ax = plt.subplots(figsize=(6, 4))
        bins = np.linspace(0, 1, 41).tolist()
        ax.hist(rw.risk[rw.target == 0], bins=bins, alpha=0.6, density=True, label="no abandonment")
        ax.hist(rw.risk[rw.target == 1], bins=bins, alpha=0.6, density=True, label="abandonment")
        ax.set(xlabel="abandonment risk", ylabel="density", title="risk by truth (test prefixes)")
        plots.append(("risk distribution by truth", _save(fig, out_dir, "risk_distribution.png", ax)))
    return plots


def _sweep(metrics: dict[str, Any], out_dir: Path) -> list[Plot]:
    sweep = metrics.get("sweep")
    if not sweep or not sweep["points"]:
        return []
    points = sweep["points"]
    n = [p["window"] for p in points]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, pub_key, title in (
        (axes[0], "all_sessions", "published_all_sessions_pct", "all sessions"),
        (axes[1], "cart_abandon_sessions", "published_cart_abandon_pct", "cart-abandonment sessions"),
    ):
        ours = [100 * p[key]["accuracy"]["value"] if p[key]["accuracy"] else np.nan for p in points]
        zeros = [
            100 * p[key]["all_zeros_accuracy"]["value"] if p[key]["all_zeros_accuracy"] else np.nan for p in points
        ]
        published = [p[pub_key] if p[pub_key] is not None else np.nan for p in points]
        ax.plot(n, ours, marker="o", label="ours")
        ax.plot(n, zeros, ls="--", label="ours, all-zeros")
        ax.plot(n, published, marker="s", label="published Table 4")
        ax.set(xlabel="window N", ylabel="binary accuracy %", title=title)
        ax.legend(fontsize=8)
    return [("window sweep beside Table 4", _save(fig, out_dir, "window_sweep.png"))]


def write_plots(
    metrics: dict[str, Any], preds: dict[str, Predictions], test: WindowSet, rw: RiskWindows, out_dir: Path
) -> list[Plot]:
    """Write every plot that the data allows; [(caption, file name)] in report order."""
    for pattern in PLOT_PATTERNS:
        for stale in out_dir.glob(pattern):
            stale.unlink()
    return [
        *_curves("roc", preds, test, out_dir),
        *_curves("pr", preds, test, out_dir),
        *_calibration(preds, test, out_dir),
        *_abandonment(metrics, rw, out_dir),
        *_sweep(metrics, out_dir),
    ]
