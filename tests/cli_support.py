"""The `prepare` command as the console script mounts it, for tests that drive it through typer's runner."""

from __future__ import annotations

import typer

from cli.prepare_command import register


def prepare_cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """A group, so that `prepare` is a subcommand as in the console script."""

    register(app)
    return app
