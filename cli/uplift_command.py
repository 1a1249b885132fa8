"""`session-intent uplift`: the coupons' measured effect, treat against the holdout, from Redis or an exported file.

Wired into the console script by `cli/main.py`. numpy and matplotlib are imported inside the command.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cli.common import fail


def register(app: typer.Typer) -> None:
    """Add the `uplift` command to the console script."""
    app.command("uplift")(uplift)


def uplift(
    output: Annotated[Path, typer.Option("-o", "--output", file_okay=False, help="Report directory to write.")],
    redis_url: Annotated[str | None, typer.Option("--redis-url", help="Read alerts and outcomes from Redis.")] = None,
    cluster: Annotated[bool, typer.Option("--cluster", help="--redis-url is a Redis Cluster node.")] = False,
    prefix: Annotated[str, typer.Option("--prefix", help="SI_REDIS_PREFIX of the service.")] = "si:v1",
    input_file: Annotated[
        Path | None, typer.Option("--input", dir_okay=False, help="Read an exported alerts CSV instead.")
    ] = None,
    export: Annotated[
        Path | None, typer.Option("--export", dir_okay=False, help="Also write the alerts read to this CSV.")
    ] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", min=0, help="Bootstrap resamples of the difference.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
) -> None:
    """Conversion after a coupon alert, treat vs hold: difference with a bootstrap CI, NNT, a plot per day."""
    from model.evaluation.uplift import read_rows, write_report, write_rows
    from model.evaluation.uplift import uplift as measure

    console = Console()
    if (redis_url is None) == (input_file is None):
        fail(console, "give exactly one source: --redis-url or --input")
    rows = read_rows(input_file) if input_file is not None else _from_redis(redis_url or "", cluster, prefix)
    if export is not None:
        write_rows(rows, export)
    result = measure(rows, n_boot=n_boot, seed=seed)
    paths = write_report(result, output, shlex.join(["session-intent", *sys.argv[1:]]))
    diff = result["difference"]
    console.print(
        f"{result['n_alerts']:,} alerts: treat {result['treat']['n']:,}, hold {result['hold']['n']:,} settled; "
        f"difference {'–' if diff is None else f'{100 * diff:.2f} pp'} "
        f"[{_pp(result['ci_low'])}, {_pp(result['ci_high'])}]; wrote {', '.join(str(p) for p in paths)}"
    )


def _from_redis(url: str, cluster: bool, prefix: str) -> list[dict[str, Any]]:
    import asyncio

    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    from service.store.alerts import read_outcomes
    from service.store.keys import KeyScheme

    scheme = KeyScheme(prefix)

    async def read() -> list[dict[str, Any]]:
        client = RedisCluster.from_url(url) if cluster else Redis.from_url(url)
        try:
            return await read_outcomes(client, scheme.outcomes_pattern, lambda sid: scheme.session(sid).meta)
        finally:
            await client.aclose()

    return asyncio.run(read())


def _pp(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f} pp"
