"""The alert-policy section of report.md (model/evaluation/policy_table.py)."""

from __future__ import annotations

from typing import Any

from model.evaluation.report.format import num, table


def policy_section(m: dict[str, Any]) -> str:
    p = m.get("alert_policy")
    if not p:
        return ""
    rows = [_row(f"budget {num(r['policy']['target'], 0, True)}", r) for r in p["budgets"]]
    if p["card"] is not None:
        rows.append(_row(f"card: {p['card']['policy']['kind']} {p['card']['policy']['target']:g}", p["card"]))
    return (
        "## Alert policy (coupon budget, test sessions)\n\n"
        "A session is alerted when, at some click, its cart is open and its risk reaches the threshold (one "
        "alert per open cart; model/policy.py). Each threshold is picked on validation sessions to alert at most "
        "the budget's share of them, then applied to test sessions. Precision and recall count a session that "
        "ends with its cart open as a positive.\n\n"
        + table(["policy", "threshold", "val share", "test share alerted", "precision", "recall",
                 "purchase sessions alerted before their order", "browse sessions alerted", "test sessions"], rows)
    )


def _row(name: str, r: dict[str, Any]) -> list[str]:
    t = r["test"]
    return [name, num(r["policy"]["threshold"], 4), num(r["policy"]["alert_share"], 1, True),
            num(t["alert_share"], 1, True), num(t["precision"], 3), num(t["recall"], 3),
            num(t["purchase_alerted_before_order_share"], 1, True), num(t["browse_alerted_share"], 1, True),
            f"{t['n_sessions']:,}"]
