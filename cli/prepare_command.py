"""`session-intent prepare`: a raw clickstream export → the common event CSV, with its stats.

Wired into the console script by `cli/main.py` through `register(app)`.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from model.data.sources import BUILTIN_SOURCES, TS_UNITS, build_spec, parse_column, parse_epoch_seconds, parse_mapping

if TYPE_CHECKING:
    from model.data.prepare import PrepareStats

_FAR = 10**12  # epoch seconds beyond any real clickstream; stands in for an open end of --ts-min/--ts-max


def _ts_range(ts_min: str | None, ts_max: str | None) -> tuple[int, int]:
    """[ts_min, ts_max) in epoch seconds; a bound not given is open (it replaces the source's range)."""
    lo = parse_epoch_seconds(ts_min) if ts_min else -_FAR
    hi = parse_epoch_seconds(ts_max) if ts_max else _FAR
    return lo, hi


def _group_rows(stats: PrepareStats) -> list[tuple[str, str, str]]:
    a, c = stats.all_sessions, stats.sessions_3_to_250_events
    return [
        ("sessions", f"{a.sessions:,}", f"{c.sessions:,}"),
        ("events", f"{a.events:,}", f"{c.events:,}"),
        (
            "mean / median events per session",
            f"{a.mean_events_per_session:.2f} / {a.median_events_per_session:g}",
            f"{c.mean_events_per_session:.2f} / {c.median_events_per_session:g}",
        ),
        ("% with any add_cart", f"{a.pct_sessions_with_add_cart:.2f}", f"{c.pct_sessions_with_add_cart:.2f}"),
        ("% with any order", f"{a.pct_sessions_with_order:.2f}", f"{c.pct_sessions_with_order:.2f}"),
        (
            "% add_cart but no order",
            f"{a.pct_sessions_cart_abandoned:.2f}",
            f"{c.pct_sessions_cart_abandoned:.2f}",
        ),
    ]


def _counts(counts: dict[str, int]) -> str:
    return "; ".join(f"{name} {n:,}" for name, n in counts.items()) or "none"


def render_stats(stats: PrepareStats, console: Console) -> None:
    """The stats table in the shape of the data README, then the counts beneath it."""
    from model.data.prepare import MAX_EVENTS, MIN_EVENTS

    mode = f"{stats.gap_minutes:g}-min gap" if stats.gap_minutes is not None else "source session column"
    table = Table(title=f"{stats.format}: {mode}", caption="abandonment = add_cart but no order, per session")
    table.add_column("")
    table.add_column("all sessions", justify="right")
    table.add_column(f"sessions with {MIN_EVENTS}–{MAX_EVENTS} events", justify="right")
    for row in _group_rows(stats):
        table.add_row(*row)
    console.print(table)
    first = (stats.ts_min_utc or "-").replace("+00:00", "Z")
    last = (stats.ts_max_utc or "-").replace("+00:00", "Z")
    console.print(f"Date range: {first} to {last}")
    console.print(f"Shop time zone (for the calendar flags): {stats.timezone}")
    console.print(f"Actions: {_counts(stats.action_counts)}")
    console.print(f"Raw event types ({stats.rows_read:,} rows read): {_counts(stats.raw_event_types)}")
    console.print(f"Skipped, unmapped types: {_counts(stats.skipped)}")
    console.print(f"Dropped outside the ts range: {stats.dropped_outside_ts_range:,}")
    console.print(f"Malformed rows: {_counts(stats.malformed)}")


def prepare_command(
    inputs: Annotated[
        list[Path], typer.Option("--input", "-i", exists=True, dir_okay=False, help="Raw file; repeat for more.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Common CSV to write.")],
    source: Annotated[str, typer.Option(help=f"Named source: {' | '.join(BUILTIN_SOURCES)}.")] = "generic",
    user_col: Annotated[str | None, typer.Option(help="User/visitor id column: name or 0-based position.")] = None,
    ts_col: Annotated[str | None, typer.Option(help="Timestamp column.")] = None,
    event_col: Annotated[str | None, typer.Option(help="Event type column.")] = None,
    session_col: Annotated[
        str | None, typer.Option(help="The source's own session id column; replaces the gap rule.")
    ] = None,
    from_ad_col: Annotated[str | None, typer.Option(help="from_ad column (1/0/true/false); else empty.")] = None,
    item_col: Annotated[str | None, typer.Option(help="Item id column, kept as item_id for the context.")] = None,
    category_col: Annotated[
        str | None, typer.Option(help="Item category column, kept as category_id for the context.")
    ] = None,
    header: Annotated[bool | None, typer.Option("--header/--no-header", help="First line is a header.")] = None,
    delimiter: Annotated[str | None, typer.Option(help="Field delimiter, one character.")] = None,
    ts_unit: Annotated[str | None, typer.Option(help=f"Timestamp unit: {' | '.join(TS_UNITS)}.")] = None,
    mapping: Annotated[
        list[str] | None, typer.Option("--map", help="RAW_TYPE=ACTION; repeat. Replaces the source's map.")
    ] = None,
    ts_min: Annotated[
        str | None, typer.Option(help="Keep ts >= this (epoch s or ISO 8601); replaces the source's range.")
    ] = None,
    ts_max: Annotated[
        str | None, typer.Option(help="Keep ts < this (epoch s or ISO 8601); replaces the source's range.")
    ] = None,
    no_ts_range: Annotated[bool, typer.Option("--no-ts-range", help="Keep every ts.")] = False,
    tz: Annotated[str | None, typer.Option("--timezone", help="Shop time zone (IANA name).")] = None,
    gap_minutes: Annotated[float | None, typer.Option(help="Session gap; default 30.")] = None,
    stats_json: Annotated[Path | None, typer.Option(help="Also write the stats as JSON here.")] = None,
) -> None:
    """Convert a raw clickstream export into the common CSV `session_id,ts,action,from_ad`."""
    try:
        overrides: dict[str, Any] = {
            "user_col": parse_column(user_col) if user_col else None,
            "ts_col": parse_column(ts_col) if ts_col else None,
            "event_col": parse_column(event_col) if event_col else None,
            "session_col": parse_column(session_col) if session_col else None,
            "from_ad_col": parse_column(from_ad_col) if from_ad_col else None,
            "item_col": parse_column(item_col) if item_col else None,
            "category_col": parse_column(category_col) if category_col else None,
            "has_header": header,
            "delimiter": delimiter,
            "ts_unit": ts_unit,
            "action_map": parse_mapping(mapping) if mapping else None,
            "timezone": tz,
            "gap_minutes": gap_minutes,
        }
        if no_ts_range and (ts_min or ts_max):
            raise ValueError("--no-ts-range contradicts --ts-min/--ts-max")
        if ts_min or ts_max:
            overrides["ts_range"] = _ts_range(ts_min, ts_max)
        spec = build_spec(source, **overrides)
        if no_ts_range:
            spec = replace(spec, ts_range=None)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None

    # Polars and the stages built on it load here, not at the CLI's start: a serving install has no polars.
    import polars as pl

    from model.data.prepare import sessionise, summarise, write_common_csv
    from model.data.raw_events import read_raw

    console = Console()
    started = time.perf_counter()
    try:
        with console.status(f"reading {len(inputs)} file(s)"):
            events = read_raw(spec, inputs)
        with console.status(f"sessionising and writing {events.frame.height:,} events"):
            sessions = sessionise(events, spec)
            write_common_csv(sessions, output)
    except (ValueError, UnicodeDecodeError, pl.exceptions.PolarsError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from None
    stats = summarise(sessions, events, spec, inputs)
    render_stats(stats, console)
    if stats_json is not None:
        stats_json.parent.mkdir(parents=True, exist_ok=True)
        stats_json.write_text(json.dumps(stats.to_dict(), indent=2) + "\n", encoding="utf-8")
    elapsed = time.perf_counter() - started
    console.print(
        f"Wrote {stats.all_sessions.events:,} events in {stats.all_sessions.sessions:,} sessions "
        f"to {output} in {elapsed:.1f} s"
    )


def register(app: typer.Typer) -> None:
    """Add the `prepare` command to the console script."""
    app.command("prepare")(prepare_command)
