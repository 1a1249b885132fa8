"""report.md from metrics.json: every number in the report is read from the metrics dict, none typed in."""

from __future__ import annotations

from typing import Any

from model.data.published import MODEL_COMPARISON, SWEEP_WINDOWS
from model.evaluation.report.format import est, num, table
from model.evaluation.report.idless import idless_section
from model.evaluation.report.policy import policy_section, purchase_section
from model.evaluation.report.risk import abandonment_section, segments_section
from model.training.nets import LABELS

Plot = tuple[str, str]


def _overview(m: dict[str, Any]) -> str:
    d, model, boot = m["dataset"], m["model"], m["bootstrap"]
    splits = d["splits"]
    covered = [f"{k} {v:,}" for k, v in d["slot_coverage"].items() if v]
    same = {True: "yes", False: "no (another file: every session is new to the model)", None: "unknown"}
    lines = [
        f"# Evaluation: `{model['name']}` ({model['arch']}, N = {model['window']}) on `{d['name']}`\n",
        f"Regenerate with:\n\n```\n{m['command']}\n```\n",
        f"- Data: `{d['path']}`, sha256 `{d['sha256'][:16]}…`; {d['n_sessions']:,} sessions with 3–250 events, "
        f"{d['n_events']:,} events. Same file as training: {same[d['same_file_as_training']]}.",
        f"- Split: by {d['split_mode']}; sessions train / val / test = {splits['train']['sessions']:,} / "
        f"{splits['val']['sessions']:,} / {splits['test']['sessions']:,} "
        f"(windows {splits['train']['windows']:,} / {splits['val']['windows']:,} / {splits['test']['windows']:,}). "
        "Every metric below is on test windows; thresholds are tuned on validation windows.",
        "- Test base rates (share of prefixes followed by the action): "
        + ", ".join(f"{k} {num(v, 2, True)}" for k, v in splits["test"]["base_rates"].items())
        + ".",
        f"- Action slots present in the data ({len(covered)} of {len(d['slot_coverage'])}): {', '.join(covered)}.",
        f"- Intervals: {int(boot['ci_level'] * 100)} % {boot['method']} bootstrap over {boot['n_boot']} resamples "
        "of test **sessions** (all windows of a drawn session enter together).",
        f"- Evaluation took {m['seconds']:.0f} s.",
    ]
    if "synth" in d["name"].lower():
        lines.append("- **Synthetic data proves the pipeline. It proves nothing about accuracy on real shops.**")
    return "\n".join(lines) + "\n"


def _headline(m: dict[str, Any]) -> str:
    rows = []
    for name, entry in m["models"].items():
        for label in LABELS:
            r = entry["labels"][label]
            rows.append(
                [
                    f"{name} ({entry['kind']})" if entry["kind"] != "baseline" else name,
                    label,
                    est(r["roc_auc"]),
                    est(r["pr_auc"]),
                    f"{est(r['f1'])} @ {num(r['threshold'])}",
                    est(r["accuracy"], 2, True),
                    est(r["all_zeros_accuracy"], 2, True),
                ]
            )
    return "## Headline (test)\n\n" + table(
        ["model", "label", "ROC-AUC", "PR-AUC", "F1 @ τ (val-tuned)", "accuracy % (p ≥ 0.5)", "all-zeros %"], rows
    )


def _verdict_line(h: dict[str, Any]) -> str:
    diff = h["difference"]
    text = (
        f"`{h['model']}` {num(h['model_value'])} vs best baseline `{h['best_baseline']}` "
        f"{num(h['baseline_value'])}; paired difference over the same resampled sessions: {est(diff)}. "
    )
    if diff.get("value") is None:
        return text + "**Undecided:** the difference is undefined on this test set.\n"
    if diff.get("ci_low") is not None and diff["ci_low"] > 0:
        return text + "**Yes:** higher, and the 95 % interval of the difference excludes 0.\n"
    if diff.get("ci_high") is not None and diff["ci_high"] < 0:
        return text + "**No:** the baseline is better, and the 95 % interval of the difference excludes 0.\n"
    word = "higher" if diff["value"] > 0 else "lower"
    return text + f"**Not shown:** the network's value is {word}, but the 95 % interval includes 0.\n"


