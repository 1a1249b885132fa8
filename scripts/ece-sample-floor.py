"""The ECE a well-calibrated model scores on a sample the size of the test part (docs/evaluation/taobao/).

  .venv/bin/python scripts/ece-sample-floor.py [--draws 1000]

The ECE of a finite sample is never 0 for a calibrated model: each bin's mean label wobbles around its mean
probability, and the windows of one session share their labels, so the wobble shrinks with the sessions, not the
windows. This measures how large that is at the test part's size, without reading test: it pools every window
that has a logit from a network that never trained on it (the 4 fold nets of scripts/crossfit-calibration-check.py
on the training sessions, `models/default`'s own uncalibrated logits on validation), then, per label and per
calibration (the network's own logits; Platt fitted on the whole pool, the best-calibrated version Platt can make),
scores the ECE (15 bins, as the report) on the whole pool and on `--draws` random samples of as many sessions as
the test part holds. Writes ece-sample-floor.md and .csv to OUT_DIR (docs/evaluation/taobao).
Environment as scripts/crossfit-calibration-check.py: MODEL, DATA, OUT (its fold logits), CACHE.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import time
from pathlib import Path

import numpy as np

from model.card import ModelCard
from model.data.dataset import Split, load_dataset
from model.evaluation.bootstrap import ECE_BINS, expected_calibration_error, weighted_ece
from model.training.calibration import fit_label, remove_calibration
from model.training.checkpoint import load_model, predict_logits
from model.training.crossfit import FOLDS
from model.training.nets import LABELS

MODEL = Path(os.environ.get("MODEL", "models/default"))
FOLD_LOGITS = Path(os.environ.get("OUT", "/tmp/crossfit"))
CHUNK = 50  # samples scored per weighted_ece call: (CHUNK, windows) float64 weights
log = logging.getLogger("ece-sample-floor")


def pooled_logits(card: ModelCard) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(z (n, 2) uncalibrated logits, y (n, 2), session (n,)) of the pool; its sessions; the test part's sessions."""
    dataset = load_dataset(Path(os.environ.get("DATA", "data/taobao.csv")), card.features, "session",
                           Path(os.environ.get("CACHE", "cache")))  # fmt: skip
    parts = [np.load(FOLD_LOGITS / f"fold{k}.npz") for k in range(FOLDS)]
    net, _ = load_model(MODEL)
    val = dataset.part(Split.VAL)
    folded = predict_logits(net, val.view, val.contexts(slice(None), card.context_names)).astype(np.float64)  # type: ignore[arg-type]
    z_val = remove_calibration(folded, card.extra["history"]["calibration"])
    z = np.concatenate([*(p["z"] for p in parts), z_val])
    y = np.concatenate([*(p["y"] for p in parts), val.Y])
    session = np.concatenate([*(p["s"] for p in parts), val.session])
    n_test = int(np.count_nonzero(dataset.split == Split.TEST))  # a count of sessions: no test window is read
    return z, y, session, len(np.unique(session)), n_test


def sample_eces(y: np.ndarray, p: np.ndarray, session: np.ndarray, n_sessions: int, draws: int,
                rng: np.random.Generator) -> np.ndarray:
    """(draws,) ECE of random samples of `n_sessions` sessions, all windows of each.

    Drawn with replacement (a session drawn twice weighs twice): a test part is a sample of the shop's sessions,
    not of this pool's, and drawing without replacement from a pool 5.7 × the sample would shrink the spread by
    the finite-population factor (about 0.91 × in standard deviation here)."""
    ids, index = np.unique(session, return_inverse=True)
    out = []
    for start in range(0, draws, CHUNK):
        rows = min(CHUNK, draws - start)
        chosen = np.zeros((rows, len(ids)))
        for r in range(rows):
            np.add.at(chosen[r], rng.integers(0, len(ids), n_sessions), 1.0)
        out.append(weighted_ece(chosen[:, index], y, p, ECE_BINS))
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("docs/evaluation/taobao"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    began = time.perf_counter()
    card = ModelCard.load(MODEL)
    z, y, session, n_pool, n_test = pooled_logits(card)
    log.info("pool: %d windows of %d sessions; samples of %d sessions (the test part's count)", len(z), n_pool, n_test)
    rows = []
    for j, label in enumerate(LABELS):
        platt = fit_label(z[:, j], y[:, j])
        for name, logit in (("the network's own logits", z[:, j]),
                            ("Platt fitted on the whole pool", platt.a * z[:, j] + platt.b)):  # fmt: skip
            p = 1.0 / (1.0 + np.exp(-logit))
            eces = sample_eces(y[:, j], p, session, n_test, args.draws, np.random.default_rng(0))
            pool_ece = expected_calibration_error(y[:, j], p)
            rows.append({"label": label, "calibration": name, "pool_sessions": n_pool, "pool_ece": pool_ece,
                         "sample_sessions": n_test, "draws": args.draws, "median": float(np.median(eces)),
                         "p05": float(np.percentile(eces, 5)), "p95": float(np.percentile(eces, 95)),
                         "share_at_most_0.02": float(np.mean(eces <= 0.02))})  # fmt: skip
            log.info("%s", rows[-1])
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "ece-sample-floor.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "ece-sample-floor.md").write_text(_markdown(rows, n_pool, len(z), time.perf_counter() - began))


def _markdown(rows: list[dict[str, object]], n_pool: int, n_windows: int, seconds: float) -> str:
    lines = [
        "# The ECE of a calibrated model on a sample the size of the test part",
        "",
        "Written by `.venv/bin/python scripts/ece-sample-floor.py` after the 4 fold runs of "
        "`scripts/crossfit-calibration-check.py fold K` (its docstring); regenerate the same way, never edit by hand. "
        f"Took {seconds:.0f} s.",
        "",
        f"The pool: {n_windows:,} windows of {n_pool:,} training and validation sessions, each scored by a network "
        "that never trained on it (training sessions: the 4 fold nets of the default recipe; validation: "
        "`models/default`'s own logits with its folded calibration taken out). Test is not read; only its count of "
        "sessions is. ECE with the report's 15 equal-width bins; samples of sessions, all windows "
        "of a drawn session together, drawn with replacement (a test part samples the shop, not this pool), seed 0.",
        "",
        "| label | calibration | ECE, whole pool | sessions per sample | ECE of a sample: median [5 %, 95 %] "
        "| samples with ECE ≤ 0.02 |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['label']} | {r['calibration']} | {r['pool_ece']:.4f} ({r['pool_sessions']:,} sessions) | "
                     f"{r['sample_sessions']:,} | {r['median']:.4f} [{r['p05']:.4f}, {r['p95']:.4f}] | "
                     f"{r['share_at_most_0.02']:.1%} of {r['draws']:,} |")
    lines += ["", "Read: the gap between the whole pool's ECE and a sample's is the sample's own noise, which a model "
              "cannot calibrate away; a target below a sample's typical ECE is one that a test part of this size "
              "cannot show even for a calibrated model.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
