"""`session-intent bench coupon`: the coupon loop's simulated proof (bench/coupon/simulate.py) into docs/coupons/.

Runs from a source checkout (it starts examples/coupon_consumer.py); binds only to 127.0.0.1 and stops every
process it started.
"""

from __future__ import annotations

import logging
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from model.artifacts import DEFAULT_MODEL_DIR, REPO_ROOT

log = logging.getLogger(__name__)


NOTE = (
    "\nEach run starts a fresh redis-server and service, and the coupon consumer example as its own process. A "
    "shopper browses 1-4 pages, adds to cart, views the cart, lingers 0.5 s, then buys with the base chance plus "
    "the effect when the consumer has issued it a coupon by then. Runs share the seed, so their shoppers draw the "
    "same random numbers (common random numbers: the runs differ only by the effect).\n"
)


def register_bench(bench_app: typer.Typer) -> None:
    bench_app.command("coupon")(bench_coupon)
    bench_app.command("alert-cost")(bench_alert_cost)


def bench_coupon(
    effects: Annotated[str, typer.Option(help="Injected effects on the chance to buy, comma-separated.")] = "0.05,0",
    shoppers: Annotated[int, typer.Option(min=10, help="Shoppers per run.")] = 4000,
    base_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Chance to buy without a coupon.")] = 0.20,
    hold_share: Annotated[float, typer.Option(min=0.01, max=0.99, help="SI_HOLDOUT_SHARE of the runs.")] = 0.5,
    model_dir: Annotated[Path, typer.Option(help="Model the service loads (its card's alert policy).")] = (
        DEFAULT_MODEL_DIR
    ),
    out_dir: Annotated[Path, typer.Option(help="Where the reports go.")] = REPO_ROOT / "docs" / "coupons",
    seed: Annotated[int, typer.Option(help="Seed of the shoppers and the bootstrap.")] = 0,
) -> None:
    """Simulated shoppers through the real service and Redis; `uplift` must recover the injected effect."""
    from bench.coupon.simulate import Shoppers, simulate
    from model.evaluation.uplift import uplift, write_report, write_rows

    logging.getLogger("httpx").setLevel(logging.WARNING)
    command = shlex.join(["session-intent", *sys.argv[1:]])
    lines = ["# Coupon loop: simulated proof\n", f"Command: `{command}`\n",
             f"{shoppers:,} shoppers per run through the real service and redis-server; holdout share {hold_share}; "
             f"chance to buy without a coupon {base_rate}; model `{model_dir.name}` with its card's alert policy.\n",
             "| injected effect | alerts | treat settled | hold settled | treat couponed | recovered difference "
             "| 95 % CI | covers the injected effect | report |",
             "|---|---|---|---|---|---|---|---|---|"]
    for text in effects.split(","):
        effect = float(text)
        name = f"effect-{effect:g}"
        with tempfile.TemporaryDirectory(prefix="si-coupon-") as work:
            run = simulate(Shoppers(n=shoppers, base_rate=base_rate, effect=effect, seed=seed), model_dir,
                           Path(work), hold_share=hold_share)
        result = uplift(run["rows"], seed=seed)
        write_report(result, out_dir / name, command)
        write_rows(run["rows"], out_dir / name / "alerts.csv")
        low, high, diff = result["ci_low"], result["ci_high"], result["difference"]
        covers = low is not None and high is not None and low <= effect <= high
        lines.append(
            f"| {100 * effect:g} pp | {result['n_alerts']:,} | {result['treat']['n']:,} | {result['hold']['n']:,} | "
            f"{run['couponed']:,} | {_pp(diff)} | [{_pp(low)}, {_pp(high)}] | {'yes' if covers else 'NO'} | "
            f"[{name}/uplift.md]({name}/uplift.md) |"
        )
    (out_dir / "simulation.md").write_text("\n".join(lines) + "\n" + NOTE)
    typer.echo("\n".join(lines))


def _pp(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f} pp"


def bench_alert_cost(
    sessions: Annotated[int, typer.Option(min=10, help="Sessions (5 clicks each) per CPU window.")] = 400,
    repeats: Annotated[int, typer.Option(min=1, help="Alternating off/on pairs.")] = 2,
    model_dir: Annotated[Path, typer.Option(help="Model the service loads.")] = DEFAULT_MODEL_DIR,
    out: Annotated[Path, typer.Option(help="Markdown table to write.")] = REPO_ROOT / "docs" / "coupons" / "cost.md",
) -> None:
    """Alerts on vs off: server CPU per click and Redis round trips per click, on the same clicks."""
    from bench.coupon.alert_cost import measure

    logging.getLogger("httpx").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="si-alert-cost-") as work:
        rows = measure(model_dir, Path(work), sessions=sessions, repeats=repeats)
    lines = ["# Coupon alerts: cost on the click path\n",
             f"Command: `{shlex.join(['session-intent', *sys.argv[1:]])}`\n",
             "| alerts | repeat | clicks | server CPU ms/click | round trips/click | commands | alerts raised |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['alerts']} | {r['repeat']} | {r['clicks']:,} | {r['cpu_ms_per_click']:.3f} | "
              f"{r['round_trips_per_click']:.3f} | {r['commands']} | {r['alerts_raised']:,} |" for r in rows]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    typer.echo("\n".join(lines))
