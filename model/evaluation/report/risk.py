"""The abandonment-risk and per-segment sections of report.md (see model/evaluation/abandonment.py)."""

from __future__ import annotations

from typing import Any

from model.data.published import AGGREGATE_ABANDONMENT_ERROR_PP
from model.evaluation.report.format import est, num, table

MAX_DAY_ROWS = 14
METRICS_NAME = "metrics.json"


def abandonment_section(m: dict[str, Any]) -> str:
    a = m["abandonment"]
    agg, ttd, coupon = a["aggregate_rate"], a["time_to_detection"], a["coupon_policy"]
    out = [
        "## Abandonment risk (trained model)\n",
        "risk = (cart_has_items ? 1 : p_add_cart) × (1 − p_make_order), scored against the per-prefix "
        f"abandonment target (base rate {num(a['base_rate'], 2, True)} of test prefixes). An add_cart opens the "
        "cart and an order closes it (model/risk.py); the target is \"the session ends with its cart open\".\n",
        f"- ROC-AUC {est(a['roc_auc'])}, PR-AUC {est(a['pr_auc'])}.",
        "- Risk ROC-AUC per model: "
        + ", ".join(f"{n} {est(e['abandonment_roc_auc'])}" for n, e in m["models"].items())
        + ".",
    ]
    if "majority" in m["models"]:
        out.append(
            "- The majority baseline's probabilities are constants, so its risk ranks by the cart flag alone: the gap "
            "between a model's risk AUC and the majority's is what the model adds to `cart_has_items`."
        )
    out[-1] += "\n"
    rows = [
        [k, f"{r['n_windows']:,}", num(r["predicted"], 2, True), num(r["actual"], 2, True), num(r["abs_error_pp"], 2)]
        for k, r in (("all prefixes", agg["all_prefixes"]), ("first click of each session", agg["first_click"]))
    ]
    out.append("### Predicted vs actual aggregate abandonment rate\n")
    out.append(table(["over", "windows", "predicted (mean risk)", "actual", "abs error (pp)"], rows))
    days = [
        [
            d["day"],
            f"{d['n_windows']:,}",
            num(d["predicted"], 2, True),
            num(d["actual"], 2, True),
            num(d["abs_error_pp"], 2),
            num(d["first_click"]["abs_error_pp"], 2),
        ]
        for d in agg["per_day"]
    ]
    out.append(
        f"\nPer local day ({agg['timezone']}, {len(days)} days): daily abs error median "
        f"{num(agg['median_daily_abs_error_pp'], 2)} pp, largest {num(agg['max_daily_abs_error_pp'], 2)} pp, against "
        f"the published claim of an error within {AGGREGATE_ABANDONMENT_ERROR_PP:g} %.\n"
    )
    if len(days) <= MAX_DAY_ROWS:
        out.append(table(["day", "windows", "predicted", "actual", "abs error (pp)", "first-click error (pp)"], days))
    else:
        out.append(f"(Too many days for a table: see the plot below and `per_day` in {METRICS_NAME}.)\n")
    c = ttd["clicks_before_end"]
    out.append(
        f"\n### Time to detection (τ_risk = {num(ttd['tau_risk'], 4)} from the card)\n\n"
        f"- Abandoning test sessions: {ttd['n_abandon_sessions']:,}; the risk reached τ_risk in "
        f"{num(ttd['detected_share'], 1, True)} of them, before the first add_cart in "
        f"{num(ttd['detected_before_first_add_cart_share'], 1, True)}.\n"
        f"- Clicks still to come when it first fired: median {num(c['median'], 1)}, mean {num(c['mean'], 2)}, "
        f"quartiles {num(c['p25'], 1)}–{num(c['p75'], 1)} (n = {c['n']:,}).\n"
        f"- The cost: it also fired in {num(ttd['browse_sessions_alarmed_share'], 1, True)} of browse sessions, "
        f"and before the order in {num(ttd['purchase_sessions_alarmed_before_order_share'], 1, True)} "
        "of purchase sessions.\n"
    )
    if "risk_at_order_click" in ttd:
        o = ttd["risk_at_order_click"]
        out.append(
            f"- Buyers: at the order click the risk has median {num(o['median'], 3)} (mean {num(o['mean'], 3)}, "
            f"n = {o['n']:,}) and reaches τ_risk in {num(o['alarmed_share'], 1, True)} of order clicks; after the "
            f"order it fires in {num(ttd['purchase_sessions_alarmed_after_order_share'], 1, True)} of purchase "
            "sessions (while no new add_cart has reopened the cart).\n"
        )
    rows = []
    for unit in ("sessions", "windows"):
        for k in coupon[unit]["top_k"]:
            rows.append(
                [
                    unit,
                    f"{k['top_pct']:g} %",
                    f"{k['n_selected']:,}",
                    num(k["precision"], 3),
                    num(k["recall"], 3),
                    num(coupon[unit]["base_rate"], 3),
                ]
            )
    out.append(
        "\n### Coupon policy: coupons to the top k % by risk\n\n"
        "sessions: a session's score is its highest risk at any click, positive if it ends with its cart "
        "open. windows: each test prefix is one snapshot of the at-risk list, positive if the "
        "abandonment target holds.\n\n"
    )
    out.append(table(["unit", "top k", "selected", "precision", "recall", "base rate"], rows))
    return "\n".join(out)


def segments_section(m: dict[str, Any]) -> str:
    rows = []
    for flag, states in m["segments"].items():
        for state, r in states.items():
            rows.append(
                [
                    flag,
                    state,
                    f"{r['n_windows']:,}",
                    f"{r['n_sessions']:,}",
                    est(r["add_cart"]["roc_auc"]),
                    est(r["make_order"]["roc_auc"]),
                ]
            )
    return "## Per segment (trained model, test)\n\nThe flag is read from the window's newest event.\n\n" + table(
        ["flag", "value", "windows", "sessions", "add_cart AUC", "make_order AUC"], rows
    )
