"""Validation-only comparison of trained model directories, their ensemble and logreg (docs/training.md).

Usage: .venv/bin/python scripts/compare-on-validation.py DATA MODEL_DIR [MODEL_DIR ...] [--ensemble DIR,DIR,...]

Every model must share the data's split and features. For each model, and for the ensemble of the --ensemble
directories (the mean of their logits, what `train --teacher A --teacher B` distils), it prints validation
make_order PR-AUC, add_cart and make_order ECE, and the paired make_order PR-AUC difference to the logreg baseline
on the validation sessions (a 1000-resample session bootstrap). Test is never read.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from scipy.special import expit

from model.data.dataset import Split, load_dataset
from model.evaluation.baselines import run_baselines
from model.evaluation.bootstrap import expected_calibration_error, paired_difference
from model.training.checkpoint import load_model, predict_logits

log = logging.getLogger("compare-on-validation")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--ensemble", default="", help="comma-separated model directories to average (logits)")
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    nets = {str(path): load_model(path) for path in args.models}
    first_card = next(iter(nets.values()))[1]
    names = first_card.context_names
    dataset = load_dataset(args.data, first_card.features, first_card.data.get("split", "session"))
    train, val = dataset.part(Split.TRAIN), dataset.part(Split.VAL)
    logits = {path: predict_logits(net, val.view, val.contexts(slice(None), net.config.context))  # type: ignore[arg-type]
              for path, (net, _) in nets.items()}  # fmt: skip
    members = [m for m in args.ensemble.split(",") if m]
    if members:
        logits["ensemble(" + ",".join(Path(m).name for m in members) + ")"] = np.mean([logits[m] for m in members], 0)
    logreg = run_baselines(train, val, val, ("logreg",), seed=0, context=names)["logreg"].val
    y = val.Y
    log.info("logreg: val make_order PR-AUC %.4f", _pr_auc(y[:, 1], logreg[:, 1]))
    for name, z in logits.items():
        p = expit(z.astype(np.float64))
        diff = paired_difference("pr_auc", y[:, 1], p[:, 1], logreg[:, 1], val.session, n_boot=args.n_boot)
        log.info(
            "%s: val make_order PR-AUC %.4f, ECE add_cart %.4f make_order %.4f, − logreg %.4f [%.4f, %.4f]",
            name, _pr_auc(y[:, 1], p[:, 1]), expected_calibration_error(y[:, 0], p[:, 0]),
            expected_calibration_error(y[:, 1], p[:, 1]), diff.value, diff.ci_low, diff.ci_high,
        )  # fmt: skip


def _pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, p))


if __name__ == "__main__":
    main()
