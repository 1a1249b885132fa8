"""`session-intent bench service`: Locust at fixed rates against bare, service and naive (docs/architecture.md §10).

Runs from a source checkout: the load test and the two comparison apps live in loadtest/, beside the
package, not in it. Every server binds to 127.0.0.1; every Locust run is bounded in time and requests.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from model.artifacts import DEFAULT_MODEL_DIR, REPO_ROOT

DEFAULT_OUT_DIR = REPO_ROOT / "docs" / "benchmarks"


def register_bench(bench_app: typer.Typer) -> None:
    bench_app.command("service")(bench_service)


def _parse_list(raw: str, what: str) -> list[str]:
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not items:
        raise typer.BadParameter(f"give at least one {what}")
    return items


def bench_service(
    duration: Annotated[float, typer.Option(min=5.0, max=600.0, help="Seconds of each Locust run.")] = 30.0,
    rates: Annotated[str, typer.Option(help="Target requests/s, comma-separated.")] = "50,200,620",
    configs: Annotated[str, typer.Option(help="Which servers to run, comma-separated.")] = "bare,service,naive",
    user_rate: Annotated[float, typer.Option(min=0.1, help="Requests/s of one Locust user.")] = 5.0,
    warmup: Annotated[float, typer.Option(min=0.0, help="Seconds dropped at the start of each run.")] = 3.0,
    model_dir: Annotated[Path, typer.Option(help="Model for the service and naive.")] = DEFAULT_MODEL_DIR,
    out_dir: Annotated[Path, typer.Option(help="Where service.{md,csv,png} go.")] = DEFAULT_OUT_DIR,
) -> None:
    """Benchmark the service against the HTTP floor and a naive baseline; writes docs/benchmarks/service.*."""
    from rich.console import Console

    console = Console()
    if not (REPO_ROOT / "loadtest" / "locustfile.py").is_file():
        console.print("[red]bench service runs from a source checkout: loadtest/ not found beside the package[/red]")
        raise typer.Exit(2)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from bench.servers import CONFIGS
    from bench.service_report import write_report
    from bench.service_run import BenchPlan, run_bench

    chosen = tuple(_parse_list(configs, "config"))
    unknown = set(chosen) - set(CONFIGS)
    if unknown:
        raise typer.BadParameter(f"unknown config(s) {sorted(unknown)}; expected some of {', '.join(CONFIGS)}")
    try:
        rate_list = tuple(int(r) for r in _parse_list(rates, "rate"))
    except ValueError:
        raise typer.BadParameter("rates are whole requests per second, e.g. 50,200,620") from None
    if min(rate_list) < 1:
        raise typer.BadParameter("rates must be at least 1 request/s")
    plan = BenchPlan(rates=rate_list, duration_s=duration, warmup_s=warmup, user_rate=user_rate, configs=chosen,
                     model_dir=model_dir)
    runs = len(rate_list) * len(chosen)
    console.print(f"{runs} runs of {duration:.0f} s (about {runs * (duration + 8) / 60:.1f} min plus startup)")

    def announce(config: str, rate: int) -> None:
        console.print(f"  {config} @ {rate} QPS")

    result = run_bench(plan, on_run=announce)
    command = (f"session-intent bench service --duration {duration:g} --rates {','.join(map(str, rate_list))} "
               f"--configs {','.join(chosen)} --user-rate {user_rate:g}")
    if model_dir.resolve() != DEFAULT_MODEL_DIR.resolve():
        command += f" --model-dir {model_dir}"
    for path in write_report(result, out_dir, command):
        console.print(f"wrote {path}")