def _folds_verdict(m: dict[str, Any]) -> str:
    """Fold by fold: does the retrained network beat the best baseline (by mean) on make_order PR-AUC?"""
    f = m.get("folds")
    if not f:
        return ""
    nets = [n for n, e in f["models"].items() if n not in m["models"] or m["models"][n]["kind"] != "baseline"]
    baselines = {n: e for n, e in f["models"].items() if n not in nets}
    if not nets or not baselines:
        return ""

    def pr(entry: dict[str, Any]) -> list[float | None]:
        return [fold["make_order"]["pr_auc"] for fold in entry["per_fold"]]

    best = max(baselines, key=lambda n: baselines[n]["summary"]["make_order"]["pr_auc"]["mean"] or -1.0)
    lines = []
    for net in nets:
        pairs = [(a, b) for a, b in zip(pr(f["models"][net]), pr(baselines[best]), strict=True) if None not in (a, b)]
        wins = sum(a > b for a, b in pairs)  # type: ignore[operator]
        net_mean = f["models"][net]["summary"]["make_order"]["pr_auc"]["mean"]
        base_mean = baselines[best]["summary"]["make_order"]["pr_auc"]["mean"]
        lines.append(
            f"Over {f['k']} folds (each retrained): `{net}` mean {num(net_mean)} vs `{best}` mean {num(base_mean)}; "
            f"the network is higher in {wins} of {len(pairs)} folds.\n"
        )
    return "\n" + "".join(lines)


def _verdict(m: dict[str, Any]) -> str:
    title = "## Does the network beat the best classic baseline on make_order PR-AUC?\n\n"
    headlines = [h for h in [m.get("headline"), *m.get("headline_compared", [])] if h]
    if not headlines:
        return title + "Not measured: run with `--baselines`.\n"
    note = "The best baseline is picked by its test score, which favours the baseline.\n\n"
    return title + note + "\n".join(_verdict_line(h) for h in headlines) + _folds_verdict(m)


def _calibration(m: dict[str, Any]) -> str:
    rows = [
        [name, label, est(e["labels"][label]["brier"], 4), est(e["labels"][label]["ece"], 4)]
        for name, e in m["models"].items()
        for label in LABELS
    ]
    return "## Calibration (test)\n\n" + table(["model", "label", "Brier", "ECE (15 bins)"], rows)


def _comparison(m: dict[str, Any]) -> str:
    rows = []
    for name, e in m["models"].items():
        both, labels = e["labels"]["both_labels"], e["labels"]
        rows.append(
            [
                name,
                e["arch"],
                est(both["accuracy"], 2, True),
                est(both["all_zeros_accuracy"], 2, True),
                num(labels["add_cart"]["roc_auc"]["value"]),
                num(labels["make_order"]["roc_auc"]["value"]),
                num(labels["make_order"]["f1"]["value"]),
                MODEL_COMPARISON.get(e["arch"], "–"),
            ]
        )
    if not any(e["arch"] == "sasrec" for e in m["models"].values()):
        rows.append(["SASRec", "–", "not built", "", "", "", "", MODEL_COMPARISON["sasrec"]])
    return (
        "## Model comparison beside the published figures\n\n"
        "Binary accuracy is over both outputs at p ≥ 0.5, as published. The published figures come from "
        "another shop's log with all 12 action slots filled: read them as anchors, not as equals.\n\n"
        + table(
            [
                "model",
                "arch",
                "binary acc %",
                "all-zeros %",
                "add_cart AUC",
                "make_order AUC",
                "make_order F1",
                "published",
            ],
            rows,
        )
    )


