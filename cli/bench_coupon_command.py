"""`session-intent bench coupon`: the coupon loop's simulated proof (bench/coupon/simulate.py) into docs/coupons/.

Runs from a source checkout (it starts examples/coupon_consumer.py); binds only to 127.0.0.1 and stops every
process it started.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from model.artifacts import DEFAULT_MODEL_DIR, REPO_ROOT

log = logging.getLogger(__name__)


def register_bench(bench_app: typer.Typer) -> None:
    bench_app.command("coupon")(bench_coupon)
    bench_app.command("alert-cost")(bench_alert_cost)


def bench_coupon(
    ctx: typer.Context,
    effects: Annotated[str, typer.Option(help="Injected effects on the chance to buy, comma-separated.")] = "0.05,0",
    shoppers: Annotated[int, typer.Option(min=10, help="Shoppers of the generator per run (3 sessions each).")] = 4000,
    browse_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of browse-only visits played.")] = 1.0,
    base_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Chance to buy without a coupon.")] = 0.20,
    hold_share: Annotated[float, typer.Option(min=0.01, max=0.99, help="SI_HOLDOUT_SHARE of the runs.")] = 0.5,
    concurrency: Annotated[int, typer.Option(min=1, help="Shoppers playing at once.")] = 48,
    model_dir: Annotated[Path, typer.Option(help="Model the service loads (its card's alert policy).")] = (
        DEFAULT_MODEL_DIR
    ),
    out_dir: Annotated[Path, typer.Option(help="Where the reports go.")] = REPO_ROOT / "docs" / "coupons",
    seed: Annotated[int, typer.Option(help="Seed of the shoppers and the bootstrap.")] = 0,
) -> None:
    """Simulated shoppers through the real service and Redis; `uplift` must recover the injected effect."""
    from bench.coupon.report import model_version, summary_row, write_simulation_report
    from bench.coupon.simulate import Shoppers, simulate
    from bench.report.command import regenerate_command
    from model.evaluation.uplift import uplift, write_report, write_rows

    logging.getLogger("httpx").setLevel(logging.WARNING)
    command = regenerate_command(ctx)
    setup = (f"Per run, the generator's sessions of about {shoppers:,} shoppers (the table counts those who played a "
             "visit), through the real service and redis-server; holdout share "
             f"{hold_share}; chance to buy without a coupon {base_rate}; browse-only visits played {browse_share:g}; "
             f"model {model_version(model_dir)} with its card's alert policy.")
    rows = []
    for text in effects.split(","):
        effect = float(text)
        name = f"effect-{effect:g}"
        population = Shoppers(n=shoppers, browse_share=browse_share, base_rate=base_rate, effect=effect,
                              concurrency=concurrency, seed=seed)
        with tempfile.TemporaryDirectory(prefix="si-coupon-") as work:
            run = simulate(population, model_dir, Path(work), hold_share=hold_share)
        result = uplift(run["rows"], seed=seed)
        write_report(result, out_dir / name, command)
        write_rows(run["rows"], out_dir / name / "alerts.csv")
        rows.append(summary_row(effect, run, result))
        log.info("%s", rows[-1])
    for path in write_simulation_report(rows, out_dir, command, setup):
        typer.echo(f"wrote {path}")


def bench_alert_cost(
    ctx: typer.Context,
    sessions: Annotated[int, typer.Option(min=10, help="Carted sessions (with ids) per CPU window.")] = 400,
    repeats: Annotated[int, typer.Option(min=1, help="Alternating off/on pairs.")] = 2,
    every_cart: Annotated[bool, typer.Option(help="Upper bound: a policy every open cart reaches.")] = False,
    model_dir: Annotated[Path, typer.Option(help="Model the service loads.")] = DEFAULT_MODEL_DIR,
    out: Annotated[Path, typer.Option(help="Markdown table to write.")] = REPO_ROOT / "docs" / "coupons" / "cost.md",
) -> None:
    """Alerts on vs off: server CPU per click and Redis round trips per click, on the same clicks."""
    from bench.coupon.alert_cost import measure
    from bench.report.command import regenerate_command
    from bench.report.files import provenance_lines

    logging.getLogger("httpx").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="si-alert-cost-") as work:
        rows = measure(model_dir, Path(work), sessions=sessions, repeats=repeats, every_cart=every_cart)
    policy = "a policy every open cart reaches (upper bound)" if every_cart else "the model card's alert policy"
    sharing = "compare on and off within a repeat; the spread between repeats is the noise."
    lines = ["# Coupon alerts: cost on the click path\n", *provenance_lines(regenerate_command(ctx), sharing),
             f"Sessions: the coupon simulation's carted visits, clicks with user, item and category ids; {policy}. "
             "Alerts raised counts every session of the run (warm-up, CPU and round-trip windows).\n",
             "| alerts | repeat | sessions | clicks | server CPU ms/click | round trips/click | commands "
             "| alerts raised |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['alerts']} | {r['repeat']} | {r['sessions']:,} | {r['clicks']:,} | {r['cpu_ms_per_click']:.3f} | "
              f"{r['round_trips_per_click']:.3f} | {r['commands']} | {r['alerts_raised']:,} |" for r in rows]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    typer.echo("\n".join(lines))
