"""The context ablation's report: `ablation.md` (tables and the targets of issue 20) and `ablation.csv` (one row
per split × context set × model, every metric with its 95 % session-bootstrap interval)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from model.context import CONTEXT_FEATURES
from model.evaluation.report.format import est, table

MD_FILE, CSV_FILE = "ablation.md", "ablation.csv"
_METRICS = (("make_order", "roc_auc"), ("make_order", "pr_auc"), ("make_order", "ece"), ("add_cart", "roc_auc"),
            ("add_cart", "pr_auc"), ("add_cart", "ece"), ("risk", None))  # fmt: skip


def _metric(row: dict[str, Any], label: str, metric: str | None) -> dict[str, Any]:
    return row[label] if metric is None else row[label][metric]


def write_csv(result: dict[str, Any], path: Path) -> None:
    header = ["split", "context", "n_context", "model", "kind", "best_baseline", "val_make_order_pr_auc"]
    for label, metric in _METRICS:
        name = f"{label}_{metric or 'roc_auc'}"
        header += [name, f"{name}_low", f"{name}_high"]
    header += ["net_minus_best_baseline_pr_auc", "low", "high", "risk_minus_cart_flag_roc_auc", "low", "high"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in result["rows"]:
            values: list[Any] = [row["split"], row["context"], row["n_context"], row["model"], row["kind"],
                                 int(row["best_baseline"]), _round(row["val_make_order_pr_auc"])]  # fmt: skip
            for label, metric in _METRICS:
                e = _metric(row, label, metric)
                values += [_round(e.get("value")), _round(e.get("ci_low")), _round(e.get("ci_high"))]
            for key in ("vs_best_baseline_pr_auc", "risk_minus_cart_flag_roc_auc"):
                e = row[key] or {}
                values += [_round(e.get("value")), _round(e.get("ci_low")), _round(e.get("ci_high"))]
            writer.writerow(values)


def _round(value: Any) -> Any:
    return "" if value is None else round(float(value), 4)


def _ablation_table(result: dict[str, Any], split: str) -> str:
    rows = []
    for row in result["rows"]:
        if row["split"] != split or not (row["kind"] == "network" or row["best_baseline"]):
            continue
        vs = est(row["vs_best_baseline_pr_auc"]) if row["kind"] == "network" else ""
        val = row["val_make_order_pr_auc"]
        rows.append([row["context"], row["model"], est(row["make_order"]["roc_auc"]), est(row["make_order"]["pr_auc"]),
                     est(row["add_cart"]["roc_auc"]), est(row["risk"]), est(row["make_order"]["ece"], 4), vs,
                     f"{val:.3f}" if val is not None else "–"])  # fmt: skip
    header = ["context", "model", "make_order ROC-AUC", "make_order PR-AUC", "add_cart ROC-AUC", "risk ROC-AUC",
              "make_order ECE", "network − best baseline, PR-AUC (paired)", "val make_order PR-AUC"]  # fmt: skip
    return table(header, rows)


def _all_baselines(result: dict[str, Any], split: str) -> str:
    rows = [[r["context"], r["model"], est(r["make_order"]["roc_auc"]), est(r["make_order"]["pr_auc"]),
             est(r["add_cart"]["roc_auc"]), est(r["risk"])]
            for r in result["rows"] if r["split"] == split]  # fmt: skip
    return table(
        ["context", "model", "make_order ROC-AUC", "make_order PR-AUC", "add_cart ROC-AUC", "risk ROC-AUC"], rows
    )


def _verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("**met**" if ok else "**not met**")


def _targets(result: dict[str, Any], chosen: str) -> str:
    rows = []
    for facts in result["splits"]:
        split = facts["split"]
        net = next((r for r in result["rows"] if r["split"] == split and r["context"] == chosen
                    and r["kind"] == "network"), None)  # fmt: skip
        if net is None:
            continue
        auc, diff, gain = (
            net["make_order"]["roc_auc"],
            net["vs_best_baseline_pr_auc"],
            net["risk_minus_cart_flag_roc_auc"],
        )
        ece_o, ece_c = net["make_order"]["ece"], net["add_cart"]["ece"]
        rows += [
            [split, "make_order ROC-AUC ≥ 0.60", est(auc), _verdict(_ge(auc.get("value"), 0.60))],
            [split, "make_order ROC-AUC ≥ 0.63 (moonshot)", est(auc), _verdict(_ge(auc.get("value"), 0.63))],
            [split, f"network non-inferior to the best baseline ({net['best_baseline_name']}): paired make_order "
             "PR-AUC difference, lower 95 % bound ≥ −0.01", est(diff), _verdict(_ge(diff.get("ci_low"), -0.01))],
            [split, f"risk ROC-AUC ≥ cart flag alone ({est(facts['cart_flag_risk_roc_auc'])}) + 0.03: paired "
             "difference", est(gain), _verdict(_ge(gain.get("value"), 0.03))],
            [split, "make_order ECE (15 bins) ≤ 0.02", est(ece_o, 4), _verdict(_le(ece_o.get("value"), 0.02))],
            [split, "add_cart ECE (15 bins) ≤ 0.02", est(ece_c, 4), _verdict(_le(ece_c.get("value"), 0.02))],
        ]  # fmt: skip
    note = ("\nA verdict reads the point estimate, except non-inferiority, which reads the lower bound of the paired "
            "interval.\n")  # fmt: skip
    return table(["split", "target", f"network with `{chosen}` (test)", "verdict"], rows) + note


def _ge(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def _le(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


def render_markdown(result: dict[str, Any], chosen: str) -> str:
    parts = [
        "# Context ablation on Taobao: which context groups help\n",
        "Regenerate with:\n", f"```\n{result['command']}\n```\n",
        f"- Network: `{result['arch']}` with the context entering its head (model/training/nets.py); the baselines "
        "get the same window features and the same context, scaled alike (model/evaluation/baselines.py). The "
        f"networks train {result['train']['context_dropout']:.0%} of their training sessions id-less (context "
        f"dropout) and Platt-scale on `{result['train']['calibration_score']}` sessions (docs/training.md).",
        "- Context sets (model/context.py): "
        + "; ".join(f"`{s}` = {len(n)} features" for s, n in result["sets"].items()) + ".",
        f"- Every metric is on test windows, with a 95 % percentile bootstrap over {result['n_boot']} resamples of "
        "test **sessions**. The best baseline of a row is picked by its **test** make_order PR-AUC, which favours "
        "the baseline; the network − baseline difference is paired (the same resampled sessions).",
        "- The final set is chosen by the networks' **validation** make_order PR-AUC on the first split: "
        f"`{chosen}`.",
        f"- The run took {result['seconds']:.0f} s.\n",
    ]  # fmt: skip
    for facts in result["splits"]:
        split = facts["split"]
        parts += [
            f"## {split} split\n",
            f"Sessions train / val / test = {facts['sessions']['train']:,} / {facts['sessions']['val']:,} / "
            f"{facts['sessions']['test']:,} (windows {facts['windows']['train']:,} / {facts['windows']['val']:,} / "
            f"{facts['windows']['test']:,}); test make_order base rate {facts['make_order_base_rate']:.2%}; the cart "
            f"flag alone ranks abandonment at ROC-AUC {est(facts['cart_flag_risk_roc_auc'])}.\n",
            "The network and the best baseline of each context set:\n", _ablation_table(result, split),
            "\nEvery model:\n", _all_baselines(result, split),
        ]  # fmt: skip
    parts += [f"## Targets (issue 20), network with `{chosen}`\n", _targets(result, chosen),
              "\n## Context features\n", table(["feature", "group", "fed as", "meaning"], [
                  [f"`{f.name}`", f.group, "as is (0/1)" if f.unit is None else f"log1p(x / {f.unit:g})", f.meaning]
                  for f in CONTEXT_FEATURES])]  # fmt: skip
    return "\n".join(parts)


def chosen_set(result: dict[str, Any]) -> str:
    """The context set whose network has the best validation make_order PR-AUC on the first split."""
    first = result["splits"][0]["split"]
    nets = [r for r in result["rows"] if r["split"] == first and r["kind"] == "network"]
    return str(max(nets, key=lambda r: r["val_make_order_pr_auc"] or -1.0)["context"])


def write_ablation(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """ablation.md and ablation.csv into `out_dir`, and the section of its report.md if there is one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(result, out_dir / CSV_FILE)
    (out_dir / MD_FILE).write_text(render_markdown(result, chosen_set(result)))
    splice_report(out_dir / "report.md")
    return out_dir / MD_FILE, out_dir / CSV_FILE


