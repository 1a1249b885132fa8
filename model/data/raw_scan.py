"""Lazy Polars scans of raw exports (CSV or Parquet) into four text columns, with read-order row numbers.

Why Polars (docs/data.md "Engine"): a multi-threaded CSV/Parquet reader that yields Arrow columns,
lazy plans that run in its streaming engine, and group-by / window / sort kernels, so that
`prepare` sessionises inside the engine. A raw file becomes, per row:

    key    str | null   the user id (or the source's own session id); null when empty
    etype  str          the raw event type ("" when empty)
    ts     str | null   the raw timestamp text
    ad     str | null   the raw from_ad text (null without a from_ad column)
    short  bool         the row has fewer fields than the columns the spec names (malformed)
    blank  bool         an empty line: no event and no error
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from model.data.sources import Column, SourceSpec

PARQUET_SUFFIXES = (".parquet", ".pq")
_LINE_SEPARATOR = "\x1f"  # ASCII unit separator: never in a clickstream, so one line is one field


def is_parquet(path: Path) -> bool:
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


def resolve_column(col: Column | None, names: Sequence[str] | None, spec: SourceSpec, path: Path) -> int:
    """0-based position of a column reference; -1 for None. A ValueError names the bad column."""
    if col is None:
        return -1
    if isinstance(col, int):
        return col
    known = list(names) if names is not None else list(spec.columns or ())
    if col not in known:
        where = f"header of {path}" if names is not None else f"columns of source {spec.name!r}"
        raise ValueError(f"column {col!r} not in the {where}: {known}")
    return known.index(col)


def _csv_header(path: Path, spec: SourceSpec) -> list[str] | None:
    """The header names (None for a headerless source or an empty file); -sig: a BOM is no part of a name."""
    if not spec.has_header:
        return None
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle, delimiter=spec.delimiter), None)


def _pick(names: list[str], index: int) -> pl.Expr:
    """Column `index` as text, or null where the file has no such column (every row is then short)."""
    if 0 <= index < len(names):
        return pl.col(names[index]).cast(pl.String)
    return pl.lit(None, dtype=pl.String)


def scan_raw_file(spec: SourceSpec, path: Path) -> pl.LazyFrame | None:
    """The file as the columns of the module docstring; None for an empty file with a header."""
    key_col = spec.session_col if spec.session_col is not None else spec.user_col
    if is_parquet(path):
        values = pl.scan_parquet(path)
        names = values.collect_schema().names()
        short = pl.lit(False)
        blank = pl.lit(False)
        header: list[str] | None = names
    else:
        header = _csv_header(path, spec)
        if spec.has_header and header is None:
            return None
        values = pl.scan_csv(
            path, has_header=spec.has_header, separator=spec.delimiter, infer_schema=False,
            truncate_ragged_lines=True, raise_if_empty=False,
        )  # fmt: skip
        names = values.collect_schema().names()
    indices = [resolve_column(c, header, spec, path) for c in (key_col, spec.ts_col, spec.event_col, spec.from_ad_col)]
    ki, ti, ei, ai = indices
    columns = [
        _pick(names, ki).alias("key"),
        _pick(names, ei).fill_null("").alias("etype"),
        _pick(names, ti).alias("ts"),
        (_pick(names, ai) if ai >= 0 else pl.lit(None, dtype=pl.String)).alias("ad"),
    ]
    if is_parquet(path):
        return values.select(*columns, short.alias("short"), blank.alias("blank"))
    # The CSV reader cannot tell a missing field from an empty one, so a second, line-wise scan
    # counts the fields (quote-unaware: a quoted delimiter only makes a short row look complete).
    lines = pl.scan_csv(
        path, has_header=spec.has_header, separator=_LINE_SEPARATOR, quote_char=None, infer_schema=False,
        empty_string_is_null=False, truncate_ragged_lines=True, raise_if_empty=False,
    ).select(pl.first().fill_null("").alias("line"))  # fmt: skip
    width = max(indices) + 1
    fields = pl.col("line").str.count_matches(spec.delimiter, literal=True) + 1
    counts = lines.select(
        ((pl.col("line") != "") & (fields < width)).alias("short"),
        (pl.col("line") == "").alias("blank"),
    )
    return pl.concat([values.select(columns), counts], how="horizontal")


def scan_raw(spec: SourceSpec, paths: Sequence[Path]) -> pl.LazyFrame:
    """Every file as one log, in read order, with a `row` number (0-based over all files)."""
    frames = [frame for path in paths if (frame := scan_raw_file(spec, Path(path))) is not None]
    if not frames:
        schema = {"key": pl.String, "etype": pl.String, "ts": pl.String, "ad": pl.String,
                  "short": pl.Boolean, "blank": pl.Boolean}  # fmt: skip
        return pl.LazyFrame(schema=schema).with_row_index("row")
    return pl.concat(frames, how="vertical").with_row_index("row")
