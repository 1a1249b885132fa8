"""cart_rule.md: the abandonment risk under the cart rule before and after issue 11 (model/evaluation/cart_rule.py)."""

from __future__ import annotations

from typing import Any

from model.evaluation.report.format import num, table


def _ttd_rows(before: dict[str, Any], after: dict[str, Any]) -> list[list[str]]:
    b, a = before["time_to_detection"], after["time_to_detection"]

    def row(label: str, pick: Any, digits: int = 1, percent: bool = False) -> list[str]:
        return [label, *(num(pick(x), digits, percent) if pick(x) is not None else "–" for x in (b, a))]

    return [
        ["τ_risk (from the card)", num(before["tau_risk"], 4), num(after["tau_risk"], 4)],
        ["abandoning test sessions", f"{b['n_abandon_sessions']:,}", f"{a['n_abandon_sessions']:,}"],
        row("detected (risk ≥ τ at some click)", lambda x: x["detected_share"], 1, True),
        row("clicks still to come at first alarm: median", lambda x: x["clicks_before_end"]["median"]),
        row("… mean", lambda x: x["clicks_before_end"]["mean"], 2),
        row("… quartiles p25", lambda x: x["clicks_before_end"]["p25"]),
        row("… p75", lambda x: x["clicks_before_end"]["p75"]),
        row("detected before the first add_cart", lambda x: x["detected_before_first_add_cart_share"], 1, True),
        row("browse sessions alarmed", lambda x: x["browse_sessions_alarmed_share"], 1, True),
    ]


def _buyer_rows(before: dict[str, Any], after: dict[str, Any]) -> list[list[str]]:
    b, a = before["time_to_detection"], after["time_to_detection"]
    rows = []
    for label, key, digits, percent in (
        ("risk at the order click: median", "median", 3, False),
        ("risk at the order click: mean", "mean", 3, False),
        ("risk at the order click: p25", "p25", 3, False),
        ("risk at the order click: p75", "p75", 3, False),
        ("order clicks with risk ≥ τ (answered `cart_abandonment`)", "alarmed_share", 1, True),
    ):
        rows.append([label, num(b["risk_at_order_click"][key], digits, percent),
                     num(a["risk_at_order_click"][key], digits, percent)])
    rows.append(["purchase sessions alarmed before their order",
                 num(b["purchase_sessions_alarmed_before_order_share"], 1, True),
                 num(a["purchase_sessions_alarmed_before_order_share"], 1, True)])
    rows.append(["purchase sessions alarmed after an order (cart not reopened): coupons to buyers",
                 num(b["purchase_sessions_alarmed_after_order_share"], 1, True),
                 num(a["purchase_sessions_alarmed_after_order_share"], 1, True)])
    return rows


def _coupon_rows(before: dict[str, Any], after: dict[str, Any]) -> list[list[str]]:
    rows = []
    for unit in ("sessions", "windows"):
        for kb, ka in zip(before["coupon_policy"][unit]["top_k"], after["coupon_policy"][unit]["top_k"], strict=True):
            rows.append([unit, f"{kb['top_pct']:g} %", num(kb["precision"], 3), num(ka["precision"], 3),
                         num(kb["recall"], 3), num(ka["recall"], 3)])
        rows.append([unit, "base rate", num(before["coupon_policy"][unit]["base_rate"], 3),
                     num(after["coupon_policy"][unit]["base_rate"], 3), "", ""])
    return rows


def cart_rule_markdown(result: dict[str, Any], command: str) -> str:
    before, after = result["before"], result["after"]
    return "\n".join([
        "# The cart rule before and after issue 11\n",
        f"Regenerate with:\n\n```\n{command}\n```\n",
        f"- Model `{result['model']}`, data `{result['data']}`, split `{result['split']}`: "
        f"{result['n_test_sessions']:,} test sessions, {result['n_test_windows']:,} test windows, the same "
        "predictions under both rules.",
        "- **Before**: the cart flag turned on at the first add_cart and never off; the target was \"a cart so far "
        "or later, and no order after this prefix\"; a session abandoned when it had an add_cart and no order; "
        "τ_risk of the card before the retrain.",
        "- **After** (model/risk.py): add_cart opens the cart, an order closes it; the target and the abandoning "
        "sessions are \"the cart is open at the session's last click\"; τ_risk of the retrained card.\n",
        "## Risk on purchase sessions\n",
        table(["", "before", "after"], _buyer_rows(before, after)),
        "\n## Time to detection\n",
        table(["", "before", "after"], _ttd_rows(before, after)),
        "\n## Coupon table: coupons to the top k % by risk\n",
        "sessions: a session's score is its highest risk at any click, positive if it abandons (per each rule). "
        "windows: each test prefix is one snapshot of the at-risk list, positive if the rule's target holds.\n",
        table(["unit", "top k", "precision before", "precision after", "recall before", "recall after"],
              _coupon_rows(before, after)),
    ]) + "\n"