_MARK_BEGIN, _MARK_END = "<!-- context ablation: written by `session-intent ablation` -->", "<!-- /context ablation -->"


def _ci(row: dict[str, str], name: str, digits: int = 3) -> str:
    if not row.get(name):
        return "–"
    low, high = row.get(f"{name}_low") or row.get("low"), row.get(f"{name}_high") or row.get("high")
    return f"{float(row[name]):.{digits}f} [{float(low or 'nan'):.{digits}f}, {float(high or 'nan'):.{digits}f}]"


def report_section(csv_path: Path) -> str:
    """The evaluation report's section on the context ablation, from ablation.csv beside it."""
    with csv_path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [dict(zip(_unique(header), r, strict=True)) for r in reader]
    out = []
    for net in (r for r in rows if r["kind"] == "network"):
        best = next(r for r in rows if r["split"] == net["split"] and r["context"] == net["context"]
                    and r["best_baseline"] == "1")  # fmt: skip
        diff = {"d": net["net_minus_best_baseline_pr_auc"], "d_low": net["low"], "d_high": net["high"]}
        out.append([net["split"], net["context"], _ci(net, "make_order_roc_auc"), _ci(net, "make_order_pr_auc"),
                    best["model"], _ci(best, "make_order_roc_auc"), _ci(best, "make_order_pr_auc"), _ci(diff, "d"),
                    _ci(net, "risk_roc_auc")])  # fmt: skip
    head = ["split", "context", "network make_order ROC-AUC", "network PR-AUC", "best baseline",
            "its ROC-AUC", "its PR-AUC", "network − baseline PR-AUC (paired)", "network risk ROC-AUC"]  # fmt: skip
    return "\n".join([
        _MARK_BEGIN, "## Context ablation (issue 20): the session's items and the shopper's history\n",
        "Networks trained per split and context set (model/context.py), not the model above, by the training code "
        f"of the run's own time ({MD_FILE} says which); the baselines see the same context. Details, targets and the "
        f"exact command: [{MD_FILE}]({MD_FILE}), [{CSV_FILE}]({CSV_FILE}).\n",
        table(head, out), _MARK_END,
    ])  # fmt: skip


def _unique(header: list[str]) -> list[str]:
    """The CSV's names made unique: the (low, high) pairs after the two paired differences: low/high, low2/high2."""
    seen: dict[str, int] = {}
    out = []
    for name in header:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}{seen[name]}")
    return out


def splice_report(report: Path) -> None:
    """Put (or replace) the ablation section into report.md, before its Notes, when ablation.csv sits beside it."""
    csv_path = report.parent / CSV_FILE
    if not report.is_file() or not csv_path.is_file():
        return
    text = report.read_text()
    if _MARK_BEGIN in text and _MARK_END in text:
        text = text[: text.index(_MARK_BEGIN)] + text[text.index(_MARK_END) + len(_MARK_END) :].lstrip("\n")
    cut = text.find("## Notes")
    cut = len(text) if cut < 0 else cut
    report.write_text(text[:cut].rstrip("\n") + "\n\n" + report_section(csv_path) + "\n\n" + text[cut:])
