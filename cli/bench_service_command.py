"""`session-intent bench service`: the click path against the HTTP floor, side by side (docs/architecture.md §10).

Runs from a source checkout: the load tests and the two comparison apps live in loadtest/, beside the
package, not in it. Every server binds to 127.0.0.1; every wrk and Locust run is bounded in time (and
Locust's in requests). Steps and their order: bench/service/run.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.bench_options import DEFAULT_OUT_DIR, OutDir, need_checkout_and_wrk
from model.artifacts import DEFAULT_MODEL_DIR


def register_bench(bench_app: typer.Typer) -> None:
    bench_app.command("service")(bench_service)
    bench_app.command("session-rss")(bench_session_rss)


def _parse_list(raw: str, what: str) -> list[str]:
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not items:
        raise typer.BadParameter(f"give at least one {what}")
    return items


def bench_service(
    ctx: typer.Context,
    configs: Annotated[str, typer.Option(help="Servers to run, comma-separated (default: all).")] = ",".join(
        ("bare", "service", "service-published", "service-fp32", "service-batch1", "service-workers2",
         "service-gc-default", "naive")),
    saturation_s: Annotated[float, typer.Option(min=2.0, max=120.0, help="Seconds of each wrk run.")] = 10.0,
    saturation_rounds: Annotated[int, typer.Option(
        min=1, max=9, help="Closed-loop rounds, configs interleaved; each config's median round is reported.")] = 3,
    rates: Annotated[str, typer.Option(help="Poisson offered rates of the sweep, req/s.")] = "300,620,1000",
    sweep_s: Annotated[float, typer.Option(min=5.0, max=300.0, help="Seconds of each sweep run.")] = 20.0,
    target_rate: Annotated[int, typer.Option(min=1, help="The target rate, run for --target-s.")] = 620,
    target_s: Annotated[float, typer.Option(min=5.0, max=600.0, help="Seconds of each target-rate run.")] = 60.0,
    target_rounds: Annotated[int, typer.Option(
        min=1, max=9, help="The light client's target-rate time split into this many interleaved rounds; "
                           "each config's median-p99 round is reported.")] = 1,
    locust_processes: Annotated[int, typer.Option(min=1, max=8, help="Locust processes.")] = 2,
    profile_s: Annotated[float, typer.Option(min=0.0, max=60.0, help="Seconds of py-spy; 0: no profile.")] = 8.0,
    model_dir: Annotated[Path, typer.Option(help="Model of the service variants and naive.")] = DEFAULT_MODEL_DIR,
    out_dir: OutDir = DEFAULT_OUT_DIR,
) -> None:
    """Benchmark the service against the HTTP floor, its variants and naive; writes docs/benchmarks/service.*."""
    from rich.console import Console

    console = Console()
    need_checkout_and_wrk("bench service")
    from bench.procs.servers import CONFIGS
    from bench.report.command import regenerate_command
    from bench.service.report import write_report
    from bench.service.run import BenchPlan, run_bench

    chosen = tuple(_parse_list(configs, "config"))
    unknown = set(chosen) - set(CONFIGS)
    if unknown:
        raise typer.BadParameter(f"unknown config(s) {sorted(unknown)}; expected some of {', '.join(CONFIGS)}")
    try:
        rate_list = tuple(int(r) for r in _parse_list(rates, "rate"))
    except ValueError:
        raise typer.BadParameter("rates are whole requests per second, e.g. 300,620,1000") from None
    if min(rate_list) < 1:
        raise typer.BadParameter("rates must be at least 1 request/s")
    plan = BenchPlan(configs=chosen, saturation_s=saturation_s, saturation_rounds=saturation_rounds, rates=rate_list,
                     sweep_s=sweep_s, light_rounds=target_rounds, target_rate=target_rate, target_s=target_s,
                     locust_processes=locust_processes,
                     profile_s=profile_s, model_dir=model_dir)
    result = run_bench(plan, on_step=lambda message: console.print(f"  {message}"))
    for path in write_report(result, out_dir, regenerate_command(ctx)):
        console.print(f"wrote {path}")
    console.print(f"done in {result.seconds / 60:.1f} min")


def bench_session_rss(
    model_dir: Annotated[Path, typer.Option(help="Model the service loads.")] = DEFAULT_MODEL_DIR,
    requests: Annotated[int, typer.Option(min=1, help="Clicks sent before the second RSS reading.")] = 10_000,
    rate: Annotated[float, typer.Option(min=1.0, max=5000.0, help="Poisson clicks/s.")] = 500.0,
    connections: Annotated[int, typer.Option(min=1, max=512, help="Keep-alive connections of the generator.")] = 32,
    sessions: Annotated[int, typer.Option(min=1, help="Clicks are spread over this many sessions.")] = 1000,
    precision: Annotated[str, typer.Option(help="SI_PRECISION of the service.")] = "int8",
    out: Annotated[Path | None, typer.Option(help="Also write the result as JSON here.")] = None,
) -> None:
    """RSS of one replica at idle and after --requests clicks, and Redis bytes per live session; prints JSON."""
    import json

    from bench.service.session_rss import RssPlan, measure_session_rss

    plan = RssPlan(model_dir=model_dir, requests=requests, rate=rate, connections=connections, sessions=sessions,
                   precision=precision)
    text = json.dumps(measure_session_rss(plan), indent=2)
    typer.echo(text)  # the command's result
    if out is not None:
        out.write_text(text + "\n")
