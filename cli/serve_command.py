"""`session-intent serve`: the scoring service in uvicorn; `--workers N` for N processes (docs/scaling.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from model.artifacts import CARD_FILE


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [SI_HOST; 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [SI_PORT; 8000].")] = None,
    model_dir: Annotated[Path | None, typer.Option(help="Model directory [SI_MODEL_DIR; models/default].")] = None,
    precision: Annotated[str | None, typer.Option(help="int8 | fp32 | fp16 [SI_PRECISION; int8].")] = None,
    redis_url: Annotated[str | None, typer.Option(help="Redis URL [SI_REDIS_URL; unset: embedded].")] = None,
    redis_cluster: Annotated[
        bool | None, typer.Option("--redis-cluster/--no-redis-cluster", help="[SI_REDIS_CLUSTER; false]")
    ] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="[SI_MAX_BATCH_SIZE; 64]")] = None,
    max_queue_delay_ms: Annotated[float | None, typer.Option(help="[SI_MAX_QUEUE_DELAY_MS; 2]")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug | info | warning | error [SI_LOG_LEVEL; info].")] = None,
    log_format: Annotated[str | None, typer.Option(help="text | json [SI_LOG_FORMAT; text].")] = None,
    access_log: Annotated[
        bool | None, typer.Option("--access-log/--no-access-log", help="A line per request [SI_ACCESS_LOG; false].")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Processes, each with its own engine and batcher; one Redis [SI_WORKERS; 1].")
    ] = None,
) -> None:
    """Run the HTTP scoring service; every option overrides its SI_* variable (see docs/service.md)."""
    import uvicorn
    from pydantic import ValidationError
    from rich.console import Console

    from model.card import FingerprintMismatch, ModelCard, check_fingerprint
    from service.app import create_app
    from service.logging_setup import configure_logging
    from service.model_repository import ModelRepository, UnknownVersion
    from service.settings import Settings

    console = Console(stderr=True)
    given: dict[str, Any] = {
        "host": host, "port": port, "model_dir": model_dir, "precision": precision, "redis_url": redis_url,
        "redis_cluster": redis_cluster, "max_batch_size": max_batch_size, "max_queue_delay_ms": max_queue_delay_ms,
        "log_level": log_level, "log_format": log_format, "access_log": access_log,
        "workers": workers,
    }
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        console.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from None
    # Fail before binding a port: a model for another feature layout never serves a request.
    try:
        first = ModelRepository(settings.model_repository, settings.model_name, settings.model_dir).resolve()
        card = ModelCard.load(first.path)
        check_fingerprint(card.fingerprint, str(first.path / CARD_FILE))
    except (FileNotFoundError, FingerprintMismatch, UnknownVersion, ValueError) as exc:
        console.print(f"[red]refusing to start:[/red] {exc}")
        raise typer.Exit(2) from None
    if settings.tracing != "off":  # the `tracing` extra: one line naming it (cli/main.py), not a failed startup
        from cli.extras import require_modules

        require_modules("opentelemetry.sdk")
    # Replaces the root handler cli/main.py installed, and goes to uvicorn (and each worker) as its log_config.
    log_config = configure_logging(settings.log_level, settings.log_format)
    if settings.workers > 1:
        from cli.serve_workers import run_workers, settings_env, shared_redis

        with shared_redis(settings) as redis_env:
            run_workers(settings.workers, settings.host, settings.port, log_config, settings.log_level,
                        {**settings_env(given), **redis_env})
        return
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, workers=1, log_config=log_config,
                log_level=settings.log_level, access_log=False, lifespan="on")
