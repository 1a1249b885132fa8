"""`bench coupon`'s report: simulation.md, simulation.csv (one row per injected effect) and simulation.png
(the recovered difference with its CI against the injected effect)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from bench.report.files import provenance_lines, write_rows_csv
from bench.report.plots import save_figure, subplots

NOTE = (
    "Each run starts a fresh redis-server and service, and the coupon consumer example as its own process. The "
    "shoppers are the synthetic generator's (model/data/synth.py): returning shoppers with several sessions, so "
    "their history builds, and a catalogue of items in categories; every click carries its user, item and "
    "category ids and the generator's timestamp. Clicks of page types the model never saw in training (its "
    "card's slot coverage) and the generator's orders are left out; a share of the browse-only visits is played "
    "(they raise no alert, they only feed history). A shopper plays its visits one after another; a visit that "
    "carted lingers, then buys the carted item with the base chance plus the effect when the consumer has issued "
    "it a coupon by then, else leaves and its session expires with the cart open. Only visits whose clicks "
    "crossed the model card's alert policy are in the analysis. Runs share the seed, so their shoppers draw the "
    "same random numbers (common random numbers: the runs differ only by the effect); the arms' difference gets "
    "a bootstrap CI that resamples sessions."
)


def model_version(model_dir: Path) -> str:
    """'<card name> trained at <git commit>, model.onnx sha256 <12 hex>': which model the run scored with."""
    from model.artifacts import FP32_FILE
    from model.card import ModelCard

    card = ModelCard.load(model_dir)
    digest = hashlib.sha256((model_dir / FP32_FILE).read_bytes()).hexdigest()[:12]
    context = "+".join(sorted({"session", "history"} & _groups(card.context_names))) or "none"
    return f"`{card.name}` (trained at {card.git_commit}, context {context}, {FP32_FILE} sha256 {digest})"


def _groups(names: tuple[str, ...]) -> set[str]:
    from model.context import CONTEXT_FEATURES

    return {f.group for f in CONTEXT_FEATURES if f.name in names}


def summary_row(effect: float, run: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    low, high = result["ci_low"], result["ci_high"]
    return {
        "injected_effect": effect, "shoppers": run["shoppers"], "visits": run["visits"],
        "carted_visits": run["carted_visits"], "clicks": run["clicks"], "seconds": round(run["seconds"], 1),
        "alerts": result["n_alerts"], "treat_settled": result["treat"]["n"], "hold_settled": result["hold"]["n"],
        "treat_conversion": result["treat"]["conversion"], "hold_conversion": result["hold"]["conversion"],
        "couponed": run["couponed"], "difference": result["difference"], "ci_low": low, "ci_high": high,
        "covers_injected": low is not None and high is not None and low <= effect <= high,
    }


def write_simulation_report(rows: list[dict[str, Any]], out_dir: Path, command: str, setup: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = write_rows_csv(out_dir / "simulation.csv", rows)
    png_path = out_dir / "simulation.png"
    _plot(rows, png_path)
    md_path = out_dir / "simulation.md"
    md_path.write_text("\n".join(_markdown(rows, command, setup)) + "\n")
    return [md_path, csv_path, png_path]


def _pp(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f} pp"


def _markdown(rows: list[dict[str, Any]], command: str, setup: str) -> list[str]:
    lines = ["# Coupon loop: simulated proof\n", *provenance_lines(command, sharing="the runs' wall time is in the "
             "table."), setup, "",
             "| injected effect | shoppers | visits (carted) | clicks | run time | alerts | treat settled | "
             "hold settled | treat couponed | recovered difference | 95 % CI | covers the injected effect | report |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = f"effect-{r['injected_effect']:g}"
        lines.append(
            f"| {100 * r['injected_effect']:g} pp | {r['shoppers']:,} | {r['visits']:,} ({r['carted_visits']:,}) | "
            f"{r['clicks']:,} | {r['seconds']:.0f} s | {r['alerts']:,} | {r['treat_settled']:,} | "
            f"{r['hold_settled']:,} | {r['couponed']:,} | {_pp(r['difference'])} | "
            f"[{_pp(r['ci_low'])}, {_pp(r['ci_high'])}] | {'yes' if r['covers_injected'] else '**NO**'} | "
            f"[{name}/uplift.md]({name}/uplift.md) |"
        )
    return [*lines, "", "![recovered against injected](simulation.png)", "", NOTE]


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    fig, ax = subplots(figsize=(6, 3.5))
    for i, r in enumerate(rows):
        if r["difference"] is None:
            continue
        diff = r["difference"]
        low = diff if r["ci_low"] is None else r["ci_low"]
        high = diff if r["ci_high"] is None else r["ci_high"]
        ax.errorbar([i], [100 * diff], yerr=[[100 * (diff - low)], [100 * (high - diff)]], fmt="o", capsize=6,
                    color="tab:blue", label="recovered, 95 % CI" if i == 0 else None)
        ax.plot([i - 0.25, i + 0.25], [100 * r["injected_effect"]] * 2, color="tab:red",
                label="injected" if i == 0 else None)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_xticks(range(len(rows)), [f"{100 * r['injected_effect']:g} pp" for r in rows])
    ax.set_xlabel("injected effect")
    ax.set_ylabel("treat − hold conversion (pp)")
    ax.set_title("Coupon simulation: recovered against injected effect")
    ax.legend()
    save_figure(fig, path)
