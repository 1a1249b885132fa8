"""The `session-intent` console script: one typer app, one module per command.

Each command module imports its heavy dependencies (torch, sklearn) inside the command, so that
`session-intent serve` runs in an image without them.
"""

from __future__ import annotations

import logging

import typer

from cli.extras import require_train_extra

app = typer.Typer(help="Real-time purchase-intent scoring: data, training, export, serving, benchmarks.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
bench_app = typer.Typer(help="Benchmarks that write tables to docs/benchmarks/.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@app.callback()
def _configure(ctx: typer.Context,
               verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    require_train_extra(ctx.invoked_subcommand)  # one line naming the set-up command, not a traceback


def _register_all() -> None:
    from cli import (
        ablation_command,
        bench_chaos_command,
        bench_data_command,
        bench_engine_command,
        bench_service_command,
        cart_rule_command,
        evaluate_command,
        export_command,
        prepare_command,
        serve_command,
        synth_command,
        train_command,
    )

    for module in (serve_command, synth_command, prepare_command, train_command, evaluate_command, export_command,
                   cart_rule_command, ablation_command):
        module.register(app)
    for bench_module in (bench_data_command, bench_engine_command, bench_service_command, bench_chaos_command):
        bench_module.register_bench(bench_app)


_register_all()
