"""`session-intent bench reload`: hot reloads under Poisson load with a shadow on; writes docs/benchmarks/reload.*.

Bounded in time, binds only to 127.0.0.1, stops every process it starts; runs from a source checkout.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from cli.bench_options import DEFAULT_OUT_DIR, OutDir
from model.artifacts import DEFAULT_MODEL_DIR


def register_bench(bench_app: typer.Typer) -> None:
    bench_app.command("reload")(bench_reload)


def bench_reload(
    ctx: typer.Context,
    rate: Annotated[float, typer.Option(min=1.0, max=5000.0, help="Poisson clicks/s.")] = 620.0,
    duration: Annotated[float, typer.Option(min=10.0, max=600.0, help="Seconds of load.")] = 60.0,
    sessions: Annotated[int, typer.Option(min=1, help="Sessions the clicks spread over.")] = 2000,
    reloads: Annotated[int, typer.Option(min=1, max=10, help="Reloads during the load, evenly spaced.")] = 3,
    rss_reloads: Annotated[int, typer.Option(min=1, max=200, help="Reloads without load, RSS before/after.")] = 20,
    shadow_share: Annotated[float, typer.Option(min=0.01, max=1.0, help="Share of batches the shadow scores.")] = 0.1,
    model_dir: Annotated[Path, typer.Option(help="Model served (copied as versions 1 and 2).")] = DEFAULT_MODEL_DIR,
    inline_generator: Annotated[bool, typer.Option(
        help="Run the load generator on a thread of this process with its GC on (how the bench ran before), "
             "not in a process of its own with its GC off.")] = False,
    sample_ms: Annotated[float, typer.Option(min=20.0, max=5000.0, help="Scrape /metrics this often during the "
                                             "load (stall attribution).")] = 100.0,
    out_dir: OutDir = DEFAULT_OUT_DIR,
) -> None:
    """Reload the model under open-loop load with a shadow candidate on; p99 per swap, non-2xx, RSS drift."""
    from bench.report.command import regenerate_command
    from bench.rollout.reload import ReloadPlan, run_reload
    from bench.rollout.reload_report import write_reload_report

    logging.getLogger("httpx").setLevel(logging.WARNING)
    at = tuple((i + 1) / (reloads + 1) for i in range(reloads))
    plan = ReloadPlan(model_dir=model_dir, rate=rate, duration_s=duration, sessions=sessions, reload_at=at,
                      shadow_share=shadow_share, rss_reloads=rss_reloads, own_process=not inline_generator,
                      sample_s=sample_ms / 1000)
    result = run_reload(plan)
    for path in write_reload_report(result, out_dir, regenerate_command(ctx)):
        logging.getLogger(__name__).info("wrote %s", path)
