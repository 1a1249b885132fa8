"""The "clicks without ids" section of report.md (model/evaluation/idless.py)."""

from __future__ import annotations

from typing import Any

from model.evaluation.report.format import est, num, table
from model.risk import INTENTS
from model.training.nets import LABELS


def idless_section(m: dict[str, Any]) -> str:
    idless = m.get("without_ids")
    if not idless:
        return ""
    trained = next(iter(m["models"].values()))
    rows = []
    for label in LABELS:
        with_ids, without = trained["labels"][label], idless["labels"][label]
        rows += [[label, metric, est(with_ids[metric], digits), est(without[metric], digits)]
                 for metric, digits in (("roc_auc", 3), ("pr_auc", 3), ("ece", 4))]  # fmt: skip
    risk = ["abandonment risk", "roc_auc", est(trained["abandonment_roc_auc"]), est(idless["abandonment_roc_auc"])]
    rows.append(risk)
    intents = idless["intents"]
    intent_rows = [
        [f"{where.replace('_', ' ')}, {side.replace('_', ' ')}",
         *(num(shares[where][name], 1, True) for name in INTENTS)]
        for side, shares in intents.items()
        for where in ("first_clicks", "all_windows")
    ]
    p_with, p_without = idless["first_click_mean_p"]["with_ids"], idless["first_click_mean_p"]["without_ids"]
    return (
        "## Clicks without ids (test)\n\n"
        "The same network and test windows, with every click's context computed as serving computes it for a "
        "click sent without user, item and category ids (`model.context.context_without_ids`: the id features "
        "and the whole history at 0). Training drops the ids of a share of its sessions the same way "
        "(the card's `context_dropout`).\n\n"
        + table(["label", "metric", "with ids", "without ids"], rows)
        + "\nServed intents (the card's thresholds, model.risk.decision_thresholds), share of test windows:\n\n"
        + table(["windows", *INTENTS], intent_rows)
        + f"\nMean p_add_cart / p_make_order at a session's first click: {num(p_with[0])} / {num(p_with[1])} with "
        f"ids, {num(p_without[0])} / {num(p_without[1])} without.\n"
    )