def _folds(m: dict[str, Any]) -> str:
    f = m.get("folds")
    title = "## Stratified group K-fold\n\n"
    if not f:
        return title + "Not run (`--folds 10` retrains the model's architecture once per fold).\n"
    rows = []
    for name, e in f["models"].items():
        for label in LABELS:
            s = e["summary"][label]
            rows.append(
                [name, label]
                + [
                    "–" if s[k]["mean"] is None else f"{s[k]['mean']:.3f} ± {s[k]['std']:.3f}"
                    for k in ("roc_auc", "pr_auc", "f1", "accuracy", "all_zeros_accuracy")
                ]
            )
    return (
        title + f"{f['k']} folds ({f['splitter']}; validation: {f['validation']}; training budget "
        f"{f['train_minutes_budget']:g} min per fold). Mean ± std over folds.\n\n"
        + table(["model", "label", "ROC-AUC", "PR-AUC", "F1", "accuracy", "all-zeros"], rows)
    )


def _sweep(m: dict[str, Any]) -> str:
    s = m.get("sweep")
    title = "## Window sweep beside the published Table 4\n\n"
    if not s:
        return title + (
            f"Not run. `--sweep` trains the small model once per N ∈ {list(SWEEP_WINDOWS)}; expected cost "
            "about 7 × (`--train-minutes` + windowing), 15–20 min at the default 2 min budget.\n"
        )
    rows = []
    for p in s["points"]:
        a, c = p["all_sessions"], p["cart_abandon_sessions"]
        rows.append(
            [
                str(p["window"]),
                est(a["accuracy"], 2, True),
                est(a["all_zeros_accuracy"], 2, True),
                num(p["published_all_sessions_pct"], 2),
                est(c["accuracy"], 2, True),
                est(c["all_zeros_accuracy"], 2, True),
                num(p["published_cart_abandon_pct"], 2),
                num(a["make_order"]["pr_auc"]["value"]) if "make_order" in a else "–",
                num(c["add_cart"]["roc_auc"]["value"]) if "add_cart" in c else "–",
                f"{p['epochs']} ({p['stopped']}), {p['seconds']:.0f} s",
            ]
        )
    header = [
        "N",
        "ours, all",
        "all-zeros",
        "published",
        "ours, cart-abandon",
        "all-zeros",
        "published",
        "make_order PR-AUC, all",
        "add_cart AUC, cart-abandon",
        "epochs, time",
    ]
    return (
        title + f"`{s['arch']}` trained per N with a {s['train_minutes_budget']:g} min budget; binary accuracy "
        "(%) over both outputs at p ≥ 0.5, as published, with the all-zeros accuracy beside it. Where the model "
        "never reaches p ≥ 0.5 the two coincide and accuracy says nothing, so the two AUC columns show whether "
        "a longer window ranks better. CIs and the other AUCs are in metrics.json.\n\n" + table(header, rows)
    )


def _notes(m: dict[str, Any]) -> str:
    notes = [n for e in m["models"].values() for n in e["notes"]]
    fits = [f"{name} {e['fit_seconds']:.0f} s" for name, e in m["models"].items() if e["fit_seconds"] is not None]
    lines = ["## Notes\n"]
    if fits:
        lines.append("- Baseline fit + predict time: " + ", ".join(fits) + ".")
    lines += [f"- {n}" for n in notes]
    if "majority" in m["models"]:
        lines.append(
            "- The majority baseline's validation-tuned F1 threshold is its constant score, so its F1 is that of "
            "calling every window positive: the floor any useful model must clear."
        )
    lines.append(
        "- Baseline hyperparameters are fixed in model/evaluation/baselines.py, not tuned; HistGradientBoosting and "
        "the network stop early on the validation sessions. Nothing is tuned on test."
    )
    return "\n".join(lines) + "\n"


def render_report(metrics: dict[str, Any], plots: list[Plot]) -> str:
    """The whole report.md."""
    parts = [
        _overview(metrics),
        _headline(metrics),
        _verdict(metrics),
        _calibration(metrics),
        _comparison(metrics),
        abandonment_section(metrics),
        idless_section(metrics),
        policy_section(metrics),
        purchase_section(metrics),
        segments_section(metrics),
        _folds(metrics),
        _sweep(metrics),
        _notes(metrics),
    ]
    if plots:
        parts.append("## Plots\n\n" + "\n".join(f"![{caption}]({name})\n" for caption, name in plots))
    return "\n".join(parts)
