"""`session-intent bench cpu-ab`: server CPU per click of named configurations, in interleaved rounds.

A configuration is a source tree and environment overrides (bench/service/cpu_ab.py); the report,
docs/benchmarks/<name>.{md,csv,png}, gives each one's rounds, median and ratio to the first with its interval,
and the Redis round trips, Redis CPU and state per click. Runs from a source checkout; binds only to 127.0.0.1,
bounds every wrk run in time and stops every process it starts.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Annotated

import typer

from cli.bench_options import DEFAULT_OUT_DIR, OutDir, need_checkout_and_wrk

CONFIG_HELP = ("NAME=PART,PART…, each PART @DIR (a source tree, default this one) or KEY=VALUE (an environment "
               "override); repeat, first is the reference. e.g. --config base=@/tmp/base --config off=SI_TRACING=off")
TRACING_SETUP = "bash scripts/bootstrap.sh train,dev,tracing"


def register_bench(bench_app: typer.Typer) -> None:
    bench_app.command("cpu-ab")(bench_cpu_ab)


def bench_cpu_ab(
    ctx: typer.Context,
    config: Annotated[list[str] | None, typer.Option("--config", "-c", metavar="NAME=SPEC", help=CONFIG_HELP)] = None,
    name: Annotated[str, typer.Option(help="The report's file name: docs/benchmarks/<name>.{md,csv,png}.")] = "cpu-ab",
    rounds: Annotated[int, typer.Option(min=1, max=50, help="Interleaved rounds, order rotated each round.")] = 3,
    seconds: Annotated[float, typer.Option(min=1.0, max=300.0, help="Measured closed-loop seconds per run.")] = 20.0,
    warmup_s: Annotated[float, typer.Option(min=1.0, max=60.0, help="Unmeasured closed-loop seconds first.")] = 3.0,
    connections: Annotated[int, typer.Option(min=1, max=512, help="wrk connections of the closed loop.")] = 64,
    round_trip_s: Annotated[float, typer.Option(min=0.0, max=30.0, help="Seconds counting Redis round trips "
                                                "(MONITOR) after the measured window; 0: none.")] = 2.0,
    poisson_s: Annotated[float, typer.Option(min=0.0, max=300.0, help="Seconds of Poisson-like arrivals at "
                                             "--rate per run, for p99; 0: none.")] = 0.0,
    rate: Annotated[int, typer.Option(min=1, max=5000, help="Offered clicks/s of the Poisson-like run.")] = 620,
    ids: Annotated[bool, typer.Option(help="Clicks carry user_id/item_id/category_id from bounded pools, "
                                      "shoppers returning (loadtest/wrk_events_ids.lua).")] = False,
    sessions: Annotated[int, typer.Option(min=1, max=10_000_000, help="Sessions the clicks spread over (bench "
                                          "service's 20000); with --ids a tenth as many shoppers.")] = 20_000,
    model_dir: Annotated[Path | None, typer.Option(help="Model every config serves; default: each source "
                                                   "tree's own models/default.")] = None,
    profile_s: Annotated[float, typer.Option(min=0.0, max=120.0, help="Seconds of a py-spy profile per run, "
                                             "after the measured window (shares by stage); 0: none.")] = 0.0,
    out_dir: OutDir = DEFAULT_OUT_DIR,
) -> None:
    """Server CPU per click, config against config, in interleaved rounds; writes docs/benchmarks/<name>.*."""
    if not config:
        raise typer.BadParameter("give at least one --config (two or more to compare)", param_hint="--config")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}", name):
        raise typer.BadParameter("a file name of [A-Za-z0-9_.-]", param_hint="--name")
    need_checkout_and_wrk("bench cpu-ab")
    from bench.report.command import regenerate_command
    from bench.service.cpu_ab import AbPlan, parse_config, run_ab
    from bench.service.cpu_ab_report import write_report

    try:
        configs = tuple(parse_config(text) for text in config)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from None
    if len({c.name for c in configs}) != len(configs):
        raise typer.BadParameter("config names must differ", param_hint="--config")
    if any(c.env.get("SI_TRACING") == "otlp" for c in configs) and importlib.util.find_spec(
            "opentelemetry.exporter.otlp.proto.http") is None:
        typer.secho(f"SI_TRACING=otlp needs the `tracing` extra: run `{TRACING_SETUP}`", fg="red", err=True)
        raise typer.Exit(2)
    plan = AbPlan(configs=configs, rounds=rounds, seconds=seconds, warmup_s=warmup_s, connections=connections,
                  round_trip_s=round_trip_s, poisson_s=poisson_s, rate=rate, ids=ids, sessions=sessions,
                  model_dir=model_dir, profile_s=profile_s)
    result = run_ab(plan, on_step=lambda message: typer.echo(f"  {message}"))
    for path in write_report(result, out_dir, name, regenerate_command(ctx)):
        typer.echo(f"wrote {path}")
