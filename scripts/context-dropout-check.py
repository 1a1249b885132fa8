"""What context dropout costs and buys, over several seeds (docs/training.md "Clicks without ids"): validation only,
test is never read.

  .venv/bin/python scripts/context-dropout-check.py DATA OUT_DIR [--shares 0,0.2] [--seeds 8]

For each share of training sessions trained id-less (`TrainConfig.context_dropout`) and each seed, it trains the
default recipe (lstm_gru_small, session+history context, Platt-calibrated on validation) and scores the validation
windows twice: with their ids, and with the context serving computes for clicks sent without ids
(`model.context.context_without_ids`). It writes OUT_DIR/context-dropout.md and .csv: per run and per share (mean
over seeds) the make_order PR-AUC and ROC-AUC, and the ECE of both labels, with and without ids; and the paired
(same seed) difference of every share against the first. About 50 s per training on one core.
"""

from __future__ import annotations

import argparse
import csv
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from model.context import CONTEXT_SETS
from model.data.dataset import Split, load_dataset
from model.evaluation.bootstrap import expected_calibration_error
from model.evaluation.idless import without_ids
from model.features import FeatureConfig
from model.training.checkpoint import predict_proba
from model.training.config import TrainConfig
from model.training.loop import train_model
from model.training.nets import NetConfig

log = logging.getLogger("context-dropout-check")
COLUMNS = ("share", "seed", "pr_make_order", "roc_make_order", "ece_add_cart", "ece_make_order",
           "idless_pr_make_order", "idless_roc_make_order", "idless_ece_add_cart", "idless_ece_make_order")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--shares", default="0,0.2")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    began = time.perf_counter()
    shares = [float(s) for s in args.shares.split(",")]
    names = CONTEXT_SETS["session+history"]
    dataset = load_dataset(args.data, FeatureConfig(timezone="Asia/Shanghai"), "session", args.cache_dir)
    val = dataset.part(Split.VAL)
    idless = without_ids(dataset, val)
    rows = []
    for share in shares:
        for seed in range(args.seeds):
            net_cfg = NetConfig.for_arch("lstm_gru_small", context=names)
            net, _ = train_model(dataset, net_cfg, TrainConfig(seed=seed, context_dropout=share), show_progress=False)
            with_ids = predict_proba(net, val.view, val.contexts(slice(None), names))  # type: ignore[arg-type]
            without = predict_proba(net, idless.view, idless.contexts(slice(None), names))  # type: ignore[arg-type]
            scores = {**_scores(val.Y, with_ids, ""), **_scores(val.Y, without, "idless_")}
            rows.append({"share": share, "seed": seed, **scores})
            log.info("share %.2f seed %d: %s", share, seed, rows[-1])
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "context-dropout.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "context-dropout.md").write_text(_markdown(rows, shares, args.seeds, time.perf_counter() - began))


def _scores(y: np.ndarray, p: np.ndarray, prefix: str) -> dict[str, float]:
    return {
        f"{prefix}pr_make_order": float(average_precision_score(y[:, 1], p[:, 1])),
        f"{prefix}roc_make_order": float(roc_auc_score(y[:, 1], p[:, 1])),
        f"{prefix}ece_add_cart": expected_calibration_error(y[:, 0], p[:, 0]),
        f"{prefix}ece_make_order": expected_calibration_error(y[:, 1], p[:, 1]),
    }


def _markdown(rows: list[dict[str, float]], shares: list[float], seeds: int, seconds: float) -> str:
    metrics = COLUMNS[2:]
    by_share = {s: [r for r in rows if r["share"] == s] for s in shares}
    lines = [
        "# Context dropout: what it costs clicks with ids and buys clicks without (validation, Taobao)",
        "",
        f"Written by `{shlex.join(['python', 'scripts/context-dropout-check.py', *sys.argv[1:]])}`; "
        f"{seeds} seeds per share, {seconds / 60:.0f} min. Regenerate with the same command; never edit by hand.",
        "",
        "The default recipe (lstm_gru_small, session+history context, calibrated on validation) trained with a share "
        "of its training sessions id-less (`train --context-dropout`), scored on the validation windows with their "
        "ids and with the context serving computes for clicks sent without ids. Test is not read.",
        "",
        "## Mean over seeds (min – max)",
        "",
        "| share | " + " | ".join(metrics) + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]
    for share, runs in by_share.items():
        cells = [f"{np.mean([r[m] for r in runs]):.4f} ({min(r[m] for r in runs):.4f} – {max(r[m] for r in runs):.4f})"
                 for m in metrics]  # fmt: skip
        lines.append(f"| {share:g} | " + " | ".join(cells) + " |")
    base = by_share[shares[0]]
    lines += ["", f"## Paired by seed: each share minus share {shares[0]:g} (mean; seeds where it is higher)", "",
              "| share | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]  # fmt: skip
    for share, runs in list(by_share.items())[1:]:
        diffs = {m: [r[m] - b[m] for r, b in zip(runs, base, strict=True)] for m in metrics}
        cells = [f"{np.mean(d):+.4f} ({sum(x > 0 for x in d)}/{len(d)})" for d in diffs.values()]
        lines.append(f"| {share:g} | " + " | ".join(cells) + " |")
    lines += ["", "## Every run", "", "| " + " | ".join(COLUMNS) + " |", "|---" * len(COLUMNS) + "|"]
    lines += ["| " + " | ".join(f"{r[c]:g}" if c in ("share", "seed") else f"{r[c]:.4f}" for c in COLUMNS) + " |"
              for r in rows]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
