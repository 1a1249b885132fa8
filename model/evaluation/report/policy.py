"""The alert-policy and purchase-policy sections of report.md (model/evaluation/policy_table.py)."""

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


def purchase_section(m: dict[str, Any]) -> str:
    p = m.get("purchase_policy")
    if not p:
        return ""
    rows = [_purchase_row(_name(r["policy"]), r) for r in p["targets"]]
    if p["card"] is not None:
        rows.append(_purchase_row(f"card: {_name(p['card']['policy'])}", p["card"]))
    return (
        "## Purchase policy (intent `purchase`, test clicks)\n\n"
        "A click answers `purchase` when its p_make_order reaches the threshold (model/policy.py; the card's "
        "`purchase_policy`, which replaces the F1-best τ_order). Each threshold is picked on validation clicks for "
        "a precision target (the lowest threshold whose clicks reach it) or a budget (at most that share of clicks), "
        "then applied to test clicks. A click is a positive when an order follows it in its session.\n\n"
        + table(["policy", "threshold", "val share", "val precision", "test share answered purchase", "precision",
                 "recall", "first clicks answered purchase", "test clicks"], rows)
    )


def _name(policy: dict[str, Any]) -> str:
    target = policy["target"]
    return f"{policy['kind']} {num(target, 0, True) if policy['kind'] == 'budget' else f'{target:g}'}"


def _purchase_row(name: str, r: dict[str, Any]) -> list[str]:
    t, pol = r["test"], r["policy"]
    return [name, num(pol["threshold"], 4), num(pol["alert_share"], 1, True), num(pol["precision"], 3),
            num(t["alert_share"], 1, True), num(t["precision"], 3), num(t["recall"], 3),
            num(t["first_click_share"], 1, True), f"{t['n_sessions']:,}"]
