"""`session-intent bench chaos|failover|overload|fuzz`: faults, load and hostile input; figures for docs/reliability.md.

Each command is bounded in time, binds only to 127.0.0.1, stops every process it started, and writes
docs/benchmarks/<name>.{md,csv,png}. They run from a source checkout (the load apps of loadtest/ and docs/).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from cli.bench_options import DEFAULT_OUT_DIR
from cli.extras import require_modules
from model.artifacts import DEFAULT_MODEL_DIR, REPO_ROOT

ModelDir = Annotated[Path, typer.Option(help="Model the service loads.")]
Ids = Annotated[bool, typer.Option(help="Clicks carry user_id/item_id/category_id from bounded pools, so the fault "
                                        "meets the context state and the shoppers' histories too.")]


def register_bench(bench_app: typer.Typer) -> None:
    bench_app.command("chaos")(bench_chaos)
    bench_app.command("failover")(bench_failover)
    bench_app.command("overload")(bench_overload)
    bench_app.command("fuzz")(bench_fuzz)


def _from_checkout() -> None:
    if not (REPO_ROOT / "loadtest").is_dir():
        raise typer.BadParameter("the reliability benchmarks run from a source checkout (loadtest/ not found)")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise


def _report(ctx: typer.Context, write: Callable[[str], list[Path]]) -> None:
    """Write a report under the command line that regenerates it."""
    from bench.report.command import regenerate_command

    for path in write(regenerate_command(ctx)):
        logging.getLogger(__name__).info("wrote %s", path)


def bench_chaos(
    ctx: typer.Context,
    rate: Annotated[float, typer.Option(min=1.0, max=5000.0, help="Poisson clicks/s.")] = 300.0,
    sessions: Annotated[int, typer.Option(min=1, help="Sessions the clicks spread over.")] = 500,
    duration: Annotated[float, typer.Option(min=6.0, max=300.0, help="Seconds of load per run.")] = 25.0,
    kill_at: Annotated[float, typer.Option(help="SIGKILL redis-server at this second.")] = 10.0,
    restart_at: Annotated[float, typer.Option(help="Restart it on its data dir at this second.")] = 15.0,
    throughput_seconds: Annotated[float, typer.Option(min=0.0, max=120.0,
                                                      help="Closed-loop seconds per fsync round; 0 skips.")] = 10.0,
    throughput_rounds: Annotated[int, typer.Option(min=1, max=5)] = 2,
    concurrency: Annotated[int, typer.Option(min=1, max=512, help="Closed-loop (wrk) connections.")] = 32,
    ids: Ids = True,
    model_dir: ModelDir = DEFAULT_MODEL_DIR,
    out_dir: Annotated[Path, typer.Option(help="Where chaos.{md,csv,png} go.")] = DEFAULT_OUT_DIR,
) -> None:
    """SIGKILL Redis under Poisson load with appendfsync always, then everysec; writes docs/benchmarks/chaos.*."""
    _from_checkout()
    from bench.reliability.chaos import FSYNC_POLICIES, ChaosPlan, run_chaos, run_fsync_throughput
    from bench.reliability.chaos_report import write_chaos_report
    from bench.reliability.probe import fault_load

    log = logging.getLogger(__name__)
    results = []
    for policy in FSYNC_POLICIES:
        load = fault_load(rate, sessions, duration, "chaos", ids=ids)
        plan = ChaosPlan(appendfsync=policy, load=load, kill_at_s=kill_at, restart_at_s=restart_at, model_dir=model_dir)
        log.info("chaos run, appendfsync %s: %.0f clicks/s for %.0f s", policy, rate, duration)
        results.append(run_chaos(plan))
    throughput = (run_fsync_throughput(model_dir, concurrency, throughput_seconds, throughput_rounds)
                  if throughput_seconds > 0 else [])
    _report(ctx, lambda command: write_chaos_report(results, throughput, out_dir, command))


def bench_failover(
    ctx: typer.Context,
    rate: Annotated[float, typer.Option(min=1.0, max=5000.0, help="Poisson clicks/s.")] = 200.0,
    sessions: Annotated[int, typer.Option(min=3, help="Sessions the clicks spread over.")] = 300,
    duration: Annotated[float, typer.Option(min=10.0, max=300.0, help="Seconds of load.")] = 30.0,
    kill_at: Annotated[float, typer.Option(help="SIGKILL one master at this second.")] = 8.0,
    ids: Ids = True,
    model_dir: ModelDir = DEFAULT_MODEL_DIR,
    out_dir: Annotated[Path, typer.Option(help="Where failover.{md,csv,png} go.")] = DEFAULT_OUT_DIR,
) -> None:
    """SIGKILL a master of a local 3+3 Redis Cluster under Poisson load; writes docs/benchmarks/failover.*."""
    _from_checkout()
    from bench.reliability.failover import FailoverPlan, run_failover
    from bench.reliability.failover_report import write_failover_report
    from bench.reliability.probe import fault_load

    load = fault_load(rate, sessions, duration, "fo", ids=ids)
    plan = FailoverPlan(load=load, kill_at_s=kill_at, model_dir=model_dir)
    result = run_failover(plan)
    _report(ctx, lambda command: write_failover_report(result, out_dir, command))


def bench_overload(
    ctx: typer.Context,
    saturation_seconds: Annotated[float, typer.Option(min=3.0, max=120.0, help="Closed-loop seconds.")] = 10.0,
    concurrency: Annotated[int, typer.Option(min=1, max=512, help="Closed-loop workers.")] = 32,
    phase_seconds: Annotated[float, typer.Option(min=3.0, max=120.0, help="Seconds of each Poisson phase.")] = 15.0,
    factor: Annotated[float, typer.Option(min=1.0, max=10.0, help="Overload rate / saturation rate.")] = 2.0,
    admission_target_ms: Annotated[float | None, typer.Option(
        min=0.0, help="SI_ADMISSION_TARGET_MS of the service under test (0: the fixed in-flight bound alone).")] = None,
    model_dir: ModelDir = DEFAULT_MODEL_DIR,
    out_dir: Annotated[Path, typer.Option(help="Where overload.{md,csv,png} go.")] = DEFAULT_OUT_DIR,
) -> None:
    """Measure saturation (wrk), then drive `factor` × it open loop and come back; writes docs/benchmarks/overload.*."""
    _from_checkout()
    from bench.reliability.overload import OverloadPlan, run_overload
    from bench.reliability.overload_report import write_overload_report

    env = () if admission_target_ms is None else (("SI_ADMISSION_TARGET_MS", f"{admission_target_ms:g}"),)
    plan = OverloadPlan(saturation_s=saturation_seconds, concurrency=concurrency, phase_s=phase_seconds,
                        overload_factor=factor, service_env=env, model_dir=model_dir)
    result = run_overload(plan)
    _report(ctx, lambda command: write_overload_report(result, out_dir, command))


def bench_fuzz(
    ctx: typer.Context,
    max_examples: Annotated[int, typer.Option(min=1, max=100_000, help="Schemathesis -n per operation.")] = 100,
    max_time: Annotated[float, typer.Option(min=10.0, max=1800.0, help="Seconds per mode, at most.")] = 200.0,
    seed: Annotated[int, typer.Option(help="Schemathesis seed.")] = 0,
    model_dir: ModelDir = DEFAULT_MODEL_DIR,
    out_dir: Annotated[Path, typer.Option(help="Where fuzz.{md,csv} go.")] = DEFAULT_OUT_DIR,
) -> None:
    """Schemathesis on every route, auth off then on with a real key; writes docs/benchmarks/fuzz.*."""
    _from_checkout()
    require_modules("schemathesis")  # run as `python -m schemathesis.cli`, in a child process
    from bench.reliability.fuzz import FuzzPlan, run_fuzz
    from bench.reliability.fuzz_report import write_fuzz_report

    results = run_fuzz(FuzzPlan(max_examples=max_examples, max_time_s=max_time, seed=seed, model_dir=model_dir))
    _report(ctx, lambda command: write_fuzz_report(results, out_dir, command))
