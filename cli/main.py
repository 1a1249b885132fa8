"""The `session-intent` console script: one typer app, one module per command.

Each command module imports its heavy dependencies (torch, sklearn, polars, aiohttp, …) inside the
command, so that every command loads, and `session-intent serve` runs, on the serving install alone.
`main` is the console script's entry: a command that reaches a missing optional dependency ends in
one line naming the set-up command (cli/extras.py), not a traceback.
"""

from __future__ import annotations

import logging
import sys

import typer

from cli.extras import extra_providing, missing_extra_line

app = typer.Typer(help="Real-time purchase-intent scoring: data, training, export, serving, benchmarks.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
bench_app = typer.Typer(help="Benchmarks that write tables to docs/benchmarks/.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@app.callback()
def _configure(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _register_all() -> None:
    from cli import (
        ablation_command,
        bench_chaos_command,
        bench_coupon_command,
        bench_cpu_ab_command,
        bench_data_command,
        bench_engine_command,
        bench_reload_command,
        bench_service_command,
        card_reference_command,
        evaluate_command,
        export_command,
        policy_command,
        prepare_command,
        replay_command,
        serve_command,
        shadow_report_command,
        synth_command,
        train_command,
        uplift_command,
    )

    for module in (serve_command, synth_command, prepare_command, train_command, evaluate_command, export_command,
                   shadow_report_command, replay_command, policy_command, uplift_command, ablation_command,
                   card_reference_command):
        module.register(app)
    for bench_module in (bench_data_command, bench_engine_command, bench_service_command, bench_chaos_command,
                         bench_reload_command, bench_coupon_command, bench_cpu_ab_command):
        bench_module.register_bench(bench_app)


_register_all()


def _command_words(argv: list[str]) -> str:
    """The subcommand path of a command line (`bench service`), for the one-line message."""
    words = [word for word in argv if word not in ("-v", "--verbose")]
    leading = []
    for word in words:
        if word.startswith("-"):
            break
        leading.append(word)
    return " ".join(leading[:2]) or "this command"


def main() -> None:
    """The console script: the app, with a missing optional dependency reported in one line."""
    try:
        app()
    except ModuleNotFoundError as err:
        extra = extra_providing(err.name)
        if extra is None:  # not an optional dependency: a real bug, keep its traceback
            raise
        typer.echo(missing_extra_line(_command_words(sys.argv[1:]), err.name or "?", extra), err=True)
        raise SystemExit(2) from None
